"""Crash-safe state files for the emulators: every state change is one atomic JSON write (temp
file, fsync, rename, fsync of the directory), so a kill -9 at any moment leaves either the old or
the new file, never half of one. Files are created 0600 (mkstemp).
"""

import json
import os
import tempfile

TMP_PREFIX = ".tmp-"


def atomic_write_json(path, obj):
    """Replaces path with obj as compact JSON, atomically and durably."""
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, separators=(",", ":"), sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_json(path, default):
    """The JSON object in path, or default when the file does not exist."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


class RecordDir:
    """A directory holding one JSON file per record, named KEY.json."""

    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)

    def file(self, key):
        return os.path.join(self.path, key + ".json")

    def load(self):
        """Every stored record; removes the temp files a crash left behind."""
        out = []
        for fn in os.listdir(self.path):
            if fn.endswith(".json") and not fn.startswith("."):
                with open(os.path.join(self.path, fn)) as f:
                    out.append(json.load(f))
            elif fn.startswith(TMP_PREFIX):
                os.unlink(os.path.join(self.path, fn))
        return out

    def save(self, key, record):
        atomic_write_json(self.file(key), record)

    def remove(self, key):
        try:
            os.unlink(self.file(key))
        except FileNotFoundError:
            pass
