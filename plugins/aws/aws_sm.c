/*
 * AWS Secrets Manager calls (the Secrets Manager API reference): CreateSecret with its
 * replicas, GetSecretValue, DescribeSecret, ListSecrets and ListSecretVersionIds with their
 * paging. A secret value never sits in a jansson object: request bodies are written around it
 * into memory that is wiped, and the value of an answer is copied out and wiped in place before
 * the answer is freed.
 *
 * ClientRequestToken. Each secret keyplane creates holds one version whose id is a random token
 * its Description names (aws_sm_store.c): a CreateSecret repeated after a lost answer is the
 * same request, and a reader can tell keyplane's version from one written later by someone
 * else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_PAGE "100"

void kp_aws_sm_target(const kp_aws_inst *a, size_t replica, kp_aws_target *t)
{
    t->service = "secretsmanager";
    t->prefix = "secretsmanager";
    t->region = replica == 0 ? a->region : a->replicas[replica - 1].region;
    t->endpoint = replica == 0 ? a->endpoint : a->replicas[replica - 1].endpoint;
}

/* Whether value is text Secrets Manager keeps as SecretString: UTF-8 without NUL. */
static bool s_is_text(const uint8_t *v, size_t len)
{
    if (memchr(v, 0, len) != NULL)
        return false;
    /* jansson's own UTF-8 check, on a copy it is not kept in */
    json_t *s = json_stringn((const char *)v, len);
    bool ok = s != NULL;
    if (s != NULL) {
        OPENSSL_cleanse((void *)json_string_value(s), len);
        json_decref(s);
    }
    return ok;
}

/* The JSON text of the value member: "SecretString":"..." (escaped) or "SecretBinary":"b64",
 * malloc'd (the caller wipes and frees it). */
static kp_status s_value_member(kp_aws_inst *a, const uint8_t *v, size_t len, char **out,
                                size_t *outlen)
{
    if (!s_is_text(v, len)) {
        size_t cap = strlen("\"SecretBinary\":\"\"") + kpk_b64_encoded_size(len) + 1;
        char *m = malloc(cap);
        if (m == NULL)
            return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        size_t n = (size_t)snprintf(m, cap, "\"SecretBinary\":\"");
        n += kpk_b64_encode(v, len, m + n);
        n += (size_t)snprintf(m + n, cap - n, "\"");
        *out = m;
        *outlen = n;
        return KP_OK;
    }
    size_t cap = strlen("\"SecretString\":\"\"") + 6 * len + 1;
    char *m = malloc(cap);
    if (m == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    size_t n = (size_t)snprintf(m, cap, "\"SecretString\":\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = v[i];
        if (c == '"' || c == '\\')
            n += (size_t)snprintf(m + n, cap - n, "\\%c", c);
        else if (c < 0x20)
            n += (size_t)snprintf(m + n, cap - n, "\\u%04x", c);
        else
            m[n++] = (char)c;
    }
    n += (size_t)snprintf(m + n, cap - n, "\"");
    *out = m;
    *outlen = n;
    return KP_OK;
}

kp_status kp_aws_sm_create(kp_aws_inst *a, const char *secret_name, const char *token,
                           const char *description, const kp_secret *value, char *code,
                           size_t codelen)
{
    json_t *j = json_pack("{s:s, s:s, s:s}", "Name", secret_name, "ClientRequestToken", token,
                          "Description", description);
    if (j != NULL && a->kms_key[0] != '\0')
        json_object_set_new(j, "KmsKeyId", json_string(a->kms_key));
    json_t *reps = a->nreplicas > 0 ? json_array() : NULL;
    for (size_t i = 0; reps != NULL && i < a->nreplicas; i++)
        json_array_append_new(reps, json_pack("{s:s, s:s}", "Region", a->replicas[i].region,
                                              "KmsKeyId", a->replicas[i].kms_key));
    if (j != NULL && reps != NULL)
        json_object_set_new(j, "AddReplicaRegions", reps);
    char *head = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    char *member = NULL;
    size_t mlen = 0;
    kp_status st = head != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK)
        st =
            s_value_member(a, a->up->secret_cdata(value), a->up->secret_len(value), &member, &mlen);
    /* {head..., member}: the object's closing brace replaced */
    size_t hl = head != NULL ? strlen(head) : 0, blen = hl + 1 + mlen + 1;
    char *body = st == KP_OK ? malloc(blen + 1) : NULL;
    if (st == KP_OK && body == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        memcpy(body, head, hl - 1);
        body[hl - 1] = ',';
        memcpy(body + hl, member, mlen);
        body[hl + mlen] = '}';
        body[hl + mlen + 1] = '\0';
        blen = hl + mlen + 1;
    }
    kp_aws_target t;
    kp_aws_sm_target(a, 0, &t);
    json_t *out = NULL;
    if (st == KP_OK)
        st = kp_aws_json_raw(a, &t, "CreateSecret", (const uint8_t *)body, blen, true, &out, code,
                             codelen);
    json_decref(out);
    if (member != NULL)
        OPENSSL_cleanse(member, mlen);
    if (body != NULL)
        OPENSSL_cleanse(body, blen);
    free(member);
    free(body);
    free(head);
    return st;
}

kp_status kp_aws_sm_value(kp_aws_inst *a, size_t replica, const char *secret_name,
                          const char *version_id, kp_secret **value, char id_out[80])
{
    kp_aws_target t;
    kp_aws_sm_target(a, replica, &t);
    json_t *j = json_pack("{s:s}", "SecretId", secret_name), *out = NULL;
    if (j != NULL && version_id != NULL)
        json_object_set_new(j, "VersionId", json_string(version_id));
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_json_call(a, &t, "GetSecretValue", j, false, &out, NULL, 0);
    json_decref(j);
    KP_GUARD(st);
    json_t *str = json_object_get(out, "SecretString"), *bin = json_object_get(out, "SecretBinary");
    const char *vid = json_string_value(json_object_get(out, "VersionId"));
    snprintf(id_out, 80, "%s", vid != NULL ? vid : "");
    if (json_is_string(str)) {
        *value = kp_secret_dup(a->up, json_string_value(str), json_string_length(str));
        st = *value != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    } else if (json_is_string(bin)) {
        size_t bl = json_string_length(bin), n = 0;
        *value = a->up->secret_new(kpk_b64_decoded_max(bl) + 1);
        st = *value != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        if (st == KP_OK)
            st = kpk_b64_decode(json_string_value(bin), bl, a->up->secret_data(*value), &n);
        if (st != KP_OK && *value != NULL)
            st = kp_aws_err(a, KP_ERR_BACKEND, "secretsmanager %s: SecretBinary is not base64",
                            secret_name);
        if (st == KP_OK)
            st = a->up->secret_shrink(*value, n);
    } else {
        st = kp_aws_err(a, KP_ERR_BACKEND, "secretsmanager %s: the answer holds no value",
                        secret_name);
    }
    /* jansson does not wipe what it frees: the value's copies are wiped here */
    if (json_is_string(str))
        OPENSSL_cleanse((char *)json_string_value(str), json_string_length(str));
    if (json_is_string(bin))
        OPENSSL_cleanse((char *)json_string_value(bin), json_string_length(bin));
    json_decref(out);
    if (st != KP_OK) {
        a->up->secret_free(*value);
        *value = NULL;
    }
    return st;
}

kp_status kp_aws_sm_describe(kp_aws_inst *a, size_t replica, const char *secret_name, json_t **out)
{
    kp_aws_target t;
    kp_aws_sm_target(a, replica, &t);
    json_t *j = json_pack("{s:s}", "SecretId", secret_name);
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    kp_status st = kp_aws_json_call(a, &t, "DescribeSecret", j, false, out, NULL, 0);
    json_decref(j);
    return st;
}

/* Every page of a listing op: req (consumed) gets each page's NextToken; item is called for
 * each element of the answer's member array. */
static kp_status s_pages(kp_aws_inst *a, size_t replica, const char *op, json_t *req,
                         const char *member, kp_status (*item)(void *arg, json_t *it), void *arg)
{
    kp_aws_target t;
    kp_aws_sm_target(a, replica, &t);
    char next[2048] = "";
    kp_status st = req != NULL ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    for (unsigned pages = 0; st == KP_OK; pages++) {
        if (pages == 100000) {
            st = kp_aws_err(a, KP_ERR_BACKEND, "secretsmanager %s: the listing does not end", op);
            break;
        }
        if (next[0] != '\0')
            json_object_set_new(req, "NextToken", json_string(next));
        json_t *out = NULL, *it;
        st = kp_aws_json_call(a, &t, op, req, false, &out, NULL, 0);
        size_t i;
        json_array_foreach(json_object_get(out, member), i, it)
        {
            if (st == KP_OK)
                st = item(arg, it);
        }
        const char *tok = json_string_value(json_object_get(out, "NextToken"));
        bool more = st == KP_OK && tok != NULL && tok[0] != '\0';
        if (more && (strlen(tok) >= sizeof(next) || strcmp(tok, next) == 0))
            st = kp_aws_err(a, KP_ERR_BACKEND, "secretsmanager %s: a bad NextToken", op);
        if (st == KP_OK && more)
            snprintf(next, sizeof(next), "%s", tok);
        json_decref(out);
        if (!more)
            break;
    }
    json_decref(req);
    return st;
}

kp_status kp_aws_sm_list(kp_aws_inst *a, size_t replica, const char *name_prefix,
                         kp_status (*fn)(void *arg, json_t *secret), void *arg)
{
    json_t *req = json_pack("{s:i, s:[{s:s, s:[s]}]}", "MaxResults", 100, "Filters", "Key", "name",
                            "Values", name_prefix);
    return s_pages(a, replica, "ListSecrets", req, "SecretList", fn, arg);
}

/* ListSecretVersionIds' items: the id of each to the caller's function. */
typedef struct s_id_args {
    kp_status (*fn)(void *arg, const char *id);
    void *arg;
} s_id_args;

static kp_status s_id_item(void *arg, json_t *it)
{
    s_id_args *x = arg;
    const char *id = json_string_value(json_object_get(it, "VersionId"));
    return id != NULL ? x->fn(x->arg, id) : KP_OK;
}

kp_status kp_aws_sm_version_ids(kp_aws_inst *a, size_t replica, const char *secret_name,
                                kp_status (*fn)(void *arg, const char *id), void *arg)
{
    json_t *req = json_pack("{s:s, s:i, s:b}", "SecretId", secret_name, "MaxResults", 100,
                            "IncludeDeprecated", 1);
    s_id_args x = {fn, arg};
    return s_pages(a, replica, "ListSecretVersionIds", req, "Versions", s_id_item, &x);
}
