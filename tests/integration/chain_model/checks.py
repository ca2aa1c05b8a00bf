"""The invariants of issue 11 (docs/engine.md), checked from the outside after every step:

1. a version number names exactly one fingerprint across every store, the moved-away and the
   stopped ones included, and never changes once seen (observe.py lists the stores);
3. every cell `verify --json` reports ok unwraps an envelope of that version made with the
   chain's algorithm, through that store alone (`unwrap --replica`; the secret replica's copy is
   opened in software);
4. a restore from a store that holds what the target lacks is not refused (judge_restore,
   after the restore steps);
5. every envelope wrapped so far unwraps (no --replica) to its DEK; once apply has converged,
   every keystore and the secret replica hold its version and open it.

Each check works on a bounded sample per step and on everything when `full` (every K steps and
at the end), so a step's cost does not grow with the walk's history.
"""

import json
import os

from . import world as W
from .material import make_envelope, open_envelope


def inv1(k, views):
    """A version names one fingerprint everywhere, and keeps it."""
    seen = {}
    for name, view in views.items():
        for note in view.notes:
            k.note(note)
        for label, idhex in sorted(view.pending - k.pending_seen):
            # a writer that finished decided: only a killed one leaves its object pending
            if k.step["op"] == "kill":
                k.note("%s: a killed writer left %s pending" % (name, label))
            else:
                k.violation("pkcs11", ("pending-left", name), "%s holds %s (ID %s...) pending "
                            "after a step that killed nothing: a writer that finished left "
                            "its object undecided" % (name, label, idhex[:16]))
        k.pending_seen |= view.pending
        for v, fprs in view.versions.items():
            sig = ("store", name, v, frozenset(fprs))
            if len(fprs) > 1 and v in view.reader and (sig in k.excused or k.step["op"] == "kill"):
                # a writer killed between publishing and destroying its own object: readers
                # take the first (pkcs11-plugin.md); the other stores must hold that one
                k.excused.add(sig)
                k.note("%s holds %d published keys as %s v%d after a kill -9; readers use %s..."
                       % (name, len(fprs), W.CHAIN, v, view.reader[v][:16]))
                fprs = {view.reader[v]}
            elif len(fprs) > 1:
                k.violation("inv1", sig, "%s holds %d different keys as %s v%d: %s" % (
                    name, len(fprs), W.CHAIN, v, ", ".join(f[:16] for f in fprs)))
            for f in fprs:
                seen.setdefault(v, {}).setdefault(f, []).append(name)
    for v, by in sorted(seen.items()):
        if len(by) > 1:
            k.violation("inv1", ("fork", v, frozenset(by)),
                        "%s v%d names %d keys: %s" % (W.CHAIN, v, len(by), "; ".join(
                            "%s... in %s" % (f[:16], ",".join(sorted(s))) for f, s in by.items())))
            continue
        f = next(iter(by))
        old = k.m.history.setdefault(v, f)
        if old != f:
            k.violation("inv1", ("changed", v, old, f),
                        "%s v%d was %s..., now every store that holds it has %s... (in %s)"
                        % (W.CHAIN, v, old[:16], f[:16], ",".join(sorted(by[f]))))


def software_envelope(k, views, v, fpr):
    """An envelope of vV under the key with fingerprint fpr, made in software, and its DEK."""
    for view in views.values():
        pub = view.publics.get(fpr)
        if pub is not None:
            dek = os.urandom(32)
            p = os.path.join(k.w.T, "probe.env")
            with open(p, "w") as f:
                f.write(make_envelope(W.CHAIN, v, pub, dek, W.ALG))
            return p, dek
    return None, None


def inv3(k, views, full):
    """verify's ok cells, against the stores and by unwrapping through each."""
    r = k.w.run(["verify", "--json"])
    k.last_verify = None
    try:
        doc = json.loads(r.out)
    except ValueError:
        if r.rc in (0, 1):
            k.violation("inv3", ("verify-json", r.rc), "verify --json printed no JSON (exit %s)"
                        % r.rc)
        return
    cells, k.last_verify = [], {}
    for chain in doc.get("chains", []):
        for row in chain.get("versions", []):
            k.last_verify[row["version"]] = row
            for store, cell in row.get("replicas", {}).items():
                if cell.get("state") == "ok":
                    cells.append((row["version"], row["fingerprint"], store))
    for v, fpr, store in cells:
        view = views.get(store)
        if view is None:
            continue
        if fpr not in view.versions.get(v, set()):
            k.violation("inv3", ("ok-but-absent", store, v),
                        "verify says %s v%d ok in %s, which holds %s" % (
                            W.CHAIN, v, store, sorted(f[:16] for f in view.versions.get(v, ()))
                            or "nothing under that number"))
    sample = cells if full else k.crng.sample(cells, min(len(cells), 1))
    for v, fpr, store in sample:
        if store == W.SECRET_REPLICA:
            opened = [open_envelope(make_envelope(W.CHAIN, v, key.public_key(), b"x" * 32, W.ALG),
                                    v, key) for f, key in views[store].private.get(v, [])
                      if f == fpr]
            if b"x" * 32 not in opened:
                k.violation("inv3", ("ok-cannot-open", store, v),
                            "verify says %s v%d ok in %s, but no copy there opens an envelope of "
                            "it" % (W.CHAIN, v, store))
            continue
        p, dek = software_envelope(k, views, v, fpr)
        if p is None:
            continue
        got = k.unwrap_file(p, store)
        if got != dek:
            k.violation("inv3", ("ok-cannot-unwrap", store, v),
                        "verify says %s v%d ok in %s, but an %s envelope of it does not unwrap "
                        "there" % (W.CHAIN, v, store, W.ALG))


def inv5(k, full):
    """Every envelope so far unwraps somewhere reachable, to its own DEK."""
    envs = k.m.envelopes
    if not full and len(envs) > 1:
        # one at random, and the newest after the step that made it
        envs = k.crng.sample(envs[:-1], 1) + ([envs[-1]] if envs[-1].step == k.index else [])
    for e in envs:
        got = k.unwrap_file(e.path, None)
        if got != e.dek:
            k.violation("inv5", ("lost", e.index),
                        "envelope #%d (%s) does not unwrap anywhere%s" % (
                            e.index, _wraps(e), "" if got is None else " to its DEK"))


def converged(k, views, full):
    """apply exited 0 and plan has nothing to do: every store holds every envelope's version."""
    abandoned = k.m.abandoned | {v for v, row in (k.last_verify or {}).items()
                                 if row.get("state") == "abandoned"}
    for v, f in sorted(k.m.history.items()):
        if v in abandoned:
            continue
        for name in W.KEYSTORES + (W.SECRET_REPLICA,):
            if not views[name].holds(v, f):
                k.violation("inv5", ("converged-missing", name, v),
                            "apply converged (plan: nothing to do) but %s holds %s as %s v%d"
                            % (name, sorted(x[:16] for x in views[name].versions.get(v, ()))
                               or "nothing", W.CHAIN, v))
    for e in k.m.envelopes:
        v, f = e.wraps[0][0], e.wraps[0][1]
        for name, view in views.items():
            keys = [key for fp, key in view.private.get(v, []) if fp == f]
            if keys and all(open_envelope(e.text(), v, key) != e.dek for key in keys):
                k.violation("inv5", ("converged-key-wrong", name, v),
                            "%s's copy of %s v%d does not open envelope #%d" % (name, W.CHAIN, v,
                                                                             e.index))
    envs = k.m.envelopes if full else k.crng.sample(k.m.envelopes, min(1, len(k.m.envelopes)))
    for e in envs:
        for name in W.KEYSTORES:
            got = k.unwrap_file(e.path, name)
            if got != e.dek:
                k.violation("inv5", ("converged-unwrap", name, e.wraps[0][0]),
                            "apply converged but envelope #%d (%s) does not unwrap in %s"
                            % (e.index, _wraps(e), name))


# Key Vault keys never leave the vault (the plugin has no KS_EXPORT): a vault cannot be a restore
# source, and a restore from it may be refused, as long as the refusal says that.
CANNOT_EXPORT = {"vault": "does not support key export"}


def judge_restore(k, step, before, r):
    """Invariant 4: restore --from S is not refused while S holds what --to lacks."""
    to, src = step["to"], step["from"]
    after = k.observe()
    lacks = {v: f for v, f in k.m.history.items()
             if not before[to].holds(v, f) and v not in k.m.abandoned}
    if src:
        offered = {v: f for v, f in lacks.items() if before[src].holds(v, f)}
    else:
        offered = {v: f for v, f in lacks.items() if any(
            before[s].holds(v, f) for s in before if s != to)}
    if r.rc == 0:
        k.m.damaged.discard(to)
        missing = [v for v, f in offered.items() if not after[to].holds(v, f)]
        if missing:
            k.violation("inv4", ("restored-but-missing", to, src),
                        "restore --to %s --from %s exited 0 but %s still lacks %s" % (
                            to, src, to, ", ".join("v%d" % v for v in missing)))
        return
    quiet = k.quiet(but=to)
    if not src:
        return      # without --from a restore may ask which store to trust (invariant 2)
    if src in CANNOT_EXPORT and CANNOT_EXPORT[src] in r.err:
        return
    if r.rc == 6 and "being created" in r.err:
        return      # a killed writer's pending object on a token, for its 60 s (pkcs11-plugin.md)
    if offered and quiet:
        k.violation("inv4", ("refused", src, r.rc),
                    "restore --to %s --from %s refused (exit %s) although %s holds %s that %s "
                    "lacks, with every store reachable" % (
                        to, src, r.rc, src or "a store", ", ".join(
                            "v%d" % v for v in sorted(offered)), to))


def _wraps(e):
    return ", ".join("v%d %s %s..." % (v, a, f[:12]) for v, f, a in e.wraps)
