#!/usr/bin/python3
"""Start, stop and steer Key Vault emulators for tests, from shell scripts or C test runners:
the Key Vault declaration of the shared ctl core (tests/emulators/common/emuctl.py, which
documents the directory layout and the commands).

    vaultctl.py start --dir D --name NAME [--tenant T] [--client ID:SECRET ...]
                      [--permissions ID=PERMS ...] [--faults JSON] [--port-reuse]
                      [-- extra emulator args]                    prints the port
    vaultctl.py stop --dir D --name NAME [--kill]
    vaultctl.py stop-all --dir D [--kill]
    vaultctl.py faults --dir D --name NAME JSON       replaces the fault configuration
    vaultctl.py stats --dir D --name NAME             prints /_emulator/stats as JSON
    vaultctl.py control --dir D --name NAME METHOD ENDPOINT [JSON]
                                                      any control endpoint, e.g. POST permissions
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
        p.add_argument("--permissions", action="append", default=[], metavar="ID=PERMS",
                       help="key permissions of identity ID, e.g. kp-client=get,wrapKey,unwrapKey"
                            " (repeatable; default: every permission)")
        p.add_argument("--no-purge-protection", action="store_true",
                       help="a vault without purge protection (by default the vaults started here "
                            "have it, as Azure SQL requires of a TDE protector's vault)")

    def start_args(self, a):
        return vault_args(a.tenant, a.client or [DEFAULT_CLIENT], a.permissions, a.name,
                          not a.no_purge_protection)


def vault_args(tenant, clients, permissions=(), name=None, purge_protection=False):
    """The emulator's arguments for a tenant, its CLIENT_ID:SECRET pairs, ID=PERMS access
    policies, the vault's name (in its access-denied messages) and whether it has purge
    protection."""
    out = ["--tenant", tenant]
    for c in clients:
        out += ["--client", c]
    for p in permissions:
        out += ["--permissions", p]
    if name:
        out += ["--vault-name", name]
    if purge_protection:
        out += ["--purge-protection"]
    return out


SPEC = VaultSpec()

if __name__ == "__main__":
    sys.exit(emuctl.main(SPEC))
