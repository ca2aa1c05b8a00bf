"""S3's buckets, objects and multipart uploads of one region, persisted under STATE/s3/:

    buckets/<bucket>.json              the bucket: created, default encryption, versioning
    objects/<bucket>/<sha256(key)>.json  one object key: its versions, newest last
    uploads/<upload id>.json           a multipart upload in progress and its parts
    data/<random>.bin                  object and part bodies, written and fsync'ed before the
                                       record naming them; files no record names (a crash between
                                       the two) are removed at load

An object version: {"version_id" ("null" when unversioned), "etag" (quoted), "size",
"last_modified", "data" (file name), "content_type", "headers" (stored Content-* answers),
"meta" {lower-case name: value}, "sse" {"alg", "kms_key" (ARN), "bucket_key"}, "checksums",
"storage_class", "delete_marker", "parts"}.

Call the record helpers with self.lock held; data files are written outside it.
"""

import hashlib
import os
import secrets
import threading

from common.persist import RecordDir


def _fsync_dir(d):
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Store:
    def __init__(self, state_dir):
        self.root = os.path.join(state_dir, "s3")
        self.lock = threading.RLock()
        self.data_dir = os.path.join(self.root, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.bucket_dir = RecordDir(os.path.join(self.root, "buckets"))
        self.upload_dir = RecordDir(os.path.join(self.root, "uploads"))
        self.buckets = {b["name"]: b for b in self.bucket_dir.load()}
        self.obj_dirs = {}
        self.objects = {}
        for name in self.buckets:
            self.objects[name] = {o["key"]: o for o in self._obj_dir(name).load()}
        self.uploads = {u["upload_id"]: u for u in self.upload_dir.load()}
        self.in_flight = set()        # (bucket, key) of conditional writes being completed
        self._remove_orphans()

    def _obj_dir(self, bucket):
        d = self.obj_dirs.get(bucket)
        if d is None:
            d = self.obj_dirs[bucket] = RecordDir(os.path.join(self.root, "objects", bucket))
        return d

    def _remove_orphans(self):
        used = set()
        for objs in self.objects.values():
            for o in objs.values():
                used.update(v["data"] for v in o["versions"] if v.get("data"))
        for u in self.uploads.values():
            used.update(p["data"] for p in u["parts"].values())
        for fn in os.listdir(self.data_dir):
            if fn not in used:
                os.unlink(os.path.join(self.data_dir, fn))

    # ---- data files ----
    def write_data(self, chunks):
        """Writes the bytes chunks yields to a new data file (fsync'ed); returns (file name,
        size). It hashes nothing: a body's MD5 is known before (s3_common.body_md5), and a
        multipart object's ETag comes from its parts' MD5s."""
        fn = secrets.token_hex(16) + ".bin"
        path = os.path.join(self.data_dir, fn)
        size = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                for c in chunks:
                    f.write(c)
                    size += len(c)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        _fsync_dir(self.data_dir)
        return fn, size

    def open_data(self, fn):
        return open(os.path.join(self.data_dir, fn), "rb")

    def data_chunks(self, fn, chunk=1 << 20):
        with self.open_data(fn) as f:
            while True:
                b = f.read(chunk)
                if not b:
                    return
                yield b

    def remove_data(self, fn):
        if fn:
            try:
                os.unlink(os.path.join(self.data_dir, fn))
            except FileNotFoundError:
                pass

    # ---- records ----
    def save_bucket(self, b):
        self.buckets[b["name"]] = b
        self.objects.setdefault(b["name"], {})
        self.bucket_dir.save(b["name"], b)

    def drop_bucket(self, name):
        self.buckets.pop(name, None)
        self.objects.pop(name, None)
        self.bucket_dir.remove(name)
        d = self._obj_dir(name).path
        self.obj_dirs.pop(name, None)
        try:
            for fn in os.listdir(d):
                os.unlink(os.path.join(d, fn))
            os.rmdir(d)
        except OSError:
            pass

    def save_object(self, bucket, obj):
        key_file = hashlib.sha256(obj["key"].encode("utf-8", "surrogatepass")).hexdigest()
        if obj["versions"]:
            self.objects[bucket][obj["key"]] = obj
            self._obj_dir(bucket).save(key_file, obj)
        else:
            self.objects[bucket].pop(obj["key"], None)
            self._obj_dir(bucket).remove(key_file)

    def save_upload(self, u):
        self.uploads[u["upload_id"]] = u
        self.upload_dir.save(u["upload_id"], u)

    def drop_upload(self, upload_id):
        self.uploads.pop(upload_id, None)
        self.upload_dir.remove(upload_id)

    @staticmethod
    def latest(obj):
        """The object's current version, or None when there is none or it is a delete marker."""
        if obj is None or not obj["versions"]:
            return None
        v = obj["versions"][-1]
        return None if v.get("delete_marker") else v
