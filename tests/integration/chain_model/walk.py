"""One walk: the world set up, a drawn (or replayed) sequence of steps, the invariants checked
after each, a last step that settles the world (every store back, apply until converged) and
checks everything; the violations found, each with the step and the commands that showed it.
"""

import json
import os
import random
import time

from . import checks, draw, softhsm, steps
from . import world as W
from .observe import Observer

SETTLE_WAIT = 75     # seconds the last step waits for a token's pending object to go stale
FULL_EVERY = 50      # steps between checks of everything (every envelope, every verify cell)
# the command whose exit status a step's statistics count
MAIN = {"apply": "apply", "stage": "rotate", "activate": "rotate", "abandon": "rotate",
        "retire": "retire", "restore": "restore", "wrap": "wrap", "unwrap": "unwrap",
        "rewrap": "rewrap"}


class Envelope:
    def __init__(self, index, path, dek, wraps, step):
        self.index, self.path, self.dek, self.wraps, self.step = index, path, dek, wraps, step

    def text(self):
        with open(self.path) as f:
            return f.read()


class Model:
    """What the walk knows beyond the stores: envelopes, each version's first fingerprint and
    the disturbances it made (moved stores, the vault stopped, corrupted documents, damage)."""

    def __init__(self):
        self.envelopes, self.history = [], {}
        self.moved, self.vault_down, self.corrupted, self.damaged = set(), False, {}, set()
        self.wiped = set()       # file stores deleted and not initialised again
        self.restored = set()    # stores named by a restore --to since they went missing
        self.abandoned = set()   # versions rotate --abandon gave up
        self.step = 0

    def highest(self):
        return max(self.history, default=0)

    def disturbed(self):
        return bool(self.moved) or self.vault_down

    def add_envelope(self, path, dek, wraps):
        e = Envelope(len(self.envelopes), path, dek, wraps, self.step)
        self.envelopes.append(e)
        return e


class Violation:
    def __init__(self, kind, sig, message, index, step, commands):
        self.kind, self.sig, self.message = kind, sig, message
        self.index, self.step, self.commands, self.count = index, step, commands, 1


class Walk:
    def __init__(self, build, seed, keep=False, full_every=FULL_EVERY, verbose=False,
                 weights=None):
        self.seed, self.full_every, self.verbose = seed, full_every, verbose
        self.weights = weights
        self.w = W.World(build, keep=keep)
        self.m = Model()
        self.rng = random.Random(seed)
        self.crng = random.Random("checks-%d" % seed)
        self.violations, self.seen, self.notes, self.excused = [], {}, {}, set()
        self.pending_seen = set()    # pending token objects already reported
        self.executed, self.index, self.step = [], 0, None
        self.views, self.last_verify, self.converge_pending = None, None, False
        self.op_stats, self.cmd_secs, self.cmd_cpu, self.slowest = {}, {}, {}, []

    # ---- recording ----
    def violation(self, kind, sig, message):
        sig = (kind,) + tuple(sig)
        if sig in self.seen:
            self.seen[sig].count += 1
            return
        v = Violation(kind, sig, message, self.index, self.step, [r.text() for r in self.w.log])
        self.seen[sig] = v
        self.violations.append(v)
        if self.verbose:
            print("  VIOLATION [%s] %s" % (kind, message), flush=True)

    def note(self, text):
        if text not in self.notes:
            self.notes[text] = self.index

    # ---- helpers the steps and checks use ----
    def observe(self):
        return self.obs.all()

    def status(self):
        """version -> row of `status --json`, or None when it gave none."""
        r = self.w.run(["status", "--json"])
        try:
            return {row["version"]: row for c in json.loads(r.out)["chains"]
                    for row in c["versions"]}
        except (ValueError, KeyError):
            return None

    def unwrap_file(self, path, replica):
        """The DEK keyplane unwraps from envelope file path (through replica alone), or None."""
        out = os.path.join(self.w.T, "unwrapped.dek")
        if os.path.exists(out):
            os.unlink(out)
        args = ["unwrap", "--in", path, "--out", out, "--json"]
        if replica:
            args += ["--replica", replica]
        r = self.w.run(args)
        if r.rc != 0:
            return None
        with open(out, "rb") as f:
            return f.read()

    def unwrap(self, e, replica, judge):
        got = self.unwrap_file(e.path, replica)
        if got is not None and got != e.dek:
            self.violation("inv5", ("wrong-dek", replica), "unwrap of envelope #%d%s gave "
                           "another DEK" % (e.index, " in " + replica if replica else ""))
        elif got is None and judge:
            self.violation("inv5", ("lost", e.index), "envelope #%d (%s) does not unwrap "
                           "anywhere" % (e.index, checks._wraps(e)))

    def quiet(self, but=None):
        """Nothing disturbed: every store there (but `but`), the vault up, no corrupt document."""
        missing = [s for s in W.FILE_STORES if s != but and not os.path.isdir(self.w.store_dir(s))]
        return not (self.m.disturbed() or self.m.corrupted or missing)

    def recreated(self, store, how, where):
        """A missing store came back made by keyplane: fine from a restore --to it (or a build
        that makes stores on the first write), else a store created implicitly (finding 3)."""
        if store in self.m.restored or self.w.init_cmd is None:
            self.note("%s (%s) was made anew by keyplane (restore --to or an older build); kept "
                      "as %s" % (store, how, where))
        else:
            self.violation("init", ("recreated", store),
                           "%s was %s and keyplane made a new store there without 'init' or a "
                           "'restore --to %s'" % (store, how, store))

    def after_apply(self):
        r = self.w.run(["plan", "--json"])
        try:
            plan = json.loads(r.out)
        except ValueError:
            return
        if r.rc == 0 and not plan.get("actions") and not plan.get("findings"):
            self.converge_pending = True

    def judge_restore(self, step, before, r):
        checks.judge_restore(self, step, before, r)

    # ---- the walk ----
    def check(self, full):
        for s in sorted(self.m.wiped):
            if os.path.isdir(self.w.store_dir(s)):
                self.m.wiped.discard(s)
                self.recreated(s, "wiped", self.w.store_dir(s))
        t0, c0 = time.monotonic(), time.process_time()
        self.views = self.observe()
        self.cmd_secs["(observe)"] = self.cmd_secs.get("(observe)", 0) + time.monotonic() - t0
        self.cmd_cpu["(observe)"] = self.cmd_cpu.get("(observe)", 0) + time.process_time() - c0
        checks.inv1(self, self.views)
        # verify proves every version in every store (a PBKDF2 per version in the secret
        # replica): after a fifth of the steps that write, every 8th step and every full check
        writes = self.step["op"] not in steps.READ_ONLY
        if full or self.index % 8 == 0 or (writes and self.crng.random() < 0.2):
            checks.inv3(self, self.views, full)
        checks.inv5(self, full)
        if self.converge_pending:
            self.converge_pending = False
            self.m.damaged.clear()
            checks.converged(self, self.views, full)

    def do(self, step, full):
        self.step, self.w.log = step, []
        self.m.step = self.index
        self.executed.append(step)
        t0 = time.monotonic()
        tokens = os.path.join(self.w.T, "tokens")
        snap = softhsm.snapshot(tokens) if step["op"] == "kill" else None
        if step["op"] == "settle":
            self.settle()
        else:
            steps.run(step, self)
        for line in softhsm.repair(tokens, snap) if snap is not None else ():
            self.note(line)
        ran = list(self.w.log)
        self.check(full)
        for r in self.w.log:
            if r.lsan_tracer_crash():      # a background run's sanitizer, not keyplane
                self.w.sanitizer_faults.append(" ".join(r.argv[3:5]))
            elif r.crashed():
                self.violation("crash", ("crash", r.argv[3]), "keyplane %s crashed or hung "
                               "(exit %s)" % (" ".join(r.argv[3:5]), r.rc))
        for cmd in self.w.sanitizer_faults:
            self.note("LeakSanitizer crashed in its exit-time tracer after keyplane %s (step "
                      "%d); run again" % (cmd, self.index))
        self.w.sanitizer_faults = []
        for r in self.w.log:
            c = r.argv[3]
            self.cmd_secs[c] = self.cmd_secs.get(c, 0.0) + r.secs
            self.cmd_cpu[c] = self.cmd_cpu.get(c, 0.0) + r.cpu
            self.slowest = sorted(self.slowest + [(r.secs, self.index, " ".join(r.argv[3:]),
                                                   r.rc)], reverse=True)[:8]
        main = [r for r in ran if r.argv[3] == MAIN.get(step["op"], r.argv[3])][:1]
        st = self.op_stats.setdefault(step["op"], {"n": 0, "secs": 0.0, "rc": {}})
        st["n"] += 1
        st["secs"] += time.monotonic() - t0
        for r in main:
            st["rc"][str(r.rc)] = st["rc"].get(str(r.rc), 0) + 1
        if self.verbose:
            print("step %d %s (%.2fs)" % (self.index, json.dumps(step, sort_keys=True),
                                         time.monotonic() - t0), flush=True)
            for r in ran:
                err = r.err.strip().splitlines()
                print("    %s: exit %s%s" % (" ".join(r.argv[3:6]), r.rc,
                                            (": " + err[-1][:200]) if r.rc != 0 and err else ""))

    def settle(self):
        """Every store back, every document repaired, apply until plan has nothing to do."""
        for s in sorted(self.m.moved | ({"vault"} if self.m.vault_down else set())):
            steps.run_reach({"op": "reach", "store": s}, self)
        for s in sorted(self.m.corrupted):
            steps.run_repair({"op": "repair", "store": s, "how": "copy"}, self)
        for s in W.FILE_STORES:
            if not os.path.isdir(self.w.store_dir(s)):
                self.w.init_store(s)      # a wiped disk replaced by a new one
        self.m.wiped.clear()
        # a writer killed in the last minute may have left a pending object on a token, which
        # keeps its version "being created" for 60 s (pkcs11-plugin.md): wait that out
        deadline, tries = time.monotonic() + SETTLE_WAIT, 0
        while True:
            r = self.w.run(["apply", "--json"])
            tries += 1
            if r.rc == 0:
                self.after_apply()
                if self.converge_pending:
                    return
            if tries >= 3 and not (r.rc == 6 and "being created" in r.out + r.err
                                   and time.monotonic() < deadline):
                break
            time.sleep(0.5 if tries < 3 else 5)
        self.violation("inv5", ("no-convergence",), "with every store back, %d applies do not "
                       "converge (plan still has actions or findings)" % tries)

    def run(self, nsteps, replay=None):
        t0 = time.monotonic()
        try:
            self.w.setup()
            self.obs = Observer(self.w)
            seq = replay if replay is not None else None
            self.index = 0
            self.do({"op": "apply", "via": "policy"} if seq is None else seq[0], False)
            i = 1
            while (seq is None and i < nsteps) or (seq is not None and i < len(seq)):
                self.index = i
                step = seq[i] if seq is not None else draw.draw(self.rng, self.m, self.weights)
                if step["op"] == "settle":
                    break
                self.do(step, i % self.full_every == 0)
                i += 1
            self.index = i
            self.do({"op": "settle"}, True)
        finally:
            self.secs = time.monotonic() - t0
            self.w.teardown()
        return self.violations
