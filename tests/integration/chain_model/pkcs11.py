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
# a writer's object before it wins: kp:<name>/v<N>~<unix time>~<16 hex> (pkcs11-plugin.md)
PENDING = re.compile(r"^kp:(?P<name>[A-Za-z0-9._-]+)/v(?P<v>[1-9][0-9]*)~[0-9]+~[0-9a-f]+$")


class Listing:
    """versions: version -> fingerprints of the chain's published key objects (private keys by
    CKA_ID, public keys by their value); first: version -> the CKA_ID a reader uses when there
    are several (the lowest: pkcs11-plugin.md, "Several writers of one version"); publics:
    fingerprint -> public key; pending: (label, CKA_ID) of writers' undecided objects; notes:
    what looks wrong."""

    def __init__(self):
        self.versions, self.first, self.publics, self.pending, self.notes = {}, {}, {}, set(), []


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
        """What the token holds of chain: a Listing."""
        out, pub_ids, priv_ids = Listing(), {}, {}
        objs = self.objects()
        for kind, ids in (("pubkey", pub_ids), ("privkey", priv_ids)):
            for label, idhex in objs[kind]:
                m = LABEL.match(label)
                if not m:
                    p = PENDING.match(label)
                    if p and p.group("name") == chain:
                        out.pending.add((label, idhex))
                    continue
                if m.group("name") != chain:
                    continue
                v = int(m.group("v"))
                ids.setdefault(v, set()).add(idhex)
                if kind == "privkey":
                    out.versions.setdefault(v, set()).add(idhex)
                    continue
                pub = self.public_key(idhex)
                f = fingerprint(pub)
                out.publics[f] = pub
                out.versions.setdefault(v, set()).add(f)
                if f != idhex:
                    out.notes.append("%s: public key %s has CKA_ID %s... but its value's "
                                     "fingerprint is %s..." % (self.label, label, idhex[:16],
                                                               f[:16]))
        for v in sorted(out.versions):
            for idhex in priv_ids.get(v, set()) ^ pub_ids.get(v, set()):
                half = "private" if idhex in priv_ids.get(v, set()) else "public"
                out.notes.append("%s v%d: only a %s key with ID %s... (half a version)"
                                 % (self.label, v, half, idhex[:16]))
            out.first[v] = min(priv_ids.get(v, set()) | pub_ids.get(v, set()))
        return out

    def delete(self, chain, version=None):
        """Destroys the chain's key objects of one version (all versions when None): a damaged
        token. Each by its label and CKA_ID: by ID alone pkcs11-tool destroys the first object
        with that ID, which may be a writer's pending twin (an imported key has its fingerprint
        for ID on every writer), leaving the published object behind alone."""
        objs = self.objects()
        for kind in ("privkey", "pubkey"):
            for label, idhex in objs[kind]:
                m = LABEL.match(label)
                if m and m.group("name") == chain and version in (None, int(m.group("v"))):
                    self._tool(["--login", "--pin", self.pin, "--delete-object", "--type", kind,
                                "--label", label, "--id", idhex])
