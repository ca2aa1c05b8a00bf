/*
 * How a new key version comes to be in the vault, for a create and for both imports: it is made
 * pending (tags kp-chain and kp-pending only, so no reader sees it), its public key is checked
 * (the expected fingerprint of an import, the TDE sizes), and only then is it labelled
 * (kp-version, kp-fpr) and so visible. A version that fails the check is disabled and tagged
 * kp-rejected, never deleted: keyplane deletes nothing in a vault. No expiry is ever set (Azure
 * SQL TDE refuses expiring protectors).
 *
 * Creating requests are KPK_HTTP_UNSAFE: the transport does not repeat one the service may have
 * acted on. After such a failure in transit the versions decide: a pending version of our
 * number (with the expected fingerprint, for an import) is adopted and checked like an answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "akv_internal.h"

#define S_ADOPT_MAX 16 /* pending versions of one number looked at after a failure in transit */

json_t *kp_akv_key_ops(void)
{
    json_t *ops = json_array();
    json_array_append_new(ops, json_string("wrapKey"));
    json_array_append_new(ops, json_string("unwrapKey"));
    return ops;
}

json_t *kp_akv_new_attributes(void)
{
    json_t *attrs = json_object();
    json_object_set_new(attrs, "enabled", json_true());
    return attrs;
}

/* The tags of a visible version (fpr set) or of a pending one (fpr NULL: kp-pending); prev is
 * the kp-prev link ("" none), which every later set of tags keeps. */
static json_t *s_tags(const char *name, uint32_t version, const char *fpr, const char *prev)
{
    char ver[16];
    snprintf(ver, sizeof(ver), "%u", version);
    json_t *t = json_object();
    json_object_set_new(t, "kp-chain", json_string(name));
    json_object_set_new(t, fpr != NULL ? "kp-version" : "kp-pending", json_string(ver));
    if (fpr != NULL)
        json_object_set_new(t, "kp-fpr", json_string(fpr));
    if (prev[0] != '\0')
        json_object_set_new(t, "kp-prev", json_string(prev));
    return t;
}

/* The vault id of the key's newest version (what GET without a version answers), the kp-prev of
 * the version about to be made: how an identity without keys/list finds them all (akv_keys.c).
 * A newest version made outside keyplane (no kp-chain tag) would end every later walk, so then
 * the newest visible version of the listing is taken. "" when the key has none yet. */
static kp_status s_newest(kp_akv_inst *a, const char *name, const char *vname,
                          char prev[KP_AKV_VERSION_LEN + 1])
{
    char path[KP_AKV_URL_MAX];
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    snprintf(path, sizeof(path), "/keys/%s", vname);
    kp_status st = kp_akv_call_bundle(a, "GET", path, NULL, 0, 0, "get the newest version", &b);
    prev[0] = '\0';
    if (st == KP_OK && b.tag_chain[0] != '\0')
        snprintf(prev, KP_AKV_VERSION_LEN + 1, "%s", b.azver);
    else if (st == KP_OK)
        kp_akv_newest_visible(a, name, prev);
    kp_akv_bundle_clear(&b);
    return st == KP_ERR_NOT_FOUND ? KP_OK : st;
}

/* PATCH /keys/{vname}/{azver} with body j (freed here). */
static kp_status s_patch(kp_akv_inst *a, const char *vname, const char *azver, json_t *j,
                         const char *what)
{
    char path[KP_AKV_URL_MAX];
    kp_secret *body = NULL;
    kp_akv_resp r;
    snprintf(path, sizeof(path), "/keys/%s/%s", vname, azver);
    kp_status st = kp_akv_json_body(a, j, &body);
    json_decref(j);
    if (st == KP_OK)
        st = kp_akv_call(a, "PATCH", path, a->up->secret_cdata(body), a->up->secret_len(body), 0,
                         what, &r);
    if (st == KP_OK)
        kp_akv_resp_free(&r);
    if (st == KP_ERR_NOT_FOUND)
        st = kp_akv_err(a, st, "%s: %s: the new version vanished", a->place.vault_name, what);
    a->up->secret_free(body);
    return st;
}

/* Sets st again with the error text saved in why (a later request may have replaced it). */
static kp_status s_again(kp_akv_inst *a, kp_status st, const char *why)
{
    return kp_akv_err(a, st, "%s", why);
}

/* Disables a version that failed its check and marks it, keeping the reason why (the error
 * text already set) whatever the PATCH does: the version is unlabelled, so invisible, anyway. */
/* Disables vault version azver of name and tags it kp-rejected (tag) with kp-prev prev (the
 * walk passes through it too). */
static kp_status s_disable(kp_akv_inst *a, const char *name, const char *vname, const char *azver,
                           const char *prev, const char *tag)
{
    json_t *j = json_object(), *attrs = json_object(), *tags = json_object();
    json_object_set_new(attrs, "enabled", json_false());
    json_object_set_new(tags, "kp-chain", json_string(name));
    json_object_set_new(tags, "kp-rejected", json_string(tag));
    if (prev[0] != '\0')
        json_object_set_new(tags, "kp-prev", json_string(prev));
    json_object_set_new(j, "attributes", attrs);
    json_object_set_new(j, "tags", tags);
    return s_patch(a, vname, azver, j, "disable the rejected version");
}

static kp_status s_reject(kp_akv_inst *a, const char *name, const char *vname,
                          const kp_akv_bundle *b, kp_status st, const char *tag)
{
    char why[KP_ERROR_MAX + 1];
    snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
    if (s_disable(a, name, vname, b->azver, b->tag_prev, tag) != KP_OK)
        a->up->log(a->h, KP_LOG_WARN,
                   "a rejected vault version could not be disabled; it stays unlabelled");
    return s_again(a, st, why);
}

/* A newer vault version claiming winner's number with another key (a run that lost a race, its
 * label already written): disabled and tagged kp-rejected, so that no walk of an identity
 * without keys/list takes it for the version. Both were linked to the same predecessor when
 * made at once, which hid the winner from the walk: the loser is then linked to the winner. */
typedef struct s_repair {
    kp_akv_inst *a;
    const char *name, *vname;
} s_repair;

static kp_status s_repair_one(void *arg, const kp_akv_version *winner)
{
    s_repair *r = arg;
    const char *prev =
        strcmp(winner->dup_prev, winner->prev) == 0 ? winner->azver : winner->dup_prev;
    char tag[48];
    snprintf(tag, sizeof(tag), "lost a race for v%u", winner->version);
    kp_logf(r->a->up, r->a->h, KP_LOG_WARN,
            "disabling a vault version that claims v%u with another key (a run that lost a race "
            "for the number left it)",
            winner->version);
    return s_disable(r->a, r->name, r->vname, winner->dup, prev, tag);
}

/* Rejects every loser of a race for a number of name that the last listing showed. */
static kp_status s_repair_races(kp_akv_inst *a, const char *name, const char *vname)
{
    s_repair r = {a, name, vname};
    return kp_akv_dups_each(a, name, s_repair_one, &r);
}

/* The check before a version becomes visible. */
static kp_status s_check(kp_akv_inst *a, const char *name, const char *vname, const char *fpr,
                         const char *what, const kp_akv_bundle *b)
{
    if (fpr != NULL && strcmp(b->fpr, fpr) != 0) {
        kp_akv_err(a, KP_ERR_INTEGRITY,
                   "%s: %s: the vault holds a key with fingerprint %.16s..., not the expected "
                   "%.16s...; the version is disabled and never labelled",
                   a->place.vault_name, what, b->fpr, fpr);
        return s_reject(a, name, vname, b, KP_ERR_INTEGRITY, "fingerprint mismatch");
    }
    kp_status st = kp_akv_rule_key(KP_AKV_SINK(a), a->place.vault_name, KP_KEY_RSA, b->bits);
    if (st != KP_OK)
        return s_reject(a, name, vname, b, st, "not an Azure SQL TDE key size");
    return KP_OK;
}

/* Pending versions of one number, from a versions listing. */
typedef struct s_pending {
    uint32_t version;
    char azver[S_ADOPT_MAX][KP_AKV_VERSION_LEN + 1];
    size_t n;
} s_pending;

static kp_status s_pending_item(void *arg, const kp_akv_bundle *b)
{
    s_pending *p = arg;
    if (b->kp_pending == p->version && b->kp_version == 0 && b->enabled && p->n < S_ADOPT_MAX)
        snprintf(p->azver[p->n++], sizeof(p->azver[0]), "%s", b->azver);
    return KP_OK;
}

/* After a creating request failed in transit: did it land anyway? Fills b with a pending version
 * of our number whose public key has fpr (any when fpr is NULL); else returns failed with its
 * text. */
static kp_status s_adopt(kp_akv_inst *a, const char *vname, uint32_t version, const char *fpr,
                         kp_status failed, kp_akv_bundle *b)
{
    if (failed != KP_ERR_UNAVAILABLE && failed != KP_ERR_TIMEOUT)
        return failed;
    char why[KP_ERROR_MAX + 1], path[KP_AKV_URL_MAX];
    snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
    s_pending p = {.version = version};
    if (kp_akv_versions_each(a, vname, s_pending_item, &p) != KP_OK)
        return s_again(a, failed, why);
    for (size_t i = 0; i < p.n; i++) {
        snprintf(path, sizeof(path), "/keys/%s/%s", vname, p.azver[i]);
        kp_status st = kp_akv_call_bundle(a, "GET", path, NULL, 0, 0, "get a pending version", b);
        if (st == KP_OK && b->kp_pending == version && (fpr == NULL || strcmp(b->fpr, fpr) == 0)) {
            a->up->log(a->h, KP_LOG_INFO,
                       "the request failed in transit but the version was made: adopted");
            return KP_OK;
        }
        kp_akv_bundle_clear(b);
    }
    return s_again(a, failed, why);
}

/*
 * Two runs making one number at once. Readers take the older of two labelled claimants (by
 * creation time, then by id: the time has one-second steps), so a run must not label its version,
 * or keep its label, when another may win: before labelling, it yields to any other claimant
 * already labelled and to an older one still pending; after labelling, to any older claimant.
 * Either way its version is disabled (kp-rejected) and the caller told KP_ERR_EXISTS. Of two
 * runs at most one passes both checks (a run that passed its second check before the other
 * existed is seen labelled by the other's first check); both may yield, and a rerun makes the
 * version. A pending version made more than S_STALE_S ago is a run that died before labelling,
 * and does not count.
 */
#define S_STALE_S 120
typedef struct s_older {
    const kp_akv_bundle *ours;
    uint32_t version;
    bool labelled; /* ours is labelled already (the second check) */
    int64_t now;
    bool found;
    char link[KP_AKV_VERSION_LEN + 1]; /* the kp-prev ours gets: a claimant with the same
                                          predecessor (the walk would miss it), else ours */
} s_older;

static kp_status s_older_item(void *arg, const kp_akv_bundle *b)
{
    s_older *o = arg;
    bool labelled = b->kp_version == o->version && b->tag_fpr[0] != '\0';
    bool claims = labelled || (b->kp_version == 0 && b->kp_pending == o->version);
    bool older = b->created < o->ours->created ||
                 (b->created == o->ours->created && strcmp(b->azver, o->ours->azver) < 0);
    bool alive = labelled || o->now - b->created < S_STALE_S;
    bool wins = older || (labelled && !o->labelled);
    if (claims && wins && alive && b->enabled && strcmp(b->azver, o->ours->azver) != 0) {
        o->found = true;
        if (strcmp(b->tag_prev, o->ours->tag_prev) == 0)
            snprintf(o->link, sizeof(o->link), "%s", b->azver);
    }
    return KP_OK;
}

static kp_status s_yield(kp_akv_inst *a, const char *name, const char *vname, uint32_t version,
                         const kp_akv_bundle *b, bool labelled)
{
    s_older o = {.ours = b, .version = version, .labelled = labelled, .now = (int64_t)time(NULL)};
    snprintf(o.link, sizeof(o.link), "%s", b->tag_prev);
    KP_GUARD(kp_akv_versions_each(a, vname, s_older_item, &o));
    if (!o.found)
        return KP_OK;
    char tag[48];
    snprintf(tag, sizeof(tag), "yielded v%u to another run", version);
    if (s_disable(a, name, vname, b->azver, o.link, tag) != KP_OK)
        a->up->log(a->h, KP_LOG_WARN,
                   "a version that yielded to a concurrent run could not be disabled; the next "
                   "apply or key create here does it");
    kp_akv_key_forget(a, name);
    return kp_akv_err(a, KP_ERR_EXISTS,
                      "%s: key %s v%u is being made concurrently by another run; run again",
                      a->place.vault_name, name, version);
}

kp_status kp_akv_version_make(kp_akv_inst *a, const char *name, uint32_t version, bool create,
                              json_t *j, const char *fpr, kp_key_info *info)
{
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 32];
    kp_secret *body = NULL;
    kp_akv_bundle b;
    memset(&b, 0, sizeof(b));
    char prev[KP_AKV_VERSION_LEN + 1], winner[KP_AKV_VERSION_LEN + 1] = "";
    KP_GUARD(kp_akv_vault_name(a, name, vname));
    KP_GUARD(s_repair_races(a, name, vname));
    KP_GUARD(s_newest(a, name, vname, prev));
    json_object_set_new(j, "tags", s_tags(name, version, NULL, prev));
    snprintf(path, sizeof(path), create ? "/keys/%s/create" : "/keys/%s", vname);
    snprintf(what, sizeof(what), "%s %s v%u", create ? "create" : "import", vname, version);
    kp_status st = kp_akv_json_body(a, j, &body);
    if (st == KP_OK)
        st = kp_akv_make_bundle(a, create ? "POST" : "PUT", path, a->up->secret_cdata(body),
                                a->up->secret_len(body), what, &b);
    if (st != KP_OK) /* a failure in transit may have landed */
        st = s_adopt(a, vname, version, fpr, st, &b);
    a->up->secret_free(body);
    if (st == KP_OK)
        st = s_check(a, name, vname, fpr, what, &b);
    if (st == KP_OK)
        st = s_yield(a, name, vname, version, &b, false);
    if (st == KP_OK) {
        json_t *label = json_object();
        json_object_set_new(label, "tags", s_tags(name, version, b.fpr, b.tag_prev));
        st = s_patch(a, vname, b.azver, label, "label the new version");
    }
    if (st == KP_OK)
        st = s_yield(a, name, vname, version, &b, true);
    if (st == KP_OK)
        st = kp_akv_take_bundle(a, name, version, &b, info, winner);
    if (st == KP_ERR_EXISTS && winner[0] != '\0') { /* lost: ours must not stay labelled */
        char why[KP_ERROR_MAX + 1];
        snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
        if (s_repair_races(a, name, vname) != KP_OK)
            a->up->log(a->h, KP_LOG_WARN,
                       "the version that lost a race could not be disabled; the next apply or "
                       "key create here does it");
        st = s_again(a, st, why);
    }
    kp_akv_bundle_clear(&b);
    return st;
}

kp_status kp_akv_ks_create(void *inst, const kp_key_spec *in, kp_key_info *info)
{
    kp_akv_inst *a = inst;
    kp_key_spec spec;
    KP_ENSURE(a != NULL && kp_key_spec_read(in, &spec) && info != NULL && spec.name != NULL,
              KP_ERR_INVALID_ARG);
    uint32_t bits = spec.bits != 0 ? spec.bits : 2048, version = 0;
    char vname[KP_NAME_MAX];
    kp_akv_begin(a, false);
    kp_status st = kp_akv_rule_spec(a, spec.name, spec.type, bits, vname);
    if (st == KP_OK && (spec.flags & KP_KEY_EXPORTABLE))
        st = kp_akv_err(a, KP_ERR_UNSUPPORTED,
                        "%s: keys leave Key Vault only through a release policy, which keyplane "
                        "does not use: make an HSM or file store the chain's origin",
                        a->place.vault_name);
    if (st == KP_OK)
        st = kp_akv_new_version(a, &spec, &version);
    if (st == KP_OK) {
        json_t *j = json_object();
        json_object_set_new(j, "kty", json_string(a->hsm ? "RSA-HSM" : "RSA"));
        json_object_set_new(j, "key_size", json_integer(bits));
        json_object_set_new(j, "key_ops", kp_akv_key_ops());
        json_object_set_new(j, "attributes", kp_akv_new_attributes());
        st = kp_akv_version_make(a, spec.name, version, true, j, NULL, info);
        json_decref(j);
    }
    pthread_mutex_unlock(&a->lock);
    return st;
}
