/*
 * The secret store in AWS Secrets Manager: version N of NAME is the secret `<prefix>NAME/vN`,
 * made by one CreateSecret that also names every replica region with that region's KMS key, so
 * a version never exists without its replicas being asked for. Its Description carries the
 * metadata and the value's size as JSON ({"keyplane":1,"size":N,"meta":{...}}); its one version
 * has the id of a random ClientRequestToken the Description names, which is how a
 * read knows the value is the one keyplane wrote.
 *
 * Reads fail over: when the instance's region does not answer (unavailable, timeout,
 * throttled), the replicas are read in the order of the `replicas` param, each in its own
 * region. A read in the instance's region also proves the replicas: each must be InSync under
 * its configured key and give the same version when read in its region, or the version carries
 * a `store.gap` naming what would fail.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_PUT_TRIES 8
#define S_NAME_MAX (KP_AWS_PREFIX_MAX + KP_NAME_MAX + 16)
#define S_DESC_MAX 2048 /* Secrets Manager's Description limit */

/* The Description of a version: {"keyplane":1,"size":N,"meta":{...},"token":T}, T the
 * version's ClientRequestToken (and so its VersionId). */
static kp_status s_description(kp_aws_inst *a, const kp_meta *meta, size_t nmeta, size_t size,
                               const char *token, char **out)
{
    json_t *m = json_object();
    for (size_t i = 0; m != NULL && i < nmeta; i++)
        if (json_object_set_new(m, meta[i].key, json_string(meta[i].value)) != 0) {
            json_decref(m);
            return kp_aws_err(a, KP_ERR_INVALID_ARG, "metadata %s: not UTF-8 text", meta[i].key);
        }
    json_t *j = m != NULL ? json_pack("{s:i, s:I, s:o, s:s}", "keyplane", 1, "size",
                                      (json_int_t)size, "meta", m, "token", token)
                          : NULL;
    *out = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    if (*out == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (strlen(*out) > S_DESC_MAX) {
        free(*out);
        *out = NULL;
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "secretsmanager: the metadata takes over the %d characters of a "
                          "Description",
                          S_DESC_MAX);
    }
    return KP_OK;
}

/* A new ClientRequestToken: 32 random hex digits. Random, not a digest of the value: the
 * VersionId it becomes is shown to anyone who may list versions (and to CloudTrail), and an
 * unkeyed digest of a password chosen by a person would let them test guesses offline. */
static kp_status s_new_token(kp_aws_inst *a, char token[33])
{
    char uuid[37];
    if (!kpk_uuid4(uuid))
        return kp_aws_err(a, KP_ERR_CRYPTO, "no randomness for a request token");
    size_t n = 0;
    for (const char *c = uuid; *c != '\0'; c++)
        if (*c != '-')
            token[n++] = *c;
    token[n] = '\0';
    return KP_OK;
}

/* Collects versions from ListSecrets entries. */
typedef struct s_found {
    kp_aws_inst *a;
    kp_aws_vlist *l;
} s_found;

static kp_status s_found_one(void *arg, json_t *secret)
{
    s_found *f = arg;
    const char *full = json_string_value(json_object_get(secret, "Name"));
    char name[KP_NAME_MAX];
    uint32_t v;
    if (full == NULL || !kp_aws_version_parse(f->a, full, name, &v))
        return KP_OK;
    return kp_aws_vlist_add(f->l, name, v, full) == KP_OK
               ? KP_OK
               : kp_aws_err(f->a, KP_ERR_NOMEM, "out of memory");
}

static kp_status s_versions(kp_aws_inst *a, size_t replica, const char *name, kp_aws_vlist *l)
{
    char prefix[S_NAME_MAX];
    if (name != NULL)
        KP_GUARD(kp_aws_version_name(a, name, 0, prefix, sizeof(prefix)));
    else
        snprintf(prefix, sizeof(prefix), "%s", a->prefix);
    s_found f = {a, l};
    kp_status st = kp_aws_sm_list(a, replica, prefix, s_found_one, &f);
    kp_aws_vlist_sort(l);
    return st;
}

/* Whether secret_name holds the version whose id is token (the one keyplane wrote). */
static kp_status s_has_token(kp_aws_inst *a, const char *secret_name, const char *token, bool *has)
{
    kp_secret *v = NULL;
    char id[80];
    kp_status st = kp_aws_sm_value(a, 0, secret_name, token, &v, id);
    a->up->secret_free(v);
    *has = st == KP_OK && strcmp(id, token) == 0;
    return st == KP_ERR_NOT_FOUND ? KP_OK : st;
}

/* One attempt at version n; KP_ERR_EXISTS when another writer has it (or a deleted secret still
 * holds its name). */
static kp_status s_put_at(kp_aws_inst *a, const char *name, uint32_t n, const kp_meta *meta,
                          size_t nmeta, const kp_secret *value)
{
    char full[S_NAME_MAX], token[33], code[128];
    char *desc = NULL;
    KP_GUARD(kp_aws_version_name(a, name, n, full, sizeof(full)));
    KP_GUARD(s_new_token(a, token));
    KP_GUARD(s_description(a, meta, nmeta, a->up->secret_len(value), token, &desc));
    kp_status st = kp_aws_sm_create(a, full, token, desc, value, code, sizeof(code));
    free(desc);
    /* a secret scheduled for deletion keeps its name until it is gone: the next number */
    if (st != KP_OK && strcmp(code, "InvalidRequestException") == 0 &&
        strstr(a->up->get_error(a->h), "delet") != NULL)
        return KP_ERR_EXISTS;
    if (st != KP_ERR_EXISTS && st != KP_ERR_TIMEOUT && st != KP_ERR_UNAVAILABLE)
        return st;
    /* after a lost answer, or a name taken: is it this very request's secret? */
    bool mine = false;
    kp_status look = s_has_token(a, full, token, &mine);
    if (look != KP_OK)
        return st == KP_ERR_EXISTS ? KP_ERR_EXISTS : look;
    if (mine)
        return KP_OK;
    return st == KP_ERR_EXISTS ? KP_ERR_EXISTS : st;
}

kp_status kp_aws_sm_ss_put(void *inst, const char *name, const kp_secret *value,
                           const kp_meta *meta, size_t nmeta, uint32_t *version)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && value != NULL && version != NULL, KP_ERR_INVALID_ARG);
    char full[S_NAME_MAX];
    KP_GUARD(kp_aws_version_name(a, name, 0, full, sizeof(full)));
    KP_GUARD(kp_aws_meta_check(a, meta, nmeta));
    size_t len = a->up->secret_len(value);
    if (len == 0 || len > KP_AWS_SM_VALUE_MAX)
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "secretsmanager: %s is %zu bytes; a secret holds 1 to %d", name, len,
                          KP_AWS_SM_VALUE_MAX);
    kp_aws_begin(a, false);
    kp_status st = KP_ERR_EXISTS;
    uint32_t floor = 0;
    for (int tries = 0; st == KP_ERR_EXISTS && tries < S_PUT_TRIES; tries++) {
        kp_aws_vlist l = {0};
        st = s_versions(a, 0, name, &l);
        uint32_t n = kp_aws_vlist_last(&l, name) + 1;
        kp_aws_vlist_free(&l);
        n = n > floor ? n : floor;
        if (st == KP_OK)
            st = s_put_at(a, name, n, meta, nmeta, value);
        if (st == KP_OK)
            *version = n;
        floor = n + 1; /* a name held by a secret the listing does not show */
    }
    if (st == KP_ERR_EXISTS)
        st = kp_aws_err(a, KP_ERR_CONFLICT,
                        "secretsmanager: %s: other writers took %d version numbers in a row; try "
                        "again",
                        name, S_PUT_TRIES);
    kp_aws_end(a);
    return st;
}

/* One version as read. */
typedef struct s_read {
    kp_secret_info info;
    json_t *desc; /* the parsed Description */
    kp_meta meta[KP_AWS_META_MAX + 1];
    size_t nmeta;
    char gap[KP_GAP_MAX];
} s_read;

static void s_read_clear(s_read *r)
{
    json_decref(r->desc);
    memset(r, 0, sizeof(*r));
}

/* info and metadata from a secret's Name, Description and CreatedDate (DescribeSecret or a
 * ListSecrets entry). KP_ERR_INTEGRITY when the Description is not keyplane's. */
static kp_status s_take(kp_aws_inst *a, const kp_aws_ventry *e, json_t *secret, s_read *r)
{
    const char *d = json_string_value(json_object_get(secret, "Description"));
    snprintf(r->info.name, sizeof(r->info.name), "%s", e->name);
    r->info.version = e->version;
    r->info.created = (int64_t)json_number_value(json_object_get(secret, "CreatedDate"));
    r->desc = d != NULL ? json_loads(d, 0, NULL) : NULL;
    json_t *size = json_object_get(r->desc, "size"), *meta = json_object_get(r->desc, "meta");
    if (json_integer_value(json_object_get(r->desc, "keyplane")) != 1 || !json_is_integer(size) ||
        !json_is_object(meta) || json_object_size(meta) > KP_AWS_META_MAX)
        return kp_aws_err(a, KP_ERR_INTEGRITY,
                          "secretsmanager: %s v%u: its Description is not the one keyplane writes",
                          e->name, e->version);
    r->info.size = (uint64_t)json_integer_value(size);
    const char *k;
    json_t *v;
    json_object_foreach(meta, k, v)
    {
        if (!json_is_string(v))
            return kp_aws_err(a, KP_ERR_INTEGRITY,
                              "secretsmanager: %s v%u: metadata %s is not text", e->name,
                              e->version, k);
        r->meta[r->nmeta++] = (kp_meta){k, json_string_value(v)};
    }
    return KP_OK;
}

/* Appends one finding to the gap line. */
static void s_gap_add(s_read *r, const char *fmt, const char *region, const char *detail)
{
    size_t at = strlen(r->gap);
    if (at > 0 && at + 2 < sizeof(r->gap))
        at += (size_t)snprintf(r->gap + at, sizeof(r->gap) - at, "; ");
    if (at < sizeof(r->gap))
        snprintf(r->gap + at, sizeof(r->gap) - at, fmt, region, detail);
}

/* Whether a KMS key Secrets Manager reports is the configured one (an id, alias or ARN of it). */
static bool s_same_key(const char *want, const char *got)
{
    if (want[0] == '\0')
        return true;
    if (got == NULL)
        return false;
    size_t wl = strlen(want), gl = strlen(got);
    return strcmp(want, got) == 0 ||
           (gl > wl && strcmp(got + gl - wl, want) == 0 && (got[gl - wl - 1] == '/'));
}

/* The replicas of the secret: InSync under their keys, and the same version in their region. */
static void s_prove_replicas(kp_aws_inst *a, const char *full, const char *token,
                             const kp_secret *value, json_t *desc, s_read *r)
{
    const char *key = json_string_value(json_object_get(desc, "KmsKeyId"));
    if (!s_same_key(a->kms_key, key))
        s_gap_add(r, "encrypted under %s, not %s", key != NULL ? key : "aws/secretsmanager",
                  a->kms_key);
    json_t *status = json_object_get(desc, "ReplicationStatus");
    for (size_t i = 0; i < a->nreplicas; i++) {
        const kp_aws_replica *rep = &a->replicas[i];
        json_t *item, *found = NULL;
        size_t k;
        json_array_foreach(status, k, item)
        {
            const char *region = json_string_value(json_object_get(item, "Region"));
            if (region != NULL && strcmp(region, rep->region) == 0)
                found = item;
        }
        const char *s = json_string_value(json_object_get(found, "Status"));
        const char *msg = json_string_value(json_object_get(found, "StatusMessage"));
        if (found == NULL) {
            char fix[KP_GAP_MAX];
            snprintf(fix, sizeof(fix),
                     " (aws secretsmanager replicate-secret-to-regions --secret-id %.100s "
                     "--add-replica-regions Region=%s,KmsKeyId=...)",
                     full, rep->region);
            s_gap_add(r, "not replicated to %s%s", rep->region, fix);
            continue;
        }
        if (s == NULL || strcmp(s, "InSync") != 0) {
            char why[200];
            snprintf(why, sizeof(why), "%s%s%.120s", s != NULL ? s : "no status",
                     msg != NULL ? ": " : "", msg != NULL ? msg : "");
            s_gap_add(r, "the replica in %s is %s", rep->region, why);
            continue;
        }
        if (!s_same_key(rep->kms_key, json_string_value(json_object_get(found, "KmsKeyId")))) {
            s_gap_add(r, "the replica in %s is under another KMS key than %s", rep->region,
                      rep->kms_key);
            continue;
        }
        kp_secret *v = NULL;
        char id[80];
        kp_status st = kp_aws_sm_value(a, i + 1, full, token, &v, id);
        bool same = st == KP_OK && strcmp(id, token) == 0 &&
                    a->up->secret_len(v) == a->up->secret_len(value) &&
                    CRYPTO_memcmp(a->up->secret_cdata(v), a->up->secret_cdata(value),
                                  a->up->secret_len(value)) == 0;
        a->up->secret_free(v);
        if (!same) {
            char why[KP_ERROR_MAX];
            snprintf(why, sizeof(why), "%.160s",
                     st != KP_OK ? a->up->get_error(a->h) : "it holds another value");
            s_gap_add(r, "the replica in %s cannot be read there (%s)", rep->region, why);
        }
    }
}

/* Token match: collects the ids ListSecretVersionIds gives. */
typedef struct s_ids {
    char ids[16][80];
    size_t n;
} s_ids;

static kp_status s_id(void *arg, const char *id)
{
    s_ids *x = arg;
    if (x->n < 16 && strlen(id) >= 32 && strlen(id) <= 64)
        snprintf(x->ids[x->n++], sizeof(x->ids[0]), "%s", id);
    return KP_OK;
}

/* The value keyplane wrote to full (in region replica): the version whose id is the token its
 * Description names. AWSCURRENT first; when it moved to a version keyplane did not write, the
 * versions are searched. */
static kp_status s_value(kp_aws_inst *a, size_t replica, const char *full, const char *token,
                         kp_secret **value, s_read *r)
{
    char id[80];
    KP_GUARD(kp_aws_sm_value(a, replica, full, NULL, value, id));
    if (strcmp(id, token) == 0)
        return KP_OK;
    a->up->secret_free(*value);
    *value = NULL;
    s_ids ids = {0};
    KP_GUARD(kp_aws_sm_version_ids(a, replica, full, s_id, &ids));
    for (size_t i = 0; i < ids.n; i++) {
        if (strcmp(ids.ids[i], token) != 0)
            continue;
        KP_GUARD(kp_aws_sm_value(a, replica, full, token, value, id));
        s_gap_add(r, "AWSCURRENT of %s was moved to a version keyplane did not write%s", full, "");
        return KP_OK;
    }
    return kp_aws_err(a, KP_ERR_INTEGRITY,
                      "secretsmanager %s: the version keyplane wrote is gone (changed outside "
                      "keyplane)",
                      full);
}

/* Whether a failure in one region sends the read to the next. */
static bool s_failover(kp_status st)
{
    return st == KP_ERR_UNAVAILABLE || st == KP_ERR_TIMEOUT || st == KP_ERR_THROTTLED;
}

static kp_status s_get_in(kp_aws_inst *a, size_t replica, const char *name, uint32_t version,
                          kp_secret **value, s_read *r)
{
    if (version == 0) {
        kp_aws_vlist l = {0};
        kp_status st = s_versions(a, replica, name, &l);
        version = kp_aws_vlist_last(&l, name);
        kp_aws_vlist_free(&l);
        KP_GUARD(st);
        if (version == 0)
            return kp_aws_err(a, KP_ERR_NOT_FOUND, "secretsmanager: no secret %s", name);
    }
    char full[S_NAME_MAX];
    KP_GUARD(kp_aws_version_name(a, name, version, full, sizeof(full)));
    json_t *desc = NULL;
    kp_status st = kp_aws_sm_describe(a, replica, full, &desc);
    if (st == KP_ERR_NOT_FOUND)
        st = kp_aws_err(a, st, "secretsmanager: %s v%u: not found", name, version);
    kp_aws_ventry e = {.version = version};
    snprintf(e.name, sizeof(e.name), "%s", name);
    if (st == KP_OK)
        st = s_take(a, &e, desc, r);
    const char *token = json_string_value(json_object_get(r->desc, "token"));
    if (st == KP_OK && (token == NULL || strlen(token) < 32 || strlen(token) > 64))
        st = kp_aws_err(a, KP_ERR_INTEGRITY,
                        "secretsmanager: %s v%u: its Description names no version token", name,
                        version);
    if (st == KP_OK)
        st = s_value(a, replica, full, token, value, r);
    if (st == KP_OK && replica == 0)
        s_prove_replicas(a, full, token, *value, desc, r);
    json_decref(desc);
    if (st == KP_OK && r->gap[0] != '\0')
        r->meta[r->nmeta++] = (kp_meta){KP_META_GAP, r->gap};
    return st;
}

kp_status kp_aws_sm_ss_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                           kp_secret_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && value != NULL, KP_ERR_INVALID_ARG);
    *value = NULL;
    char full[S_NAME_MAX];
    KP_GUARD(kp_aws_version_name(a, name, version, full, sizeof(full)));
    s_read *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_aws_begin(a, true);
    kp_status st = KP_ERR_UNAVAILABLE;
    for (size_t i = 0; s_failover(st) && i <= a->nreplicas; i++) {
        s_read_clear(r);
        a->up->secret_free(*value);
        *value = NULL;
        if (i > 0) /* each region gets its own budget */
            a->deadline = kpk_http_clock_ms() + a->deadline_ms;
        st = s_get_in(a, i, name, version, value, r);
    }
    kp_aws_end(a);
    if (st == KP_OK && visit != NULL)
        st = visit(arg, &r->info, r->meta, r->nmeta);
    s_read_clear(r);
    free(r);
    if (st != KP_OK) {
        a->up->secret_free(*value);
        *value = NULL;
    }
    return st;
}

/* The listing in one region: every version with its metadata, from ListSecrets alone. */
typedef struct s_listed {
    kp_aws_inst *a;
    const char *want;
    s_read *reads;
    size_t n, cap;
} s_listed;

static kp_status s_listed_one(void *arg, json_t *secret)
{
    s_listed *x = arg;
    const char *full = json_string_value(json_object_get(secret, "Name"));
    kp_aws_ventry e;
    memset(&e, 0, sizeof(e));
    if (full == NULL || !kp_aws_version_parse(x->a, full, e.name, &e.version) ||
        (x->want != NULL && strcmp(e.name, x->want) != 0))
        return KP_OK;
    if (x->n == x->cap) {
        size_t cap = x->cap > 0 ? x->cap * 2 : 16;
        s_read *nr = realloc(x->reads, cap * sizeof(*nr));
        if (nr == NULL)
            return kp_aws_err(x->a, KP_ERR_NOMEM, "out of memory");
        x->reads = nr;
        x->cap = cap;
    }
    s_read *r = &x->reads[x->n];
    memset(r, 0, sizeof(*r));
    if (s_take(x->a, &e, secret, r) != KP_OK) {
        s_read_clear(r); /* not keyplane's Description: not a version (a read says why) */
        return KP_OK;
    }
    x->n++;
    return KP_OK;
}

static int s_read_cmp(const void *p, const void *q)
{
    const s_read *a = p, *b = q;
    int c = strcmp(a->info.name, b->info.name);
    return c != 0 ? c : a->info.version < b->info.version ? -1 : a->info.version > b->info.version;
}

kp_status kp_aws_sm_ss_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && visit != NULL, KP_ERR_INVALID_ARG);
    char prefix[S_NAME_MAX];
    if (name != NULL)
        KP_GUARD(kp_aws_version_name(a, name, 0, prefix, sizeof(prefix)));
    else
        snprintf(prefix, sizeof(prefix), "%s", a->prefix);
    s_listed x = {a, name, NULL, 0, 0};
    kp_aws_begin(a, true);
    kp_status st = KP_ERR_UNAVAILABLE;
    for (size_t i = 0; s_failover(st) && i <= a->nreplicas; i++) {
        for (size_t k = 0; k < x.n; k++)
            s_read_clear(&x.reads[k]);
        x.n = 0;
        if (i > 0)
            a->deadline = kpk_http_clock_ms() + a->deadline_ms;
        st = kp_aws_sm_list(a, i, prefix, s_listed_one, &x);
    }
    kp_aws_end(a);
    if (st == KP_OK && x.n > 1)
        qsort(x.reads, x.n, sizeof(x.reads[0]), s_read_cmp);
    for (size_t i = 0; st == KP_OK && i < x.n; i++) {
        if (i > 0 && s_read_cmp(&x.reads[i - 1], &x.reads[i]) == 0)
            continue;
        st = visit(arg, &x.reads[i].info, x.reads[i].meta, x.reads[i].nmeta);
    }
    for (size_t k = 0; k < x.n; k++)
        s_read_clear(&x.reads[k]);
    free(x.reads);
    return st;
}
