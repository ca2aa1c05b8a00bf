"""Start, stop and steer emulators for tests, from shell scripts, C test runners and Python: the
core of every emulator's ctl script (azure_keyvault/vaultctl.py is one), which declares a Spec
and calls main().

Every instance lives in a directory D shared by a test run:
    D/pki/ca.pem, server.pem, server-key.pem   one test CA per D (made on first use)
    D/NAME.state/   the instance's persistent state   D/NAME.log    its stdout and stderr
    D/NAME.port     its port (kept after stop, for --port-reuse)
    D/NAME.pid      present while it runs

    CTL start --dir D --name NAME [spec options] [--faults JSON] [--port-reuse]
              [-- extra emulator args]                prints the port
    CTL stop --dir D --name NAME [--kill]
    CTL stop-all --dir D [--kill]
    CTL faults --dir D --name NAME JSON               replaces the fault configuration
    CTL stats --dir D --name NAME                     prints /_emulator/stats as JSON
    CTL control --dir D --name NAME METHOD ENDPOINT [JSON]
                                                      prints /_emulator/ENDPOINT's JSON answer
    CTL env --dir D                                   PFX_CA=..., PFX_<NAME>_URL=... for sh
                                                      (and the spec's own PFX_<NAME>_... lines)

Exit status 0 on success, 1 on a failure (with one line on stderr), 2 on a usage error.
"""

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

from .client import ControlClient, ControlError
from .pki import ensure_pki

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_children = {}   # pid -> Popen of the instances this process started (reaped by stop)


class Spec:
    """What an emulator's ctl script declares: set the attributes, and override the two start
    hooks when the emulator takes options of its own."""

    prog = "emuctl.py"       # the ctl script's name (messages say "emuctl: ...")
    noun = "emulator"        # what one instance is called in messages and help
    description = "Launch emulators for tests."
    emulator = None          # path of the emulator's entry script
    env_prefix = "EMU"       # env prints PFX_CA and PFX_<NAME>_URL, PFX_<NAME>_PORT

    def add_start_args(self, parser):
        """Adds the emulator's own options to the start command."""

    def start_args(self, a):
        """The emulator's arguments for those options (a: the parsed start command)."""
        return []

    def started(self, a, port):
        """Called by the start command once instance a.name is ready on port (e.g. to introduce
        it to the other instances of a.dir)."""

    def env_extra(self, d, name, port):
        """More env lines of running instance NAME (on port) as (SUFFIX, value) pairs: env
        prints PFX_<NAME>_SUFFIX=value."""
        return []


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


def instance_pid(spec, d, name):
    """The pid of instance NAME when it runs, else None. The pid file is trusted only when that
    process is this spec's emulator on the instance's state directory (pids are recycled)."""
    pid = read_int(path(d, name, ".pid"))
    if pid is None:
        return None
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    state = os.path.abspath(path(d, name, ".state")).encode()
    script = os.path.basename(spec.emulator).encode()
    if any(a.endswith(script) for a in argv) and state in argv:
        return pid
    return None


def log_tail(log, n=15):
    try:
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("  | " + line for line in lines[-n:])


def start(spec, d, name, args=(), faults=None, extra=(), port_reuse=False):
    """Starts instance NAME under directory d (its own session: it outlives the caller) and
    returns its port once it is ready. args: the emulator's own arguments (Spec.start_args);
    faults: the initial fault configuration (JSON text); extra: more emulator arguments, last."""
    d = os.path.abspath(d)
    os.makedirs(d, mode=0o700, exist_ok=True)
    running = instance_pid(spec, d, name)
    if running is not None:
        raise Failure("%s %s already runs (pid %d, port %s)"
                      % (spec.noun, name, running, read_int(path(d, name, ".port"))))
    pki = ensure_pki(d)
    port = 0
    if port_reuse:
        port = read_int(path(d, name, ".port")) or 0
    ready = path(d, name, ".ready")
    for stale in (ready, path(d, name, ".pid")):
        if os.path.exists(stale):
            os.unlink(stale)
    log = path(d, name, ".log")
    cmd = [sys.executable, spec.emulator, "--cert", pki["cert"], "--key", pki["key"],
           "--state-dir", path(d, name, ".state"), "--port", str(port), "--ready-file", ready]
    cmd += list(args)
    if faults is not None:
        cmd += ["--faults", faults]
    cmd += list(extra)
    with open(log, "ab") as logf:
        # its own session: the instance outlives this command and a ^C aimed at the test script
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
        raise Failure("%s %s %s; %s:\n%s" % (spec.noun, name, why, log, log_tail(log)))
    write_atomic(path(d, name, ".port"), "%d\n" % got)
    write_atomic(path(d, name, ".pid"), "%d\n" % proc.pid)
    os.unlink(ready)
    _children[proc.pid] = proc
    return got


def stop(spec, d, name, kill=False):
    """Stops instance NAME (SIGTERM and wait, SIGKILL with kill or after STOP_TIMEOUT); False
    when it was not running."""
    d = os.path.abspath(d)
    pid = instance_pid(spec, d, name)
    pidfile = path(d, name, ".pid")
    if pid is None:
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        return False
    os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while instance_pid(spec, d, name) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    if instance_pid(spec, d, name) is not None:
        os.kill(pid, signal.SIGKILL)
        while instance_pid(spec, d, name) is not None:
            time.sleep(0.05)
    proc = _children.pop(pid, None)
    if proc is not None:
        proc.wait()
    os.unlink(pidfile)
    return True


def names(d):
    """The instances under d that have a pid file."""
    try:
        entries = sorted(os.listdir(d))
    except OSError:
        return []
    return [e[:-4] for e in entries if e.endswith(".pid") and NAME_RE.match(e[:-4])]


def stop_all(spec, d, kill=False):
    for name in names(os.path.abspath(d)):
        stop(spec, d, name, kill)


def running_port(spec, d, name):
    """The port of instance NAME when it runs, else None."""
    d = os.path.abspath(d)
    port = read_int(path(d, name, ".port"))
    if port is None or instance_pid(spec, d, name) is None:
        return None
    return port


def control(spec, d, name):
    """The ControlClient of running instance NAME."""
    port = running_port(spec, d, name)
    if port is None:
        raise Failure("%s %s is not running" % (spec.noun, name))
    return ControlClient(port, os.path.join(os.path.abspath(d), "pki", "ca.pem"))


# ---- the command line ----

def cmd_start(spec, a, extra):
    port = start(spec, a.dir, a.name, spec.start_args(a), a.faults, extra, a.port_reuse)
    spec.started(a, port)
    print(port)


def cmd_stop(spec, a, _extra):
    if not stop(spec, a.dir, a.name, a.kill):
        sys.stderr.write("%s: %s %s was not running\n" % (short(spec), spec.noun, a.name))


def cmd_stop_all(spec, a, _extra):
    stop_all(spec, a.dir, a.kill)


def cmd_faults(spec, a, _extra):
    try:
        json.loads(a.json)
    except ValueError as e:
        raise Failure("faults: not JSON: %s" % e)
    print(json.dumps(control(spec, a.dir, a.name).set_faults(a.json), sort_keys=True))


def cmd_stats(spec, a, _extra):
    print(json.dumps(control(spec, a.dir, a.name).stats(), sort_keys=True))


def cmd_control(spec, a, _extra):
    if a.json is not None:
        try:
            json.loads(a.json)
        except ValueError as e:
            raise Failure("control: not JSON: %s" % e)
    ans = control(spec, a.dir, a.name).ok(a.method.upper(), a.endpoint, a.json)
    print(json.dumps(ans, sort_keys=True))


def cmd_env(spec, a, _extra):
    d = os.path.abspath(a.dir)
    pfx = spec.env_prefix
    exported = [pfx + "_CA"]
    print("%s_CA=%s" % (pfx, shlex.quote(os.path.join(d, "pki", "ca.pem"))))
    for name in names(d):
        port = running_port(spec, d, name)
        if port is None:
            continue
        var = "%s_%s" % (pfx, name.upper().replace("-", "_"))
        print("%s_URL=https://127.0.0.1:%d" % (var, port))
        print("%s_PORT=%d" % (var, port))
        exported += [var + "_URL", var + "_PORT"]
        for suffix, value in spec.env_extra(d, name, port):
            print("%s_%s=%s" % (var, suffix, shlex.quote(str(value))))
            exported.append("%s_%s" % (var, suffix))
    print("export %s" % " ".join(exported))


def short(spec):
    return spec.prog[:-3] if spec.prog.endswith(".py") else spec.prog


def parse(spec, argv):
    n = spec.noun
    ap = argparse.ArgumentParser(prog=spec.prog, description=spec.description)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def command(name, helptext, func, named=True):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--dir", required=True, help="directory holding the %ss of one test run" % n)
        if named:
            p.add_argument("--name", required=True, help="%s name ([A-Za-z0-9_-])" % n)
        p.set_defaults(func=func)
        return p

    p = command("start", "start a %s and print its port" % n, cmd_start)
    spec.add_start_args(p)
    p.add_argument("--faults", default=None, help="initial fault configuration (JSON)")
    p.add_argument("--port-reuse", action="store_true",
                   help="listen on the port of the %s's earlier run (same URL)" % n)
    p = command("stop", "stop a %s (SIGTERM, or SIGKILL with --kill)" % n, cmd_stop)
    p.add_argument("--kill", action="store_true")
    p = command("stop-all", "stop every %s under --dir" % n, cmd_stop_all, named=False)
    p.add_argument("--kill", action="store_true")
    p = command("faults", "replace a running %s's fault configuration" % n, cmd_faults)
    p.add_argument("json", help='e.g. \'{"scope":"all","sequence":["429","drop"]}\'')
    command("stats", "print a running %s's fault counters as JSON" % n, cmd_stats)
    p = command("control", "send a request to a running %s's control endpoint" % n, cmd_control)
    p.add_argument("method", help="GET, POST, PUT or PATCH")
    p.add_argument("endpoint", help="the name after /_emulator/, e.g. config")
    p.add_argument("json", nargs="?", default=None, help="the request body (JSON)")
    command("env", "print %s_CA and %s_<NAME>_URL lines for sh" % (spec.env_prefix, spec.env_prefix),
            cmd_env, named=False)
    a = ap.parse_args(argv)
    if getattr(a, "name", None) is not None and not NAME_RE.match(a.name):
        ap.error("--name must be 1..64 of [A-Za-z0-9_-], starting with a letter or digit")
    return a


def main(spec, argv=None):
    """The ctl script's command line; returns its exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:        # everything after -- goes to the emulator unchanged
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    a = parse(spec, argv)
    if extra and a.cmd != "start":
        sys.stderr.write("%s: only start takes emulator arguments after --\n" % short(spec))
        return 2
    try:
        a.func(spec, a, extra)
    except (Failure, ControlError, OSError) as e:
        sys.stderr.write("%s: %s\n" % (short(spec), e))
        return 1
    return 0
