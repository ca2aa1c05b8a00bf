/*
 * wrapKey and unwrapKey in the vault (protocols.md A "Operations"): RSA-OAEP (SHA-1) and
 * RSA-OAEP-256 both ways; RSA1_5 only to unwrap old data. The DEK travels as unpadded base64url
 * in a request body that is a kp_secret, and comes back in a response body the transport wipes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/b64.h>

#include "akv_internal.h"

#define S_MAX_DEK 512 /* largest plaintext an RSA-4096 OAEP block holds is 470 bytes */

static const char *s_alg(uint32_t alg)
{
    switch (alg) {
    case KP_WRAP_RSA_OAEP_SHA1:
        return "RSA-OAEP";
    case KP_WRAP_RSA_OAEP_SHA256:
        return "RSA-OAEP-256";
    case KP_WRAP_RSA_PKCS1:
        return "RSA1_5";
    default:
        return NULL;
    }
}

/* {"alg":"...","value":"<base64url>"} into a secret (the value may be a DEK). */
static kp_status s_body(akv_inst *a, const char *alg, const uint8_t *in, size_t inlen,
                        kp_secret **out)
{
    size_t cap = kp_b64_encoded_size(inlen) + strlen(alg) + 32;
    kp_secret *s = a->up->secret_new(cap);
    if (s == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    char *p = (char *)a->up->secret_data(s);
    int n = snprintf(p, cap, "{\"alg\":\"%s\",\"value\":\"", alg);
    size_t m = kp_b64url_encode(in, inlen, p + n);
    memcpy(p + n + m, "\"}", 3);
    a->up->secret_shrink(s, (size_t)n + m + 2);
    *out = s;
    return KP_OK;
}

/* POST /keys/{name}/{version}/{op} and decodes the value into a new secret. */
static kp_status s_op(akv_inst *a, const char *name, uint32_t version, const char *op,
                      const char *alg, const uint8_t *in, size_t inlen, kp_secret **out)
{
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX], what[KP_NAME_MAX + 48], err[KP_AKV_ERR];
    akv_version *v = NULL;
    kp_secret *body = NULL;
    akv_resp r;
    KP_AKV_GUARD(akv_vault_name(a, name, vname));
    KP_AKV_GUARD(akv_version_get(a, name, version, &v));
    if (!v->enabled)
        return akv_err(a, KP_ERR_DENIED, "%s: key %s v%u is disabled in the vault", a->vault_name,
                       name, v->version);
    snprintf(path, sizeof(path), "/keys/%s/%s/%s", vname, v->azver, op);
    snprintf(what, sizeof(what), "%s %s v%u", op, name, v->version);
    KP_AKV_GUARD(s_body(a, alg, in, inlen, &body));
    kp_status st =
        akv_call(a, "POST", path, a->up->secret_cdata(body), a->up->secret_len(body), 0, what, &r);
    a->up->secret_free(body);
    if (st == KP_ERR_NOT_FOUND) {
        akv_key_forget(a, name);
        return akv_err(a, st, "%s: %s: the version is gone from the vault", a->vault_name, what);
    }
    if (st == KP_ERR_BACKEND && strcmp(op, "unwrapkey") == 0)
        st = KP_ERR_CRYPTO; /* 400 BadParameter: the bytes do not unwrap under this key */
    if (st != KP_OK)
        return st;
    size_t cap = akv_value_max(r.http.body, r.http.len);
    kp_secret *res = cap > 0 && cap <= 2 * S_MAX_DEK + 1024 ? a->up->secret_new(cap) : NULL;
    if (res == NULL) {
        akv_resp_free(&r);
        return akv_err(a, KP_ERR_BACKEND, "%s: %s: the answer has no usable value", a->vault_name,
                       what);
    }
    size_t got = cap;
    st = akv_parse_value(r.http.body, r.http.len, a->up->secret_data(res), &got, err, sizeof(err));
    akv_resp_free(&r);
    if (st != KP_OK) {
        a->up->secret_free(res);
        return akv_err(a, st, "%s: %s: %s", a->vault_name, what, err);
    }
    a->up->secret_shrink(res, got);
    *out = res;
    return KP_OK;
}

kp_status akv_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                      const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || dek == NULL || outlen == NULL)
        return KP_ERR_INVALID_ARG;
    const char *an = s_alg(alg);
    if (an == NULL || alg == KP_WRAP_RSA_PKCS1)
        return akv_err(a, KP_ERR_UNSUPPORTED,
                       "Key Vault wraps with RSA-OAEP or RSA-OAEP-256 (RSA1_5 only unwraps)");
    if (a->up->secret_len(dek) == 0 || a->up->secret_len(dek) > S_MAX_DEK)
        return akv_err(a, KP_ERR_INVALID_ARG, "DEK of %zu bytes", a->up->secret_len(dek));
    pthread_mutex_lock(&a->lock);
    kp_secret *ct = NULL;
    kp_status st = s_op(a, name, version, "wrapkey", an, a->up->secret_cdata(dek),
                        a->up->secret_len(dek), &ct);
    if (st == KP_OK) {
        size_t n = a->up->secret_len(ct);
        if (out == NULL || *outlen < n)
            st = KP_ERR_BUFFER_TOO_SMALL;
        else
            memcpy(out, a->up->secret_cdata(ct), n);
        *outlen = n;
    }
    a->up->secret_free(ct);
    pthread_mutex_unlock(&a->lock);
    return st;
}

kp_status akv_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                        const uint8_t *in, size_t inlen, kp_secret **dek)
{
    akv_inst *a = inst;
    if (a == NULL || name == NULL || in == NULL || dek == NULL)
        return KP_ERR_INVALID_ARG;
    const char *an = s_alg(alg);
    if (an == NULL)
        return akv_err(a, KP_ERR_UNSUPPORTED, "Key Vault unwraps RSA-OAEP, RSA-OAEP-256, RSA1_5");
    if (inlen == 0 || inlen > 1024)
        return akv_err(a, KP_ERR_INVALID_ARG, "wrapped key of %zu bytes", inlen);
    pthread_mutex_lock(&a->lock);
    kp_status st = s_op(a, name, version, "unwrapkey", an, in, inlen, dek);
    pthread_mutex_unlock(&a->lock);
    return st;
}
