#!/usr/bin/python3
"""The Key Vault emulator against the real service's recorded exchanges.

Every exchange of tests/fixtures/akv-recordings (the Azure SDKs' recordings of live Key Vault,
see its README.md) that the emulator can replay is replayed: the emulator is brought into the
state the recording implies (a key with the recorded type, tags and dates; a deleted key; a key
with many versions...), the equivalent request is sent (same method, path form, api-version and
body, or a body of the same shape where the recorder kept none), and the answer is compared with
the recorded one: the status, the set of JSON field names at every level and each value's type,
the error codes and messages (names substituted), and the headers that carry ids (x-ms-request-id,
the echoed x-ms-client-request-id) and the challenge. Values (ids, times, key material) differ by
nature and are not compared.

What cannot be replayed is in SKIPPED, and where the emulator legitimately answers otherwise the
difference is in EXCEPTIONS, each with a one-line reason; an exception no exchange needs fails
the test, so the list stays true. Plain unittest on Debian's /usr/bin/python3:

    /usr/bin/python3 tests/emulators/azure_keyvault/test_recordings.py -v
"""

import base64
import copy
import glob
import json
import os
import re
import shutil
import sys
import tempfile
import unittest
import urllib.parse
import uuid

from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common.pki import ensure_pki  # noqa: E402

from azure_keyvault.test_conformance import (CLIENT_ID, SECRET, TENANT, Emulator, Raw,  # noqa: E402
                                             b64url, int_bytes)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(HERE)), "fixtures", "akv-recordings")
JSON_TYPE = "application/json; charset=utf-8"
VERSION_RE = re.compile(r"^[0-9a-f]{32}$")
CHALLENGE_RE = re.compile(r'^Bearer authorization="https://[^"]+/[^"/]+", '
                          r'resource="https://(vault|managedhsm)\.azure\.net"$')

# exchanges the emulator does not replay: kind -> why
SKIPPED = {
    "rotation": "key rotation (rotationpolicy, rotate) is not emulated: the emulator answers 400",
    "sign-verify": "sign and verify are not emulated (the recordings use EC keys): 400",
    "rng": "/rng is Managed HSM's random-bytes endpoint; the emulator is a vault",
}

# where the emulator legitimately answers otherwise: name -> why (each must be needed)
EXCEPTIONS = {
    "ec-as-rsa": "EC keys are not emulated: the exchange is replayed with an RSA key of the same"
                 " attributes, so the JWK's members are n, e (not crv, x, y) and key_size appears",
    "exportable-7.3": "at 7.3 the recordings disagree (some service builds return"
                      " attributes.exportable, others not); the emulator returns it from 7.3 on",
    "401-empty-body": "the emulator's challenge has an empty body, as the 2018 vault and Managed"
                      " HSM answer; later vaults send a JSON error that clients must not need",
    "mhsm-as-vault": "a Managed HSM exchange is replayed against the vault emulator: the challenge"
                     " names the vault's resource, and errors carry no '(Activity ID: ...)' suffix",
    "secret-as-key": "the one recorded 403 is the secrets API's (a disabled secret): it is"
                     " compared with the emulator's 403 for an operation on a disabled key",
    "sanitized-scope": "the recorder replaced the token request's scope (https://sanitized/): it"
                       " is replayed with the vault's scope",
}


def load_exchanges():
    """[(file name, index, exchange)] of every recording file, in order."""
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURES, "*.json"))):
        with open(path) as f:
            for i, ex in enumerate(json.load(f)):
                out.append((os.path.basename(path), i, ex))
    return out


def path_segs(url):
    return urllib.parse.urlsplit(url).path.split("/")[1:]


def classify(ex):
    """The kind of a recorded exchange: what the replay does."""
    rq, rs = ex["request"], ex["response"]
    segs = path_segs(rq["url"])
    low = [s.lower() for s in segs]
    m = rq["method"]
    if "oauth2" in low:
        return "token"
    if low[0] == "secrets":
        return "secret-403"
    if "rng" in low:
        return "skip:rng"
    if "rotationpolicy" in low or "rotate" in low:
        return "skip:rotation"
    if low[-1] in ("sign", "verify"):
        return "skip:sign-verify"
    if rs["status"] == 401:
        return "challenge"
    if low[0] == "deletedkeys":
        if len(low) == 1:
            return "list-deleted"
        if low[-1] == "recover":
            return "recover"
        return {"GET": "get-deleted", "DELETE": "purge"}[m]
    rest = segs[1:]
    if not rest:
        return "list-keys"
    if rest[0].lower() == "restore":
        return "restore"
    if len(rest) >= 2 and rest[1].lower() == "versions":
        return "list-versions"
    last = low[-1]
    if m == "POST":
        if last in ("create", "backup", "encrypt", "decrypt"):
            return last
        if last in ("wrapkey", "unwrapkey"):
            return {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey"}[last]
    return {"GET": "get", "PATCH": "update", "PUT": "import", "DELETE": "delete"}[m]


def type_name(v):
    return "null" if v is None else type(v).__name__


def shape_diff(rec, got, path=""):
    """The differences between the recorded JSON rec and the emulator's got: field names at
    every level and value types. A list's elements must each match one recorded element; tags
    are a map (user data): only its value types are compared."""
    if path.endswith("/tags"):
        rec, got = tag_map(rec), tag_map(got)
    if isinstance(rec, dict) and isinstance(got, dict):
        out = ["%s %s/%s" % ("missing" if k in rec else "extra", path, k)
               for k in sorted(set(rec) ^ set(got))]
        for k in sorted(set(rec) & set(got)):
            out += shape_diff(rec[k], got[k], "%s/%s" % (path, k))
        return out
    if isinstance(rec, list) and isinstance(got, list):
        if not rec or not got:
            return [] if len(rec) == len(got) else ["%s: %d recorded elements, %d answered"
                                                    % (path, len(rec), len(got))]
        shapes = {json.dumps(shape_of(r), sort_keys=True): r for r in rec}
        out = []
        for g in got:
            diffs = [shape_diff(r, g, path + "[]") for r in shapes.values()]
            if all(diffs):
                out += min(diffs, key=len)
        return sorted(set(out))
    if type_name(rec) != type_name(got):
        return ["%s: recorded %s, answered %s" % (path or "/", type_name(rec), type_name(got))]
    return []


def tag_map(v):
    """A tags object as its shape: {"*": type} of its values."""
    if isinstance(v, dict):
        return {"*": sorted({type_name(x) for x in v.values()})[0]} if v else {}
    return v


def shape_of(v):
    if isinstance(v, dict):
        return {k: shape_of(tag_map(x) if k == "tags" else x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape_of(v[0])] if v else []
    return type_name(v)


def drop_attribute(body, name):
    """Removes member name from every "attributes" object in body; True when one had it."""
    found = False
    if isinstance(body, dict):
        for k, v in body.items():
            if k == "attributes" and isinstance(v, dict) and name in v:
                del v[name]
                found = True
            else:
                found = drop_attribute(v, name) or found
    elif isinstance(body, list):
        for v in body:
            found = drop_attribute(v, name) or found
    return found


def rsa_kty(kty):
    return "RSA-HSM" if kty and kty.endswith("-HSM") else "RSA"


class Replay:
    """One exchange's replay: its emulator answer and the exceptions it needed."""

    def __init__(self, status, headers, body, sent_crid=None):
        self.status, self.headers, self.body = status, headers, body
        self.sent_crid = sent_crid
        self.exceptions = set()


class RecordingsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="akv-emu-rec-")
        cls.pki = ensure_pki(cls.tmp)
        cls.emu = Emulator(cls.tmp, "rec").start()
        cls.lists = Emulator(cls.tmp, "lists").start()     # a vault holding only listing keys
        cls.r = Raw(cls.emu.port, cls.pki["ca"])
        cls.rl = Raw(cls.lists.port, cls.pki["ca"])
        cls.tok = cls.r.token()
        cls.tok_lists = cls.rl.token()
        cls.used = set()
        cls.counter = 0

    @classmethod
    def tearDownClass(cls):
        cls.r.close()
        cls.rl.close()
        cls.emu.stop()
        cls.lists.stop()
        if os.environ.get("AKV_EMU_KEEP"):
            sys.stderr.write("\nkept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- requests ----
    def call(self, method, path, body=None, auth=True, crid=None, raw=None, tok=None):
        """(status, lower-cased headers, JSON body or raw bytes) of one emulator request."""
        r = raw or self.r
        h = {}
        if crid:
            h["x-ms-client-request-id"] = crid
        st, resp, js = r.request(method, path, body, headers=h,
                                 token=(tok or self.tok) if auth else None)
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return st, headers, js if js is not None else resp.raw_body

    def ok(self, method, path, body=None, raw=None, tok=None, want=200):
        st, _, js = self.call(method, path, body, raw=raw, tok=tok)
        self.assertEqual(st, want, "%s %s: %s" % (method, path, js))
        return js

    def fresh_name(self, fname, idx, recorded):
        type(self).counter += 1
        base = "r%s-%d-%d-%s" % (fname.split("-")[0], idx, self.counter, recorded)
        return re.sub(r"[^0-9A-Za-z-]", "-", base)[:127]

    def make_key(self, name, recorded_body, api, raw=None, tok=None):
        """A key like the one a recorded answer shows (type, key_ops, tags, nbf/exp; RSA for
        EC); returns its version."""
        body = recorded_body if isinstance(recorded_body, dict) else {}
        key = body.get("key") or {}
        req = {"kty": rsa_kty(key.get("kty"))}
        ops = [o for o in key.get("key_ops") or [] if o != "import"]
        if ops:
            req["key_ops"] = ops
        if key.get("n"):
            size = len(base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))) * 8
            if size in (2048, 3072, 4096):
                req["key_size"] = size
        if body.get("tags"):
            req["tags"] = body["tags"]
        attrs = {k: v for k, v in (body.get("attributes") or {}).items() if k in ("nbf", "exp")}
        if attrs:
            req["attributes"] = attrs
        js = self.ok("POST", "/keys/%s/create?api-version=%s" % (name, api), req, raw=raw, tok=tok)
        return js["key"]["kid"].rsplit("/", 1)[1]

    def replay_path(self, url, name, version=None):
        """The recorded URL's path with our key name (and version) in it, and its query minus
        $skiptoken."""
        u = urllib.parse.urlsplit(url)
        segs = u.path.split("/")
        if len(segs) > 2 and segs[1].lower() in ("keys", "deletedkeys"):
            segs[2] = name
            if len(segs) > 3 and VERSION_RE.match(segs[3]) and version:
                segs[3] = version
        q = [(k, v) for k, v in urllib.parse.parse_qsl(u.query) if k != "$skiptoken"]
        return "/".join(segs) + "?" + urllib.parse.urlencode(q, safe="/$")

    def jwk(self, recorded):
        """The request body of an import the recorder did not keep: a fresh RSA key with the
        recorded answer's type, key_ops, tags and dates."""
        key = (recorded or {}).get("key") or {}
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
        jwk = {"kty": "RSA", "key_ops": key.get("key_ops") or ["wrapKey", "unwrapKey"],
               "n": b64url(int_bytes(pk.public_numbers.n)), "e": "AQAB",
               "d": b64url(int_bytes(pk.d)), "p": b64url(int_bytes(pk.p)),
               "q": b64url(int_bytes(pk.q))}
        body = {"key": jwk}
        if rsa_kty(key.get("kty")) == "RSA-HSM":
            body["Hsm"] = True
        if recorded.get("tags"):
            body["tags"] = recorded["tags"]
        attrs = {k: v for k, v in (recorded.get("attributes") or {}).items() if k in ("nbf", "exp")}
        if attrs:
            body["attributes"] = attrs
        return body

    # ---- the replays, by kind ----
    def replay(self, fname, idx, ex):
        rq, rs = ex["request"], ex["response"]
        kind = classify(ex)
        api = rq.get("api_version") or "7.3"
        q = "?api-version=" + api
        rec_body = rq.get("body") if rq.get("body") is not None else rq.get("body_reconstructed")
        rec_answer = rs["body"]
        segs = path_segs(rq["url"])
        recorded_name = segs[1] if len(segs) > 1 else ""
        name = self.fresh_name(fname, idx, recorded_name)
        rq_headers = {k.lower(): v for k, v in (rq.get("headers") or {}).items()}
        crid = str(uuid.uuid4()) if "x-ms-client-request-id" in rq_headers else None
        notes = set()

        def answer(method, path, body=None, auth=True, raw=None, tok=None):
            st, h, b = self.call(method, path, body, auth=auth, crid=crid, raw=raw, tok=tok)
            rep = Replay(st, h, b, crid)
            rep.exceptions |= notes
            rep.name = name
            return rep

        if "managedhsm" in rq["url"]:
            notes.add("mhsm-as-vault")
        if kind == "token":
            form = dict(urllib.parse.parse_qsl(rec_body))
            form.update(client_id=CLIENT_ID, client_secret=SECRET)
            if form.get("scope") != "https://vault.azure.net/.default":
                form["scope"] = "https://vault.azure.net/.default"
                notes.add("sanitized-scope")
            st, resp, js = self.r.request("POST", "/%s/oauth2/v2.0/token" % TENANT,
                                          urllib.parse.urlencode(form), form=True)
            rep = Replay(st, {k.lower(): v for k, v in resp.getheaders()}, js)
            rep.exceptions |= notes
            return rep
        if kind == "challenge":
            return answer(rq["method"], self.replay_path(rq["url"], name), None, auth=False)
        if kind == "secret-403":
            notes.add("secret-as-key")
            ver = self.make_key(name, None, api)
            self.ok("PATCH", "/keys/%s/%s%s" % (name, ver, q), {"attributes": {"enabled": False}})
            return answer("POST", "/keys/%s/%s/unwrapkey%s" % (name, ver, q),
                          {"alg": "RSA-OAEP", "value": b64url(b"\1" * 256)})
        if kind == "create":
            status = rs["status"]
            if status == 200:
                body = rec_body if isinstance(rec_body, dict) and \
                    rsa_kty(rec_body.get("kty")) == rec_body.get("kty") else None
                if body is None:
                    body = self.create_body(rec_answer)
                return answer("POST", "/keys/%s/create%s" % (name, q), body)
            if status == 409:
                inner = rec_answer["error"]["innererror"]["code"]
                self.make_key(name, None, api)
                if inner == "ObjectIsBeingDeleted":
                    self.emu.control.ok("POST", "config", {"delete_delay": 30})
                try:
                    self.ok("DELETE", "/keys/%s%s" % (name, q))
                finally:
                    self.emu.control.ok("POST", "config", {"delete_delay": 0})
                return answer("POST", "/keys/%s/create%s" % (name, q), {"kty": "RSA"})
            return answer("POST", "/keys/%s/create%s" % (name, q), rec_body)
        if kind == "import":
            body = rec_body if isinstance(rec_body, dict) else self.jwk(rec_answer)
            return answer("PUT", self.replay_path(rq["url"], name), body)
        if kind in ("get", "update", "delete", "backup"):
            if rs["status"] == 404:
                return answer(rq["method"], self.replay_path(rq["url"], name), rec_body)
            if kind == "update":
                ver = self.make_key(name, {"key": (rec_answer or {}).get("key")}, api)
                body = rec_body if isinstance(rec_body, dict) else self.update_body(rec_answer)
                return answer("PATCH", self.replay_path(rq["url"], name, ver), body)
            ver = self.make_key(name, rec_answer, api)
            return answer(rq["method"], self.replay_path(rq["url"], name, ver))
        if kind in ("wrapKey", "unwrapKey", "encrypt", "decrypt"):
            ver = self.make_key(name, None, api)
            alg = (rec_body or {}).get("alg") or ("RSA1_5" if "rsa1_5" in fname else
                                                 "RSA-OAEP-256" if "256" in fname else "RSA-OAEP")
            value = b64url(os.urandom(32))
            if kind in ("unwrapKey", "decrypt"):
                op = "wrapkey" if kind == "unwrapKey" else "encrypt"
                value = self.ok("POST", "/keys/%s/%s/%s%s" % (name, ver, op, q),
                                {"alg": alg, "value": value})["value"]
            elif isinstance(rec_body, dict) and rec_body.get("value"):
                value = rec_body["value"]
            return answer("POST", self.replay_path(rq["url"], name, ver), {"alg": alg, "value": value})
        if kind == "restore":
            self.make_key(name, rec_answer, api)
            blob = self.ok("POST", "/keys/%s/backup%s" % (name, q))["value"]
            self.ok("DELETE", "/keys/%s%s" % (name, q))
            self.ok("DELETE", "/deletedkeys/%s%s" % (name, q), want=204)
            return answer("POST", "/keys/restore%s" % q, {"value": blob})
        if kind in ("get-deleted", "recover", "purge"):
            if rs["status"] == 404:
                return answer(rq["method"], self.replay_path(rq["url"], name))
            self.make_key(name, rec_answer, api)
            self.ok("DELETE", "/keys/%s%s" % (name, q))
            return answer(rq["method"], self.replay_path(rq["url"], name))
        if kind.startswith("list-"):
            return self.replay_list(kind, rq, rs, name, api, answer)
        raise AssertionError("no replay for kind %s" % kind)

    @staticmethod
    def create_body(recorded):
        """The create request of a recorded answer whose request was not kept (RSA for EC)."""
        body = {"kty": rsa_kty(recorded["key"]["kty"])}
        if recorded.get("tags"):
            body["tags"] = recorded["tags"]
        attrs = {k: v for k, v in recorded["attributes"].items() if k in ("nbf", "exp")}
        if attrs:
            body["attributes"] = attrs
        return body

    @staticmethod
    def update_body(recorded):
        body = {"attributes": {k: v for k, v in recorded["attributes"].items()
                               if k in ("enabled", "nbf", "exp")}}
        if recorded.get("tags"):
            body["tags"] = recorded["tags"]
        return body

    def replay_list(self, kind, rq, rs, name, api, answer):
        """A page like the recorded one: items and a nextLink, items and none, an empty page
        with a nextLink (the service's empty pages) or the empty last page."""
        rec = rs["body"]
        items, link = bool(rec["value"]), rec["nextLink"] is not None
        q = "?api-version=" + api
        if kind == "list-versions":
            raw, tok, ctl = self.r, self.tok, self.emu.control
            self.make_key(name, None, api)
            self.make_key(name, None, api)
            path = "/keys/%s/versions" % name
        else:
            raw, tok, ctl = self.rl, self.tok_lists, self.lists.control
            if not getattr(self, "lists_ready", False):
                for i in range(3):
                    self.make_key("listed-%d" % i, None, api, raw=raw, tok=tok)
                self.make_key("listed-tagged", {"tags": {"t": "v"}}, api, raw=raw, tok=tok)
                for i in range(3):
                    self.make_key("gone-%d" % i, None, api, raw=raw, tok=tok)
                    self.ok("DELETE", "/keys/gone-%d%s" % (i, q), raw=raw, tok=tok)
                type(self).lists_ready = True
            path = "/deletedkeys" if kind == "list-deleted" else "/keys"
        if items:
            return answer("GET", path + q + ("&maxresults=1" if link else ""), raw=raw, tok=tok)
        # empty pages: the whole listing on the first page, then two empty ones
        ctl.ok("POST", "config", {"empty_pages": 2})
        try:
            nxt = self.ok("GET", path + q, raw=raw, tok=tok)["nextLink"]
            if not link:
                nxt = self.ok("GET", self.local(nxt, raw), raw=raw, tok=tok)["nextLink"]
            return answer("GET", self.local(nxt, raw), raw=raw, tok=tok)
        finally:
            ctl.ok("POST", "config", {"empty_pages": 0})

    @staticmethod
    def local(link, raw):
        u = urllib.parse.urlsplit(link)
        assert u.port == raw.port, link
        return u.path + "?" + u.query

    # ---- the comparison ----
    def compare(self, where, ex, rep):
        rq, rs = ex["request"], ex["response"]
        rec_h = {k.lower(): v for k, v in (rs.get("headers") or {}).items()}
        self.assertEqual(rep.status, rs["status"], "%s: status (answer %r)" % (where, rep.body))
        if rs["status"] == 401:
            self.assertRegex(rep.headers.get("www-authenticate", ""), CHALLENGE_RE, where)
            if "managedhsm" not in rec_h.get("www-authenticate", ""):
                self.assertIn('resource="https://vault.azure.net"', rep.headers["www-authenticate"])
            self.assertEqual(rep.body, b"", "%s: the challenge's body" % where)
            self.assertNotIn("content-type", rep.headers, where)
            self.assertEqual(rep.headers.get("content-length"), "0", where)
            if rs["body"] not in ("", None):
                rep.exceptions.add("401-empty-body")
        elif rs["status"] == 204:
            self.assertEqual(rep.body, b"", where)
            self.assertNotIn("content-type", rep.headers, where)
        else:
            self.assertEqual(rep.headers.get("content-type"), JSON_TYPE, where)
            self.compare_body(where, ex, rep)
        if "x-ms-request-id" in rec_h and "login" not in rq["url"]:
            self.assertRegex(rep.headers.get("x-ms-request-id", ""), r"^[0-9a-f-]{36}$", where)
        if "x-ms-client-request-id" in rec_h:
            self.assertEqual(rep.headers.get("x-ms-client-request-id"), rep.sent_crid, where)
        if "x-ms-keyvault-service-version" in rec_h:
            self.assertIn("x-ms-keyvault-service-version", rep.headers, where)

    def compare_body(self, where, ex, rep):
        rq, rs = ex["request"], ex["response"]
        rec, got = copy.deepcopy(rs["body"]), copy.deepcopy(rep.body)
        self.assertIsInstance(got, (dict, list), "%s: answer %r" % (where, got))
        api = rq.get("api_version") or ""
        if isinstance(rec, dict) and isinstance(rec.get("key"), dict) and \
                rec["key"].get("kty", "").startswith("EC"):
            for k in ("crv", "x", "y"):
                rec["key"].pop(k, None)
            rec["key"].update(n="", e="")
            drop_attribute(got, "key_size")
            rep.exceptions.add("ec-as-rsa")
        if api.startswith("7.3"):
            had = drop_attribute(rec, "exportable")
            if drop_attribute(got, "exportable") != had:
                rep.exceptions.add("exportable-7.3")
        kind = classify(ex)
        if kind.startswith("list-") and rec["value"]:
            # a listing's items may take any shape its recorded pages show (one key of the
            # recorded listing had tags: it could have been on any page)
            rec["value"] = rec["value"] + copy.deepcopy(self.items_seen.get(kind, []))
            if api.startswith("7.3"):
                drop_attribute(rec, "exportable")
        diffs = shape_diff(rec, got)
        self.assertEqual(diffs, [], "%s: recorded %s\nanswered %s" % (where, json.dumps(rec)[:600],
                                                                      json.dumps(got)[:600]))
        if rs["status"] >= 400:
            self.compare_error(where, ex, rep)

    def compare_error(self, where, ex, rep):
        rs = ex["response"]
        rec, got = rs["body"]["error"], rep.body["error"]
        recorded_name = path_segs(ex["request"]["url"])[1]
        msg = rec["message"]
        if "secret-as-key" in rep.exceptions:
            pattern = r"^Operation \w+ is not allowed on a disabled (secret|key)\.$"
            self.assertRegex(msg, pattern)
            self.assertRegex(got["message"], pattern, where)
            self.assertEqual(got["code"], rec["code"], where)
            self.assertEqual(got["innererror"]["code"],
                             rec["innererror"]["code"].replace("Secret", "Key"), where)
            return
        m = re.match(r"^(.*) \(Activity ID: [0-9a-f-]+\)$", msg)
        if m:
            msg = m.group(1)
            self.assertIn("mhsm-as-vault", rep.exceptions, where)
        msg = msg.replace(recorded_name, rep.name)
        self.assertEqual((got["code"], got["message"]), (rec["code"], msg), where)
        self.assertEqual(got.get("innererror"), rec.get("innererror"), where)

    # ---- the test ----
    def test_replay_recorded_exchanges(self):
        exchanges = load_exchanges()
        self.assertGreater(len(exchanges), 100)
        type(self).items_seen = {}
        for _, _, ex in exchanges:
            kind = classify(ex)
            if kind.startswith("list-"):
                self.items_seen.setdefault(kind, []).extend(ex["response"]["body"]["value"])
        replayed, skipped, used = 0, {}, {}
        for fname, idx, ex in exchanges:
            where = "%s[%d] %s %s" % (fname, idx, ex["request"]["method"], ex["request"]["url"])
            kind = classify(ex)
            if kind.startswith("skip:"):
                reason = kind[5:]
                self.assertIn(reason, SKIPPED)
                skipped[reason] = skipped.get(reason, 0) + 1
                continue
            with self.subTest(exchange="%s[%d]" % (fname, idx), kind=kind):
                rep = self.replay(fname, idx, ex)
                self.compare(where, ex, rep)
                replayed += 1
                for e in rep.exceptions:
                    self.assertIn(e, EXCEPTIONS, where)
                    used[e] = used.get(e, 0) + 1
        sys.stderr.write("\n%d exchanges replayed; skipped: %s; exceptions needed: %s\n"
                         % (replayed, skipped, used))
        self.assertEqual(sorted(set(EXCEPTIONS) - set(used)), [], "exceptions no exchange needs")
        self.assertEqual(sorted(set(SKIPPED) - set(skipped)), [], "skips no exchange needs")


if __name__ == "__main__":
    unittest.main()
