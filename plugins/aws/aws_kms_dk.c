/*
 * Data keys in KMS (the `kms` instance kind, KP_CAP_DATAKEY): GenerateDataKey and Decrypt with an
 * encryption context (the KMS API reference). The data key comes back base64 in a JSON answer: it
 * is decoded into a kp_secret and jansson's copies are wiped in place before the answer is freed
 * (kp_aws_kms_plain). KMS binds the context to the ciphertext: another context, or another
 * ciphertext, is InvalidCiphertextException, which is KP_ERR_CRYPTO as the ABI asks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_CT_MAX 6144 /* GenerateDataKey's CiphertextBlob, at most (the KMS API reference) */

static void s_target(kp_aws_inst *a, kp_aws_target *t)
{
    t->service = "kms";
    t->prefix = "TrentService";
    t->region = a->region;
    t->endpoint = a->endpoint;
}

/* {"KeyId": key, "EncryptionContext": {...}} plus what the caller adds. */
static json_t *s_request(const char *key_id, const kp_meta *context, size_t ncontext)
{
    json_t *j = json_pack("{s:s}", "KeyId", key_id);
    if (j != NULL && ncontext > 0) {
        json_t *c = json_object();
        for (size_t i = 0; c != NULL && i < ncontext; i++)
            json_object_set_new(c, context[i].key, json_string(context[i].value));
        json_object_set_new(j, "EncryptionContext", c);
    }
    return j;
}

static kp_status s_map(kp_aws_inst *a, kp_status st, const char *code)
{
    if (strcmp(code, "InvalidCiphertextException") == 0 ||
        strcmp(code, "IncorrectKeyException") == 0)
        return kp_aws_err(a, KP_ERR_CRYPTO,
                          "kms: the data key does not decrypt with that key and "
                          "context (%s)",
                          code);
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
    KP_GUARD(kp_aws_meta_check(a, context, ncontext));
    json_t *j = s_request(key_id, context, ncontext), *out = NULL;
    if (j == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    json_object_set_new(j, "NumberOfBytes", json_integer((json_int_t)nbytes));
    kp_aws_target t;
    s_target(a, &t);
    char code[128];
    kp_aws_begin(a, true);
    kp_status st = kp_aws_json_call(a, &t, "GenerateDataKey", j, false, &out, code, sizeof(code));
    kp_aws_end(a);
    json_decref(j);
    const char *blob = json_string_value(json_object_get(out, "CiphertextBlob"));
    uint8_t tmp[S_CT_MAX];
    size_t n = 0;
    if (st == KP_OK && (blob == NULL || kpk_b64_decoded_max(strlen(blob)) > sizeof(tmp) ||
                        kpk_b64_decode(blob, strlen(blob), tmp, &n) != KP_OK))
        st =
            kp_aws_err(a, KP_ERR_BACKEND, "kms: GenerateDataKey answered no usable CiphertextBlob");
    if (st == KP_OK && n > *ctlen) { /* the buffer convention: nothing written, the size told */
        *ctlen = n;
        json_decref(out);
        return KP_ERR_BUFFER_TOO_SMALL;
    }
    if (st == KP_OK)
        memcpy(ct, tmp, n);
    if (st == KP_OK)
        st = kp_aws_kms_plain(a, out, "Plaintext", plain);
    if (st == KP_OK && a->up->secret_len(*plain) != nbytes) {
        a->up->secret_free(*plain);
        *plain = NULL;
        st = kp_aws_err(a, KP_ERR_BACKEND, "kms: GenerateDataKey made another size than asked");
    }
    if (st == KP_OK)
        *ctlen = n;
    json_decref(out);
    return st == KP_OK ? KP_OK : s_map(a, st, code);
}

kp_status kp_aws_dk_decrypt(void *inst, const char *key_id, const uint8_t *ct, size_t ctlen,
                            const kp_meta *context, size_t ncontext, kp_secret **plain)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && key_id != NULL && ct != NULL && plain != NULL, KP_ERR_INVALID_ARG);
    *plain = NULL;
    KP_GUARD(kp_aws_meta_check(a, context, ncontext));
    char *b64 = malloc(kpk_b64_encoded_size(ctlen));
    json_t *j = b64 != NULL ? s_request(key_id, context, ncontext) : NULL, *out = NULL;
    if (j == NULL) {
        free(b64);
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    kpk_b64_encode(ct, ctlen, b64);
    json_object_set_new(j, "CiphertextBlob", json_string(b64));
    free(b64);
    kp_aws_target t;
    s_target(a, &t);
    char code[128];
    kp_aws_begin(a, true);
    kp_status st = kp_aws_json_call(a, &t, "Decrypt", j, false, &out, code, sizeof(code));
    kp_aws_end(a);
    json_decref(j);
    if (st == KP_OK)
        st = kp_aws_kms_plain(a, out, "Plaintext", plain);
    json_decref(out);
    return st == KP_OK ? KP_OK : s_map(a, st, code);
}
