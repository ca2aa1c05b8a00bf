"""Secrets Manager replication between region processes.

The primary region pushes a secret's whole state (name, ARN suffix, description, tags, versions
with their values and labels) to each replica region's process: POST /_emulator/replica on the
peer's URL (--peer REGION=URL, or POST /_emulator/peers), over TLS verified with the shared test
CA. The receiving side keeps a read-only copy under the same name, with its own region's ARN and
the same VersionIds; it resolves the replica's KmsKeyId in its own KMS and refuses a name held by
another secret unless ForceOverwriteReplicaSecret.

Per replica region the primary keeps Status InSync ("Replication succeeded"), InProgress (not yet
pushed) or Failed with a StatusMessage. A refusal by the peer (name taken, KMS key unknown there)
is final; an unreachable peer is retried by a background thread every retry_interval seconds
(and on every change of the secret) until it answers.
"""

import http.client
import json
import ssl
import sys
import threading
import urllib.parse

from common.persist import atomic_write_json, read_json

from .errors import sm_error
from .kms import NotFound
from .secrets_store import NOT_FOUND

REPLICA_PATH = "/_emulator/replica"
PUSH_TIMEOUT = 3.0
IN_SYNC = "Replication succeeded"


class Replication:
    def __init__(self, store, kms, region, state_dir, peers, cafile, retry_interval=1.0):
        self.store, self.kms, self.region = store, kms, region
        self.peers_file = state_dir + "/secretsmanager/peers.json"
        saved = read_json(self.peers_file, {})
        saved.update(peers)
        self.peers = saved
        self.cafile = cafile
        self.retry_interval = retry_interval
        self.peers_lock = threading.Lock()
        self.push_locks = {}
        self.push_locks_lock = threading.Lock()
        self.counts_lock = threading.Lock()
        self.counts = {"replica_pushes": 0, "replica_push_failures": 0, "replica_received": 0}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.retry_loop, name="sm-replication", daemon=True)

    def start(self):
        self.thread.start()

    # ---- peers ----
    def set_peers(self, req):
        """POST /_emulator/peers {REGION: URL or null}: merges; answers every peer."""
        if not isinstance(req, dict):
            raise ValueError("peers: a JSON object {region: url or null}")
        for region, url in req.items():
            if url is not None and not (isinstance(url, str) and url.startswith("https://")):
                raise ValueError("peer %s: an https:// URL or null" % region)
        with self.peers_lock:
            for region, url in req.items():
                if url is None:
                    self.peers.pop(region, None)
                else:
                    self.peers[region] = url.rstrip("/")
            atomic_write_json(self.peers_file, self.peers)
            out = dict(self.peers)
        self.kick()
        return out

    def get_peers(self, req=None):
        with self.peers_lock:
            return dict(self.peers)

    def kick(self):
        """Marks every replica that is not final as pending (a peer changed)."""
        with self.store.lock:
            for rec in self.store.records.values():
                for r in rec.get("replicas", {}).values():
                    if not r.get("permanent") and r["status"] != "InSync":
                        r["pending"] = True

    # ---- the primary side ----
    @staticmethod
    def status_list(rec):
        out = []
        for region in sorted(rec["replicas"]):
            r = rec["replicas"][region]
            e = {"Region": region, "KmsKeyId": r.get("kms_key_id") or "alias/aws/secretsmanager",
                 "Status": r["status"], "StatusMessage": r["message"]}
            out.append(e)
        return out

    def add_regions(self, name, regions, force):
        """ReplicateSecretToRegions' work: the status of each requested region after its first
        push."""
        seen = set()
        for r in regions:
            region = r.get("Region")
            if not region:
                raise sm_error("InvalidParameterException", "A replica region must be named.")
            if region == self.region:
                raise sm_error("InvalidParameterException", "Invalid replica region: %s is the"
                               " primary region of the secret." % region)
            if region in seen:
                raise sm_error("InvalidParameterException", "Duplicate replica region: %s." % region)
            seen.add(region)
        st = self.store
        with st.lock:
            rec = st.by_name(name)
            if rec is None:
                raise sm_error("ResourceNotFoundException", NOT_FOUND)
            for region in seen:
                if region in rec["replicas"]:
                    raise sm_error("InvalidParameterException", "The secret is already replicated"
                                   " to %s." % region)
            for r in regions:
                rec["replicas"][r["Region"]] = {"kms_key_id": r.get("KmsKeyId") or None,
                                                "status": "InProgress",
                                                "message": "Replication in progress", "pending": True,
                                                "permanent": False, "force": bool(force)}
            st.save(rec)
        for region in sorted(seen):
            self.push(name, region)
        with st.lock:
            rec = st.by_name(name)
            return [s for s in self.status_list(rec) if s["Region"] in seen] if rec else []

    def remove_regions(self, name, regions):
        st = self.store
        with st.lock:
            rec = st.by_name(name)
            if rec is None:
                raise sm_error("ResourceNotFoundException", NOT_FOUND)
            for region in regions:
                if region not in rec["replicas"]:
                    raise sm_error("InvalidParameterException", "The secret is not replicated to"
                                   " %s." % region)
            for region in regions:
                del rec["replicas"][region]
                if region not in rec["pending_removals"]:
                    rec["pending_removals"].append(region)
            st.save(rec)
        for region in regions:
            self.push_removal(name, region)
        with st.lock:
            rec = st.by_name(name)
            return self.status_list(rec) if rec else []

    def changed(self, name):
        """The primary secret name changed: push it to every replica that is not final."""
        st = self.store
        with st.lock:
            rec = st.by_name(name)
            if rec is None or not rec["replicas"]:
                return
            regions = [g for g, r in rec["replicas"].items() if not r.get("permanent")]
            for g in regions:
                rec["replicas"][g]["pending"] = True
            st.save(rec)
        for region in regions:
            self.push(name, region)

    def _push_lock(self, name, region):
        with self.push_locks_lock:
            return self.push_locks.setdefault((name, region), threading.Lock())

    def push(self, name, region):
        """Sends the current state of name to region's peer and records the outcome."""
        st = self.store
        with self._push_lock(name, region):
            with st.lock:
                rec = st.by_name(name)
                if rec is None or region not in rec["replicas"]:
                    return
                rep = rec["replicas"][region]
                payload = {"op": "upsert", "primary_region": self.region,
                           "force": rep.get("force", False), "kms_key_id": rep.get("kms_key_id"),
                           "secret": {k: rec[k] for k in ("name", "arn", "description", "tags",
                                                          "created", "last_changed", "versions",
                                                          "order")}}
            ok, final, message = self.send(region, payload)
            with st.lock:
                rec = st.by_name(name)
                if rec is None or region not in rec["replicas"]:
                    return
                rep = rec["replicas"][region]
                if ok:
                    rep.update(status="InSync", message=IN_SYNC, pending=False, permanent=False)
                elif final:
                    rep.update(status="Failed", message=message, pending=False, permanent=True)
                else:
                    rep.update(status="Failed", message=message, pending=True, permanent=False)
                st.save(rec)

    def push_removal(self, name, region):
        st = self.store
        with self._push_lock(name, region):
            with st.lock:
                rec = st.by_name(name)
                if rec is None or region not in rec["pending_removals"]:
                    return
                payload = {"op": "remove", "name": name, "primary_arn": rec["arn"]}
            ok, final, _ = self.send(region, payload)
            if ok or final:
                with st.lock:
                    rec = st.by_name(name)
                    if rec is not None and region in rec["pending_removals"]:
                        rec["pending_removals"].remove(region)
                        st.save(rec)

    def send(self, region, payload):
        """(ok, final, StatusMessage) of one push to region's peer."""
        with self.counts_lock:
            self.counts["replica_pushes"] += 1
        with self.peers_lock:
            url = self.peers.get(region)
        if url is None:
            return self._failed(False, "Replication to %s failed: no emulator is known for that"
                                " region (start it with --peer or POST /_emulator/peers); retrying"
                                % region)
        u = urllib.parse.urlsplit(url)
        try:
            ctx = ssl.create_default_context(cafile=self.cafile)
            conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx,
                                               timeout=PUSH_TIMEOUT)
            try:
                conn.request("POST", REPLICA_PATH, body=json.dumps(payload).encode(),
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, ssl.SSLError) as e:
            return self._failed(False, "Replication to %s failed: the region is unreachable (%s);"
                                " retrying" % (region, type(e).__name__))
        if resp.status != 200:
            return self._failed(False, "Replication to %s failed: HTTP %d; retrying"
                                % (region, resp.status))
        try:
            ans = json.loads(data)
        except ValueError:
            return self._failed(False, "Replication to %s failed: bad answer; retrying" % region)
        if ans.get("ok"):
            return True, False, IN_SYNC
        return self._failed(True, ans.get("message") or "Replication failed")

    def _failed(self, final, message):
        with self.counts_lock:
            self.counts["replica_push_failures"] += 1
        return False, final, message

    def retry_loop(self):
        while not self.stop.wait(self.retry_interval):
            try:
                self.retry_once()
            except Exception as e:  # keep retrying; an emulator bug shows in the log
                sys.stderr.write("replication retry: %s: %s\n" % (type(e).__name__, e))

    def retry_once(self):
        todo, removals = [], []
        with self.store.lock:
            for rec in self.store.records.values():
                for region, r in rec.get("replicas", {}).items():
                    if r.get("pending"):
                        todo.append((rec["name"], region))
                for region in rec.get("pending_removals", []):
                    removals.append((rec["name"], region))
        for name, region in todo:
            self.push(name, region)
        for name, region in removals:
            self.push_removal(name, region)

    # ---- the replica side: POST /_emulator/replica ----
    def receive(self, req):
        with self.counts_lock:
            self.counts["replica_received"] += 1
        op = req.get("op")
        if op == "upsert":
            return self._upsert(req)
        if op == "remove":
            return self._remove(req)
        raise ValueError("op: upsert or remove")

    def _upsert(self, req):
        src = req["secret"]
        kms_key = req.get("kms_key_id")
        if kms_key:
            try:
                self.kms.resolve(kms_key)
            except NotFound as e:
                return {"ok": False, "message": "Replication failed: the KMS key %s can't be used in"
                        " %s: %s" % (kms_key, self.region, e)}
        st = self.store
        with st.lock:
            cur = st.by_name(src["name"])
            if cur is not None and cur.get("replica_of") != src["arn"]:
                if not req.get("force"):
                    return {"ok": False, "message": "Replication failed: Secret with this name"
                            " already exists in this region"}
                st.drop(cur)
                cur = None
            rec = cur or st.new_record(src["name"], st.arn_in(src["arn"], self.region),
                                       req["primary_region"])
            for k in ("description", "tags", "created", "last_changed", "versions", "order"):
                rec[k] = src[k]
            rec["kms_key_id"] = kms_key or None
            rec["primary_region"] = req["primary_region"]
            rec["replica_of"] = src["arn"]
            st.save(rec)
        return {"ok": True, "arn": rec["arn"]}

    def _remove(self, req):
        st = self.store
        with st.lock:
            cur = st.by_name(req["name"])
            if cur is not None and cur.get("replica_of") == req["primary_arn"]:
                st.drop(cur)
        return {"ok": True}
