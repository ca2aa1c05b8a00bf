"""A shorter sequence that still breaks the same way (`chain_model.py --shrink FILE`): the saved
sequence is cut after the step that first showed the violation, then each earlier step is left
out in turn, from the last to the first, and kept out when a replay without it still shows a
violation of the same kind and shape. What a timing-dependent step (a kill, two writers) needs
may not reproduce every time, so the result is a repro to try, not a proof.
"""

from . import walk


def shape(v):
    """What two violations must share to count as the same: kind and the signature's head."""
    return (v.kind, v.sig[1] if len(v.sig) > 1 else None)


def replay(build, seed, seq):
    k = walk.Walk(build, seed)
    try:
        k.run(len(seq), seq)
    except Exception as e:   # a shortened sequence the harness cannot carry out: no repro
        k.violations = [v for v in k.violations if v.kind != "harness"]
        k.note("replay stopped: %s" % e)
    return k


def shrink(build, seed, seq, log=print):
    """(shorter sequence, the violation it shows) for the first violation of seq, or None."""
    k = replay(build, seed, seq)
    if not k.violations:
        return None
    target = shape(k.violations[0])
    best = seq[:k.violations[0].index + 1]
    log("shrink: target %s at step %d of %d" % (target, k.violations[0].index, len(seq)))
    i = len(best) - 2           # the violating step itself stays
    while i >= 1:               # the first apply stays too
        cand = best[:i] + best[i + 1:]
        k = replay(build, seed, cand)
        hit = [v for v in k.violations if shape(v) == target]
        if hit:
            best = cand[:hit[0].index + 1]
            log("shrink: without step %d: still %s (%d steps)" % (i, target, len(best)))
            i = min(i, len(best) - 1) - 1
        else:
            i -= 1
    k = replay(build, seed, best)
    hit = [v for v in k.violations if shape(v) == target]
    return best, (hit[0] if hit else None)
