#!/usr/bin/python3
"""The model test of issue 11's chain invariants (docs/engine.md, "Model test"): a seeded random
walk of apply, rotate, retire, damage and restore, wrap, unwrap, rewrap, kill -9, concurrent
runners, stores moved away and back, the vault stopped and restarted and state documents
corrupted, driving the built keyplane against real stores (tests/integration/chain_model/), with
invariants 1, 3, 4 and 5 checked from the outside after every step.

    chain_model.py --build BUILD [--seeds 1-3] [--steps 300]     ctest runs one seed per test
    chain_model.py --build BUILD --replay FILE                   a saved step sequence again
    chain_model.py --build BUILD --shrink FILE                   fewer steps, same violation
    chain_model.py --build BUILD --selftest                      planted faults must be seen

A seed that finds a violation prints it with its step and the commands that showed it, saves
its step sequence as JSON (the path is printed) and exits 1; --replay runs that file again.
Run with Debian's /usr/bin/python3 (python3-cryptography; the vault emulator's modules).
"""

import argparse
import json
import os
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chain_model import draw, plant, shrink, walk  # noqa: E402
from chain_model.world import SetupError  # noqa: E402


def seeds(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def report(k, steps_dir):
    stats = ", ".join("%s %d (%.1fs%s)" % (op, s["n"], s["secs"], "".join(
        " rc%s:%d" % kv for kv in sorted(s["rc"].items()))) for op, s in sorted(k.op_stats.items()))
    print("chain_model: seed %d: %d steps in %.1f s, %d envelopes, versions %s, %d violations"
          % (k.seed, len(k.executed), k.secs, len(k.m.envelopes), sorted(k.m.history),
             len(k.violations)))
    print("  steps: " + stats)
    print("  time by command: " + ", ".join("%s %.1fs" % kv for kv in sorted(
        k.cmd_secs.items(), key=lambda kv: -kv[1])))
    print("  cpu by command: " + ", ".join("%s %.1fs" % kv for kv in sorted(
        k.cmd_cpu.items(), key=lambda kv: -kv[1])))
    if k.verbose:
        for secs, i, cmd, rc in k.slowest:
            print("  slow: step %d %.2fs exit %s: %s" % (i, secs, rc, cmd[:150]))
    for text, i in sorted(k.notes.items(), key=lambda x: x[1]):
        print("  note (step %d): %s" % (i, text))
    for v in k.violations:
        print("\nVIOLATION [%s] seed %d, step %d %s (seen %d times)\n  %s" % (
            v.kind, k.seed, v.index, json.dumps(v.step, sort_keys=True), v.count, v.message))
        for c in v.commands:
            print("  " + c.replace("\n", "\n  "))
    if k.violations:
        last = max(v.index for v in k.violations)
        print("\n  the steps up to the last violation (the seed draws them again, timing "
              "permitting):")
        for i, step in enumerate(k.executed[:last + 1]):
            print("  step %d: %s" % (i, json.dumps(step, sort_keys=True)))
    if k.violations or steps_dir:
        path = os.path.join(steps_dir or tempfile.gettempdir(),
                            "chain_model-seed%d.steps.json" % k.seed)
        save(path, k.seed, k.executed)
        me = os.path.abspath(__file__)
        print("\n  step sequence: %s\n  replay: /usr/bin/python3 %s --build BUILD --replay %s"
              "\n  shorten: /usr/bin/python3 %s --build BUILD --shrink %s"
              % (path, me, path, me, path))
    sys.stdout.flush()


def save(path, seed, seq):
    with open(path, "w") as f:
        json.dump({"seed": seed, "steps": seq}, f, indent=0, sort_keys=True)


def shorten(a):
    with open(a.shrink) as f:
        doc = json.load(f)
    got = shrink.shrink(a.build, doc["seed"], doc["steps"])
    if got is None:
        print("chain_model: the sequence shows no violation now")
        return 1
    seq, v = got
    path = a.shrink.replace(".json", "") + ".short.json"
    save(path, doc["seed"], seq)
    print("chain_model: %d steps (of %d) still show [%s] %s\n  %s" % (
        len(seq), len(doc["steps"]), v.kind if v else "?", v.message if v else "(not on the "
        "last replay: timing)", path))
    for i, step in enumerate(seq):
        print("  step %d: %s" % (i, json.dumps(step, sort_keys=True)))
    return 0


def selftest(a):
    missed = 0
    for fault, seq in plant.selftest_sequences():
        k = walk.Walk(a.build, 0, keep=a.keep)
        try:
            k.run(len(seq), seq)
        except SetupError as e:
            print("chain_model: selftest: cannot set up the world: %s" % e)
            return 2
        kinds = sorted({v.kind for v in k.violations})
        ok = plant.EXPECT[fault] in kinds
        missed += not ok
        print("chain_model: selftest %s: %s (reported: %s)" % (
            fault, "reported" if ok else "NOT REPORTED", ", ".join(kinds) or "nothing"))
        if not ok:
            report(k, None)
    return 1 if missed else 0


def main(argv):
    p = argparse.ArgumentParser(description="model test of the chain invariants")
    p.add_argument("--build", default=os.environ.get("KP_BUILD_DIR", "build"),
                   help="build directory holding bin/keyplane and its plugins")
    p.add_argument("--seeds", type=seeds, default=[1], help="e.g. 1-20 or 1,5,9")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--replay", help="a step sequence saved by an earlier run")
    p.add_argument("--shrink", metavar="FILE",
                   help="cut a saved sequence down to the steps its first violation needs")
    p.add_argument("--save-steps", metavar="DIR",
                   help="save each seed's step sequence in DIR, also when it passes (by default "
                        "only a failing one, in the temporary directory)")
    p.add_argument("--full-every", type=int, default=walk.FULL_EVERY)
    p.add_argument("--weight", action="append", default=[], metavar="OP=N",
                   help="change how often a step is drawn (0: never); repeatable")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--selftest", action="store_true",
                   help="plant faults behind keyplane's back and expect each to be reported")
    p.add_argument("-v", "--verbose", action="store_true", help="print every step")
    a = p.parse_args(argv)
    weights = dict(draw.WEIGHTS)
    for kv in a.weight:
        op, _, n = kv.partition("=")
        if op not in weights or not n.isdigit():
            p.error("--weight takes OP=N with OP one of " + ", ".join(sorted(weights)))
        weights[op] = int(n)
    if a.selftest:
        return selftest(a)
    if a.shrink:
        return shorten(a)
    runs = []
    if a.replay:
        with open(a.replay) as f:
            doc = json.load(f)
        runs.append((doc["seed"], doc["steps"]))
    else:
        runs = [(s, None) for s in a.seeds]
    failed = 0
    for seed, replay in runs:
        try:
            k = walk.Walk(a.build, seed, keep=a.keep, full_every=a.full_every,
                          verbose=a.verbose, weights=weights)
            k.run(a.steps, replay)
        except SetupError as e:
            print("chain_model: seed %d: cannot set up the world: %s" % (seed, e))
            return 2
        except Exception:  # a fault of the harness: say where, keep the sequence to replay
            traceback.print_exc(file=sys.stdout)
            k.violation("harness", ("exception",), "the model itself failed (traceback above)")
            k.secs = getattr(k, "secs", 0.0)
        report(k, a.save_steps)
        failed += bool(k.violations)
    print("chain_model: %d of %d seeds found violations" % (failed, len(runs)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
