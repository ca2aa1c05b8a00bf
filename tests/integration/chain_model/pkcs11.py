"""A SoftHSM token listed without keyplane: pkcs11-tool (OpenSC) lists its key objects, and each
public key's value is read once to compute its fingerprint, so what a token holds under a label
(docs/pkcs11-plugin.md, "Objects on the token": `kp:<name>/v<N>`, CKA_ID the fingerprint) is
seen independently of the plugin.
"""

import re
import subprocess

from cryptography.hazmat.primitives import serialization

from .material import fingerprint

LABEL = re.compile(r"^kp:(?P<name>[A-Za-z0-9._-]+)/v(?P<v>[1-9][0-9]*)$")


class Token:
    def __init__(self, module, label, pin, env):
        self.module, self.label, self.pin, self.env = module, label, pin, env
        self._pub = {}          # CKA_ID hex -> the public key read from the token

    def _tool(self, args, binary=False):
        argv = ["pkcs11-tool", "--module", self.module, "--token-label", self.label] + args
        p = subprocess.run(argv, env=self.env, capture_output=True, timeout=60)
        if p.returncode != 0:
            raise OSError("pkcs11-tool %s: exit %d: %s" % (" ".join(args), p.returncode,
                                                          p.stderr.decode(errors="replace")))
        return p.stdout if binary else p.stdout.decode(errors="replace")

    def objects(self):
        """{"privkey": [(label, id hex)], "pubkey": [...]}: the token's key objects, one listing."""
        out = self._tool(["--login", "--pin", self.pin, "--list-objects"])
        objs, kind, label = {"privkey": [], "pubkey": []}, None, None
        for line in out.splitlines():
            if not line.startswith((" ", "\t")):
                kind = ("privkey" if line.startswith("Private Key Object") else
                        "pubkey" if line.startswith("Public Key Object") else None)
                label = None
            m = re.match(r"\s+label:\s+(.*)$", line)
            if m:
                label = m.group(1).strip()
            m = re.match(r"\s+ID:\s+([0-9a-f]+)$", line)
            if m and label is not None and kind is not None:
                objs[kind].append((label, m.group(1)))
        return objs

    def public_key(self, idhex):
        """The public key with CKA_ID idhex, read from its value on the token."""
        if idhex not in self._pub:
            der = self._tool(["--read-object", "--type", "pubkey", "--id", idhex], binary=True)
            self._pub[idhex] = serialization.load_der_public_key(der)
        return self._pub[idhex]

    def versions(self, chain):
        """(versions, notes, publics, first): version -> set of fingerprints of the chain's key
        objects (private keys by CKA_ID, public keys by their value), what looks wrong on the
        token, fingerprint -> public key, and version -> the CKA_ID a reader uses when a version
        has several published objects (the lowest: docs/pkcs11-plugin.md, "Several writers of
        one version")."""
        versions, notes, pub_ids, priv_ids, publics = {}, [], {}, {}, {}
        objs = self.objects()
        for label, idhex in objs["pubkey"]:
            m = LABEL.match(label)
            if not m or m.group("name") != chain:
                continue
            v = int(m.group("v"))
            pub = self.public_key(idhex)
            f = fingerprint(pub)
            publics[f] = pub
            if f != idhex:
                notes.append("public key %s: CKA_ID %s... but its value's fingerprint is %s..."
                             % (label, idhex[:16], f[:16]))
            versions.setdefault(v, set()).add(f)
            pub_ids.setdefault(v, set()).add(idhex)
        for label, idhex in objs["privkey"]:
            m = LABEL.match(label)
            if not m or m.group("name") != chain:
                continue
            v = int(m.group("v"))
            versions.setdefault(v, set()).add(idhex)
            priv_ids.setdefault(v, set()).add(idhex)
        for v in sorted(set(pub_ids) | set(priv_ids)):
            for idhex in priv_ids.get(v, set()) ^ pub_ids.get(v, set()):
                half = "private" if idhex in priv_ids.get(v, set()) else "public"
                notes.append("%s v%d: only a %s key with ID %s... (half a version)"
                             % (self.label, v, half, idhex[:16]))
        first = {v: min(priv_ids.get(v, set()) | pub_ids.get(v, set())) for v in versions}
        return versions, notes, publics, first
