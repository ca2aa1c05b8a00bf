"""What every store of the world holds, read directly and not through keyplane: the file
regions' version directories (docs/file-plugin.md), the SoftHSM tokens' objects (pkcs11.py), the
emulated vault's state file (tests/emulators/azure_keyvault/keystore.py) and the secret replica's
copies (docs/engine.md, "Secret replicas"). A store whose directory was moved away, or the vault
while it is stopped, is read where it lies: invariant 1 holds for what is temporarily missing
too.
"""

import base64
import json
import os
import re

from cryptography.hazmat.primitives import serialization

from . import world as W
from .material import FileStore, SecretCopies, fingerprint
from .pkcs11 import Token

CANON = re.compile(r"^[1-9][0-9]{0,9}$")


class View:
    """One store: reachable (as keyplane would find it), versions (version -> set of
    fingerprints), private (version -> [(fingerprint, private key)] where the model can open
    the key itself), publics (fingerprint -> public key), reader (version -> the one a reader
    takes, where the store has a rule for several), notes (what looks wrong)."""

    def __init__(self, name, kind, reachable):
        self.name, self.kind, self.reachable = name, kind, reachable
        self.versions, self.private, self.publics, self.notes = {}, {}, {}, []
        self.reader = {}     # version -> the fingerprint readers use among several (a token)
        self.pending = set()  # a token's undecided objects of the chain: (label, CKA_ID)

    def add(self, v, fpr, private=None, public=None):
        self.versions.setdefault(v, set()).add(fpr)
        if private is not None:
            self.private.setdefault(v, []).append((fpr, private))
        if public is not None:
            self.publics[fpr] = public

    def holds(self, v, fpr):
        return self.versions.get(v) == {fpr}


class Observer:
    def __init__(self, world):
        self.w = world
        self.files = FileStore(world.passphrase)
        self.copies = SecretCopies(self.files)
        self.tokens = {t: Token(world.module, t, world.pin, world.env) for t in W.HSMS}
        self._vault = {}     # (version id) -> (fingerprint, private key)

    def where(self, name):
        """(directory to read, reachable) of a file store."""
        d = self.w.store_dir(name)
        if os.path.isdir(d):
            return d, True
        away = self.w.away_dir(name)
        return (away if os.path.isdir(away) else None), False

    def all(self):
        views = {}
        for name in W.REGIONS:
            views[name] = self.region(name)
        for name in W.HSMS:
            views[name] = self.token(name)
        views["vault"] = self.vault()
        views[W.SECRET_REPLICA] = self.bucket()
        return views

    def region(self, name):
        d, reachable = self.where(name)
        view = View(name, "file", reachable)
        kd = os.path.join(d, "keys", W.CHAIN) if d else None
        if not kd or not os.path.isdir(kd):
            return view
        for n in sorted(os.listdir(kd)):
            if not CANON.match(n):
                continue
            vd = os.path.join(kd, n)
            try:
                with open(os.path.join(vd, "meta.json")) as f:
                    meta = json.load(f)
                with open(os.path.join(vd, "public.der"), "rb") as f:
                    pub = serialization.load_der_public_key(f.read())
            except (OSError, ValueError) as e:
                view.notes.append("%s v%s unreadable: %s" % (name, n, e))
                continue
            fpr = fingerprint(pub)
            if meta.get("fingerprint") != fpr:
                view.notes.append("%s v%s: meta.json says %s..., public.der is %s..."
                                  % (name, n, str(meta.get("fingerprint"))[:16], fpr[:16]))
            priv = self.files.private_key(os.path.join(vd, "private.p8"))
            if isinstance(priv, str):
                view.notes.append(priv)
                view.add(int(n), fpr, public=pub)
                continue
            pfpr = fingerprint(priv.public_key())
            view.add(int(n), fpr, public=pub)
            # the private key is what unwraps: another key there is another key under vN
            view.add(int(n), pfpr, private=priv, public=priv.public_key())
        return view

    def token(self, name):
        view = View(name, "hsm", True)
        try:
            got = self.tokens[name].versions(W.CHAIN)
        except OSError as e:
            view.reachable = False
            view.notes.append("token %s cannot be listed: %s" % (name, str(e).strip()))
            return view
        for v, fprs in got.versions.items():
            for f in fprs:
                view.add(v, f)
        view.publics.update(got.publics)
        view.notes += got.notes
        view.reader, view.pending = got.first, got.pending
        return view

    def vault(self):
        view = View("vault", "vault", self.w.vault_running())
        p = os.path.join(self.w.vault_state(), "keys", W.CHAIN + ".json")
        try:
            with open(p) as f:
                rec = json.load(f)
        except FileNotFoundError:
            return view
        if rec.get("deleted"):
            return view
        for vid in rec.get("order", []):
            ver = rec["versions"][vid]
            tags = ver.get("tags") or {}
            if vid not in self._vault:
                priv = serialization.load_der_private_key(base64.b64decode(ver["pkcs8"]), None)
                self._vault[vid] = (fingerprint(priv.public_key()), priv)
            fpr, priv = self._vault[vid]
            if "kp-version" not in tags:
                continue      # pending or rejected: no reader sees it
            if tags.get("kp-fpr") != fpr:
                view.notes.append("vault version %s labelled v%s with kp-fpr %s..., key is %s..."
                                  % (vid[:8], tags["kp-version"], tags.get("kp-fpr", "")[:16],
                                     fpr[:16]))
                continue      # readers skip a mislabelled version
            view.add(int(tags["kp-version"]), fpr, private=priv, public=priv.public_key())
        return view

    def bucket(self):
        name = W.SECRET_REPLICA
        d, reachable = self.where(name)
        pw, _ = self.where(W.PASSWORDS)
        view = View(name, "secret", reachable)
        sd = os.path.join(d, "secrets", W.CHAIN + ".key") if d else None
        if not sd or not os.path.isdir(sd):
            return view
        for n in sorted(os.listdir(sd)):
            if not CANON.match(n):
                continue
            try:
                with open(os.path.join(sd, n, "meta.json")) as f:
                    meta = json.load(f)
                m = meta["meta"]
                v, claimed = int(m["kp-version"]), m["fingerprint"]
            except (OSError, ValueError, KeyError) as e:
                view.notes.append("bucket copy %s unreadable: %s" % (n, e))
                continue
            priv = self.copies.open(d, pw, W.CHAIN, int(n), meta) if pw else "no password store"
            if isinstance(priv, str):
                view.notes.append(priv)
                view.add(v, claimed)
                continue
            fpr = fingerprint(priv.public_key())
            if fpr != claimed:
                view.notes.append("bucket copy %s of v%d: metadata says %s..., key is %s..."
                                  % (n, v, claimed[:16], fpr[:16]))
            view.add(v, fpr, private=priv, public=priv.public_key())
        return view
