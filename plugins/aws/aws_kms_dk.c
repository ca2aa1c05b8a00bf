/*
 * Data keys in KMS (the `kms` instance kind, KP_CAP_DATAKEY): GenerateDataKey, Decrypt and
 * ReEncrypt with an encryption context (the KMS API reference). The data key comes back base64 in
 * a JSON answer: it is decoded into a kp_secret and jansson's copies are wiped in place before the
 * answer is freed (kp_aws_kms_plain); ReEncrypt never brings it out of KMS. KMS binds the context
 * to the ciphertext: another context, or another ciphertext, is InvalidCiphertextException, and a
 * key id other than the ciphertext's IncorrectKeyException, both KP_ERR_CRYPTO as the ABI asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_CT_MAX 6144 /* a CiphertextBlob, at most (the KMS API reference) */

/* An encryption context as KMS takes it: up to 16 pairs of non-empty printable text, each key
 * once (the SDKs' kms+context key is aws:x-amz-cek-alg: wider than keyplane's metadata keys). */
static kp_status s_context_check(kp_aws_inst *a, const kp_meta *context, size_t ncontext)
{
    if (ncontext > 16)
        return kp_aws_err(a, KP_ERR_INVALID_ARG,
                          "kms: an encryption context of %zu pairs, over "
                          "16",
                          ncontext);
    for (size_t i = 0; i < ncontext; i++) {
        const char *k = context[i].key, *v = context[i].value;
        bool ok = k != NULL && v != NULL && k[0] != '\0' && strlen(k) <= 256;
        for (const char *c = k; ok && *c != '\0'; c++)
            ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
        for (const char *c = v; ok && *c != '\0'; c++)
            ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
        for (size_t j = 0; ok && j < i; j++)
            ok = strcmp(context[j].key, k) != 0;
        if (!ok)
            return kp_aws_err(a, KP_ERR_INVALID_ARG,
                              "kms: encryption context pair #%zu: a key of 1 to 256 characters, "
                              "once, and text without control characters",
                              i + 1);
    }
    return KP_OK;
}

/* Sets id_member to key_id (left out when "": the ciphertext names its key) and, with pairs,
 * ctx_member to the encryption context in j (NULL: out of memory, as json_object() says it). */
static kp_status s_key(kp_aws_inst *a, json_t *j, const char *id_member, const char *key_id,
                       const char *ctx_member, const kp_meta *context, size_t ncontext)
{
    KP_GUARD(s_context_check(a, context, ncontext));
    json_t *c = ncontext > 0 ? json_object() : NULL;
    bool ok = ncontext == 0 || c != NULL;
    for (size_t i = 0; ok && i < ncontext; i++)
        ok = json_object_set_new(c, context[i].key, json_string(context[i].value)) == 0;
    if (ok && c != NULL) {
        ok = json_object_set_new(j, ctx_member, c) == 0;
        c = NULL; /* set_new took it, also when it failed */
    }
    json_decref(c);
    if (ok && key_id[0] != '\0')
        ok = json_object_set_new(j, id_member, json_string(key_id)) == 0;
    return ok ? KP_OK : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
}

/* The request's CiphertextBlob: ct/ctlen in base64. */
static kp_status s_blob_in(kp_aws_inst *a, json_t *j, const uint8_t *ct, size_t ctlen)
{
    if (ctlen == 0 || ctlen > S_CT_MAX)
        return kp_aws_err(a, KP_ERR_CRYPTO, "kms: a ciphertext is 1 to %d bytes, not %zu", S_CT_MAX,
                          ctlen);
    char *b64 = NULL;
    kp_status st = kpk_b64_encode_alloc(ct, ctlen, false, &b64);
    if (st == KP_OK && json_object_set_new(j, "CiphertextBlob", json_string(b64)) != 0)
        st = KP_ERR_NOMEM;
    free(b64);
    return st == KP_OK ? KP_OK : kp_aws_err(a, st, "out of memory");
}

/* The answer's CiphertextBlob into ct by the buffer convention. */
static kp_status s_blob_out(kp_aws_inst *a, json_t *out, const char *op, uint8_t *ct, size_t *ctlen)
{
    const char *blob = json_string_value(json_object_get(out, "CiphertextBlob"));
    uint8_t tmp[S_CT_MAX];
    size_t n = 0;
    if (blob == NULL || kpk_b64_decoded_max(strlen(blob)) > sizeof(tmp) ||
        kpk_b64_decode(blob, strlen(blob), tmp, &n) != KP_OK || n == 0)
        return kp_aws_err(a, KP_ERR_BACKEND, "kms: %s answered no usable CiphertextBlob", op);
    if (ct == NULL || n > *ctlen) { /* nothing written, the size told */
        *ctlen = n;
        return KP_ERR_BUFFER_TOO_SMALL;
    }
    memcpy(ct, tmp, n);
    *ctlen = n;
    return KP_OK;
}

/* Wipes jansson's copy of the answer's member name (a plaintext) in place. */
static void s_wipe(json_t *out, const char *name)
{
    json_t *p = json_object_get(out, name);
    const char *text = json_string_value(p);
    if (text != NULL)
        OPENSSL_cleanse((char *)text, json_string_length(p));
}

/* KMS operation op with the request j (freed here) when st, how building it went, is KP_OK: *out
 * the answer; a ciphertext that does not open under the key and context is KP_ERR_CRYPTO. */
static kp_status s_call(kp_aws_inst *a, const char *op, json_t *j, kp_status st, json_t **out)
{
    *out = NULL;
    char code[128] = "";
    if (st == KP_OK) {
        kp_aws_begin(a, true);
        st = kp_aws_kms_call(a, op, j, false, out, code, sizeof(code));
        kp_aws_end(a);
    }
    json_decref(j);
    if (strcmp(code, "InvalidCiphertextException") == 0 ||
        strcmp(code, "IncorrectKeyException") == 0)
        st = kp_aws_err(a, KP_ERR_CRYPTO,
                        "kms: the data key does not decrypt with that key and context (%s)", code);
    return st;
}

kp_status kp_aws_dk_generate(void *inst, const char *key_id, size_t nbytes, const kp_meta *context,
                             size_t ncontext, kp_secret **plain, uint8_t *ct, size_t *ctlen)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && key_id != NULL && plain != NULL && ctlen != NULL, KP_ERR_INVALID_ARG);
    *plain = NULL;
    if (nbytes == 0 || nbytes > 1024)
        return kp_aws_err(a, KP_ERR_INVALID_ARG, "kms: a data key is 1 to 1024 bytes");
    json_t *j = json_object(), *out = NULL;
    kp_status st = s_key(a, j, "KeyId", key_id, "EncryptionContext", context, ncontext);
    /* KeySpec for the AES sizes, as the KMS reference recommends; else NumberOfBytes */
    if (st == KP_OK &&
        json_object_set_new(j, nbytes == 32 || nbytes == 16 ? "KeySpec" : "NumberOfBytes",
                            nbytes == 32   ? json_string("AES_256")
                            : nbytes == 16 ? json_string("AES_128")
                                           : json_integer((json_int_t)nbytes)) != 0)
        st = kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    st = s_call(a, "GenerateDataKey", j, st, &out);
    if (st == KP_OK)
        st = s_blob_out(a, out, "GenerateDataKey", ct, ctlen);
    if (st == KP_OK)
        st = kp_aws_kms_plain(a, out, "Plaintext", plain);
    if (st == KP_OK && a->up->secret_len(*plain) != nbytes) {
        a->up->secret_free(*plain);
        *plain = NULL;
        st = kp_aws_err(a, KP_ERR_BACKEND, "kms: GenerateDataKey made another size than asked");
    }
    s_wipe(out, "Plaintext"); /* also when the key is not taken (no room for the ciphertext) */
    json_decref(out);
    return st;
}

kp_status kp_aws_dk_decrypt(void *inst, const char *key_id, const uint8_t *ct, size_t ctlen,
                            const kp_meta *context, size_t ncontext, kp_secret **plain)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && key_id != NULL && ct != NULL && plain != NULL, KP_ERR_INVALID_ARG);
    *plain = NULL;
    json_t *j = json_object(), *out = NULL;
    kp_status st = s_key(a, j, "KeyId", key_id, "EncryptionContext", context, ncontext);
    if (st == KP_OK)
        st = s_blob_in(a, j, ct, ctlen);
    st = s_call(a, "Decrypt", j, st, &out);
    if (st == KP_OK)
        st = kp_aws_kms_plain(a, out, "Plaintext", plain);
    json_decref(out);
    return st;
}

kp_status kp_aws_dk_reencrypt(void *inst, const char *src_key_id, const uint8_t *ct, size_t ctlen,
                              const kp_meta *src_context, size_t nsrc, const char *dst_key_id,
                              const kp_meta *dst_context, size_t ndst, uint8_t *out, size_t *outlen)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && src_key_id != NULL && dst_key_id != NULL && ct != NULL && outlen != NULL,
              KP_ERR_INVALID_ARG);
    json_t *j = json_object(), *answer = NULL;
    kp_status st =
        s_key(a, j, "SourceKeyId", src_key_id, "SourceEncryptionContext", src_context, nsrc);
    if (st == KP_OK)
        st = s_key(a, j, "DestinationKeyId", dst_key_id, "DestinationEncryptionContext",
                   dst_context, ndst);
    if (st == KP_OK)
        st = s_blob_in(a, j, ct, ctlen);
    st = s_call(a, "ReEncrypt", j, st, &answer);
    if (st == KP_OK)
        st = s_blob_out(a, answer, "ReEncrypt", out, outlen);
    json_decref(answer);
    return st;
}
