#!/usr/bin/python3
"""Start, stop and steer Key Vault emulators for tests, from shell scripts or C test runners.

Every vault lives in a directory D shared by a test run:
    D/pki/ca.pem, server.pem, server-key.pem   one test CA per D (made on first use)
    D/NAME.state/   the vault's persistent state      D/NAME.log    its stdout and stderr
    D/NAME.port     its port (kept after stop, for --port-reuse)
    D/NAME.pid      present while it runs

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

import argparse
import datetime
import fcntl
import http.client
import json
import os
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time

from cryptography import x509

from pki import make_pki

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "emulator.py")
DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"
DEFAULT_CLIENT = "kp-client:kp-secret"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class Failure(Exception):
    pass


def path(d, name, suffix):
    return os.path.join(d, name + suffix)


def write_atomic(p, text):
    tmp = p + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, p)


def read_int(p):
    try:
        with open(p) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def ensure_pki(d):
    """One CA per directory, made under a lock so parallel starts agree on it. A server
    certificate about to expire (it lives a day) is remade together with its CA."""
    pki_dir = os.path.join(d, "pki")
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    paths = {"ca": os.path.join(pki_dir, "ca.pem"), "cert": os.path.join(pki_dir, "server.pem"),
             "key": os.path.join(pki_dir, "server-key.pem")}
    with open(os.path.join(pki_dir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if all(os.path.exists(p) for p in paths.values()):
            with open(paths["cert"], "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if cert.not_valid_after - datetime.timedelta(hours=1) > datetime.datetime.utcnow():
                return paths
        return make_pki(pki_dir)


def emulator_pid(d, name):
    """The pid of vault NAME when it runs, else None. The pid file is trusted only when that
    process is an emulator on this vault's state directory (pids are recycled)."""
    pid = read_int(path(d, name, ".pid"))
    if pid is None:
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    state = os.path.abspath(path(d, name, ".state")).encode()
    if any(a.endswith(b"emulator.py") for a in argv) and state in argv:
        return pid
    return None


def log_tail(log, n=15):
    try:
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("  | " + line for line in lines[-n:])


def cmd_start(a, extra):
    d = os.path.abspath(a.dir)
    os.makedirs(d, mode=0o700, exist_ok=True)
    running = emulator_pid(d, a.name)
    if running is not None:
        raise Failure("vault %s already runs (pid %d, port %s)"
                      % (a.name, running, read_int(path(d, a.name, ".port"))))
    pki = ensure_pki(d)
    port = 0
    if a.port_reuse:
        port = read_int(path(d, a.name, ".port")) or 0
    ready = path(d, a.name, ".ready")
    for stale in (ready, path(d, a.name, ".pid")):
        if os.path.exists(stale):
            os.unlink(stale)
    state = path(d, a.name, ".state")
    log = path(d, a.name, ".log")
    cmd = [sys.executable, EMULATOR, "--cert", pki["cert"], "--key", pki["key"],
           "--state-dir", state, "--port", str(port), "--ready-file", ready,
           "--tenant", a.tenant]
    for c in a.client or [DEFAULT_CLIENT]:
        cmd += ["--client", c]
    if a.faults is not None:
        cmd += ["--faults", a.faults]
    cmd += extra
    with open(log, "ab") as logf:
        # its own session: the vault outlives this command and a ^C aimed at the test script
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + READY_TIMEOUT
    got = None
    while time.monotonic() < deadline:
        got = read_int(ready)
        if got is not None or proc.poll() is not None:
            break
        time.sleep(0.05)
    if got is None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            why = "not ready after %d s" % READY_TIMEOUT
        else:
            why = "exited with status %d" % proc.returncode
        raise Failure("vault %s %s; %s:\n%s" % (a.name, why, log, log_tail(log)))
    write_atomic(path(d, a.name, ".port"), "%d\n" % got)
    write_atomic(path(d, a.name, ".pid"), "%d\n" % proc.pid)
    os.unlink(ready)
    print(got)


def stop_one(d, name, kill):
    pid = emulator_pid(d, name)
    pidfile = path(d, name, ".pid")
    if pid is None:
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while emulator_pid(d, name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if emulator_pid(d, name) is not None:
        os.kill(pid, signal.SIGKILL)
        while emulator_pid(d, name) is not None:
            time.sleep(0.05)
    os.unlink(pidfile)
    return True


def vault_names(d):
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        return []
    return [e[:-4] for e in entries if e.endswith(".pid") and NAME_RE.match(e[:-4])]


def cmd_stop(a, _extra):
    if not stop_one(os.path.abspath(a.dir), a.name, a.kill):
        sys.stderr.write("vaultctl: vault %s was not running\n" % a.name)


def cmd_stop_all(a, _extra):
    d = os.path.abspath(a.dir)
    for name in vault_names(d):
        stop_one(d, name, a.kill)


def control(d, name, method, endpoint, body=None):
    port = read_int(path(d, name, ".port"))
    if port is None or emulator_pid(d, name) is None:
        raise Failure("vault %s is not running" % name)
    ctx = ssl.create_default_context(cafile=os.path.join(d, "pki", "ca.pem"))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, endpoint, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read().decode()
    finally:
        conn.close()
    if resp.status != 200:
        raise Failure("%s %s: HTTP %d %s" % (method, endpoint, resp.status, data.strip()))
    return json.loads(data)


def cmd_faults(a, _extra):
    try:
        json.loads(a.json)
    except ValueError as e:
        raise Failure("faults: not JSON: %s" % e)
    out = control(os.path.abspath(a.dir), a.name, "PUT", "/_emulator/faults", a.json.encode())
    print(json.dumps(out, sort_keys=True))


def cmd_stats(a, _extra):
    print(json.dumps(control(os.path.abspath(a.dir), a.name, "GET", "/_emulator/stats"),
                     sort_keys=True))


def cmd_env(a, _extra):
    d = os.path.abspath(a.dir)
    names = ["KV_CA"]
    print("KV_CA=%s" % shlex.quote(os.path.join(d, "pki", "ca.pem")))
    for name in vault_names(d):
        port = read_int(path(d, name, ".port"))
        if port is None or emulator_pid(d, name) is None:
            continue
        var = "KV_%s" % name.upper().replace("-", "_")
        print("%s_URL=https://127.0.0.1:%d" % (var, port))
        print("%s_PORT=%d" % (var, port))
        names += [var + "_URL", var + "_PORT"]
    print("export %s" % " ".join(names))


def parse(argv):
    ap = argparse.ArgumentParser(prog="vaultctl.py",
                                 description="Launch Key Vault emulators for tests.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    def vault_cmd(name, helptext, func, named=True):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--dir", required=True, help="directory holding the vaults of one test run")
        if named:
            p.add_argument("--name", required=True, help="vault name ([A-Za-z0-9_-])")
        p.set_defaults(func=func)
        return p

    p = vault_cmd("start", "start a vault and print its port", cmd_start)
    p.add_argument("--tenant", default=DEFAULT_TENANT)
    p.add_argument("--client", action="append", default=[],
                   help="CLIENT_ID:SECRET (repeatable; default %s)" % DEFAULT_CLIENT)
    p.add_argument("--faults", default=None, help="initial fault configuration (JSON)")
    p.add_argument("--port-reuse", action="store_true",
                   help="listen on the port of the vault's earlier run (same URL)")
    p = vault_cmd("stop", "stop a vault (SIGTERM, or SIGKILL with --kill)", cmd_stop)
    p.add_argument("--kill", action="store_true")
    p = vault_cmd("stop-all", "stop every vault under --dir", cmd_stop_all, named=False)
    p.add_argument("--kill", action="store_true")
    p = vault_cmd("faults", "replace a running vault's fault configuration", cmd_faults)
    p.add_argument("json", help='e.g. \'{"scope":"all","sequence":["429","drop"]}\'')
    vault_cmd("stats", "print a running vault's fault counters as JSON", cmd_stats)
    vault_cmd("env", "print KV_CA and KV_<NAME>_URL lines for sh", cmd_env, named=False)
    a = ap.parse_args(argv)
    if getattr(a, "name", None) is not None and not NAME_RE.match(a.name):
        ap.error("--name must be 1..64 of [A-Za-z0-9_-], starting with a letter or digit")
    return a


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:        # everything after -- goes to the emulator unchanged
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = parse(argv)
    if extra and a.cmd != "start":
        sys.stderr.write("vaultctl: only start takes emulator arguments after --\n")
        return 2
    try:
        a.func(a, extra)
    except (Failure, OSError) as e:
        sys.stderr.write("vaultctl: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
