"""The keys API's answer models: key ids, attributes as the api-version shapes them, KeyBundle and
DeletedKeyBundle (the REST reference's models; field order as in the recorded exchanges).
"""

from .base import int_to_b64


def api_at_least(api, minor):
    """True if api-version is 7.<minor> or later (2025-07-01 is later than 7.x)."""
    if api.startswith("2025"):
        return True
    try:
        return int(api.split(".")[1].split("-")[0]) >= minor
    except (IndexError, ValueError):
        return False


def kid(base_url, name, version=None):
    k = "%s/keys/%s" % (base_url, name)
    return k + "/" + version if version else k


def recovery_level(days, purge_protection):
    """attributes.recoveryLevel of the vault's keys: soft delete is always on (as on every vault
    made since 2020); purge protection drops "+Purgeable"; a retention other than 90 days is
    "Customized"."""
    level = "Recoverable" if days == 90 else "CustomizedRecoverable"
    return level if purge_protection else level + "+Purgeable"


def attributes(ver, api, recoverable_days, purge_protection=False):
    a = ver["attributes"]
    out = {"enabled": a.get("enabled", True)}
    pk = ver.get("key_size")
    if api.startswith("2025") and pk:
        out["key_size"] = pk
    for k in ("nbf", "exp"):
        if a.get(k) is not None:
            out[k] = a[k]
    out["created"] = a["created"]
    out["updated"] = a["updated"]
    days = recoverable_days
    out["recoveryLevel"] = recovery_level(days, purge_protection)
    if api_at_least(api, 1):
        out["recoverableDays"] = days
    if api_at_least(api, 3):
        out["exportable"] = a.get("exportable", False)
    if api.startswith("2025"):
        out["hsmPlatform"] = "0"
    return out


def bundle(store, base_url, rec, ver, api):
    """The KeyBundle of version ver of key rec."""
    nums = store.private_key(rec, ver).public_key().public_numbers()
    key = {"kid": kid(base_url, rec["name"], ver["version"]), "kty": ver["kty"],
           "key_ops": list(ver["key_ops"]), "n": int_to_b64(nums.n), "e": int_to_b64(nums.e)}
    for k, val in (ver.get("extra") or {}).items():
        key.setdefault(k, val)
    out = {"key": key,
           "attributes": attributes(ver, api, store.recoverable_days, store.purge_protection)}
    if ver.get("tags"):
        out["tags"] = ver["tags"]
    if ver.get("release_policy") is not None:
        out["release_policy"] = ver["release_policy"]
    return out


def deletion(base_url, rec):
    """The deleted-key members of a DeletedKeyBundle or a deleted-key list item."""
    return {"recoveryId": "%s/deletedkeys/%s" % (base_url, rec["name"]),
            "deletedDate": rec["deleted"]["deletedDate"],
            "scheduledPurgeDate": rec["deleted"]["scheduledPurgeDate"]}


def deleted_bundle(store, base_url, rec, api):
    """The DeletedKeyBundle of deleted key rec (its latest version)."""
    out = deletion(base_url, rec)
    out.update(bundle(store, base_url, rec, store.latest(rec), api))
    return out
