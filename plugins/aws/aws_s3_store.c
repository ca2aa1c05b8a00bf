/*
 * The secret store in S3: version N of NAME is the object `<prefix>NAME/vN`, written once with
 * If-None-Match: * (two runners cannot both write N; nothing is ever overwritten), SSE-KMS under
 * the instance's key, the metadata as x-amz-meta-* with the store's own `store.put` (a nonce
 * that tells, after a lost answer, whether the object there is this put's). Reads report what
 * S3 says of the object's encryption: anything but aws:kms under the instance's own regional
 * key (a bucket default, a replication rule that re-encrypted it under another region's key) is
 * a `store.gap`, because in a disaster of that key's region the copy could not be read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_PUT_TRIES 8
#define S_NAME_MAX (KP_AWS_PREFIX_MAX + KP_NAME_MAX + 16)

/* The versions under prefix full ("<prefix>NAME/v" or the whole prefix) into l, sorted. */
static kp_status s_key(void *arg, const char *key)
{
    void **ctx = arg;
    kp_aws_inst *a = ctx[0];
    kp_aws_vlist *l = ctx[1];
    char name[KP_NAME_MAX];
    uint32_t v;
    if (!kp_aws_version_parse(a, key, name, &v))
        return KP_OK; /* not keyplane's */
    return kp_aws_vlist_add(l, name, v, key) == KP_OK
               ? KP_OK
               : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
}

static kp_status s_versions(kp_aws_inst *a, const char *name, kp_aws_vlist *l)
{
    char prefix[S_NAME_MAX];
    if (name != NULL)
        KP_GUARD(kp_aws_version_name(a, name, 0, prefix, sizeof(prefix)));
    else
        snprintf(prefix, sizeof(prefix), "%s", a->prefix);
    void *ctx[2] = {a, l};
    kp_status st = kp_aws_s3_list(a, prefix, s_key, ctx);
    kp_aws_vlist_sort(l);
    return st;
}

static const char *s_meta_get(const kp_aws_object *o, const char *key)
{
    for (size_t i = 0; i < o->nmeta; i++)
        if (strcmp(o->meta[i].key, key) == 0)
            return o->meta[i].value;
    return NULL;
}

/* Whether the object at key is this put's (its store.put is nonce). */
static kp_status s_mine(kp_aws_inst *a, const char *key, const char *nonce, bool *mine)
{
    kp_aws_object o;
    kp_status st = kp_aws_s3_get(a, key, &o, NULL);
    if (st == KP_ERR_NOT_FOUND)
        return st;
    KP_GUARD(st);
    const char *put = s_meta_get(&o, "store.put");
    *mine = put != NULL && strcmp(put, nonce) == 0;
    kp_aws_object_clear(&o);
    return KP_OK;
}

kp_status kp_aws_s3_ss_put(void *inst, const char *name, const kp_secret *value,
                           const kp_meta *meta, size_t nmeta, uint32_t *version)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && value != NULL && version != NULL, KP_ERR_INVALID_ARG);
    char key[S_NAME_MAX], nonce[37];
    KP_GUARD(kp_aws_version_name(a, name, 0, key, sizeof(key)));
    KP_GUARD(kp_aws_meta_check(a, meta, nmeta));
    if (!kpk_uuid4(nonce))
        return kp_aws_err(a, KP_ERR_CRYPTO, "no randomness for a put id");
    kp_meta all[KP_AWS_META_MAX + 1];
    if (nmeta > 0)
        memcpy(all, meta, nmeta * sizeof(*meta));
    all[nmeta] = (kp_meta){"store.put", nonce};
    kp_aws_begin(a, false);
    kp_status st = KP_ERR_EXISTS;
    for (int tries = 0; st == KP_ERR_EXISTS && tries < S_PUT_TRIES; tries++) {
        kp_aws_vlist l = {0};
        st = s_versions(a, name, &l);
        uint32_t n = kp_aws_vlist_last(&l, name) + 1;
        kp_aws_vlist_free(&l);
        if (st == KP_OK)
            st = kp_aws_version_name(a, name, n, key, sizeof(key));
        if (st == KP_OK)
            st = kp_aws_s3_create(a, key, a->up->secret_cdata(value), a->up->secret_len(value), all,
                                  nmeta + 1);
        if (st == KP_ERR_TIMEOUT || st == KP_ERR_UNAVAILABLE || st == KP_ERR_CONFLICT) {
            /* no answer, or one in flight: the object may be this put's */
            bool mine = false;
            kp_status look = s_mine(a, key, nonce, &mine);
            if (look == KP_OK)
                st = mine ? KP_OK : KP_ERR_EXISTS;
            else if (look == KP_ERR_NOT_FOUND && st == KP_ERR_CONFLICT)
                st = KP_ERR_EXISTS; /* the other writer failed: try the number again */
        }
        if (st == KP_OK)
            *version = n;
    }
    if (st == KP_ERR_EXISTS)
        st = kp_aws_err(a, KP_ERR_CONFLICT,
                        "s3 %s: %s: other writers took %d version numbers in a row; try again",
                        a->bucket, name, S_PUT_TRIES);
    kp_aws_end(a);
    return st;
}

/* One version as read: info, metadata without the store's, and its gap. */
typedef struct s_read {
    kp_secret_info info;
    kp_aws_object o;
    kp_meta meta[KP_AWS_META_MAX + 1];
    size_t nmeta;
    char gap[KP_GAP_MAX];
} s_read;

/* The gap of an object: not aws:kms, or a key that is not the instance's. */
static void s_gap(kp_aws_inst *a, s_read *r)
{
    const kp_aws_object *o = &r->o;
    r->gap[0] = '\0';
    if (strcmp(o->sse, "aws:kms") != 0) {
        snprintf(r->gap, sizeof(r->gap),
                 "v%u is encrypted with %.31s, not SSE-KMS under %.90s: put it again with that key",
                 r->info.version, o->sse[0] != '\0' ? o->sse : "no server-side encryption",
                 a->kms_key);
        return;
    }
    if (!kp_aws_kms_key_is(a, o->kms_key))
        snprintf(r->gap, sizeof(r->gap),
                 "v%u is under %.90s, not %.60s of %.31s: unreadable if that key's region is lost",
                 r->info.version, o->kms_key, a->kms_key, a->region);
}

static kp_status s_read_one(kp_aws_inst *a, const kp_aws_ventry *e, kp_secret **value, s_read *r)
{
    memset(r, 0, sizeof(*r));
    kp_status st = kp_aws_s3_get(a, e->id, &r->o, value);
    if (st == KP_ERR_NOT_FOUND)
        return kp_aws_err(a, st, "s3 %s: %s v%u: not found", a->bucket, e->name, e->version);
    KP_GUARD(st);
    snprintf(r->info.name, sizeof(r->info.name), "%s", e->name);
    r->info.version = e->version;
    r->info.created = r->o.created;
    r->info.size = r->o.size;
    for (size_t i = 0; i < r->o.nmeta && r->nmeta < KP_AWS_META_MAX; i++)
        if (strncmp(r->o.meta[i].key, KP_META_STORE, strlen(KP_META_STORE)) != 0)
            r->meta[r->nmeta++] = r->o.meta[i];
    s_gap(a, r);
    if (r->gap[0] != '\0')
        r->meta[r->nmeta++] = (kp_meta){KP_META_GAP, r->gap};
    return KP_OK;
}

kp_status kp_aws_s3_ss_get(void *inst, const char *name, uint32_t version, kp_secret **value,
                           kp_secret_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && value != NULL, KP_ERR_INVALID_ARG);
    *value = NULL;
    char key[S_NAME_MAX];
    KP_GUARD(kp_aws_version_name(a, name, version, key, sizeof(key)));
    kp_aws_begin(a, true);
    kp_status st = KP_OK;
    if (version == 0) {
        kp_aws_vlist l = {0};
        st = s_versions(a, name, &l);
        version = kp_aws_vlist_last(&l, name);
        kp_aws_vlist_free(&l);
        if (st == KP_OK && version == 0)
            st = kp_aws_err(a, KP_ERR_NOT_FOUND, "s3 %s: no secret %s", a->bucket, name);
        if (st == KP_OK)
            st = kp_aws_version_name(a, name, version, key, sizeof(key));
    }
    if (st == KP_OK && visit == NULL) { /* the value alone: one GET, no headers read */
        st = kp_aws_s3_get(a, key, NULL, value);
        if (st == KP_ERR_NOT_FOUND)
            st = kp_aws_err(a, st, "s3 %s: %s v%u: not found", a->bucket, name, version);
        kp_aws_end(a);
        return st;
    }
    kp_aws_ventry e = {.version = version, .id = key};
    snprintf(e.name, sizeof(e.name), "%s", name);
    s_read *r = calloc(1, sizeof(*r));
    if (st == KP_OK && r == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK)
        st = s_read_one(a, &e, value, r);
    kp_aws_end(a);
    if (st == KP_OK && visit != NULL)
        st = visit(arg, &r->info, r->meta, r->nmeta);
    if (r != NULL)
        kp_aws_object_clear(&r->o);
    free(r);
    if (st != KP_OK) {
        a->up->secret_free(*value);
        *value = NULL;
    }
    return st;
}

kp_status kp_aws_s3_ss_list(void *inst, const char *name, kp_secret_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && visit != NULL, KP_ERR_INVALID_ARG);
    kp_aws_vlist l = {0};
    kp_aws_begin(a, true);
    kp_status st = s_versions(a, name, &l);
    s_read *reads = st == KP_OK && l.n > 0 ? calloc(l.n, sizeof(*reads)) : NULL;
    if (st == KP_OK && l.n > 0 && reads == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    size_t done = 0;
    for (; st == KP_OK && done < l.n; done++) {
        st = s_read_one(a, &l.v[done], NULL, &reads[done]);
        if (st == KP_ERR_NOT_FOUND) { /* gone between the listing and the head */
            kp_aws_object_clear(&reads[done].o);
            reads[done].info.version = 0;
            st = KP_OK;
        }
    }
    kp_aws_end(a);
    /* visited outside the lock: a visitor may call this instance again */
    for (size_t i = 0; st == KP_OK && i < done; i++)
        if (reads[i].info.version != 0)
            st = visit(arg, &reads[i].info, reads[i].meta, reads[i].nmeta);
    for (size_t i = 0; i < done; i++)
        kp_aws_object_clear(&reads[i].o);
    free(reads);
    kp_aws_vlist_free(&l);
    return st;
}
