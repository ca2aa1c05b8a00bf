"""The steps of the walk carried out against the world: run() takes a step drawn by draw.py (or
read from a saved sequence) and does it. A step judges only what it alone can see (a wrong DEK,
a wrap that did not use the active version, a retire inside retention, an abandoned version an
envelope uses, a restore that refused a source holding what the target lacks); the invariants
over the whole world, and crashes, are judged after every step (checks.py, walk.py).
"""

import json
import os
import shutil
import time

from . import world as W
from .material import envelope_wraps
from .plant import run_plant

READ_ONLY = ("wrap", "unwrap", "rewrap", "retire", "abandon")   # steps that change no key copy


def run(step, ctx):
    """Carries out one step; ctx is the walk (world w, model m, violation())."""
    if step["op"] == "plant":
        run_plant(step, ctx)      # the selftest's fault
    else:
        globals()["run_" + step["op"]](step, ctx)


def _policy(w, via):
    return {"policy": w.policy, "link": w.link, "copy": w.copy}[via]


def _writer_args(c):
    if c["cmd"] == "apply":
        return ["apply", "--json"]
    if c["cmd"] == "stage":
        return ["rotate", W.CHAIN, "--stage"]
    if c["cmd"] == "activate":
        return ["rotate", W.CHAIN, "--activate"]
    return ["restore", W.CHAIN, "--to", c["to"], "--force"]


def run_apply(step, ctx):
    r = ctx.w.run(["apply", "--json"], policy=_policy(ctx.w, step["via"]))
    if r.rc == 0:
        ctx.after_apply()


def run_stage(step, ctx):
    ctx.w.run(["rotate", W.CHAIN, "--stage"])


def run_activate(step, ctx):
    ctx.w.run(["rotate", W.CHAIN, "--activate"])


def run_retire(step, ctx):
    v = step["version"]
    before = ctx.status()
    r = ctx.w.run(["retire", W.CHAIN, "--version", str(v)])
    if r.rc != 0 or before is None:
        return
    row = before.get(v)
    if row is None or row["state"] == "retired":
        return
    until = row.get("active_until", 0)
    if row["state"] != "previous" or until == 0 or time.time() + 1 < until + W.RETENTION:
        ctx.violation("retention", ("retire", row["state"], until == 0),
                      "retire let %s v%d (state %s, active until %s) through inside the "
                      "%d s retention window" % (W.CHAIN, v, row["state"], until, W.RETENTION))


def run_abandon(step, ctx):
    v = step["version"]
    r = ctx.w.run(["rotate", W.CHAIN, "--abandon", str(v)])
    if r.rc != 0:
        return
    ctx.m.abandoned.add(v)
    used = [e.index for e in ctx.m.envelopes if any(w[0] == v for w in e.wraps)]
    if used:
        ctx.violation("inv5", ("abandoned-used", v),
                      "rotate --abandon %d went through, but envelope #%d wraps with v%d"
                      % (v, used[0], v))


def _wipe(w, m, s, how):
    """A lost disk: without init the store is not there (unreachable) until a restore or an
    init makes it anew; "wipe-init" is the operator making it anew at once."""
    shutil.rmtree(w.store_dir(s), ignore_errors=True)
    m.restored.discard(s)
    if how == "wipe-init":
        w.init_store(s)
        m.wiped.discard(s)
    else:
        m.wiped.add(s)


def run_damage(step, ctx):
    s, how, v = step["store"], step["how"], step["version"]
    w, m = ctx.w, ctx.m
    if s in m.moved:
        return
    if s == "escrow":
        ctx.obs.tokens[s].delete(W.CHAIN, None if how.startswith(("chain", "wipe")) else v)
    elif s == W.SECRET_REPLICA:
        sd = os.path.join(w.store_dir(s), "secrets", W.CHAIN + ".key")
        if how.startswith("wipe"):
            _wipe(w, m, s, how)
        elif how == "chain":
            shutil.rmtree(sd, ignore_errors=True)
        else:
            for n in (os.listdir(sd) if os.path.isdir(sd) else []):
                try:
                    with open(os.path.join(sd, n, "meta.json")) as f:
                        if json.load(f)["meta"]["kp-version"] == str(v):
                            shutil.rmtree(os.path.join(sd, n))
                except (OSError, ValueError, KeyError):
                    pass
    else:
        kd = os.path.join(w.store_dir(s), "keys", W.CHAIN)
        if how.startswith("wipe"):
            m.corrupted.pop(s, None)
            _wipe(w, m, s, how)
        elif how == "chain":
            shutil.rmtree(kd, ignore_errors=True)
            m.corrupted.pop(s, None)
        else:
            shutil.rmtree(os.path.join(kd, str(v)), ignore_errors=True)
    m.damaged.add(s)


def run_restore(step, ctx):
    to, src = step["to"], step["from"]
    ctx.m.restored.add(to)
    before = ctx.views
    args = ["restore", W.CHAIN, "--to", to, "--json"]
    if src:
        args += ["--from", src]
    if step["force"]:
        args.append("--force")
    r = ctx.w.run(args)
    ctx.judge_restore(step, before, r)


def run_wrap(step, ctx):
    w, m = ctx.w, ctx.m
    before = ctx.status()
    i = len(m.envelopes)
    path, dek = os.path.join(w.T, "env", "%d.env" % i), os.urandom(32)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".dek", "wb") as f:
        f.write(dek)
    args = ["wrap", "--chain", W.CHAIN, "--dek", "file:" + path + ".dek", "--out", path, "--json"]
    if step.get("replica"):
        args += ["--replica", step["replica"]]
    r = w.run(args)
    if r.rc != 0:
        return
    with open(path) as f:
        wraps = envelope_wraps(f.read())
    rep = json.loads(r.out)
    if not wraps or (rep["version"], rep["fingerprint"]) != wraps[0][:2]:
        ctx.violation("wrap", ("wrap-report",), "wrap --json reports v%s %s..., the envelope "
                      "holds %r" % (rep["version"], rep["fingerprint"][:16], wraps))
    e = m.add_envelope(path, dek, wraps or [(rep["version"], rep["fingerprint"], W.ALG)])
    if wraps and wraps[0][2] != W.ALG:
        ctx.violation("wrap", ("wrap-alg", wraps[0][2]), "envelope #%d uses %s, the chain says %s"
                      % (e.index, wraps[0][2], W.ALG))
    if rep["version"] in m.abandoned:
        ctx.violation("wrap", ("wrap-abandoned", rep["version"]),
                      "wrap used v%s, which was abandoned" % rep["version"])
    active = [v for v, row in (before or {}).items() if row["state"] == "active"]
    if active and rep["version"] != active[0]:
        ctx.violation("wrap", ("wrap-not-active", rep["version"], active[0]),
                      "wrap used v%s while status said v%d is active" % (rep["version"], active[0]))


def run_unwrap(step, ctx):
    if step["env"] >= len(ctx.m.envelopes):
        return
    e = ctx.m.envelopes[step["env"]]
    ctx.unwrap(e, step.get("replica"), judge=step.get("replica") is None)


def run_rewrap(step, ctx):
    envs = [ctx.m.envelopes[i] for i in step["envs"] if i < len(ctx.m.envelopes)]
    if not envs:
        return
    ctx.w.run(["rewrap", "--json"] + [e.path for e in envs])
    for e in envs:
        with open(e.path) as f:
            text = f.read()
        wraps = envelope_wraps(text)
        if wraps is None:
            ctx.violation("inv5", ("rewrap-broke", e.index),
                          "rewrap left envelope #%d unreadable: %r" % (e.index, text[:200]))
            continue
        if wraps != e.wraps:
            e.wraps = wraps
            ctx.unwrap(e, None, judge=True)      # the same DEK under its new wrap


def run_kill(step, ctx):
    if step["cmd"] == "restore":
        ctx.m.restored.add(step["to"])
    job = ctx.w.spawn(_writer_args(step))
    ctx.w.finish(job, kill_after=step["delay"])


def run_concurrent(step, ctx):
    for c in (step["a"], step["b"]):
        if c["cmd"] == "restore":
            ctx.m.restored.add(c["to"])
    ja = ctx.w.spawn(_writer_args(step["a"]))
    jb = ctx.w.spawn(_writer_args(step["b"]), policy=_policy(ctx.w, step["via"]))
    ctx.w.finish(ja)
    ctx.w.finish(jb)


def run_unreach(step, ctx):
    s, w, m = step["store"], ctx.w, ctx.m
    if s == "vault":
        if not m.vault_down:
            w.vault_stop()
            m.vault_down = True
        return
    if s in m.moved or not os.path.isdir(w.store_dir(s)):
        return
    os.rename(w.store_dir(s), w.away_dir(s))
    m.moved.add(s)
    m.restored.discard(s)


def run_reach(step, ctx):
    s, w, m = step["store"], ctx.w, ctx.m
    if s == "vault":
        if m.vault_down:
            w.vault_start()
            m.vault_down = False
        return
    if s not in m.moved:
        return
    d = w.store_dir(s)
    if os.path.exists(d):
        # keyplane made a new store where the missing one was: the real one is mounted over it
        shadow = "%s.shadow-%d" % (w.away_dir(s), ctx.index)
        os.rename(d, shadow)
        ctx.recreated(s, "moved away", shadow)
    os.rename(w.away_dir(s), d)
    m.moved.discard(s)


def _state_path(w, s):
    return os.path.join(w.store_dir(s), "keys", W.CHAIN, "state.json")


def run_corrupt(step, ctx):
    w, m = ctx.w, ctx.m
    for s in (("west", "east") if step["store"] == "both" else (step["store"],)):
        p = _state_path(w, s)
        if s in m.moved or not os.path.isfile(p):
            continue
        if s not in m.corrupted:
            saved = os.path.join(w.T, "saved-%s-state.json" % s)
            shutil.copyfile(p, saved)
            m.corrupted[s] = saved
        with open(p, "w") as f:
            f.write("{garbage")


def run_repair(step, ctx):
    s, w, m = step["store"], ctx.w, ctx.m
    if s not in m.corrupted or s in m.moved:
        return
    p = _state_path(w, s)
    if step["how"] == "copy" and _garbage(p):
        shutil.copyfile(m.corrupted[s], p)
    elif step["how"] == "apply":
        r = w.run(["apply", "--json"])
        if r.rc == 0:
            ctx.after_apply()
    if not _garbage(p):
        del m.corrupted[s]


def _garbage(p):
    try:
        with open(p) as f:
            return f.read() == "{garbage"
    except OSError:
        return False
