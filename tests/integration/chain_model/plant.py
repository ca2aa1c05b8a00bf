"""The model's selftest: faults planted behind keyplane's back, each of which a check must report,
so a harness that stopped looking would fail (`chain_model.py --selftest`, test model.selftest).
A plant is a step ({"op": "plant", "fault": ...}) that the walk never draws by itself.

    fork          west's copy of v1 replaced by another key, meta and public key included
    private       west's private.p8 of v1 replaced by another key's (public key kept)
    vault-fork    the vault's v1 relabelled onto another key (kp-version 1, matching kp-fpr)
    lost          a kept envelope's DEK changed in the model (as if unwrap had given another)
"""

import base64
import json
import os
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import world as W
from .material import FileStore, fingerprint, spki_der

# fault -> the violation kind the checks must report
EXPECT = {"fork": "inv1", "private": "inv1", "vault-fork": "inv1", "lost": "inv5"}


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _p8(key, w):
    """key as west's private.p8, under the password the store's header gives its key files."""
    password = FileStore(w.passphrase).p8_password(w.store_dir("west"))
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(password))


def run_plant(step, ctx):
    w, fault = ctx.w, step["fault"]
    vd = os.path.join(w.store_dir("west"), "keys", W.CHAIN, "1")
    if fault in ("fork", "private") and not os.path.isdir(vd):
        return      # nothing there to plant into (a shortened sequence)
    key = _key()
    if fault == "fork":
        with open(os.path.join(vd, "meta.json")) as f:
            meta = json.load(f)
        meta["fingerprint"] = fingerprint(key.public_key())
        for name, data in (("meta.json", json.dumps(meta).encode()),
                           ("public.der", spki_der(key.public_key())),
                           ("private.p8", _p8(key, w))):
            with open(os.path.join(vd, name), "wb") as f:
                f.write(data)
    elif fault == "private":
        with open(os.path.join(vd, "private.p8"), "wb") as f:
            f.write(_p8(key, w))
    elif fault == "vault-fork":
        p = os.path.join(w.vault_state(), "keys", W.CHAIN + ".json")
        if not os.path.exists(p):
            return
        with open(p) as f:
            rec = json.load(f)
        vid = uuid.uuid4().hex
        ver = dict(rec["versions"][rec["order"][0]])
        ver.update({"version": vid, "tags": {"kp-chain": W.CHAIN, "kp-version": "1",
                                             "kp-fpr": fingerprint(key.public_key())},
                    "pkcs8": base64.b64encode(key.private_bytes(
                        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption())).decode()})
        rec["versions"][vid] = ver
        rec["order"].append(vid)
        with open(p, "w") as f:
            json.dump(rec, f)
    elif fault == "lost" and ctx.m.envelopes:
        ctx.m.envelopes[-1].dek = os.urandom(32)


def selftest_sequences():
    """[(fault, steps)]: each a short walk that plants one fault after a wrap."""
    out = []
    for fault in sorted(EXPECT):
        out.append((fault, [{"op": "apply", "via": "policy"}, {"op": "wrap", "replica": None},
                            {"op": "plant", "fault": fault}, {"op": "unwrap", "env": 0,
                                                              "replica": None}]))
    return out
