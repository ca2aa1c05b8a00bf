"""Who may call the region: the long-term access keys (--credentials AKID:SECRET), the temporary
credentials STS, IMDS and the container endpoint issue (ASIA... keys with a session token and an
expiry), and the IAM roles those are issued for. Persisted under STATE/iam/ (one file per
temporary credential, roles.json), so a restarted region still accepts what it issued.
"""

import base64
import datetime
import hashlib
import os
import secrets
import threading
import time

from common.persist import RecordDir, atomic_write_json, read_json

B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
KEEP_EXPIRED = 86400          # expired temporary credentials are remembered this long (ExpiredToken)
DEFAULT_MAX_SESSION = 3600    # a role's MaxSessionDuration unless configured


def iso8601(ts):
    """2019-11-09T13:34:41Z"""
    return datetime.datetime.utcfromtimestamp(int(ts)).strftime("%Y-%m-%dT%H:%M:%SZ")


def unique_id(prefix, seed):
    """An IAM unique id (AIDA..., AROA...): prefix and 17 base32 characters derived from seed."""
    h = hashlib.sha256(seed.encode()).digest()
    return prefix + "".join(B32[b % 32] for b in h[:17])


def new_access_key_id():
    return "ASIA" + "".join(secrets.choice(B32) for _ in range(16))


def new_secret_key():
    return base64.b64encode(os.urandom(30)).decode()          # 40 characters


def new_session_token():
    return "IQoJb3JpZ2luX2VjE" + base64.b64encode(os.urandom(240)).decode()


class Principal:
    """The caller a request was signed by."""

    def __init__(self, akid, arn, user_id, account, temporary=False, role_arn=None, chained=False):
        self.akid, self.arn, self.user_id, self.account = akid, arn, user_id, account
        self.temporary, self.role_arn, self.chained = temporary, role_arn, chained


class Identity:
    """The region's access keys, temporary credentials and roles (thread-safe)."""

    def __init__(self, state_dir, account, static):
        """static: {AKID: SECRET} of the long-term keys."""
        self.account = account
        self.lock = threading.Lock()
        self.static = dict(static)
        self.dir = RecordDir(os.path.join(state_dir, "iam", "credentials"))
        self.roles_file = os.path.join(state_dir, "iam", "roles.json")
        self.temp = {}
        now = time.time()
        for rec in self.dir.load():
            if rec["expiration"] + KEEP_EXPIRED < now:
                self.dir.remove(rec["akid"])
            else:
                self.temp[rec["akid"]] = rec
        self.roles = read_json(self.roles_file, {})

    # ---- roles ----
    def role_arn(self, name_or_arn):
        if name_or_arn.startswith("arn:"):
            return name_or_arn
        return "arn:aws:iam::%s:role/%s" % (self.account, name_or_arn)

    def set_role(self, name_or_arn, principals=None, tokens=None, max_session=None, merge=True):
        """Configures a role: principals allowed to AssumeRole it ("*": every principal of the
        account; ARNs or access key ids), tokens accepted by AssumeRoleWithWebIdentity, its
        MaxSessionDuration. Returns the role's record."""
        arn = self.role_arn(name_or_arn)
        if not arn.startswith("arn:aws:iam::") or ":role/" not in arn:
            raise ValueError("not a role ARN: %r" % arn)
        with self.lock:
            old = self.roles.get(arn) if merge else None
            role = dict(old or {"principals": [], "web_identity_tokens": [],
                                "max_session_duration": DEFAULT_MAX_SESSION,
                                "role_id": unique_id("AROA", arn)})
            if principals is not None:
                if not isinstance(principals, list) or not all(isinstance(p, str) for p in principals):
                    raise ValueError("principals: a list of strings")
                role["principals"] = (sorted(set(role["principals"]) | set(principals)) if merge
                                      else principals)
            if tokens is not None:
                if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
                    raise ValueError("web_identity_tokens: a list of non-empty strings")
                role["web_identity_tokens"] = sorted(set(role["web_identity_tokens"]) | set(tokens)) \
                    if merge else tokens
            if max_session is not None:
                if isinstance(max_session, bool) or not isinstance(max_session, int) \
                        or not 3600 <= max_session <= 43200:
                    raise ValueError("max_session_duration: 3600..43200 seconds")
                role["max_session_duration"] = max_session
            self.roles[arn] = role
            atomic_write_json(self.roles_file, self.roles)
            return dict(role, arn=arn)

    def role(self, arn):
        with self.lock:
            r = self.roles.get(arn)
            return dict(r, arn=arn) if r else None

    def roles_snapshot(self):
        """The roles without their web identity tokens' values (counts only)."""
        with self.lock:
            return {arn: {"principals": r["principals"],
                          "max_session_duration": r["max_session_duration"],
                          "web_identity_tokens": len(r["web_identity_tokens"])}
                    for arn, r in self.roles.items()}

    # ---- credentials ----
    def add_static(self, akid, secret):
        if not akid or not secret or ":" in akid:
            raise ValueError("an access key id and a secret")
        with self.lock:
            self.static[akid] = secret

    def issue(self, role_arn, session_name, lifetime, source, chained=False):
        """New temporary credentials for role_arn: the record (with the secret and token)."""
        now = time.time()
        role_id = unique_id("AROA", role_arn)
        rec = {"akid": new_access_key_id(), "secret": new_secret_key(), "token": new_session_token(),
               "expiration": int(now + lifetime), "issued": int(now), "role_arn": role_arn,
               "session_name": session_name, "source": source, "chained": chained,
               "assumed_role_id": "%s:%s" % (role_id, session_name),
               "arn": "arn:aws:sts::%s:assumed-role/%s/%s" % (self.account, role_arn.split("/")[-1],
                                                               session_name)}
        with self.lock:
            self.temp[rec["akid"]] = rec
            self.dir.save(rec["akid"], rec)
        return rec

    def expire(self, akid=None):
        """Makes one temporary credential (or all) expired now; returns how many."""
        n = 0
        with self.lock:
            for rec in list(self.temp.values()):
                if akid is None or rec["akid"] == akid:
                    rec["expiration"] = int(time.time()) - 1
                    self.dir.save(rec["akid"], rec)
                    n += 1
        return n

    def lookup(self, akid):
        """("static", secret, None) or ("temporary", secret, record) or None."""
        with self.lock:
            if akid in self.static:
                return "static", self.static[akid], None
            rec = self.temp.get(akid)
            if rec is not None:
                return "temporary", rec["secret"], dict(rec)
        return None

    def principal(self, akid, kind, rec):
        if kind == "static":
            return Principal(akid, "arn:aws:iam::%s:user/%s" % (self.account, akid.lower()),
                             unique_id("AIDA", akid), self.account)
        return Principal(akid, rec["arn"], rec["assumed_role_id"], self.account, temporary=True,
                         role_arn=rec["role_arn"], chained=True)

    def counts(self):
        with self.lock:
            now = time.time()
            return {"static_keys": len(self.static),
                    "temporary_live": sum(1 for r in self.temp.values() if r["expiration"] > now),
                    "temporary_expired": sum(1 for r in self.temp.values() if r["expiration"] <= now)}
