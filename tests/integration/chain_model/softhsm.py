"""SoftHSM's file store is not crash-safe, a real HSM is: SoftHSM 2.6 rewrites an object file (and
the token's own token.object) in place, truncating it first, so a kill -9 in the middle of a
write leaves an empty or half file, and an empty token.object makes the whole token disappear
("No slot with token named ..."). That is SoftHSM's fault, not keyplane's: around a kill the walk
snapshots the token directories, and afterwards puts back each file the kill left unreadable
(an interrupted write that did not happen, as on a transactional HSM) and removes a half-made new
one, noting what it did.

File layout (SoftHSM 2.6.1, `objectstore.backend = file`): a generation counter (8 bytes), then
attributes, each a CK_ATTRIBUTE_TYPE (8 bytes), a kind (8 bytes) and a value (bool: 1 byte,
ulong: 8 bytes, byte string: 8-byte length and the bytes); integers big-endian.
"""

import os

BOOL, ULONG, BYTES = 1, 2, 3


def _readable(data):
    """Whether data parses as a whole object file (unknown kinds pass: not ours to judge)."""
    if len(data) < 8:
        return False
    i = 8
    while i < len(data):
        if i + 16 > len(data):
            return False
        kind = int.from_bytes(data[i + 8:i + 16], "big")
        i += 16
        if kind == BOOL:
            i += 1
        elif kind == ULONG:
            i += 8
        elif kind == BYTES:
            if i + 8 > len(data):
                return False
            i += 8 + int.from_bytes(data[i:i + 8], "big")
        else:
            return True
    return i == len(data)


def _files(tokens):
    out = {}
    for tok in sorted(os.listdir(tokens)):
        d = os.path.join(tokens, tok)
        if not os.path.isdir(d):
            continue
        for f in os.listdir(d):
            if f.endswith(".object") or f == "generation":
                out[os.path.join(tok, f)] = os.path.join(d, f)
    return out


def snapshot(tokens):
    """{relative path: bytes} of every object file and generation counter under tokens/."""
    snap = {}
    for rel, p in _files(tokens).items():
        with open(p, "rb") as f:
            snap[rel] = f.read()
    return snap


def repair(tokens, snap):
    """Puts back what a killed writer left unreadable; returns what it did, one line each."""
    done = []
    for rel, p in _files(tokens).items():
        with open(p, "rb") as f:
            data = f.read()
        ok = len(data) == 8 if rel.endswith("generation") else _readable(data)
        if ok:
            continue
        if rel in snap:
            with open(p, "wb") as f:
                f.write(snap[rel])
            done.append("SoftHSM %s left unreadable (%d bytes) by kill -9: put back as before "
                        "the step" % (rel, len(data)))
        else:
            os.unlink(p)
            lock = p[:-len(".object")] + ".lock"
            if os.path.exists(lock):
                os.unlink(lock)
            done.append("SoftHSM %s half-made (%d bytes) by kill -9: removed" % (rel, len(data)))
    return done
