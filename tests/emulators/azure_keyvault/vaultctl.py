#!/usr/bin/python3
"""Start, stop and steer Key Vault emulators for tests, from shell scripts or C test runners:
the Key Vault declaration of the shared ctl core (tests/emulators/common/emuctl.py, which
documents the directory layout and the commands).

    vaultctl.py start --dir D --name NAME [--tenant T] [--client ID:SECRET ...] [--faults JSON]
                      [--port-reuse] [-- extra emulator args]     prints the port
    vaultctl.py stop --dir D --name NAME [--kill]
    vaultctl.py stop-all --dir D [--kill]
    vaultctl.py faults --dir D --name NAME JSON       replaces the fault configuration
    vaultctl.py stats --dir D --name NAME             prints /_emulator/stats as JSON
    vaultctl.py env --dir D                           KV_CA=..., KV_<NAME>_URL=... for sh

Run with Debian's /usr/bin/python3 (stdlib and python3-cryptography). Exit status 0 on success,
1 on a failure (with one line on stderr), 2 on a usage error.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import emuctl  # noqa: E402

DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"
DEFAULT_CLIENT = "kp-client:kp-secret"


class VaultSpec(emuctl.Spec):
    prog = "vaultctl.py"
    noun = "vault"
    description = "Launch Key Vault emulators for tests."
    emulator = os.path.join(HERE, "emulator.py")
    env_prefix = "KV"

    def add_start_args(self, p):
        p.add_argument("--tenant", default=DEFAULT_TENANT)
        p.add_argument("--client", action="append", default=[],
                       help="CLIENT_ID:SECRET (repeatable; default %s)" % DEFAULT_CLIENT)

    def start_args(self, a):
        return vault_args(a.tenant, a.client or [DEFAULT_CLIENT])


def vault_args(tenant, clients):
    """The emulator's arguments for a tenant and its CLIENT_ID:SECRET pairs."""
    out = ["--tenant", tenant]
    for c in clients:
        out += ["--client", c]
    return out


SPEC = VaultSpec()

if __name__ == "__main__":
    sys.exit(emuctl.main(SPEC))
