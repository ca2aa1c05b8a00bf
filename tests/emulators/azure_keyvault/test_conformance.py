#!/usr/bin/python3
"""Conformance tests for the Key Vault emulator.

Drives emulator.py with the official Azure SDK for Python (Debian's
python3-azure: azure-keyvault-keys, azure-identity) and with raw HTTPS for
the strictness checks.  The vaults start and stop through the shared ctl core
(common/emuctl.py, as vaultctl.py does for the C tests) and are steered through the
shared control client (common/client.py).  Plain unittest; run with Debian's
/usr/bin/python3:

    /usr/bin/python3 tests/emulators/azure_keyvault/test_conformance.py -v
"""

import base64
import http.client
import json
import logging
import os
import shutil
import ssl
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import emuctl  # noqa: E402
from common.pki import ensure_pki  # noqa: E402

from azure_keyvault.keys_import import der_sequence_length  # noqa: E402
from azure_keyvault.vaultctl import SPEC, vault_args  # noqa: E402

try:
    from azure.core.exceptions import (HttpResponseError, ResourceExistsError,
                                       ResourceNotFoundError, ClientAuthenticationError)
    from azure.identity import ClientSecretCredential
    from azure.keyvault.keys import JsonWebKey, KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    HAVE_SDK = True
except ImportError:  # pragma: no cover - reported by the skip below
    HAVE_SDK = False

logging.getLogger("azure.identity").setLevel(logging.ERROR)   # expected auth failures are tested
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "4a1c0e1e-0000-4000-8000-00000000c11e"
SECRET = "s3cr&t+/=value"          # needs form-encoding to survive
API = "2025-07-01"
OAEP = {"RSA-OAEP": padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None),
        "RSA-OAEP-256": padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
        "RSA1_5": padding.PKCS1v15()}


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def int_bytes(i):
    return i.to_bytes((i.bit_length() + 7) // 8, "big")


class Emulator:
    """Vault NAME of the test run's directory d, with the test's tenant and client."""

    def __init__(self, d, name, extra=()):
        self.d, self.name, self.extra = d, name, list(extra)
        self.state_dir = os.path.join(d, name + ".state")
        self.port = None
        self.control = None

    def start(self):
        self.port = emuctl.start(SPEC, self.d, self.name, vault_args(TENANT, ["%s:%s" % (CLIENT_ID, SECRET)]),
                                 extra=self.extra)
        self.control = emuctl.control(SPEC, self.d, self.name)
        return self

    def stop(self, kill=False):
        emuctl.stop(SPEC, self.d, self.name, kill)

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port


class Raw:
    """Minimal raw HTTPS client on one kept-alive connection."""

    def __init__(self, port, ca):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.conn = None

    def connect(self):
        self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=20)

    def request(self, method, path, body=None, headers=None, token=None, form=False):
        if self.conn is None:
            self.connect()
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        if form:
            h["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=h)
            resp = self.conn.getresponse()
            data = resp.read()
        except Exception:
            self.conn.close()
            self.conn = None
            raise
        resp.raw_body = data      # the bytes as sent (the corrupt fault's tests need them)
        try:
            js = json.loads(data) if data else None
        except ValueError:
            js = None
        return resp.status, resp, js

    def token(self):
        body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                       "client_secret": SECRET,
                                       "scope": "https://vault.azure.net/.default"})
        st, _, js = self.request("POST", "/%s/oauth2/v2.0/token" % TENANT, body, form=True)
        assert st == 200, js
        return js["access_token"]

    def close(self):
        if self.conn:
            self.conn.close()


def local_rsa_wrap(n_b64, e_b64, alg, data):
    pub = rsa.RSAPublicNumbers(int.from_bytes(b64url_dec(e_b64), "big"),
                               int.from_bytes(b64url_dec(n_b64), "big")).public_key()
    return pub.encrypt(data, OAEP[alg])


def pkcs8_der(key):
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_byok(kek_kid, kek_n, target_key, enc_b64=b64url, ciphertext_b64=b64url, plaintext=None):
    """Build a .byok transfer file (Key Vault BYOK specification); plaintext(pkcs8) gives the
    bytes the AES key wrap with padding carries (default: the PKCS#8 key itself)."""
    kek_pub = rsa.RSAPublicNumbers(65537, int.from_bytes(kek_n, "big")).public_key()
    aes = os.urandom(32)
    pkcs8 = pkcs8_der(target_key)
    if plaintext is not None:
        pkcs8 = plaintext(pkcs8)
    ct = kek_pub.encrypt(aes, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)) \
        + aes_key_wrap_with_padding(aes, pkcs8)
    return json.dumps({"schema_version": "1.0.0",
                       "header": {"kid": kek_kid, "alg": "dir", "enc": "CKM_RSA_AES_KEY_WRAP"},
                       "ciphertext": ciphertext_b64(ct),
                       "generator": "keyplane conformance test"}).encode()


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------

@unittest.skipUnless(HAVE_SDK, "python3-azure (azure-keyvault-keys, azure-identity) not installed")
class Base(unittest.TestCase):
    extra_args = ["--page-size", "2", "--empty-pages", "2"]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="akv-emu-test-")
        cls.pki = ensure_pki(cls.tmp)
        cls.emu = Emulator(cls.tmp, "vault1", cls.extra_args).start()
        cls.cred = cls.credential(cls.emu)
        cls.client = cls.key_client(cls.emu, cls.cred)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cred.close()
        cls.emu.stop()
        if os.environ.get("AKV_EMU_KEEP"):        # keep state dirs and emulator logs for debugging
            sys.stderr.write("\nkept %s\n" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def credential(cls, emu):
        return ClientSecretCredential(TENANT, CLIENT_ID, SECRET, authority=emu.url,
                                      instance_discovery=False, connection_verify=cls.pki["ca"])

    @classmethod
    def key_client(cls, emu, cred, **kw):
        return KeyClient(emu.url, cred, verify_challenge_resource=False,
                         connection_verify=cls.pki["ca"], **kw)

    def crypto_client(self, key, **kw):
        cc = CryptographyClient(key, self.cred, verify_challenge_resource=False,
                                connection_verify=self.pki["ca"], **kw)
        self.addCleanup(cc.close)
        return cc

    def raw(self, emu=None):
        r = Raw((emu or self.emu).port, self.pki["ca"])
        self.addCleanup(r.close)
        return r

    def control(self, method, name, body=None):
        st, js = self.emu.control.call(method, name, body)
        self.assertEqual(st, 200, js)
        return js

    def stats(self):
        return self.control("GET", "stats")

    def setUp(self):
        self.control("PUT", "faults", {})
        self.control("POST", "config", {"token_lifetime": 3599, "delete_delay": 0, "challenge": None,
                                        "limits": False})


class AuthTest(Base):
    """The 401 challenge, the token endpoint, tokens' lifetime and revocation, IMDS."""

    def test_auth_challenge_without_token(self):
        r = self.raw()
        st, resp, js = r.request("POST", "/keys/challenged/create?api-version=" + API,
                                 headers={"Content-Length": "0"})
        self.assertEqual(st, 401)
        self.assertEqual(resp.getheader("WWW-Authenticate"),
                         'Bearer authorization="%s/%s", resource="https://vault.azure.net"'
                         % (self.emu.url, TENANT))
        # an empty body, as the 2018 vault and Managed HSM answer (01-challenge.json)
        self.assertEqual((resp.raw_body, js), (b"", None))
        self.assertEqual(resp.getheader("Content-Length"), "0")
        self.assertIsNone(resp.getheader("Content-Type"))
        # the connection stays usable after a 401 (keep-alive)
        st, _, _ = r.request("GET", "/keys?api-version=" + API, headers={"Authorization": "Basic eDp5"})
        self.assertEqual(st, 401)

    def test_token_endpoint_and_errors(self):
        r = self.raw()
        st, _, js = r.request("GET", "/%s/v2.0/.well-known/openid-configuration" % TENANT)
        self.assertEqual(st, 200)
        self.assertEqual(js["token_endpoint"], "%s/%s/oauth2/v2.0/token" % (self.emu.url, TENANT))

        def post(fields, tenant=TENANT):
            return r.request("POST", "/%s/oauth2/v2.0/token" % tenant, urllib.parse.urlencode(fields),
                             form=True)
        good = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
                "scope": "https://vault.azure.net/.default"}
        st, _, js = post(good)
        self.assertEqual(st, 200)
        self.assertEqual(js["token_type"], "Bearer")
        self.assertIsInstance(js["expires_in"], int)
        self.assertIsInstance(js["ext_expires_in"], int)
        self.assertGreater(len(js["access_token"]), 100)
        self.assertNotEqual(js["access_token"], post(good)[2]["access_token"])  # random tokens

        st, _, js = post(dict(good, client_secret="wrong"))
        self.assertEqual(st, 401)
        self.assertEqual(js["error"], "invalid_client")
        self.assertEqual(js["error_codes"], [7000215])
        self.assertTrue(js["error_description"].startswith("AADSTS7000215:"))
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(k, js)
        st, _, js = post(dict(good, client_id="nobody"))
        self.assertEqual((st, js["error"]), (400, "unauthorized_client"))
        st, _, js = post(dict(good, scope="https://management.azure.com/.default"))
        self.assertEqual((st, js["error"]), (400, "invalid_scope"))
        st, _, js = post(dict(good, grant_type="password"))
        self.assertEqual((st, js["error"]), (400, "unsupported_grant_type"))
        st, _, js = post(good, tenant="other-tenant")
        self.assertEqual((st, js["error"]), (400, "invalid_request"))

    def test_sdk_wrong_secret_fails_auth(self):
        cred = ClientSecretCredential(TENANT, CLIENT_ID, "wrong", authority=self.emu.url,
                                      instance_discovery=False, connection_verify=self.pki["ca"])
        client = self.key_client(self.emu, cred)
        self.addCleanup(cred.close)
        self.addCleanup(client.close)
        with self.assertRaises(ClientAuthenticationError) as cm:
            client.get_key("whatever")
        self.assertIn("AADSTS7000215", str(cm.exception))

    def test_bad_expired_and_revoked_tokens(self):
        r = self.raw()
        st, resp, js = r.request("GET", "/keys?api-version=" + API, token="not-a-token")
        self.assertEqual(st, 401)
        self.assertTrue(resp.getheader("WWW-Authenticate").startswith("Bearer authorization="))
        self.control("POST", "config", {"token_lifetime": 1})
        tok = r.token()
        self.assertEqual(r.request("GET", "/keys?api-version=" + API, token=tok)[0], 200)
        time.sleep(1.2)
        st, resp, js = r.request("GET", "/keys?api-version=" + API, token=tok)
        self.assertEqual(st, 401)
        self.assertIn("expired", js["error"]["message"].lower())
        self.control("POST", "config", {"token_lifetime": 3599})
        tok = r.token()
        # revoke just this token: revoking the SDK's cached token would trip an azure-core quirk
        # (after a 401 on an already-challenged client it resends Content-Length without the body)
        self.control("POST", "tokens/revoke", {"token": tok})
        self.assertEqual(r.request("GET", "/keys?api-version=" + API, token=tok)[0], 401)

    def test_imds(self):
        r = self.raw()
        path = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + \
            urllib.parse.quote("https://vault.azure.net")
        st, _, js = r.request("GET", path)
        self.assertEqual((st, js["error"]), (400, "invalid_request"))
        st, _, js = r.request("GET", path, headers={"Metadata": "true"})
        self.assertEqual(st, 200)
        for k in ("expires_in", "expires_on", "not_before"):
            self.assertIsInstance(js[k], str)
            int(js[k])
        self.assertEqual(js["token_type"], "Bearer")
        self.assertEqual(js["resource"], "https://vault.azure.net")
        self.assertEqual(r.request("GET", "/keys?api-version=" + API, token=js["access_token"])[0], 200)
        st, _, js = r.request("GET", path + "&client_id=someone-else", headers={"Metadata": "true"})
        self.assertEqual(st, 400)
        st, _, js = r.request("GET", "/metadata/identity/oauth2/token?resource=https://vault.azure.net",
                              headers={"Metadata": "true"})
        self.assertEqual(st, 400)


class StrictnessTest(Base):
    """api-versions, malformed requests, TLS only, keep-alive, the control endpoints."""

    def test_api_versions(self):
        r = self.raw()
        tok = r.token()
        for v in ("7.0", "7.1", "7.2", "7.3", "7.4", "7.4-preview.1", "7.5", "7.6", "2025-07-01"):
            st, _, js = r.request("GET", "/keys/no-such-key?api-version=" + v, token=tok)
            self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"), v)
        for v in ("7.9", "2016-10-01", "8.0", "latest", ""):
            st, _, js = r.request("GET", "/keys/no-such-key?api-version=" + v, token=tok)
            self.assertEqual(st, 400, v)
            self.assertEqual(js["error"]["code"], "BadParameter")
            self.assertEqual(set(js), {"error"})
        st, _, js = r.request("GET", "/keys/no-such-key", token=tok)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))

    def test_malformed_requests(self):
        r = self.raw()
        tok = r.token()
        base = "/keys/%s/create?api-version=" + API
        cases = [
            (b"{not json", 400), (b"[1,2]", 400), (b"", 400),
            (b'{"kty":"RSA","key_size":1024}', 400),
            (b'{"kty":"RSA","key_ops":["frobnicate"]}', 400),
            (b'{"kty":"XYZ"}', 400),
            (b'{"kty":"RSA","release_policy":{"data":"eyJ9"}}', 400),
            (b'{"kty":"RSA","key_ops":["import"]}', 400),          # KEK must be RSA-HSM
            (b'{"kty":"RSA","attributes":{"enabled":"yes"}}', 400),
            (b'{"kty":"RSA","tags":{"a":1}}', 400),
        ]
        for body, want in cases:
            st, _, js = r.request("POST", base % "malformed", body, token=tok,
                                  headers={"Content-Type": "application/json"})
            self.assertEqual(st, want, body)
            self.assertEqual(js["error"]["code"], "BadParameter", body)
        st, _, js = r.request("POST", base % "bad_name", b'{"kty":"RSA"}', token=tok)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))
        self.assertIn("invalid name", js["error"]["message"])
        st, _, js = r.request("GET", "/keys/malformed/00000000000000000000000000000000?api-version=" + API,
                              token=tok)
        self.assertEqual(st, 404)

    def test_plain_http_is_refused(self):
        c = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=5)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            c.request("GET", "/keys?api-version=" + API)
            resp = c.getresponse()
            resp.read()
            raise ConnectionError("got status %s" % resp.status)
        c.close()

    def test_ready_line_and_health(self):
        with open(os.path.join(self.tmp, "vault1.log")) as f:
            self.assertIn("READY %d\n" % self.emu.port, f.read())
        self.assertEqual(self.control("GET", "health"),
                         {"status": "ok", "port": self.emu.port, "vault_url": self.emu.url})
        st, js = self.emu.control.call("GET", "no-such-endpoint")
        self.assertEqual((st, js), (404, {"error": "unknown control endpoint"}))

    def test_keep_alive(self):
        r = self.raw()
        tok = r.token()
        sock = r.conn.sock
        for _ in range(3):
            self.assertEqual(r.request("GET", "/keys?api-version=" + API, token=tok)[0], 200)
        self.assertIs(r.conn.sock, sock)


class KeysTest(Base):
    """Through the SDK and raw: create, get, update, versions and paging, attribute shapes,
    wrap/unwrap, JWK and BYOK imports."""

    def test_sdk_create_get_update_versions(self):
        c = self.client
        k = c.create_rsa_key("crud-key", size=3072, tags={"chain": "c1", "fp": "abc"},
                             key_operations=["wrapKey", "unwrapKey"])
        self.assertRegex(k.id, r"^%s/keys/crud-key/[0-9a-f]{32}$" % self.emu.url.replace(".", r"\."))
        self.assertEqual(k.key_type, "RSA")
        self.assertEqual(len(k.key.n), 384)
        self.assertEqual(k.key_operations, ["wrapKey", "unwrapKey"])
        self.assertEqual(k.properties.tags, {"chain": "c1", "fp": "abc"})
        self.assertTrue(k.properties.enabled)
        self.assertIsNone(k.properties.expires_on)
        self.assertEqual(k.properties.recovery_level, "Recoverable+Purgeable")
        g = c.get_key("CRUD-KEY")                                 # names are case-insensitive
        self.assertEqual((g.id, g.key.n), (k.id, k.key.n))
        self.assertEqual(c.get_key("crud-key", k.properties.version).id, k.id)
        with self.assertRaises(ResourceNotFoundError):
            c.get_key("crud-key", "0" * 32)
        with self.assertRaises(ResourceNotFoundError):
            c.get_key("no-such-key")

        u = c.update_key_properties("crud-key", k.properties.version, enabled=False, tags={"x": "y"})
        self.assertFalse(u.properties.enabled)
        self.assertEqual(u.properties.tags, {"x": "y"})
        cc = self.crypto_client(k)
        with self.assertRaises(HttpResponseError) as cm:          # unwrap goes to the server
            cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"\0" * 384)
        self.assertEqual(cm.exception.status_code, 403)
        self.assertIn("disabled", cm.exception.message)
        c.update_key_properties("crud-key", enabled=True)        # no version = latest

        versions = [k.properties.version]
        for _ in range(4):
            versions.append(c.create_rsa_key("crud-key", size=2048).properties.version)
        # page size 2 plus 2 empty pages with a nextLink: the SDK must walk all of them
        listed = [p.version for p in c.list_properties_of_key_versions("crud-key")]
        self.assertEqual(sorted(listed), sorted(versions))
        self.assertEqual(c.get_key("crud-key").properties.version, versions[-1])
        names = [p.name for p in c.list_properties_of_keys()]
        self.assertIn("crud-key", names)

        # raw paging: absolute nextLink, $skiptoken, maxresults honoured, last nextLink null
        r = self.raw()
        tok = r.token()
        path = "/keys/crud-key/versions?maxresults=1&api-version=" + API
        seen, pages = [], 0
        while path:
            st, _, js = r.request("GET", path, token=tok)
            self.assertEqual(st, 200, js)
            self.assertIn("nextLink", js)
            self.assertLessEqual(len(js["value"]), 1)
            seen += [i["kid"].rsplit("/", 1)[1] for i in js["value"]]
            pages += 1
            nl = js["nextLink"]
            if nl:
                self.assertTrue(nl.startswith(self.emu.url + "/keys/crud-key/versions?"))
                self.assertIn("$skiptoken=", nl)
                path = nl[len(self.emu.url):]
            else:
                path = None
        self.assertEqual(sorted(seen), sorted(versions))
        self.assertEqual(pages, len(versions) + 2)               # + the empty pages
        st, _, js = r.request("GET", "/keys/crud-key/versions?maxresults=26&api-version=" + API, token=tok)
        self.assertEqual(st, 400)

    def test_attribute_shapes_per_api_version(self):
        r = self.raw()
        tok = r.token()
        st, _, js = r.request("POST", "/keys/shape-key/create?api-version=2025-07-01", {"kty": "RSA"},
                              token=tok)
        self.assertEqual(st, 200)
        self.assertEqual(list(js["attributes"]), ["enabled", "key_size", "created", "updated",
                                                  "recoveryLevel", "recoverableDays", "exportable",
                                                  "hsmPlatform"])
        self.assertEqual(js["key"]["key_ops"], ["encrypt", "decrypt", "sign", "verify", "wrapKey",
                                                "unwrapKey"])
        self.assertNotIn("=", js["key"]["n"])
        self.assertNotIn("tags", js)
        st, _, js = r.request("GET", "/keys/shape-key/?api-version=7.0", token=tok)
        self.assertEqual(list(js["attributes"]), ["enabled", "created", "updated", "recoveryLevel"])
        st, _, js = r.request("GET", "/keys?api-version=7.3", token=tok)
        for item in js["value"]:
            self.assertNotRegex(item["kid"], r"/[0-9a-f]{32}$")  # list items: kid without version

    def test_sdk_wrap_local_unwrap_remote(self):
        key = self.client.create_rsa_key("wrap-key", size=2048)
        cc = self.crypto_client(key)
        dek = os.urandom(32)
        for alg in (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5):
            before = self.stats()["requests"]
            w = cc.wrap_key(alg, dek)
            self.assertEqual(self.stats()["requests"], before, "wrap should be local in the SDK")
            self.assertEqual(len(w.encrypted_key), 256)
            u = cc.unwrap_key(alg, w.encrypted_key)
            self.assertEqual(self.stats()["requests"], before + 1, "unwrap should reach the server")
            self.assertEqual(u.key, dek)
            self.assertEqual(u.key_id, key.id)
        # a client built from the id GETs the key first
        cc2 = self.crypto_client(key.id)
        w = cc2.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
        self.assertEqual(cc2.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key).key, dek)
        # server-side wrap through raw HTTP: camelCase / lowercase ops, empty version segment,
        # standard-base64 input accepted; output is unpadded base64url
        r = self.raw()
        tok = r.token()
        for path in ("/keys/wrap-key//wrapkey", "/keys/wrap-key/%s/wrapKey" % key.properties.version,
                     "/keys/wrap-key/WRAPKEY"):
            st, _, js = r.request("POST", path + "?api-version=" + API,
                                  {"alg": "RSA-OAEP", "value": base64.b64encode(dek).decode()}, token=tok)
            self.assertEqual(st, 200, js)
            self.assertEqual(js["kid"], key.id)
            self.assertNotRegex(js["value"], r"[+/=]")
            self.assertEqual(cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep, b64url_dec(js["value"])).key, dek)
        st, _, js = r.request("POST", "/keys/wrap-key//unwrapkey?api-version=" + API,
                              {"alg": "RSA-OAEP-256", "value": b64url(b"\1" * 256)}, token=tok)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))
        st, _, js = r.request("POST", "/keys/wrap-key//wrapkey?api-version=" + API,
                              {"alg": "A256KW", "value": b64url(dek)}, token=tok)
        self.assertEqual(st, 400)
        st, _, js = r.request("POST", "/keys/wrap-key//wrapkey?api-version=" + API,
                              {"alg": "RSA-OAEP", "value": "!!notbase64!!"}, token=tok)
        self.assertEqual(st, 400)

    def test_sdk_import_plain_jwk(self):
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = pk.private_numbers()
        z = b"\0"   # the Python SDK's recorded imports carry a leading 0x00 byte; the service strips it
        jwk = JsonWebKey(kty="RSA", key_ops=["wrapKey", "unwrapKey"],
                         n=z + int_bytes(nums.public_numbers.n), e=int_bytes(nums.public_numbers.e),
                         d=int_bytes(nums.d), p=z + int_bytes(nums.p), q=z + int_bytes(nums.q),
                         dp=int_bytes(nums.dmp1), dq=int_bytes(nums.dmq1), qi=int_bytes(nums.iqmp))
        k = self.client.import_key("imported-jwk", jwk, tags={"src": "test"})
        self.assertEqual(k.key.n, int_bytes(nums.public_numbers.n))
        self.assertEqual(k.key_type, "RSA")
        self.assertIsNone(k.key.d)
        k2 = self.client.import_key("imported-jwk", jwk, hardware_protected=True)
        self.assertEqual(k2.key_type, "RSA-HSM")                     # Hsm:true -> RSA-HSM
        self.assertNotEqual(k2.properties.version, k.properties.version)
        dek = os.urandom(32)
        wrapped = pk.public_key().encrypt(dek, OAEP["RSA-OAEP-256"])
        u = self.crypto_client(k).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
        self.assertEqual(u.key, dek)
        # a public-only JWK and an inconsistent one are rejected
        r = self.raw()
        tok = r.token()
        pub_only = {"key": {"kty": "RSA", "n": b64url(int_bytes(nums.public_numbers.n)), "e": "AQAB"}}
        st, _, js = r.request("PUT", "/keys/imported-bad?api-version=" + API, pub_only, token=tok)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))
        bad = {"key": dict(pub_only["key"], d=b64url(int_bytes(nums.d)), p=b64url(int_bytes(nums.p)),
                           q=b64url(int_bytes(nums.q + 2)))}
        st, _, js = r.request("PUT", "/keys/imported-bad?api-version=" + API, bad, token=tok)
        self.assertEqual(st, 400)

    def test_byok_key_hsm_import(self):
        c = self.client
        kek = c.create_rsa_key("byok-kek", size=2048, hardware_protected=True, key_operations=["import"])
        self.assertEqual(kek.key_type, "RSA-HSM")
        self.assertEqual(kek.key_operations, ["import"])
        target = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        byok = make_byok(kek.id, kek.key.n, target)
        # the SDK serializes JsonWebKey.t (bytes) as key_hsm in base64url
        jwk = JsonWebKey(kty="RSA-HSM", key_ops=["wrapKey", "unwrapKey"], t=byok)
        k = c.import_key("byok-target", jwk)
        self.assertEqual(k.key_type, "RSA-HSM")
        self.assertEqual(k.key.n, int_bytes(target.public_key().public_numbers().n))
        self.assertEqual(k.key.e, b"\x01\x00\x01")
        # the imported key is usable: wrap locally, unwrap on the server
        cc = self.crypto_client(k)
        dek = os.urandom(32)
        w = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
        self.assertEqual(target.decrypt(w.encrypted_key, OAEP["RSA-OAEP-256"]), dek)
        self.assertEqual(cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key).key, dek)

        r = self.raw()
        tok = r.token()
        # standard padded base64 for key_hsm, padded base64url ciphertext (a real vendor's form)
        byok2 = make_byok(kek.id, kek.key.n, target,
                          ciphertext_b64=lambda b: base64.urlsafe_b64encode(b).decode())
        body = {"key": {"kty": "RSA-HSM", "key_ops": ["unwrapKey"],
                        "key_hsm": base64.b64encode(byok2).decode()},
                "attributes": {"enabled": True}}
        st, _, js = r.request("PUT", "/keys/byok-target2?api-version=" + API, body, token=tok)
        self.assertEqual(st, 200, js)
        self.assertEqual(js["key"]["n"], b64url(int_bytes(target.public_key().public_numbers().n)))

        def put(byok_bytes, kty="RSA-HSM"):
            b = {"key": {"kty": kty, "key_hsm": b64url(byok_bytes)}}
            return r.request("PUT", "/keys/byok-bad?api-version=" + API, b, token=tok)
        # the KEK cannot wrap; a non-KEK cannot be the KEK; tampering is detected
        st, _, js = r.request("POST", "/keys/byok-kek//wrapkey?api-version=" + API,
                              {"alg": "RSA-OAEP", "value": b64url(dek)}, token=tok)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (403, "KeyOperationForbidden"))
        other = c.create_rsa_key("byok-not-kek", size=2048)
        st, _, js = put(make_byok(other.id, other.key.n, target))
        self.assertEqual(st, 400)
        self.assertIn("key exchange key", js["error"]["message"])
        tf = json.loads(byok)
        ct = bytearray(b64url_dec(tf["ciphertext"]))
        ct[-3] ^= 1
        tf["ciphertext"] = b64url(bytes(ct))
        st, _, js = put(json.dumps(tf).encode())
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))
        st, _, js = put(byok, kty="RSA")
        self.assertEqual(st, 400)
        tf = json.loads(byok)
        tf["header"]["kid"] = kek.id.rsplit("/", 1)[0]                # KEK kid without version
        st, _, js = put(json.dumps(tf).encode())
        self.assertEqual(st, 400)
        st, _, js = put(b"not json at all")
        self.assertEqual(st, 400)


class LifecycleTest(Base):
    """Soft delete, recover, purge, backup and restore."""

    def test_soft_delete_recover_purge(self):
        c = self.client
        self.control("POST", "config", {"delete_delay": 0.4})
        c.create_rsa_key("sd-key", size=2048)
        r = self.raw()
        tok = r.token()
        poller = c.begin_delete_key("sd-key", _polling_interval=0.1)
        dk = poller.result()
        self.assertTrue(dk.recovery_id.endswith("/deletedkeys/sd-key"))
        self.assertEqual((dk.scheduled_purge_date - dk.deleted_date).days, 90)
        st, _, js = r.request("POST", "/keys/sd-key/create?api-version=" + API, {"kty": "RSA"}, token=tok)
        self.assertEqual((st, js["error"]["code"], js["error"]["innererror"]["code"]),
                         (409, "Conflict", "ObjectIsBeingDeleted"))
        st, _, js = r.request("GET", "/deletedkeys/sd-key?api-version=" + API, token=tok)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))
        self.assertEqual(js["error"]["message"], "Deleted Key not found: sd-key")
        poller.wait()
        self.assertTrue(poller.done())
        with self.assertRaises(ResourceExistsError) as cm:
            c.create_rsa_key("sd-key")
        self.assertEqual(cm.exception.status_code, 409)
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
        jwk = {"kty": "RSA", "n": b64url(int_bytes(pk.public_numbers.n)), "e": "AQAB",
               "d": b64url(int_bytes(pk.d)), "p": b64url(int_bytes(pk.p)), "q": b64url(int_bytes(pk.q))}
        st, _, js = r.request("PUT", "/keys/sd-key?api-version=" + API, {"key": jwk}, token=tok)
        self.assertEqual((st, js["error"]["innererror"]["code"]), (409, "ObjectIsDeletedButRecoverable"))
        with self.assertRaises(ResourceNotFoundError):
            c.get_key("sd-key")
        st, _, js = r.request("DELETE", "/keys/sd-key?api-version=" + API, token=tok)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))     # second delete: 404
        self.assertEqual(c.get_deleted_key("sd-key").name, "sd-key")
        self.assertIn("sd-key", [d.name for d in c.list_deleted_keys()])
        rp = c.begin_recover_deleted_key("sd-key", _polling_interval=0.1)
        rp.wait()
        self.assertEqual(c.get_key("sd-key").name, "sd-key")
        c.begin_delete_key("sd-key", _polling_interval=0.1).wait()
        c.purge_deleted_key("sd-key")
        with self.assertRaises(ResourceNotFoundError):
            c.get_deleted_key("sd-key")
        st, _, js = r.request("DELETE", "/deletedkeys/sd-key?api-version=" + API, token=tok)
        self.assertEqual(st, 404)
        self.assertEqual(c.create_rsa_key("sd-key").name, "sd-key")        # name is free again

    def test_purge_returns_204_without_body(self):
        r = self.raw()
        tok = r.token()
        self.assertEqual(r.request("POST", "/keys/purge-me/create?api-version=" + API, {"kty": "RSA"},
                                   token=tok)[0], 200)
        self.assertEqual(r.request("DELETE", "/keys/purge-me?api-version=" + API, token=tok)[0], 200)
        st, resp, js = r.request("DELETE", "/deletedkeys/purge-me?api-version=" + API, token=tok)
        self.assertEqual(st, 204)
        self.assertIsNone(resp.getheader("Content-Type"))
        self.assertEqual(resp.getheader("Content-Length"), "0")

    def test_backup_restore(self):
        c = self.client
        k = c.create_rsa_key("bk-key", size=2048)
        k2 = c.create_rsa_key("bk-key", size=2048)
        blob = c.backup_key("bk-key")
        self.assertTrue(blob.startswith(b"&AzureKeyVaultKeyBackupV1.microsoft.com"))
        with self.assertRaises(ResourceExistsError):
            c.restore_key_backup(blob)                 # name exists
        c.begin_delete_key("bk-key", _polling_interval=0.1).wait()
        c.purge_deleted_key("bk-key")
        rk = c.restore_key_backup(blob)
        self.assertEqual((rk.id, rk.key.n), (k2.id, k2.key.n))
        self.assertEqual(rk.properties.created_on, k2.properties.created_on)
        self.assertEqual(len(list(c.list_properties_of_key_versions("bk-key"))), 2)
        self.assertEqual(c.get_key("bk-key", k.properties.version).key.n, k.key.n)
        r = self.raw()
        tok = r.token()
        bad = bytearray(blob)
        bad[-5] ^= 1
        st, _, js = r.request("POST", "/keys/restore?api-version=" + API, {"value": b64url(bytes(bad))},
                              token=tok)
        self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"))


class FaultsTest(Base):
    """Injected statuses, throttling, drops, latency, forbidden operations, corrupt answers."""

    def test_faults_sequence_raw(self):
        r = self.raw()
        tok = r.token()
        self.control("PUT", "faults", {"sequence": ["429", "503", "500", "drop"], "retry_after": 2})
        path = "/keys?api-version=" + API
        st, resp, js = r.request("GET", path, token=tok)
        self.assertEqual((st, js["error"]["code"], resp.getheader("Retry-After")), (429, "Throttled", "2"))
        self.assertEqual(r.request("GET", path, token=tok)[0], 503)
        self.assertEqual(r.request("GET", path, token=tok)[0], 500)
        with self.assertRaises((ConnectionError, http.client.HTTPException, ssl.SSLError, OSError)):
            r.request("GET", path, token=tok)
        self.assertEqual(r.request("GET", path, token=tok)[0], 200)          # reconnects, then OK
        s = self.stats()
        self.assertGreaterEqual(min(s["429"], s["500"], s["503"], s["drop"]), 1)
        # token endpoint is not affected by the default scope
        self.control("PUT", "faults", {"rate_503": 1.0})
        r.token()
        self.assertEqual(r.request("GET", path, token=tok)[0], 503)

    def test_faults_sdk_retries_429_then_succeeds(self):
        self.client.create_rsa_key("fault-key", size=2048)
        self.control("PUT", "faults", {"sequence": ["429"], "retry_after": 1})
        before = self.stats()["429"]
        t0 = time.time()
        k = self.client.get_key("fault-key")
        self.assertGreaterEqual(time.time() - t0, 0.9)            # Retry-After honoured
        self.assertEqual(k.name, "fault-key")
        self.assertEqual(self.stats()["429"], before + 1)

    def test_faults_latency_and_random_rates(self):
        r = self.raw()
        tok = r.token()
        path = "/keys?api-version=" + API
        self.control("PUT", "faults", {"latency_ms": 300})
        t0 = time.time()
        self.assertEqual(r.request("GET", path, token=tok)[0], 200)
        self.assertGreaterEqual(time.time() - t0, 0.29)

        def outcomes():
            """The statuses of 40 requests under seeded random faults ("drop" for a drop)."""
            self.control("PUT", "faults", {"rate_429": 0.25, "rate_503": 0.25, "rate_drop": 0.2, "seed": 42})
            out = []
            for _ in range(40):
                try:
                    out.append(r.request("GET", path, token=tok)[0])
                except (ConnectionError, http.client.HTTPException, ssl.SSLError, OSError):
                    out.append("drop")
            return out
        first = outcomes()
        self.assertTrue({200, 429, 503, "drop"} <= set(first), first)
        self.assertEqual(outcomes(), first)                       # same seed -> same sequence
        with self.assertRaises(AssertionError):
            self.control("PUT", "faults", {"rate_429": 2})

    def test_concurrent_unwraps(self):
        import threading
        key = self.client.create_rsa_key("conc-key", size=2048)
        tok = self.raw().token()
        deks = [os.urandom(32) for _ in range(40)]
        wrapped = [local_rsa_wrap(b64url(key.key.n), b64url(key.key.e), "RSA-OAEP-256", d) for d in deks]
        errors, results = [], {}

        def worker(idx):
            r = Raw(self.emu.port, self.pki["ca"])
            try:
                for i in range(idx, len(deks), 8):
                    st, _, js = r.request("POST", "/keys/conc-key/%s/unwrapKey?api-version=%s"
                                          % (key.properties.version, API),
                                          {"alg": "RSA-OAEP-256", "value": b64url(wrapped[i])}, token=tok)
                    results[i] = (st, js)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)
            finally:
                r.close()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        for i, d in enumerate(deks):
            self.assertEqual(results[i][0], 200)
            self.assertEqual(b64url_dec(results[i][1]["value"]), d)

    def test_forbidden_op_403(self):
        k = self.client.create_rsa_key("forbid-key", size=2048)
        cc = self.crypto_client(k)
        w = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep, b"k" * 32)
        self.control("PUT", "faults", {"forbidden_ops": ["unwrapKey"]})
        with self.assertRaises(HttpResponseError) as cm:
            cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep, w.encrypted_key)
        self.assertEqual(cm.exception.status_code, 403)
        self.assertIn("does not have keys unwrapkey permission", cm.exception.message)

    def test_test_only_challenge_message_and_header(self):
        """The test-only knobs a client's hardening tests use: a challenge of the test's choice
        (config `challenge`), a 403 in the test's words (`forbidden_message`) and one oversized
        header line (`header_pad`)."""
        r = self.raw()
        q = "?api-version=" + API
        ch = ('Bearer authorization="%s/%s", resource="https://localhost", '
              'scope="https://management.azure.com/.default"' % (self.emu.url, TENANT))
        self.control("POST", "config", {"challenge": ch})
        st, resp, _ = r.request("GET", "/keys" + q)
        self.assertEqual((st, resp.getheader("WWW-Authenticate")), (401, ch))
        self.control("POST", "config", {"challenge": None})
        st, resp, _ = r.request("GET", "/keys" + q)
        self.assertEqual(resp.getheader("WWW-Authenticate"),
                         'Bearer authorization="%s/%s", resource="https://vault.azure.net"'
                         % (self.emu.url, TENANT))
        tok = r.token()
        text = "The application '%s' does not have keys {op} permission." % ("a" * 500)
        self.control("PUT", "faults", {"forbidden_ops": ["unwrapKey"], "forbidden_message": text,
                                       "header_pad": 1000})
        st, resp, js = r.request("POST", "/keys/any/00/unwrapkey" + q,
                                 {"alg": "RSA-OAEP", "value": b64url(b"x")}, token=tok)
        self.assertEqual(st, 403)
        self.assertEqual(js["error"]["message"], text.replace("{op}", "unwrapkey"))
        self.assertEqual(resp.getheader("x-emulator-pad"), "x" * 1000)
        self.control("PUT", "faults", {})
        st, resp, _ = r.request("GET", "/keys" + q, token=tok)
        self.assertEqual((st, resp.getheader("x-emulator-pad")), (200, None))

    def test_faults_corrupt_answers(self):
        """The test-only `corrupt` fault: success answers of the chosen operations are replaced
        (after the operation was carried out), error answers and other operations are not."""
        r = self.raw()
        tok = r.token()
        q = "?api-version=" + API
        st, _, key = r.request("POST", "/keys/corrupt-key/create" + q, {"kty": "RSA", "key_size": 2048},
                               token=tok)
        self.assertEqual(st, 200, key)
        get = "/keys/corrupt-key/%s%s" % (key["key"]["kid"].rsplit("/", 1)[1], q)
        wrap = {"alg": "RSA-OAEP-256", "value": b64url(b"d" * 32)}
        st, _, w = r.request("POST", "/keys/corrupt-key//wrapKey" + q, wrap, token=tok)
        self.assertEqual(st, 200, w)
        unwrap = {"alg": "RSA-OAEP-256", "value": w["value"]}
        before = self.stats()["corrupt"]

        # not_json on unwrapKey only, once: a get is untouched, the next unwrap is whole again
        self.control("PUT", "faults", {"corrupt": "not_json", "corrupt_ops": ["unwrapKey"],
                                       "corrupt_count": 1})
        self.assertEqual(r.request("GET", get, token=tok)[2], key)
        st, resp, js = r.request("POST", "/keys/corrupt-key//unwrapKey" + q, unwrap, token=tok)
        self.assertEqual((st, resp.raw_body, js), (200, b"<html>oops</html>", None))
        self.assertEqual(resp.getheader("Content-Type"), "text/html")
        self.assertEqual(self.control("GET", "faults")["config"]["corrupt_count"], 0)
        st, _, js = r.request("POST", "/keys/corrupt-key//unwrapKey" + q, unwrap, token=tok)
        self.assertEqual((st, b64url_dec(js["value"])), (200, b"d" * 32))

        # missing_fields, bad_base64, truncated, oversize (all operations, no count)
        self.control("PUT", "faults", {"corrupt": "missing_fields"})
        for _ in range(2):                           # every answer while it is set
            st, _, js = r.request("GET", get, token=tok)
            self.assertEqual((st, js), (200, {}))
        self.control("PUT", "faults", {"corrupt": "bad_base64"})
        st, _, js = r.request("GET", get, token=tok)
        self.assertEqual((st, js["key"]["n"], js["key"]["kid"]), (200, "!!!not base64!!!", key["key"]["kid"]))
        self.assertEqual(js["key"]["e"], key["key"]["e"])
        st, _, js = r.request("POST", "/keys/corrupt-key//wrapKey" + q, wrap, token=tok)
        self.assertEqual((st, js["value"]), (200, "!!!not base64!!!"))
        self.control("PUT", "faults", {"corrupt": "truncated"})
        st, resp, js = r.request("GET", get, token=tok)
        full = json.dumps(key, separators=(",", ":")).encode()
        self.assertEqual((st, js), (200, None))
        self.assertEqual(resp.raw_body, full[:len(full) // 2])
        self.assertEqual(int(resp.getheader("Content-Length")), len(full) // 2)
        self.control("PUT", "faults", {"corrupt": "oversize", "corrupt_ops": ["get"]})
        st, resp, js = r.request("GET", get, token=tok)
        self.assertEqual((st, len(resp.raw_body)), (200, 9 * 1024 * 1024))
        self.assertEqual(js["key"], key["key"])
        self.assertEqual(set(js["pad"]), {"x"})

        # error answers stay as they are
        self.control("PUT", "faults", {"corrupt": "not_json"})
        st, _, js = r.request("GET", "/keys/no-such-key" + q, token=tok)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))
        self.assertGreaterEqual(self.stats()["corrupt"], before + 7)
        for bad_cfg in ({"corrupt": "garbage"}, {"corrupt": "truncated", "corrupt_ops": "get"},
                        {"corrupt": "truncated", "corrupt_count": -1}):
            st, js = self.emu.control.call("PUT", "faults", bad_cfg)
            self.assertEqual(st, 400, bad_cfg)


def token_for(raw, client_id, secret):
    """A bearer token of client_id from the emulator raw talks to."""
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id,
                                   "client_secret": secret,
                                   "scope": "https://vault.azure.net/.default"})
    st, _, js = raw.request("POST", "/%s/oauth2/v2.0/token" % TENANT, body, form=True)
    assert st == 200, js
    return js["access_token"]


class ByokStrictTest(Base):
    """BYOK key material is exactly one DER SEQUENCE, whatever python-cryptography tolerates:
    the zero padding of a non-RFC-5649 wrap (SoftHSM 2.6.1's), junk or a cut key are refused;
    key_hsm and the transfer file's ciphertext may be unpadded base64url."""

    extra_args = []

    def test_der_sequence_length(self):
        f = der_sequence_length
        self.assertEqual(f(b"\x30\x03abc"), 5)                          # short form
        self.assertEqual(f(b"\x30\x03abc\x00"), 5)                      # (the caller compares)
        body = b"x" * 300
        self.assertEqual(f(b"\x30\x82\x01\x2c" + body), 304)           # long form
        self.assertEqual(f(b"\x30\x81\x80" + b"x" * 128), 131)
        for bad in (b"", b"\x30", b"\x31\x01a", b"\x30\x80abc\x00\x00",   # indefinite
                    b"\x30\x81\x05abcde", b"\x30\x82\x00\x85" + b"x" * 133,  # not minimal
                    b"\x30\x85\x00\x00\x00\x00\x01a", b"\x30\x04abc",         # too long
                    b"\x30\x82\x01"):
            self.assertIsNone(f(bad), bad[:8])

    def kek(self, name, size=2048):
        return self.client.create_rsa_key(name, size=size, hardware_protected=True,
                                          key_operations=["import"])

    @staticmethod
    def softhsm_sized_key():
        """An RSA-2048 key whose PKCS#8 encoding is one byte over a multiple of 8: SoftHSM
        2.6.1 zero-pads it to the next multiple (7 bytes) and wraps that length as the data's."""
        for _ in range(200):
            k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if len(pkcs8_der(k)) % 8 == 1:
                return k
        raise unittest.SkipTest("no RSA-2048 key with a PKCS#8 of 8n+1 bytes in 200 tries")

    def test_byok_trailing_bytes_or_cut_key_refused_exact_imported(self):
        c = self.client
        kek = self.kek("strict-kek")
        target = self.softhsm_sized_key()
        der = pkcs8_der(target)
        softhsm = make_byok(kek.id, kek.key.n, target, plaintext=lambda p: p + b"\0" * 7)
        self.assertEqual((len(der) + 7) % 8, 0)          # padded to a multiple of 8: no RFC 5649 pad
        # through the SDK, as a client sends it: refused with a 400
        with self.assertRaises(HttpResponseError) as cm:
            c.import_key("strict-target", JsonWebKey(kty="RSA-HSM", key_ops=["wrapKey", "unwrapKey"],
                                                     t=softhsm))
        self.assertEqual(cm.exception.status_code, 400)
        self.assertIn("7 bytes after its PKCS#8 private key", cm.exception.message)
        r = self.raw()
        tok = r.token()

        def put(byok_bytes):
            b = {"key": {"kty": "RSA-HSM", "key_ops": ["unwrapKey"], "key_hsm": b64url(byok_bytes)}}
            return r.request("PUT", "/keys/strict-bad?api-version=" + API, b, token=tok)
        for what, plain in (("7 zero bytes", lambda p: p + b"\0" * 7),
                            ("junk", lambda p: p + b"\x01\x02\x03"),
                            ("one zero byte", lambda p: p + b"\0"),
                            ("truncated", lambda p: p[:-9]),
                            ("indefinite length", lambda p: b"\x30\x80" + p[4:] + b"\0\0"),
                            ("not a SEQUENCE", lambda p: b"\x04" + p[1:])):
            st, _, js = put(make_byok(kek.id, kek.key.n, target, plaintext=plain))
            self.assertEqual((st, js["error"]["code"]), (400, "BadParameter"), what)
        with self.assertRaises(ResourceNotFoundError):
            c.get_key("strict-bad")
        # the exact PKCS#8: imported, through the SDK (JsonWebKey.t is the transfer file)
        k = c.import_key("strict-target", JsonWebKey(kty="RSA-HSM", key_ops=["wrapKey", "unwrapKey"],
                                                     t=make_byok(kek.id, kek.key.n, target)))
        self.assertEqual(k.key_type, "RSA-HSM")
        self.assertEqual(k.key_operations, ["wrapKey", "unwrapKey"])
        self.assertEqual(k.key.n, int_bytes(target.public_key().public_numbers().n))
        dek = os.urandom(32)
        w = target.public_key().encrypt(dek, OAEP["RSA-OAEP-256"])
        self.assertEqual(self.crypto_client(k).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w).key, dek)

    def test_byok_unpadded_base64url(self):
        kek = self.kek("unpadded-kek", size=3072)
        for _ in range(100):        # a key whose ciphertext's base64 needs padding (not 3n bytes)
            target = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            tf = json.loads(make_byok(kek.id, kek.key.n, target))
            if len(b64url_dec(tf["ciphertext"])) % 3:
                break
        for gen in ("keyplane", "keyplane test", "keyplane tests"):    # and so does key_hsm's
            tf["generator"] = gen
            raw_tf = json.dumps(tf).encode()
            if len(raw_tf) % 3:
                break
        ct = b64url_dec(tf["ciphertext"])
        self.assertNotEqual(len(ct) % 3, 0)
        self.assertNotEqual(len(raw_tf) % 3, 0)
        self.assertNotIn("=", tf["ciphertext"])
        key_hsm = b64url(raw_tf)
        self.assertNotEqual(len(key_hsm) % 4, 0)        # unpadded: base64 would add '='
        r = self.raw()
        st, _, js = r.request("PUT", "/keys/unpadded-target?api-version=" + API,
                              {"key": {"kty": "RSA-HSM", "key_ops": ["unwrapKey"], "key_hsm": key_hsm}},
                              token=r.token())
        self.assertEqual(st, 200, js)
        self.assertEqual(js["key"]["n"], b64url(int_bytes(target.public_key().public_numbers().n)))


LIMITED, LIMITED_SECRET = "kp-limited-client", "kp-limited-secret"
NOBODY, NOBODY_SECRET = "kp-no-permissions", "kp-nobody-secret"
MI_CLIENT, MI_OBJECT = "00000000-0000-0000-0000-0000000000aa", "00000000-0000-0000-0000-0000000000ab"


class PermissionsTest(Base):
    """Access policies: each identity's key permissions, the 403 of a missing one, checked
    before any key is looked up."""

    extra_args = ["--client", "%s:%s" % (LIMITED, LIMITED_SECRET),
                  "--client", "%s:%s" % (NOBODY, NOBODY_SECRET),
                  "--permissions", LIMITED + "=get,wrapKey,unwrapKey",
                  "--permissions", NOBODY + "=none",
                  "--vault-name", "perm-vault", "--region", "westeurope"]

    def expected(self, appid, perm, oid=None):
        oid = oid or str(uuid.uuid5(uuid.NAMESPACE_URL, appid))
        return ("The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/'"
                " does not have keys %s permission on key vault 'perm-vault;location=westeurope'."
                " For help resolving this issue, please see"
                " https://go.microsoft.com/fwlink/?linkid=2125287" % (appid, oid, TENANT, perm))

    def limited_client(self):
        cred = ClientSecretCredential(TENANT, LIMITED, LIMITED_SECRET, authority=self.emu.url,
                                      instance_discovery=False, connection_verify=self.pki["ca"])
        client = self.key_client(self.emu, cred)
        self.addCleanup(cred.close)
        self.addCleanup(client.close)
        return cred, client

    def test_get_wrap_unwrap_allowed_list_create_refused(self):
        self.client.create_rsa_key("perm-key", size=2048)
        cred, lc = self.limited_client()
        k = lc.get_key("perm-key")                                # get
        cc = CryptographyClient(k, cred, verify_challenge_resource=False,
                                connection_verify=self.pki["ca"])
        self.addCleanup(cc.close)
        dek = os.urandom(32)
        w = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)      # local, with the key it got
        self.assertEqual(cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key).key, dek)
        r = self.raw()
        tok = token_for(r, LIMITED, LIMITED_SECRET)
        st, _, js = r.request("POST", "/keys/perm-key//wrapkey?api-version=" + API,
                              {"alg": "RSA-OAEP", "value": b64url(dek)}, token=tok)
        self.assertEqual(st, 200, js)                            # wrapKey on the server
        for what, call in (("versions", lambda: list(lc.list_properties_of_key_versions("perm-key"))),
                           ("keys", lambda: list(lc.list_properties_of_keys())),
                           ("deleted", lambda: list(lc.list_deleted_keys()))):
            with self.assertRaises(HttpResponseError) as cm:
                call()
            self.assertEqual(cm.exception.status_code, 403, what)
            self.assertEqual(cm.exception.error.message, self.expected(LIMITED, "list"))
            self.assertEqual(cm.exception.error.code, "Forbidden")
        with self.assertRaises(HttpResponseError) as cm:
            lc.create_rsa_key("perm-new", size=2048)
        self.assertEqual(cm.exception.status_code, 403)
        self.assertEqual(cm.exception.error.message, self.expected(LIMITED, "create"))
        # the exact KeyVaultError shape, and the check comes before any key lookup
        st, _, js = r.request("GET", "/keys/perm-key/versions?api-version=" + API, token=tok)
        self.assertEqual((st, js), (403, {"error": {"code": "Forbidden",
                                                    "message": self.expected(LIMITED, "list"),
                                                    "innererror": {"code": "AccessDenied"}}}))
        st, _, js = r.request("DELETE", "/keys/no-such-key?api-version=" + API, token=tok)
        self.assertEqual((st, js["error"]["message"]), (403, self.expected(LIMITED, "delete")))
        st, _, js = r.request("GET", "/keys/no-such-key?api-version=" + API, token=tok)
        self.assertEqual((st, js["error"]["code"]), (404, "KeyNotFound"))       # it holds get
        # the other identity still may do anything
        self.assertIn("perm-key", [p.name for p in self.client.list_properties_of_keys()])

    def test_every_operation_needs_its_permission(self):
        self.client.create_rsa_key("perm-all", size=2048)
        r = self.raw()
        tok = token_for(r, NOBODY, NOBODY_SECRET)
        q = "?api-version=" + API
        v = "0" * 32
        wrap = {"alg": "RSA-OAEP", "value": b64url(b"k" * 32)}
        cases = [("GET", "/keys/perm-all", None, "get"), ("GET", "/keys/perm-all/" + v, None, "get"),
                 ("GET", "/keys", None, "list"), ("GET", "/keys/perm-all/versions", None, "list"),
                 ("GET", "/deletedkeys", None, "list"), ("GET", "/deletedkeys/perm-all", None, "get"),
                 ("POST", "/keys/perm-all/create", {"kty": "RSA"}, "create"),
                 ("PUT", "/keys/perm-all", {"key": {"kty": "RSA"}}, "import"),
                 ("PATCH", "/keys/perm-all", {"tags": {}}, "update"),
                 ("POST", "/keys/perm-all//wrapKey", wrap, "wrapkey"),
                 ("POST", "/keys/perm-all/%s/unwrapkey" % v, wrap, "unwrapkey"),
                 ("POST", "/keys/perm-all//encrypt", wrap, "encrypt"),
                 ("POST", "/keys/perm-all//decrypt", wrap, "decrypt"),
                 ("POST", "/keys/perm-all//sign", {"alg": "RS256", "value": "AA"}, "sign"),
                 ("POST", "/keys/perm-all//verify", {"alg": "RS256", "value": "AA"}, "verify"),
                 ("POST", "/keys/perm-all/backup", None, "backup"),
                 ("POST", "/keys/restore", {"value": "AA"}, "restore"),
                 ("DELETE", "/keys/perm-all", None, "delete"),
                 ("POST", "/deletedkeys/perm-all/recover", None, "recover"),
                 ("DELETE", "/deletedkeys/perm-all", None, "purge")]
        for method, path, body, perm in cases:
            st, _, js = r.request(method, path + q, body, token=tok)
            self.assertEqual((st, js["error"]["message"]), (403, self.expected(NOBODY, perm)),
                             (method, path))
        self.assertEqual(self.client.get_key("perm-all").name, "perm-all")    # nothing happened

    def test_permissions_control_and_managed_identity(self):
        self.client.create_rsa_key("perm-ctl", size=2048)
        snap = self.control("GET", "permissions")
        self.assertEqual(snap[LIMITED], ["get", "wrapKey", "unwrapKey"])
        self.assertEqual(snap[NOBODY], [])
        self.assertEqual(len(snap[CLIENT_ID]), 16)
        self.assertEqual(len(snap[MI_CLIENT]), 16)
        r = self.raw()
        tok = token_for(r, LIMITED, LIMITED_SECRET)
        path = "/keys/perm-ctl/versions?api-version=" + API
        self.assertEqual(r.request("GET", path, token=tok)[0], 403)
        self.assertEqual(self.control("POST", "permissions", {LIMITED: ["GET", "list"]})[LIMITED],
                         ["get", "list"])
        self.assertEqual(r.request("GET", path, token=tok)[0], 200)
        self.control("POST", "permissions", {LIMITED: "get,wrapKey,unwrapKey"})
        self.assertEqual(r.request("GET", path, token=tok)[0], 403)
        for bad in ({"nobody-known": "get"}, {LIMITED: ["frobnicate"]}, {LIMITED: 3}):
            st, js = self.emu.control.call("POST", "permissions", bad)
            self.assertEqual(st, 400, bad)
        self.assertEqual(self.control("GET", "permissions")[LIMITED], ["get", "wrapKey", "unwrapKey"])
        # the managed identity: its appid and object id in the message
        st, _, js = r.request("GET", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource="
                              + urllib.parse.quote("https://vault.azure.net"), headers={"Metadata": "true"})
        mi_tok = js["access_token"]
        self.control("POST", "permissions", {MI_CLIENT: "none"})
        try:
            st, _, js = r.request("GET", "/keys/perm-ctl?api-version=" + API, token=mi_tok)
            self.assertEqual((st, js["error"]["message"]),
                             (403, self.expected(MI_CLIENT, "get", oid=MI_OBJECT)))
        finally:
            self.control("POST", "permissions", {MI_CLIENT: None})
        self.assertEqual(r.request("GET", "/keys/perm-ctl?api-version=" + API, token=mi_tok)[0], 200)


class RequestIdTest(Base):
    """x-ms-client-request-id is echoed; keys requests without one are counted."""

    extra_args = []

    def test_client_request_id_echoed_and_counted(self):
        r = self.raw()
        tok = r.token()
        s0 = self.stats()
        st, resp, _ = r.request("GET", "/keys?api-version=" + API, token=tok,
                                headers={"x-ms-client-request-id": "kp-req-0001"})
        self.assertEqual(st, 200)
        self.assertEqual(resp.getheader("x-ms-client-request-id"), "kp-req-0001")
        rid = resp.getheader("x-ms-request-id")
        self.assertRegex(rid, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        st, resp, _ = r.request("GET", "/keys/none-such?api-version=" + API, token=tok)
        self.assertEqual(st, 404)
        self.assertIsNone(resp.getheader("x-ms-client-request-id"))
        self.assertNotEqual(resp.getheader("x-ms-request-id"), rid)
        st, resp, _ = r.request("GET", "/keys?api-version=" + API,          # the 401 echoes it too
                                headers={"x-ms-client-request-id": "kp-req-0002"})
        self.assertEqual((st, resp.getheader("x-ms-client-request-id")), (401, "kp-req-0002"))
        s1 = self.stats()
        self.assertEqual(s1["keys_requests"] - s0["keys_requests"], 3)
        self.assertEqual(s1["keys_no_client_request_id"] - s0["keys_no_client_request_id"], 1)
        # the SDK sends one on every request: the counter does not move
        self.client.create_rsa_key("rid-key", size=2048)
        self.client.get_key("rid-key")
        list(self.client.list_properties_of_key_versions("rid-key"))
        s2 = self.stats()
        self.assertGreaterEqual(s2["keys_requests"] - s1["keys_requests"], 3)
        self.assertEqual(s2["keys_no_client_request_id"], s1["keys_no_client_request_id"])
        # the token endpoint is not the keys API
        r.token()
        self.assertEqual(self.stats()["keys_requests"], s2["keys_requests"])

    def test_versions_of_missing_key_is_empty_page(self):
        r = self.raw()
        tok = r.token()
        st, resp, js = r.request("GET", "/keys/never-made/versions?api-version=" + API, token=tok)
        self.assertEqual(st, 200)
        self.assertEqual(resp.raw_body, b'{"value":[],"nextLink":null}')   # 05-list-paging.json
        self.assertEqual(list(self.client.list_properties_of_key_versions("never-made")), [])
        self.client.create_rsa_key("gone-soon", size=2048)
        self.client.begin_delete_key("gone-soon", _polling_interval=0.1).wait()
        st, _, js = r.request("GET", "/keys/gone-soon/versions?api-version=" + API, token=tok)
        self.assertEqual((st, js), (200, {"value": [], "nextLink": None}))
        st, _, js = r.request("GET", "/keys/gone-soon?api-version=" + API, token=tok)
        self.assertEqual(st, 404)                                   # a GET of it still is 404

    def test_limits_off_by_default(self):
        snap = self.control("GET", "limits")
        self.assertEqual((snap["enabled"], snap["window"], snap["scale"]), (False, 10.0, 1.0))
        self.assertEqual(snap["limits"]["create-hsm"], 10)
        self.assertEqual(snap["limits"]["software-rsa3072"], 1000)


class LimitsTest(Base):
    """The vault's transaction limits (--limits), scaled down for the test: a window of 4 s and
    a fifth of every limit (2 HSM creates, 4 software creates per window)."""

    extra_args = ["--limits", "--limits-window", "4", "--limits-scale", "0.2"]

    def setUp(self):
        super().setUp()                               # turns them off; on again, window restarted
        self.control("POST", "config", {"limits": True, "limits_window": 4, "limits_scale": 0.2})

    def create(self, r, tok, name, kty="RSA-HSM"):
        return r.request("POST", "/keys/%s/create?api-version=%s" % (name, API), {"kty": kty}, token=tok)

    def test_cli_options(self):
        snap = self.control("GET", "limits")
        self.assertEqual((snap["enabled"], snap["window"], snap["scale"]), (True, 4.0, 0.2))
        self.assertEqual((snap["limits"]["create-hsm"], snap["limits"]["create-software"]), (2, 4))
        self.assertEqual(snap["limits"]["hsm-rsa2048"], 400)

    def test_create_beyond_limit_429_then_after_retry_after(self):
        r = self.raw()
        tok = r.token()
        s0 = self.stats()
        t0 = time.monotonic()
        for i in range(2):
            st, _, js = self.create(r, tok, "lim-%d" % i)
            self.assertEqual(st, 200, js)
        st, resp, js = self.create(r, tok, "lim-2")
        if time.monotonic() - t0 >= 4:
            self.skipTest("two creates took longer than the window")
        self.assertEqual(st, 429, js)
        self.assertEqual(js, {"error": {"code": "Throttled", "message": "Request was not processed because"
                                        " too many requests were received. Reason:"
                                        " VaultRequestTypeLimitReached"}})
        wait = int(resp.getheader("Retry-After"))
        self.assertTrue(1 <= wait <= 4, wait)
        # an import is a create too (a software one weighs half an HSM one: still over); another
        # transaction draws on another budget
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
        jwk = {"kty": "RSA", "n": b64url(int_bytes(pk.public_numbers.n)), "e": "AQAB",
               "d": b64url(int_bytes(pk.d)), "p": b64url(int_bytes(pk.p)), "q": b64url(int_bytes(pk.q))}
        st, resp2, _ = r.request("PUT", "/keys/lim-imp?api-version=" + API, {"key": jwk}, token=tok)
        self.assertEqual(st, 429)
        self.assertLessEqual(int(resp2.getheader("Retry-After")), wait)
        self.assertEqual(r.request("GET", "/keys/lim-0?api-version=" + API, token=tok)[0], 200)
        time.sleep(wait)                              # honest: after Retry-After it is admitted
        st, _, js = self.create(r, tok, "lim-2")
        self.assertEqual(st, 200, js)
        s1 = self.stats()
        self.assertEqual(s1["limits_429"] - s0["limits_429"], 2)
        self.assertEqual(s1["keys_429"] - s0["keys_429"], 2)
        self.assertEqual(s1["keys_requests"] - s0["keys_requests"], 6)
        self.assertEqual(s1["429"], s0["429"])        # the injected-fault counter is not touched

    def test_transactions_weighted_by_key_type(self):
        c = self.client
        self.control("POST", "config", {"limits": False})
        hsm = c.create_rsa_key("lim-hsm", size=2048, hardware_protected=True)
        c.create_rsa_key("lim-soft", size=2048)
        # a five-hundredth: 4 transactions per window on RSA-2048 HSM keys, 8 on software ones
        self.control("POST", "config", {"limits": True, "limits_window": 3, "limits_scale": 0.002})
        self.assertEqual(self.control("GET", "limits")["limits"]["hsm-rsa2048"], 4)
        r = self.raw()
        tok = r.token()
        for _ in range(4):
            self.assertEqual(r.request("GET", "/keys/lim-hsm?api-version=" + API, token=tok)[0], 200)
        st, resp, _ = r.request("GET", "/keys/lim-hsm/%s?api-version=%s" % (hsm.properties.version, API),
                                token=tok)
        self.assertEqual(st, 429)
        # the thresholds are weighted and enforced on their sum: the budget is spent for a
        # software key too
        st, resp2, _ = r.request("GET", "/keys/lim-soft?api-version=" + API, token=tok)
        self.assertEqual(st, 429)
        wait = int(resp.getheader("Retry-After"))
        self.assertTrue(1 <= wait <= 3, wait)
        time.sleep(wait)
        self.assertEqual(r.request("GET", "/keys/lim-soft?api-version=" + API, token=tok)[0], 200)

    def test_sdk_retries_429_and_succeeds(self):
        r = self.raw()
        tok = r.token()
        for i in range(2):
            self.assertEqual(self.create(r, tok, "lim-sdk-%d" % i)[0], 200)
        s0 = self.stats()
        t0 = time.monotonic()
        k = self.client.create_rsa_key("lim-sdk-2", size=2048, hardware_protected=True)
        self.assertEqual(k.key_type, "RSA-HSM")
        self.assertGreaterEqual(self.stats()["limits_429"] - s0["limits_429"], 1)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)        # it waited as told


@unittest.skipUnless(HAVE_SDK, "python3-azure not installed")
class PersistenceTest(Base):
    extra_args = []

    def test_kill_and_restart_keeps_state(self):
        c = self.client
        k = c.create_rsa_key("persist-key", size=2048, tags={"chain": "p"})
        k2 = c.create_rsa_key("persist-key", size=2048)
        c.create_rsa_key("persist-deleted", size=2048)
        c.begin_delete_key("persist-deleted", _polling_interval=0.1).wait()
        w = self.crypto_client(k2).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"d" * 32)
        tok = self.raw().token()
        old_port = self.emu.port
        self.emu.stop(kill=True)                                   # SIGKILL: no chance to flush
        emu = Emulator(self.tmp, "vault1", self.extra_args).start()
        type(self).emu = emu
        self.assertNotEqual(emu.port, old_port)
        c2 = self.key_client(emu, self.cred)
        self.addCleanup(c2.close)
        g = c2.get_key("persist-key")
        self.assertEqual(g.properties.version, k2.properties.version)
        self.assertEqual(g.key.n, k2.key.n)
        self.assertEqual(g.id, "%s/keys/persist-key/%s" % (emu.url, k2.properties.version))
        self.assertEqual(c2.get_key("persist-key", k.properties.version).properties.tags, {"chain": "p"})
        self.assertEqual(len(list(c2.list_properties_of_key_versions("persist-key"))), 2)
        cc = self.crypto_client(g)
        self.assertEqual(cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, w.encrypted_key).key, b"d" * 32)
        self.assertEqual(c2.get_deleted_key("persist-deleted").name, "persist-deleted")
        # tokens issued before the restart are still valid (the identity side persisted them)
        self.assertEqual(self.raw(emu).request("GET", "/keys?api-version=" + API, token=tok)[0], 200)
        self.assertFalse([f for f in os.listdir(os.path.join(emu.state_dir, "keys"))
                          if f.startswith(".tmp-")])


if __name__ == "__main__":
    unittest.main()
