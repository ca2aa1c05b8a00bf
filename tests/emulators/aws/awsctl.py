#!/usr/bin/python3
"""Start, stop and steer AWS region emulators for tests, from shell scripts or C test runners:
the AWS declaration of the shared ctl core (tests/emulators/common/emuctl.py, which documents the
directory layout and the commands). One instance is one region.

    awsctl.py start --dir D --name NAME [--region R] [--account A] [--credentials AKID:SECRET ...]
                    [--role ROLE ...] [--web-identity-token ROLE=TOKEN ...]
                    [--peer REGION=URL|NAME ...] [--link] [--imds | --imds-port P]
                    [--container | --container-port P] [--container-token T]
                    [--faults JSON] [--port-reuse] [-- extra emulator args]    prints the port
    awsctl.py stop --dir D --name NAME [--kill]
    awsctl.py stop-all --dir D [--kill]
    awsctl.py faults --dir D --name NAME JSON       replaces the fault configuration
    awsctl.py stats --dir D --name NAME             prints /_emulator/stats as JSON
    awsctl.py control --dir D --name NAME METHOD ENDPOINT [JSON]
    awsctl.py env --dir D      AWS_CA=..., and per running region AWS_<NAME>_URL, _PORT, _REGION,
                               _IMDS_URL (http://127.0.0.1:P/), _CONTAINER_URL (http://...:P/creds)

--link introduces the new region to every other running region of D and them to it (each one's
peer for Secrets Manager replication), so regions may start in any order. A --peer value that
is not a URL names another instance of D.

Run with Debian's /usr/bin/python3 (stdlib, python3-cryptography, python3-botocore). Exit status 0
on success, 1 on a failure (with one line on stderr), 2 on a usage error.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from common import emuctl  # noqa: E402

DEFAULT_REGION = "us-east-1"
DEFAULT_CREDENTIALS = "AKIDKEYPLANETEST:kp-aws-secret"
DEFAULT_CONTAINER_TOKEN = "kp-container-token"


class AwsSpec(emuctl.Spec):
    prog = "awsctl.py"
    noun = "region"
    description = "Launch AWS region emulators (S3, Secrets Manager, KMS, STS, IMDS) for tests."
    emulator = os.path.join(HERE, "emulator.py")
    env_prefix = "AWS"

    def add_start_args(self, p):
        p.add_argument("--region", default=DEFAULT_REGION)
        p.add_argument("--account", default=None)
        p.add_argument("--credentials", action="append", default=[], metavar="AKID:SECRET",
                       help="a long-term key (repeatable; default %s)" % DEFAULT_CREDENTIALS)
        p.add_argument("--role", action="append", default=[],
                       help="a role every principal may AssumeRole (repeatable)")
        p.add_argument("--web-identity-token", action="append", default=[], metavar="ROLE=TOKEN")
        p.add_argument("--peer", action="append", default=[], metavar="REGION=URL|NAME",
                       help="another region's emulator (a URL, or an instance name of --dir)")
        p.add_argument("--link", action="store_true",
                       help="make every other running region of --dir and this one peers")
        p.add_argument("--imds", action="store_true", help="IMDS on an ephemeral port")
        p.add_argument("--imds-port", type=int, default=None)
        p.add_argument("--container", action="store_true",
                       help="the container credentials endpoint on an ephemeral port")
        p.add_argument("--container-port", type=int, default=None)
        p.add_argument("--container-token", default=DEFAULT_CONTAINER_TOKEN)

    def start_args(self, a):
        peers = []
        for p in a.peer:
            region, _, target = p.partition("=")
            if not target.startswith("https://"):
                port = emuctl.running_port(self, a.dir, target)
                if port is None:
                    raise emuctl.Failure("--peer %s: no running region %s in %s" % (p, target, a.dir))
                target = "https://127.0.0.1:%d" % port
            peers.append("%s=%s" % (region, target))
        imds = "auto" if a.imds else a.imds_port
        container = "auto" if a.container else a.container_port
        return region_args(a.region, a.credentials or [DEFAULT_CREDENTIALS], account=a.account,
                           roles=a.role, web_tokens=a.web_identity_token, peers=peers,
                           ca=os.path.join(os.path.abspath(a.dir), "pki", "ca.pem"),
                           imds=imds, container=container, container_token=a.container_token)

    def started(self, a, port):
        if a.link:
            link(a.dir, a.name)

    def env_extra(self, d, name, port):
        try:
            h = emuctl.control(self, d, name).health()
        except (emuctl.Failure, OSError, ValueError):
            return []
        out = [("REGION", h.get("region", ""))]
        if h.get("imds_port"):
            # with the trailing slash: the aws CLI appends "latest/..." to it as it is
            out.append(("IMDS_URL", "http://127.0.0.1:%d/" % h["imds_port"]))
        if h.get("container_port"):
            out.append(("CONTAINER_URL", "http://127.0.0.1:%d%s" % (h["container_port"],
                                                                    h.get("container_path", "/creds"))))
        return out


def region_args(region, credentials, account=None, roles=(), web_tokens=(), peers=(), ca=None,
                imds=None, container=None, container_token=None):
    """The emulator's arguments: its region, ACCESS_KEY_ID:SECRET pairs, account, roles any
    principal may assume, ROLE=TOKEN web identities, REGION=URL peers, the peers' CA, and the
    IMDS and container endpoints ("auto", a port, or None for off)."""
    out = ["--region", region]
    for c in credentials:
        out += ["--credentials", c]
    if account:
        out += ["--account", account]
    for r in roles:
        out += ["--role", r]
    for w in web_tokens:
        out += ["--web-identity-token", w]
    for p in peers:
        out += ["--peer", p]
    if ca:
        out += ["--ca", ca]
    if imds is not None:
        out += ["--imds-port", str(imds)]
    if container is not None:
        out += ["--container-port", str(container)]
    if container_token is not None:
        out += ["--container-token", container_token]
    return out


def link(d, name):
    """Makes running region NAME of d and every other running region of d peers of each other
    (POST /_emulator/peers both ways)."""
    me = emuctl.control(SPEC, d, name)
    mine = me.health()
    for other in emuctl.names(os.path.abspath(d)):
        if other == name or emuctl.running_port(SPEC, d, other) is None:
            continue
        oc = emuctl.control(SPEC, d, other)
        theirs = oc.health()
        if theirs.get("region") == mine["region"]:
            continue
        me.ok("POST", "peers", {theirs["region"]: theirs["url"]})
        oc.ok("POST", "peers", {mine["region"]: mine["url"]})


SPEC = AwsSpec()

if __name__ == "__main__":
    sys.exit(emuctl.main(SPEC))
