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

/* The path and the words of op on name/version, which must be known and enabled. */
static kp_status s_target(kp_akv_inst *a, const char *name, uint32_t version, const char *op,
                          char path[KP_AKV_URL_MAX], char *what, size_t whatlen)
{
    char vname[KP_NAME_MAX];
    kp_akv_version *v = NULL;
    KP_GUARD(kp_akv_vault_name(a, name, vname));
    KP_GUARD(kp_akv_version_get(a, name, version, false, &v));
    if (!v->enabled)
        return kp_akv_err(a, KP_ERR_DENIED, "%s: key %s v%u is disabled in the vault",
                          a->place.vault_name, name, v->version);
    snprintf(path, KP_AKV_URL_MAX, "/keys/%s/%s/%s", vname, v->azver, op);
    snprintf(what, whatlen, "%s %s v%u", op, name, v->version);
    return KP_OK;
}

/*
 * POST /keys/{name}/{version}/{op}: r receives the 2xx answer (the caller frees it). A DEK to
 * wrap (in_secret) travels in a body that is a kp_secret; a wrapped key is no secret, so the
 * body of an unwrap is plain heap memory: one mlock/munlock pair less per call.
 */
static kp_status s_op(kp_akv_inst *a, const char *name, uint32_t version, const char *op,
                      const char *alg, const uint8_t *in, size_t inlen, bool in_secret, char *what,
                      size_t whatlen, kp_akv_resp *r)
{
    char path[KP_AKV_URL_MAX];
    KP_GUARD(s_target(a, name, version, op, path, what, whatlen));
    size_t cap = s_body_cap(alg, inlen);
    kp_secret *sbody = NULL;
    char *body;
    if (in_secret) {
        sbody = a->up->secret_new(cap);
        body = sbody != NULL ? (char *)a->up->secret_data(sbody) : NULL;
    } else {
        body = malloc(cap);
    }
    kp_status st = body != NULL ? KP_OK : kp_akv_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK) {
        size_t len = s_body_fill(body, cap, alg, in, inlen);
        st = kp_akv_call(a, "POST", path, (const uint8_t *)body, len, 0, what, r);
    }
    if (st == KP_ERR_NOT_FOUND) {
        kp_akv_key_forget(a, name);
        st = kp_akv_err(a, st, "%s: %s: the version is gone from the vault", a->place.vault_name,
                        what);
    }
    if (st == KP_ERR_BACKEND && r->status == 400 && strcmp(op, "unwrapkey") == 0)
        st = KP_ERR_CRYPTO; /* 400 BadParameter: the bytes do not unwrap under this key */
    if (in_secret)
        a->up->secret_free(sbody);
    else
        free(body);
    return st;
}

kp_status kp_akv_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                         const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && dek != NULL && outlen != NULL, KP_ERR_INVALID_ARG);
    const char *an = s_alg(alg);
    if (an == NULL || alg == KP_WRAP_RSA_PKCS1)
        return kp_akv_err(a, KP_ERR_UNSUPPORTED,
                          "Key Vault wraps with RSA-OAEP or RSA-OAEP-256 (RSA1_5 only unwraps)");
    if (a->up->secret_len(dek) == 0 || a->up->secret_len(dek) > S_MAX_DEK)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "DEK of %zu bytes", a->up->secret_len(dek));
    char what[KP_NAME_MAX + 48];
    kp_akv_resp r;
    kp_secret *ct = NULL;
    kp_akv_begin(a, true);
    kp_status st = s_op(a, name, version, "wrapkey", an, a->up->secret_cdata(dek),
                        a->up->secret_len(dek), true, what, sizeof(what), &r);
    if (st == KP_OK)
        st = kp_akv_resp_value(a, &r, S_MAX_ANSWER, what, &ct);
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

kp_status kp_akv_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                           const uint8_t *in, size_t inlen, kp_secret **dek)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && in != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    const char *an = s_alg(alg);
    if (an == NULL)
        return kp_akv_err(a, KP_ERR_UNSUPPORTED,
                          "Key Vault unwraps RSA-OAEP, RSA-OAEP-256, RSA1_5");
    if (inlen == 0 || inlen > 1024)
        return kp_akv_err(a, KP_ERR_INVALID_ARG, "wrapped key of %zu bytes", inlen);
    char what[KP_NAME_MAX + 48];
    kp_akv_resp r;
    kp_akv_begin(a, true);
    kp_status st =
        s_op(a, name, version, "unwrapkey", an, in, inlen, false, what, sizeof(what), &r);
    if (st == KP_OK) /* the DEK is decoded straight into the kp_secret handed back */
        st = kp_akv_resp_value(a, &r, S_MAX_ANSWER, what, dek);
    pthread_mutex_unlock(&a->lock);
    return st;
}
