/*
 * wrapKey and unwrapKey in the vault (Key Vault REST reference, wrapKey/unwrapKey): RSA-OAEP
 * (SHA-1) and RSA-OAEP-256 both ways; RSA1_5 only to unwrap old data. The DEK travels as unpadded
 * base64url in a request body that is a kp_secret, and comes back in a response body the transport
 * wipes and is decoded straight into the kp_secret handed back. The request body of an unwrap (a
 * wrapped key, no secret) is plain memory, which spares the hot path a locked allocation (an
 * mlock, munlock and two madvise calls; tests/bench/azure measures it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

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

/* The answer's value is at most this long: the RSA-4096 block of a wrap, a DEK of an unwrap. */
#define S_MAX_ANSWER (2 * S_MAX_DEK + 1024)

/* {"alg":"...","value":"<base64url>"} into p, which holds s_body_cap bytes; returns the length. */
static size_t s_body_cap(const char *alg, size_t inlen)
{
    return kpk_b64_encoded_size(inlen) + strlen(alg) + 32;
}

static size_t s_body_fill(char *p, size_t cap, const char *alg, const uint8_t *in, size_t inlen)
{
    int n = snprintf(p, cap, "{\"alg\":\"%s\",\"value\":\"", alg);
    size_t m = kpk_b64url_encode(in, inlen, p + n);
    memcpy(p + n + m, "\"}", 3);
    return (size_t)n + m + 2;
}

/*
 * POST /keys/{name}/{version}/{op}: r receives the 2xx answer (the caller frees it). A DEK to
 * wrap (in_secret) travels in a body that is a kp_secret; a wrapped key is no secret, so the
 * body of an unwrap is plain heap memory: one mlock/munlock pair less per call.
 */
static kp_status s_op(akv_inst *a, const char *name, uint32_t version, const char *op,
                      const char *alg, const uint8_t *in, size_t inlen, bool in_secret, char *what,
                      size_t whatlen, akv_resp *r)
{
    char vname[KP_NAME_MAX], path[KP_AKV_URL_MAX];
    akv_version *v = NULL;
    KP_AKV_GUARD(akv_vault_name(a, name, vname));
    KP_AKV_GUARD(akv_version_get(a, name, version, false, &v));
    if (!v->enabled)
        return akv_err(a, KP_ERR_DENIED, "%s: key %s v%u is disabled in the vault", a->vault_name,
                       name, v->version);
    snprintf(path, sizeof(path), "/keys/%s/%s/%s", vname, v->azver, op);
    snprintf(what, whatlen, "%s %s v%u", op, name, v->version);

    size_t cap = s_body_cap(alg, inlen), len;
    kp_secret *sbody = NULL;
    char *body = NULL;
    if (in_secret) {
        if ((sbody = a->up->secret_new(cap)) != NULL)
            body = (char *)a->up->secret_data(sbody);
    } else {
        body = malloc(cap);
    }
    if (body == NULL)
        return akv_err(a, KP_ERR_NOMEM, "out of memory");
    len = s_body_fill(body, cap, alg, in, inlen);
    kp_status st = akv_call(a, "POST", path, (const uint8_t *)body, len, 0, what, r);
    if (in_secret)
        a->up->secret_free(sbody);
    else
        free(body);
    if (st == KP_ERR_NOT_FOUND) {
        akv_key_forget(a, name);
        return akv_err(a, st, "%s: %s: the version is gone from the vault", a->vault_name, what);
    }
    if (st == KP_ERR_BACKEND && r->status == 400 && strcmp(op, "unwrapkey") == 0)
        st = KP_ERR_CRYPTO; /* 400 BadParameter: the bytes do not unwrap under this key */
    return st;
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
    char what[KP_NAME_MAX + 48];
    akv_resp r;
    kp_secret *ct = NULL;
    pthread_mutex_lock(&a->lock);
    kp_status st = s_op(a, name, version, "wrapkey", an, a->up->secret_cdata(dek),
                        a->up->secret_len(dek), true, what, sizeof(what), &r);
    if (st == KP_OK)
        st = akv_resp_value(a, &r, S_MAX_ANSWER, what, &ct);
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
    char what[KP_NAME_MAX + 48];
    akv_resp r;
    pthread_mutex_lock(&a->lock);
    kp_status st =
        s_op(a, name, version, "unwrapkey", an, in, inlen, false, what, sizeof(what), &r);
    if (st == KP_OK) /* the DEK is decoded straight into the kp_secret handed back */
        st = akv_resp_value(a, &r, S_MAX_ANSWER, what, dek);
    pthread_mutex_unlock(&a->lock);
    return st;
}
