#!/usr/bin/python3
"""valgrind.unit: runs the unit suite (ctest -R '^unit\\.') of a normal (not sanitized) build once
under valgrind's memcheck, and fails on any memory error or definite leak.

Usage: valgrind_unit.py SOURCE_DIR BUILD_DIR [REGEX]

It asks ctest for each test's command, environment and working directory (--show-only=json-v1),
puts valgrind in front of the test program (the first argument that is a file of the build
directory, so a test wrapped in run_with_vault.sh has its program checked, not the shell), and runs
the tests two at a time. Suppressions: tests/lint/valgrind.supp (third-party libraries only, each
with its reason); SKIP below names the tests that cannot run under valgrind, and why. Exit status 1 when a test fails or valgrind reports an error (exit code 99).
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import time

VG_STATUS = 99
# Tests that cannot run under valgrind, each with the reason; their code runs in the others.
SKIP = {
    "unit.pkcs11_race": "re-executes itself through /proc/self/exe, which under valgrind names "
                        "valgrind's tool, not the test (its token code runs in unit.pkcs11)",
}


def valgrind(src):
    return ["valgrind", "--tool=memcheck", "--error-exitcode=%d" % VG_STATUS, "--leak-check=full",
            "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite", "--num-callers=30",
            "--suppressions=" + os.path.join(src, "tests", "lint", "valgrind.supp"), "-q"]


def tests(build, regex):
    out = subprocess.run(["ctest", "--show-only=json-v1", "-R", regex], cwd=build, check=True,
                         capture_output=True, text=True).stdout
    for t in json.loads(out)["tests"]:
        props = {p["name"]: p["value"] for p in t.get("properties", [])}
        if props.get("DISABLED") or not t.get("command"):
            continue
        if t["name"] in SKIP:
            print("%-24s skipped: %s" % (t["name"], SKIP[t["name"]]))
            continue
        yield t["name"], t["command"], props


def run(src, build, name, command, props):
    at = next((i for i, a in enumerate(command)
               if os.path.realpath(a).startswith(os.path.realpath(build) + os.sep)
               and os.path.isfile(a) and os.access(a, os.X_OK)), None)
    if at is None:
        return name, False, "no test program of the build in %s" % command, 0.0
    argv = command[:at] + valgrind(src) + command[at:]
    env = dict(os.environ)
    for kv in props.get("ENVIRONMENT", []):
        k, _, v = kv.partition("=")
        env[k] = v
    timeout = 20 * float(props.get("TIMEOUT", 300))
    start = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=props.get("WORKING_DIRECTORY", build), env=env,
                           capture_output=True, text=True, timeout=timeout, check=False)
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, text = -1, "timed out after %d s" % timeout
    took = time.monotonic() - start
    if rc == VG_STATUS:
        return name, False, "valgrind found errors:\n" + text, took
    if rc != 0:
        return name, False, "failed under valgrind (exit %d):\n%s" % (rc, text), took
    return name, True, "", took


def main():
    src, build = os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2])
    regex = sys.argv[3] if len(sys.argv) > 3 else r"^unit\."
    todo = list(tests(build, regex))
    if not todo:
        sys.exit("valgrind_unit.py: no test matches %s in %s" % (regex, build))
    bad = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for name, ok, why, took in pool.map(lambda t: run(src, build, *t), todo):
            print("%-24s %s (%.0f s)" % (name, "clean" if ok else "FAILED", took), flush=True)
            if not ok:
                bad += 1
                print(why)
    print("valgrind.unit: %d of %d tests clean under memcheck" % (len(todo) - bad, len(todo)))
    sys.exit(1 if bad else 0)


main()
