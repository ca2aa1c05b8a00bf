/*
 * Wrap and unwrap under a KMS keystore's key. A wrap needs only the public key, so it is done
 * here with the key KMS answers (GetPublicKey, cached by key ARN) and costs no KMS
 * cryptographic request; an unwrap is KMS Decrypt with EncryptionAlgorithm RSAES_OAEP_SHA_1 or
 * _SHA_256 and the version's alias as KeyId: one request, which kms:Decrypt alone allows (the
 * DEK path needs kms:Decrypt, and kms:GetPublicKey to wrap). The plaintext comes back base64 in
 * a JSON answer: decoded into a kp_secret, jansson's copy wiped, the transport's body wiped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_WRAPPED_MAX 512 /* an RSA-4096 block */

static const char *s_alg(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1     ? "RSAES_OAEP_SHA_1"
           : alg == KP_WRAP_RSA_OAEP_SHA256 ? "RSAES_OAEP_SHA_256"
                                            : NULL;
}

kp_status kp_aws_kms_ks_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                             const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && dek != NULL && outlen != NULL, KP_ERR_INVALID_ARG);
    if (s_alg(alg) == NULL)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED,
                          "kms: wrap algorithm %u; KMS keys wrap with RSA-OAEP (SHA-1 or SHA-256)",
                          alg);
    uint8_t copy[KP_AWS_SPKI_MAX];
    size_t n = 0;
    KP_GUARD(kp_aws_kms_spki(a, name, version, copy, &n));
    return kpk_oaep_wrap(a->up, a->h, alg, copy, n, dek, out, outlen);
}

/* What a failed Decrypt of key (the version's alias or key ARN) means to the core. A key that
 * is not usable is described (kms:DescribeKey, when allowed), so the operator reads its state
 * and the command that mends it, not "does not exist" for a key KMS still holds. */
static kp_status s_decrypt_status(kp_aws_inst *a, kp_status st, const char *code, const char *key,
                                  const char *name, uint32_t version)
{
    if (strcmp(code, "InvalidCiphertextException") == 0 ||
        strcmp(code, "IncorrectKeyException") == 0)
        return kp_aws_err(a, KP_ERR_CRYPTO, "kms (%s): the bytes do not unwrap under %s v%u (%s)",
                          a->region, name, version, code);
    bool disabled = strcmp(code, "DisabledException") == 0;
    if (!disabled && strcmp(code, "KMSInvalidStateException") != 0) {
        if (st == KP_ERR_NOT_FOUND)
            return kp_aws_err(a, KP_ERR_NOT_FOUND, "kms (%s): key %s v%u does not exist", a->region,
                              name, version);
        return st;
    }
    char why[KP_AWS_ERR];
    snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
    kp_aws_kms_key k;
    if (kp_aws_kms_describe(a, key, &k) != KP_OK)
        return kp_aws_err(a, disabled ? KP_ERR_DENIED : KP_ERR_NOT_FOUND,
                          "kms (%s): key %s v%u is %s (%s)", a->region, name, version,
                          disabled ? "disabled" : "not usable (pending deletion or import)", why);
    if (strcmp(k.state, "PendingImport") == 0)
        return kp_aws_err(a, KP_ERR_NOT_FOUND,
                          "kms (%s): key %s v%u (%s) holds no key material: 'keyplane apply' "
                          "imports it",
                          a->region, name, version, k.arn);
    if (strcmp(k.state, "PendingDeletion") == 0)
        return kp_aws_err(a, KP_ERR_DENIED,
                          "kms (%s): key %s v%u is pending deletion: aws kms cancel-key-deletion "
                          "--key-id %s, then enable-key",
                          a->region, name, version, k.arn);
    if (strcmp(k.state, "Disabled") == 0) /* its fingerprint was its tag's: KMS shows no public
                                              key of a disabled key */
        return kp_aws_err(a, KP_ERR_DENIED,
                          "kms (%s): key %s v%u is disabled: aws kms enable-key --key-id %s (then "
                          "verify proves which key it is)",
                          a->region, name, version, k.arn);
    return kp_aws_err(a, KP_ERR_DENIED, "kms (%s): key %s v%u (%s) is %s: %s", a->region, name,
                      version, k.arn, k.state, why);
}

kp_status kp_aws_kms_ks_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                               const uint8_t *in, size_t inlen, kp_secret **dek)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && name != NULL && in != NULL && dek != NULL, KP_ERR_INVALID_ARG);
    *dek = NULL;
    const char *algname = s_alg(alg);
    if (algname == NULL)
        return kp_aws_err(a, KP_ERR_UNSUPPORTED,
                          "kms: unwrap algorithm %u; KMS keys unwrap RSA-OAEP (SHA-1 or SHA-256)",
                          alg);
    if (inlen == 0 || inlen > S_WRAPPED_MAX)
        return kp_aws_err(a, KP_ERR_CRYPTO, "kms: %zu bytes are no RSA-OAEP block", inlen);
    char key[KP_AWS_ARN_MAX], b64[S_WRAPPED_MAX * 4 / 3 + 8];
    kp_aws_kms_key k;
    kp_aws_begin(a, true);
    kp_status st = KP_OK;
    if (version == 0) { /* the latest: found first (a version's alias needs no lookup) */
        st = kp_aws_kms_find(a, name, 0, &version, &k);
        if (st == KP_OK)
            snprintf(key, sizeof(key), "%s", k.arn);
    } else {
        st = kp_aws_kms_alias(a, name, version, key, sizeof(key));
    }
    kpk_b64_encode(in, inlen, b64);
    json_t *j = st == KP_OK ? json_pack("{s:s, s:s, s:s}", "KeyId", key, "CiphertextBlob", b64,
                                        "EncryptionAlgorithm", algname)
                            : NULL,
           *out = NULL;
    char code[128] = "";
    if (st == KP_OK && j == NULL)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK)
        st = kp_aws_kms_call(a, "Decrypt", j, false, &out, code, sizeof(code));
    if (st != KP_OK && j != NULL)
        st = s_decrypt_status(a, st, code, key, name, version);
    kp_aws_end(a);
    json_decref(j);
    if (st == KP_OK)
        st = kp_aws_kms_plain(a, out, "Plaintext", dek);
    json_decref(out);
    return st;
}
