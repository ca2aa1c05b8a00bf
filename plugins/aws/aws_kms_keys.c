/*
 * The KMS keystore's keys (the `kms` instance kind, KP_CAP_KEYSTORE): which KMS key is version N
 * of a keyplane key, and what it is. KMS keys have no versions of their own, so each version is
 * a key of its own, named by an alias (alias/<prefix><NAME>/vN: the name a reader looks up, and
 * the claim on the version: CreateAlias fails when the alias exists) and tagged with the name,
 * the version and the fingerprint the import expects (what a person, or a rerun adopting a key
 * whose import was cut short, goes by). A key whose material is not imported yet is
 * PendingImport, and no reader sees it. The fingerprint a reader is told is that of the public
 * key KMS answers for the key itself (GetPublicKey), never the tag's, when the key is enabled
 * (KMS refuses GetPublicKey of a disabled key: then the tag's, which the core checks again
 * before it uses the key). KMS API reference: DescribeKey, ListAliases, ListResourceTags,
 * GetPublicKey.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

kp_status kp_aws_kms_alias(kp_aws_inst *a, const char *name, uint32_t version, char *out,
                           size_t cap)
{
    if (name == NULL || !kpk_key_name_valid(name))
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "kms: '%.64s' is not a key name (1 to 127 of A-Z a-z 0-9 . _ -)",
                          name != NULL ? name : "");
    char enc[2 * KP_NAME_MAX];
    size_t n = 0;
    for (const char *p = name; *p != '\0'; p++) {
        if (*p == '.' || *p == '_') {
            enc[n++] = '_';
            enc[n++] = *p == '.' ? '-' : '_';
        } else {
            enc[n++] = *p;
        }
    }
    enc[n] = '\0';
    int w = version == 0 ? snprintf(out, cap, "alias/%s%s/v", a->prefix, enc)
                         : snprintf(out, cap, "alias/%s%s/v%u", a->prefix, enc, version);
    if (w < 0 || (size_t)w >= cap || w > 256)
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "kms: the alias of %s v%u would be longer than KMS's 256 characters",
                          name, version);
    return KP_OK;
}

/* The name and version an alias of this instance's prefix stands for. */
static bool s_alias_parse(const kp_aws_inst *a, const char *alias, char name[KP_NAME_MAX],
                          uint32_t *version)
{
    size_t pl = strlen(a->prefix);
    if (strncmp(alias, "alias/", 6) != 0 || strncmp(alias + 6, a->prefix, pl) != 0)
        return false;
    const char *enc = alias + 6 + pl, *v = strrchr(enc, '/');
    if (v == NULL || v[1] != 'v' || v[2] < '1' || v[2] > '9' ||
        strspn(v + 2, "0123456789") != strlen(v + 2))
        return false;
    errno = 0;
    unsigned long n = strtoul(v + 2, NULL, 10);
    if (errno != 0 || n > UINT32_MAX)
        return false;
    size_t o = 0;
    for (const char *p = enc; p < v; p++) {
        char c = *p;
        if (c == '_') {
            p++;
            if (p >= v || (*p != '_' && *p != '-'))
                return false;
            c = *p == '-' ? '.' : '_';
        }
        if (o + 1 >= KP_NAME_MAX)
            return false;
        name[o++] = c;
    }
    name[o] = '\0';
    *version = (uint32_t)n;
    return kpk_key_name_valid(name);
}

static void s_copy(char *dst, size_t cap, json_t *j, const char *field)
{
    const char *v = json_string_value(json_object_get(j, field));
    snprintf(dst, cap, "%s", v != NULL ? v : "");
}

kp_status kp_aws_kms_describe(kp_aws_inst *a, const char *ref, kp_aws_kms_key *k)
{
    memset(k, 0, sizeof(*k));
    json_t *j = json_pack("{s:s}", "KeyId", ref), *out = NULL;
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_kms_call(a, "DescribeKey", j, false, &out, NULL, 0);
    json_decref(j);
    json_t *m = json_object_get(out, "KeyMetadata");
    if (st == KP_OK) {
        s_copy(k->arn, sizeof(k->arn), m, "Arn");
        s_copy(k->state, sizeof(k->state), m, "KeyState");
        s_copy(k->spec, sizeof(k->spec), m, "KeySpec");
        s_copy(k->usage, sizeof(k->usage), m, "KeyUsage");
        s_copy(k->origin, sizeof(k->origin), m, "Origin");
        s_copy(k->expiration, sizeof(k->expiration), m, "ExpirationModel");
        k->created = (int64_t)json_number_value(json_object_get(m, "CreationDate"));
        k->deletion = (int64_t)json_number_value(json_object_get(m, "DeletionDate"));
        if (strncmp(k->arn, "arn:", 4) != 0 || k->state[0] == '\0')
            st = kp_aws_err(a, KP_ERR_BACKEND,
                            "kms: DescribeKey of %s answered no key ARN or state", ref);
    }
    json_decref(out);
    return st;
}

kp_status kp_aws_kms_tag(kp_aws_inst *a, const char *arn, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *j = json_pack("{s:s, s:i}", "KeyId", arn, "Limit", 50), *ans = NULL;
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_kms_call(a, "ListResourceTags", j, false, &ans, NULL, 0);
    json_decref(j);
    size_t i;
    json_t *t;
    /* a key has at most 50 tags: one page holds them all */
    json_array_foreach(json_object_get(ans, "Tags"), i, t)
    {
        const char *k = json_string_value(json_object_get(t, "TagKey"));
        if (st == KP_OK && k != NULL && strcmp(k, key) == 0)
            s_copy(out, cap, t, "TagValue");
    }
    json_decref(ans);
    return st;
}

/* The cached public key of arn, or NULL. */
static size_t s_cached(kp_aws_inst *a, const char *arn)
{
    for (size_t i = 0; i < KP_AWS_SPKI_CACHE; i++)
        if (a->spki[i].len > 0 && strcmp(a->spki[i].arn, arn) == 0)
            return i + 1;
    return 0;
}

/* GetPublicKey of ref (an ARN or an alias): the key is cached under the ARN KMS names, and
 * k (when not NULL) receives what the answer tells of the key (enabled: KMS answers only for an
 * enabled key). code receives the error code of a failure. */
static kp_status s_get_public(kp_aws_inst *a, const char *ref, kp_aws_kms_key *k, char *code,
                              size_t codelen)
{
    json_t *j = json_pack("{s:s}", "KeyId", ref), *out = NULL;
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_kms_call(a, "GetPublicKey", j, false, &out, code, codelen);
    json_decref(j);
    const char *b64 = json_string_value(json_object_get(out, "PublicKey"));
    const char *arn = json_string_value(json_object_get(out, "KeyId"));
    uint8_t der[KP_AWS_SPKI_MAX];
    size_t n = 0, slot = a->spki_next;
    if (st == KP_OK && (b64 == NULL || arn == NULL || strncmp(arn, "arn:", 4) != 0 ||
                        strlen(arn) >= sizeof(a->spki[slot].arn) ||
                        kpk_b64_decoded_max(strlen(b64)) > sizeof(der) ||
                        kpk_b64_decode(b64, strlen(b64), der, &n) != KP_OK || n == 0))
        st = kp_aws_err(a, KP_ERR_BACKEND, "kms: GetPublicKey of %s answered no usable key", ref);
    if (st == KP_OK && s_cached(a, arn) == 0) {
        snprintf(a->spki[slot].arn, sizeof(a->spki[slot].arn), "%s", arn);
        memcpy(a->spki[slot].der, der, n);
        a->spki[slot].len = n;
        a->spki_next = (slot + 1) % KP_AWS_SPKI_CACHE;
    }
    if (st == KP_OK && k != NULL) {
        memset(k, 0, sizeof(*k));
        snprintf(k->arn, sizeof(k->arn), "%s", arn);
        snprintf(k->state, sizeof(k->state), "Enabled");
        s_copy(k->spec, sizeof(k->spec), out, "KeySpec");
        s_copy(k->usage, sizeof(k->usage), out, "KeyUsage");
    }
    json_decref(out);
    return st;
}

kp_status kp_aws_kms_public(kp_aws_inst *a, const char *arn, const uint8_t **spki, size_t *len)
{
    size_t hit = s_cached(a, arn);
    if (hit == 0) {
        KP_GUARD(s_get_public(a, arn, NULL, NULL, 0));
        hit = s_cached(a, arn);
        if (hit == 0)
            return kp_aws_err(a, KP_ERR_BACKEND, "kms: GetPublicKey of %s named another key", arn);
    }
    *spki = a->spki[hit - 1].der;
    *len = a->spki[hit - 1].len;
    return KP_OK;
}

typedef struct s_alias_walk {
    kp_aws_inst *a;
    const char *name;
    kp_aws_vlist *l;
} s_alias_walk;

static kp_status s_alias_item(void *arg, json_t *e)
{
    s_alias_walk *w = arg;
    const char *alias = json_string_value(json_object_get(e, "AliasName"));
    const char *target = json_string_value(json_object_get(e, "TargetKeyId"));
    char n[KP_NAME_MAX];
    uint32_t v = 0;
    if (alias == NULL || target == NULL || !s_alias_parse(w->a, alias, n, &v) ||
        (w->name != NULL && strcmp(n, w->name) != 0))
        return KP_OK;
    return kp_aws_vlist_add(w->l, n, v, target);
}

kp_status kp_aws_kms_versions(kp_aws_inst *a, const char *name, kp_aws_vlist *l)
{
    s_alias_walk w = {.a = a, .name = name, .l = l};
    kp_status st = kp_aws_kms_pages(a, "ListAliases", "Aliases", 100, false, s_alias_item, &w);
    if (st == KP_OK)
        kp_aws_vlist_sort(l);
    return st;
}

kp_status kp_aws_kms_pin(kp_aws_inst *a, const char *alias, const char *arn, bool replace)
{
    size_t slot = a->pin_next;
    bool found = false;
    for (size_t i = 0; i < KP_AWS_PINS && !found; i++) {
        if (a->pins[i].alias[0] != '\0' && strcmp(a->pins[i].alias, alias) == 0) {
            slot = i;
            found = true;
        }
    }
    if (found && strcmp(a->pins[slot].arn, arn) != 0 && !replace)
        return kp_aws_err(a, KP_ERR_INTEGRITY,
                          "kms (%s): %s names key %s now, key %s when this instance first looked "
                          "it up: the alias was re-pointed (UpdateAlias), so it is not used (if "
                          "that was meant, start again)",
                          a->region, alias, arn, a->pins[slot].arn);
    if (strlen(alias) >= sizeof(a->pins[slot].alias) || strlen(arn) >= sizeof(a->pins[slot].arn))
        return kp_aws_err(a, KP_ERR_BACKEND, "kms (%s): alias or key ARN too long", a->region);
    snprintf(a->pins[slot].alias, sizeof(a->pins[slot].alias), "%s", alias);
    snprintf(a->pins[slot].arn, sizeof(a->pins[slot].arn), "%s", arn);
    if (!found)
        a->pin_next = (slot + 1) % KP_AWS_PINS;
    return KP_OK;
}

/* A key readers may see: its material is in (PendingImport is a claim, not a key). */
static bool s_visible(const kp_aws_kms_key *k)
{
    return strcmp(k->state, "PendingImport") != 0;
}

kp_status kp_aws_kms_find(kp_aws_inst *a, const char *name, uint32_t version, uint32_t *resolved,
                          kp_aws_kms_key *k)
{
    char alias[300];
    if (version != 0) {
        KP_GUARD(kp_aws_kms_alias(a, name, version, alias, sizeof(alias)));
        /* An enabled key is known from GetPublicKey alone, which the DEK path is allowed: the
         * key's other states (disabled, pending its import or its deletion) need DescribeKey. */
        char code[128] = "";
        kp_status st = s_get_public(a, alias, k, code, sizeof(code));
        if (strcmp(code, "DisabledException") == 0 || strcmp(code, "KMSInvalidStateException") == 0)
            st = kp_aws_kms_describe(a, alias, k);
        if (st == KP_OK && !s_visible(k))
            st = KP_ERR_NOT_FOUND;
        if (st == KP_ERR_NOT_FOUND)
            return kp_aws_err(a, KP_ERR_NOT_FOUND, "kms (%s): key %s v%u does not exist", a->region,
                              name, version);
        /* the core checks a GET's fingerprint, then wraps: both must meet the same key */
        if (st == KP_OK)
            st = kp_aws_kms_pin(a, alias, k->arn, false);
        *resolved = version;
        return st;
    }
    KP_GUARD(kp_aws_kms_alias(a, name, 1, alias, sizeof(alias))); /* the name's rule */
    kp_aws_vlist l = {0};
    kp_status st = kp_aws_kms_versions(a, name, &l), found = KP_ERR_NOT_FOUND;
    for (size_t i = l.n; st == KP_OK && found == KP_ERR_NOT_FOUND && i > 0; i--) {
        found = kp_aws_kms_describe(a, l.v[i - 1].id, k);
        if (found == KP_OK && !s_visible(k))
            found = KP_ERR_NOT_FOUND;
        if (found == KP_OK)
            *resolved = l.v[i - 1].version;
        else if (found != KP_ERR_NOT_FOUND)
            st = found;
    }
    kp_aws_vlist_free(&l);
    KP_GUARD(st);
    if (found == KP_ERR_NOT_FOUND)
        return kp_aws_err(a, KP_ERR_NOT_FOUND, "kms (%s): key %s has no version", a->region, name);
    KP_GUARD(kp_aws_kms_alias(a, name, *resolved, alias, sizeof(alias)));
    return kp_aws_kms_pin(a, alias, k->arn, false);
}

/* What would make this copy fail in a disaster, though KMS holds it. */
static void s_gap(const kp_aws_kms_key *k, char *gap, size_t cap)
{
    if (strcmp(k->state, "PendingDeletion") == 0) {
        char when[32] = "a date KMS did not say";
        time_t t = (time_t)k->deletion;
        struct tm tm;
        if (k->deletion > 0 && gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
        snprintf(gap, cap,
                 "KMS deletes the key on %s: aws kms cancel-key-deletion --key-id %.120s, then "
                 "aws kms enable-key of the same key",
                 when, k->arn);
    } else if (strcmp(k->state, "Disabled") == 0)
        snprintf(gap, cap, "the key is disabled: aws kms enable-key --key-id %.120s", k->arn);
    else if (strcmp(k->usage, "ENCRYPT_DECRYPT") != 0)
        snprintf(gap, cap, "the key's usage is %s, not ENCRYPT_DECRYPT: it cannot unwrap",
                 k->usage);
    else if (k->expiration[0] != '\0' && strcmp(k->expiration, "KEY_MATERIAL_DOES_NOT_EXPIRE") != 0)
        snprintf(gap, cap,
                 "its key material expires (%s): import it again with "
                 "KEY_MATERIAL_DOES_NOT_EXPIRE",
                 k->expiration);
    else
        gap[0] = '\0';
}

kp_status kp_aws_kms_info(kp_aws_inst *a, const char *name, uint32_t version,
                          const kp_aws_kms_key *k, kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    snprintf(info->name, sizeof(info->name), "%s", name);
    info->version = version;
    info->type = KP_KEY_RSA;
    info->bits = strcmp(k->spec, "RSA_2048") == 0   ? 2048
                 : strcmp(k->spec, "RSA_3072") == 0 ? 3072
                 : strcmp(k->spec, "RSA_4096") == 0 ? 4096
                                                    : 0;
    info->state = strcmp(k->state, "Enabled") == 0 ? KP_KEY_ENABLED : KP_KEY_DISABLED;
    info->created = k->created;
    snprintf(info->backend_id, sizeof(info->backend_id), "%s", k->arn);
    s_gap(k, info->gap, sizeof(info->gap));
    if (info->bits == 0)
        return kp_aws_err(a, KP_ERR_BACKEND,
                          "kms (%s): %s v%u is a %s key, not RSA: not a keyplane key", a->region,
                          name, version, k->spec);
    if (info->state == KP_KEY_ENABLED) {
        const uint8_t *spki = NULL;
        size_t len = 0;
        KP_GUARD(kp_aws_kms_public(a, k->arn, &spki, &len));
        if (kpk_fpr_spki(spki, len, info->fingerprint) != KP_OK)
            return kp_aws_err(a, KP_ERR_BACKEND,
                              "kms (%s): the public key of %s v%u is not a SubjectPublicKeyInfo",
                              a->region, name, version);
        return KP_OK;
    }
    char tag[KPK_FPR_HEX + 8];
    KP_GUARD(kp_aws_kms_tag(a, k->arn, KP_AWS_TAG_FPR, tag, sizeof(tag)));
    if (kpk_fpr_valid(tag))
        snprintf(info->fingerprint, sizeof(info->fingerprint), "%.64s", tag);
    return KP_OK;
}

kp_status kp_aws_kms_ks_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && info != NULL, KP_ERR_INVALID_ARG);
    kp_aws_kms_key k;
    kp_key_info got;
    uint32_t v = 0;
    kp_aws_begin(a, true);
    kp_status st = kp_aws_kms_find(a, name, version, &v, &k);
    if (st == KP_OK)
        st = kp_aws_kms_info(a, name, v, &k, &got);
    kp_aws_end(a);
    if (st == KP_OK)
        kp_key_info_put(info, &got);
    return st;
}

kp_status kp_aws_kms_spki(kp_aws_inst *a, const char *name, uint32_t version,
                          uint8_t spki[KP_AWS_SPKI_MAX], size_t *len)
{
    kp_aws_kms_key k;
    uint32_t v = 0;
    const uint8_t *der = NULL;
    kp_aws_begin(a, true);
    kp_status st = kp_aws_kms_find(a, name, version, &v, &k);
    if (st == KP_OK && strcmp(k.state, "Enabled") != 0)
        st =
            kp_aws_err(a, KP_ERR_DENIED, "kms (%s): key %s v%u is %s", a->region, name, v, k.state);
    if (st == KP_OK)
        st = kp_aws_kms_public(a, k.arn, &der, len);
    if (st == KP_OK)
        memcpy(spki, der, *len);
    kp_aws_end(a);
    return st;
}

kp_status kp_aws_kms_ks_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                                   size_t *len)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && len != NULL, KP_ERR_INVALID_ARG);
    uint8_t copy[KP_AWS_SPKI_MAX];
    size_t n = 0;
    KP_GUARD(kp_aws_kms_spki(a, name, version, copy, &n));
    uint8_t *dup = malloc(n);
    if (dup == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    memcpy(dup, copy, n);
    return kp_buffer_take(a->up, a->h, dup, n, spki, len, "the public key");
}

kp_status kp_aws_kms_ks_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && visit != NULL, KP_ERR_INVALID_ARG);
    char alias[300];
    if (name != NULL)
        KP_GUARD(kp_aws_kms_alias(a, name, 1, alias, sizeof(alias)));
    kp_aws_vlist l = {0};
    kp_key_info *infos = NULL;
    size_t n = 0;
    kp_aws_begin(a, true);
    kp_status st = kp_aws_kms_versions(a, name, &l);
    if (st == KP_OK && l.n > 0 && (infos = calloc(l.n, sizeof(*infos))) == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    for (size_t i = 0; st == KP_OK && i < l.n; i++) {
        kp_aws_kms_key k;
        kp_status d = kp_aws_kms_describe(a, l.v[i].id, &k);
        if (d == KP_ERR_NOT_FOUND || (d == KP_OK && !s_visible(&k)))
            continue; /* an alias left on a deleted key, a key pending its import */
        if (d == KP_OK && name == NULL && strncmp(k.spec, "RSA_", 4) != 0)
            continue; /* not a keyplane key (a GET of the version says so): it must not hide
                         every other key of the listing */
        st = d == KP_OK ? kp_aws_kms_info(a, l.v[i].name, l.v[i].version, &k, &infos[n]) : d;
        n += st == KP_OK;
    }
    kp_aws_end(a);
    kp_aws_vlist_free(&l);
    if (st == KP_OK && name != NULL && n == 0)
        st = kp_aws_err(a, KP_ERR_NOT_FOUND, "kms (%s): key %s has no version", a->region, name);
    for (size_t i = 0; st == KP_OK && i < n; i++)
        st = visit(arg, &infos[i]);
    free(infos);
    return st;
}
