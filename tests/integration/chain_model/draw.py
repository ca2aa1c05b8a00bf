"""How the walk draws its next step: the weights of the steps and, for each, the random choices
that make it concrete (which store, which envelope, which delay), given what the model knows. A
drawn step is a plain dict, so a sequence can be printed and replayed (steps.py carries it out).
"""

from . import world as W

MAX_VERSIONS = 4        # stop staging beyond this: every proof costs a PBKDF2 per version
WRITERS = ("apply", "stage", "restore", "activate")

# op -> weight
WEIGHTS = {
    "apply": 10, "stage": 2, "activate": 3, "retire": 3, "abandon": 2, "damage": 4, "restore": 5,
    "wrap": 9, "unwrap": 6, "rewrap": 3, "kill": 5, "concurrent": 4, "unreach": 3,
    "reach": 6, "corrupt": 2, "repair": 4,
}
DAMAGEABLE = ("west", "east", "west", "east", "escrow", W.SECRET_REPLICA)
MOVABLE = ("west", "east", W.SECRET_REPLICA, "vault")


def draw(rng, m, weights=None):
    """One step, given the model m (walk.Model) and the weights (WEIGHTS by default)."""
    weights = dict(weights or WEIGHTS)
    if m.highest() >= MAX_VERSIONS:
        weights["stage"] = 0
    if not m.envelopes:
        weights["unwrap"] = weights["rewrap"] = 0
    if not m.disturbed():
        weights["reach"] = 0
    if not m.corrupted:
        weights["repair"] = 0
    if len(m.moved) + m.vault_down >= 2:
        weights["unreach"] = 0
    ops = sorted(weights)
    op = rng.choices(ops, [weights[o] for o in ops])[0]
    return globals()["draw_" + op](rng, m)


def draw_apply(rng, m):
    return {"op": "apply", "via": rng.choice(["policy", "policy", "policy", "link", "copy"])}


def draw_stage(rng, m):
    return {"op": "stage"}


def draw_activate(rng, m):
    return {"op": "activate"}


def draw_retire(rng, m):
    return {"op": "retire", "version": rng.randint(1, max(1, m.highest()))}


def draw_abandon(rng, m):
    # mostly the newest (a staged version, the one abandoning is for), else any
    v = m.highest() if rng.random() < 0.7 else rng.randint(1, max(1, m.highest()))
    return {"op": "abandon", "version": max(1, v)}


def draw_damage(rng, m):
    return {"op": "damage", "store": rng.choice(DAMAGEABLE),
            "how": rng.choice(["version", "version", "chain", "wipe", "wipe-init"]),
            "version": rng.randint(1, max(1, m.highest()))}


def draw_restore(rng, m):
    targets = sorted(m.damaged) or ["west", "east", "escrow", W.SECRET_REPLICA]
    to = rng.choice(targets)
    sources = [s for s in W.KEYSTORES + (W.SECRET_REPLICA,) if s != to] + [None]
    return {"op": "restore", "to": to, "from": rng.choice(sources), "force": rng.random() < 0.2}


def draw_wrap(rng, m):
    return {"op": "wrap", "replica": rng.choice([None, None, None] + list(W.KEYSTORES))}


def draw_unwrap(rng, m):
    return {"op": "unwrap", "env": rng.randrange(len(m.envelopes)),
            "replica": rng.choice([None, None] + list(W.KEYSTORES))}


def draw_rewrap(rng, m):
    n = min(len(m.envelopes), rng.randint(1, 3))
    return {"op": "rewrap", "envs": sorted(rng.sample(range(len(m.envelopes)), n))}


def _writer(rng, m):
    cmd = rng.choice([c for c in WRITERS if c != "stage" or m.highest() < MAX_VERSIONS])
    c = {"cmd": cmd}
    if cmd == "restore":
        c["to"] = rng.choice(sorted(m.damaged) or ["west", "east", "escrow"])
    return c


def draw_kill(rng, m):
    c = _writer(rng, m)
    c.update({"op": "kill", "delay": round(rng.uniform(0.02, 0.8), 3)})
    return c


def draw_concurrent(rng, m):
    return {"op": "concurrent", "a": _writer(rng, m), "b": _writer(rng, m),
            "via": rng.choice(["link", "copy"])}


def draw_unreach(rng, m):
    free = [s for s in MOVABLE if s not in m.moved and not (s == "vault" and m.vault_down)]
    return {"op": "unreach", "store": rng.choice(free)}


def draw_reach(rng, m):
    return {"op": "reach", "store": rng.choice(sorted(m.moved | ({"vault"} if m.vault_down
                                                                 else set())))}


def draw_corrupt(rng, m):
    return {"op": "corrupt", "store": rng.choice(["west", "east", "both"])}


def draw_repair(rng, m):
    return {"op": "repair", "store": rng.choice(sorted(m.corrupted)),
            "how": rng.choice(["copy", "apply"])}
