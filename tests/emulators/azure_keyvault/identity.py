"""The Key Vault emulator's identity side: the Azure AD token endpoint (client credentials, v2 and
legacy v1), the OpenID configuration MSAL reads, the managed-identity endpoint of IMDS, the tokens
they issue (persisted in the state directory, so they outlive a restart as AAD tokens do), and the
401 challenge the keys API answers without a valid token.
"""

import json
import os
import threading
import time
import urllib.parse
import uuid

from common.persist import atomic_write_json, read_json

from .base import VAULT_RESOURCE, AADError, KVError, b64url, now

IMDS_PATH = "/metadata/identity/oauth2/token"
IMDS_API_VERSIONS = ("2018-02-01", "2019-03-11", "2019-08-01", "2019-11-01",
                     "2020-06-01", "2021-02-01", "2021-12-13", "2023-07-01")


def default_oid(client_id):
    """The object id of a service principal: derived from its client id, stable across runs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, client_id))


class Challenge(KVError):
    """The 401 of a request without a bearer token: the WWW-Authenticate header and an empty
    body, no Content-Type (as the vault answered in 2018 and Managed HSM answers; later vaults
    send a JSON body that clients must not need)."""

    content_type = None

    def body(self):
        return None


class TokenStore:
    """Issued bearer tokens: random JWT-shaped strings, valid for lifetime seconds."""

    def __init__(self, state_dir, lifetime):
        self.path = os.path.join(state_dir, "tokens.json")
        self.lifetime = lifetime
        self.lock = threading.Lock()
        self.tokens = read_json(self.path, {})   # token -> {exp, client_id, tenant}

    def issue(self, client_id, tenant, lifetime=None, oid=None):
        """(token, lifetime, issued-at) of a new token for client_id (object id oid, by default
        one derived from client_id)."""
        lifetime = self.lifetime if lifetime is None else lifetime
        oid = oid or default_oid(client_id)
        iat = now()
        header = {"typ": "JWT", "alg": "RS256", "kid": "akv-emulator"}
        claims = {"aud": VAULT_RESOURCE, "iss": "https://sts.windows.net/%s/" % tenant,
                  "iat": iat, "nbf": iat, "exp": iat + lifetime, "appid": client_id,
                  "tid": tenant, "oid": oid, "jti": uuid.uuid4().hex, "ver": "1.0"}
        token = ".".join([b64url(json.dumps(header).encode()),
                          b64url(json.dumps(claims).encode()),
                          b64url(os.urandom(64))])
        with self.lock:
            t = time.time()
            self.tokens = {k: v for k, v in self.tokens.items() if v["exp"] > t}
            self.tokens[token] = {"exp": t + lifetime, "client_id": client_id,
                                  "tenant": tenant, "oid": oid}
            atomic_write_json(self.path, self.tokens)
        return token, lifetime, iat

    def check(self, token):
        """(None, identity) if token is valid, else (the reason, None): "unknown" or
        "expired". The identity is {"appid", "oid", "tenant"} of the token's holder."""
        with self.lock:
            info = self.tokens.get(token)
        if info is None:
            return "unknown", None
        if info["exp"] <= time.time():
            return "expired", None
        cid = info["client_id"]
        return None, {"appid": cid, "oid": info.get("oid") or default_oid(cid),
                      "tenant": info.get("tenant")}

    def revoke(self, token=None):
        """Revokes token, or every token when it is None."""
        with self.lock:
            if token is None:
                self.tokens = {}
            else:
                self.tokens.pop(token, None)
            atomic_write_json(self.path, self.tokens)


def openid_configuration(base):
    """The OpenID configuration of the tenant at base (authority/tenant)."""
    return {
        "token_endpoint": base + "/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                  "client_secret_basic"],
        "jwks_uri": base + "/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": base + "/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": base + "/oidc/userinfo",
        "authorization_endpoint": base + "/oauth2/v2.0/authorize",
        "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": base + "/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
    }


def missing(param):
    return AADError(400, "invalid_request", 900144,
                    "The request body must contain the following parameter: '%s'." % param)


def imds_error(error, description):
    return 400, {"error": error, "error_description": description}


class Identity:
    """The identity endpoints of one vault. vault: the Vault service (its opts, clients, tokens
    and base_url, the authority)."""

    def __init__(self, vault):
        self.vault = vault
        self.challenge = None  # a test's own challenge (POST /_emulator/config), else None

    def challenge_header(self):
        v = self.vault
        if self.challenge is not None:
            return self.challenge
        return 'Bearer authorization="%s/%s", resource="%s"' % (v.base_url, v.opts.tenant, VAULT_RESOURCE)

    def authenticate(self, req):
        """The identity ({"appid", "oid", "tenant"}) of req's bearer token; raises the 401
        challenge unless req carries a valid one."""
        auth = req.headers.get("Authorization")
        hdr = {"WWW-Authenticate": self.challenge_header()}
        missing_token = "AKV10000: Request is missing a Bearer or PoP token."
        if not auth:
            raise Challenge(401, "Unauthorized", missing_token, headers=hdr)
        parts = auth.split(None, 1)
        if len(parts) != 2 or parts[0].lower() != "bearer":
            raise Challenge(401, "Unauthorized", missing_token, headers=hdr)
        why, ident = self.vault.tokens.check(parts[1].strip())
        if why == "expired":
            raise KVError(401, "Unauthorized",
                          "AKV10032: Token expired. Obtain a new access token and retry.", headers=hdr)
        if why:
            raise KVError(401, "Unauthorized",
                          "AKV10022: Invalid token: the token was not issued for this vault.", headers=hdr)
        return ident

    def route(self, req):
        """The tenant's endpoints: /TENANT/v2.0/.well-known/openid-configuration and the token
        endpoints /TENANT/oauth2/v2.0/token and /TENANT/oauth2/token."""
        o = self.vault.opts
        segs = req.segs
        if len(segs) >= 1 and segs[0] and segs[0] != o.tenant and (
                segs[1:3] in (["oauth2", "v2.0"], ["oauth2", "token"], ["v2.0", ".well-known"])):
            raise AADError(400, "invalid_request", 90002,
                           "Tenant '%s' not found. Check to make sure you have the correct tenant ID"
                           " and are signing into the correct cloud." % segs[0])
        if req.method == "GET" and segs[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            return 200, openid_configuration("%s/%s" % (self.vault.base_url, o.tenant))
        if req.method == "POST" and segs[1:] in (["oauth2", "v2.0", "token"], ["oauth2", "token"]):
            return self.token_endpoint(req, segs[1:] == ["oauth2", "token"])
        raise KVError(404, "NotFound", "The requested resource was not found: %s" % req.path)

    def token_form(self, req):
        """The token request's form fields (the first value of each)."""
        ctype = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise missing("grant_type")
        try:
            form = urllib.parse.parse_qs(req.body.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            raise AADError(400, "invalid_request", 900144, "The request body could not be parsed.")
        return {k: v[0] for k, v in form.items()}

    def check_target(self, f, v1):
        """The v1 resource or the v2 scope must name the vault."""
        if v1:
            res = f.get("resource", "").rstrip("/")
            if res != VAULT_RESOURCE:
                raise AADError(400, "invalid_resource", 500011,
                               "The resource principal named %s was not found in the tenant." % res)
            return
        scope = f.get("scope")
        if not scope:
            raise missing("scope")
        if scope not in (VAULT_RESOURCE + "/.default", VAULT_RESOURCE + "//.default"):
            raise AADError(400, "invalid_scope", 1002012,
                           "The provided value for scope %s is not valid. Client credential flows"
                           " must have a scope value with /.default suffixed to the resource"
                           " identifier (application ID URI)." % scope)

    def check_client(self, f):
        """The client_id and client_secret must be one of the --client pairs; returns the id."""
        clients = self.vault.clients
        cid = f.get("client_id")
        if not cid:
            raise missing("client_id")
        if cid not in clients:
            raise AADError(400, "unauthorized_client", 700016,
                           "Application with identifier '%s' was not found in the directory '%s'."
                           % (cid, self.vault.opts.tenant))
        secret = f.get("client_secret")
        if not secret:
            raise AADError(401, "invalid_client", 7000216,
                           "'client_assertion', 'client_secret' or 'request' is required for the"
                           " 'client_credentials' grant type.")
        if secret != clients[cid]:
            raise AADError(401, "invalid_client", 7000215,
                           "Invalid client secret provided. Ensure the secret being sent in the request"
                           " is the client secret value, not the client secret ID, for a secret added"
                           " to app '%s'." % cid)
        return cid

    def token_endpoint(self, req, v1):
        f = self.token_form(req)
        if "grant_type" not in f:
            raise missing("grant_type")
        if f["grant_type"] != "client_credentials":
            raise AADError(400, "unsupported_grant_type", 70003,
                           "The app requested an unsupported grant type '%s'." % f["grant_type"])
        self.check_target(f, v1)
        cid = self.check_client(f)
        token, life, iat = self.vault.tokens.issue(cid, self.vault.opts.tenant)
        if v1:
            return 200, {"token_type": "Bearer", "expires_in": str(life),
                         "ext_expires_in": str(life), "expires_on": str(iat + life),
                         "not_before": str(iat), "resource": VAULT_RESOURCE,
                         "access_token": token}
        return 200, {"token_type": "Bearer", "expires_in": life,
                     "ext_expires_in": life, "access_token": token}

    def imds(self, req):
        """GET /metadata/identity/oauth2/token: a token for the configured managed identity."""
        o = self.vault.opts
        if req.headers.get("Metadata", "").lower() != "true":
            return imds_error("invalid_request", "Required metadata header not specified")
        q = {k: v[0] for k, v in req.query.items()}
        if "api-version" not in q:
            return imds_error("invalid_request", "Required query variable 'api-version' is missing")
        if q["api-version"] not in IMDS_API_VERSIONS:
            return imds_error("invalid_request", "Invalid api-version '%s'" % q["api-version"])
        res = q.get("resource", "")
        if not res:
            return imds_error("invalid_request", "Required query variable 'resource' is missing")
        if res.rstrip("/") != VAULT_RESOURCE:
            return imds_error("invalid_resource", "AADSTS500011: The resource principal named %s"
                                                  " was not found in the tenant" % res)
        ident = {"client_id": o.mi_client_id, "object_id": o.mi_object_id, "mi_res_id": o.mi_res_id}
        for k, want in ident.items():
            if k in q and q[k] != want:
                return imds_error("invalid_request", "Identity not found")
        token, life, iat = self.vault.tokens.issue(o.mi_client_id, o.tenant, oid=o.mi_object_id)
        return 200, {"access_token": token, "refresh_token": "",
                     "expires_in": str(life), "expires_on": str(iat + life),
                     "ext_expires_in": str(life), "not_before": str(iat),
                     "resource": res, "token_type": "Bearer",
                     "client_id": o.mi_client_id}
