/*
 * Envelopes: a wrapped DEK that says how to unwrap it. Encoded as compact JSON (jansson):
 *   {"kp":1,"chain":"tde-prod","wraps":[{"fpr":"<hex sha256>","v":1,"alg":"RSA-OAEP-256",
 *    "w":"<base64>"}]}
 * JSON keeps envelopes inspectable with everyday tools; the decoder is strict about types,
 * sizes and unknown members so a corrupted envelope fails loudly (docs/envelope.md).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <keyplane/kit/codec.h>

#include "base/util.h"

#define KP_ENVELOPE_FORMAT 1
#define KP_ENVELOPE_MAX_WRAPS 16
#define KP_WRAPPED_MAX 2048

struct s_wrap {
    char fingerprint[KPK_FPR_HEX];
    kp_envelope_wrap pub;
};

struct kp_envelope {
    char *chain;
    struct s_wrap wraps[KP_ENVELOPE_MAX_WRAPS];
    size_t n;
};

static const struct {
    uint32_t alg;
    const char *name;
} s_algs[] = {
    {KP_WRAP_RSA_OAEP_SHA1, "RSA-OAEP"}, {KP_WRAP_RSA_OAEP_SHA256, "RSA-OAEP-256"},
    {KP_WRAP_RSA_PKCS1, "RSA1_5"},       {KP_WRAP_AES_KW, "A256KW"},
    {KP_WRAP_AES_KWP, "A256KWP"},
};

const char *kp_wrap_alg_name(uint32_t alg)
{
    for (size_t i = 0; i < sizeof(s_algs) / sizeof(s_algs[0]); i++)
        if (s_algs[i].alg == alg)
            return s_algs[i].name;
    return NULL;
}

uint32_t kp_wrap_alg_from_name(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(s_algs) / sizeof(s_algs[0]); i++)
        if (strcmp(s_algs[i].name, name) == 0)
            return s_algs[i].alg;
    return 0;
}

kp_status kp_envelope_new(const char *chain, kp_envelope **out)
{
    KP_ENSURE(chain != NULL && out != NULL && kp__name_valid(chain, 63), KP_ERR_INVALID_ARG);
    kp_envelope *env = calloc(1, sizeof(*env));
    KP_ENSURE(env != NULL, KP_ERR_NOMEM);
    env->chain = kp__strdup(chain);
    kp_status st = env->chain != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK)
        *out = env;
    else
        kp_envelope_free(env);
    return st;
}

void kp_envelope_free(kp_envelope *env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; i < env->n; i++)
        free((uint8_t *)env->wraps[i].pub.wrapped);
    free(env->chain);
    free(env);
}

kp_status kp_envelope_add(kp_envelope *env, const kp_envelope_wrap *w)
{
    KP_ENSURE(env != NULL && w != NULL && kpk_fpr_valid(w->fingerprint) && w->version > 0 &&
                  kp_wrap_alg_name(w->alg) != NULL && w->wrapped != NULL && w->wrapped_len > 0 &&
                  w->wrapped_len <= KP_WRAPPED_MAX,
              KP_ERR_INVALID_ARG);
    KP_ENSURE(env->n < KP_ENVELOPE_MAX_WRAPS, KP_ERR_INVALID_ARG);
    struct s_wrap *s = &env->wraps[env->n];
    uint8_t *copy = malloc(w->wrapped_len);
    if (copy == NULL)
        return KP_ERR_NOMEM;
    memcpy(copy, w->wrapped, w->wrapped_len);
    memcpy(s->fingerprint, w->fingerprint, KPK_FPR_HEX);
    s->pub = *w;
    s->pub.fingerprint = s->fingerprint;
    s->pub.wrapped = copy;
    env->n++;
    return KP_OK;
}

const char *kp_envelope_chain(const kp_envelope *env)
{
    return env != NULL ? env->chain : NULL;
}

size_t kp_envelope_count(const kp_envelope *env)
{
    return env != NULL ? env->n : 0;
}

const kp_envelope_wrap *kp_envelope_get0(const kp_envelope *env, size_t i)
{
    return env != NULL && i < env->n ? &env->wraps[i].pub : NULL;
}

kp_status kp_envelope_encode(const kp_envelope *env, char **out)
{
    KP_ENSURE(env != NULL && out != NULL && env->n > 0, KP_ERR_INVALID_ARG);
    json_t *root = json_object();
    json_t *wraps = json_array();
    kp_status st = root != NULL && wraps != NULL ? KP_OK : KP_ERR_NOMEM;
    for (size_t i = 0; st == KP_OK && i < env->n; i++) {
        const kp_envelope_wrap *w = &env->wraps[i].pub;
        char *b64 = NULL;
        json_t *o =
            kpk_b64_encode_alloc(w->wrapped, w->wrapped_len, false, &b64) == KP_OK
                ? json_pack("{s:s, s:I, s:s, s:s}", "fpr", w->fingerprint, "v",
                            (json_int_t)w->version, "alg", kp_wrap_alg_name(w->alg), "w", b64)
                : NULL;
        free(b64);
        if (o == NULL || json_array_append_new(wraps, o) != 0)
            st = KP_ERR_NOMEM;
    }
    if (st == KP_OK) {
        json_object_set_new(root, "kp", json_integer(KP_ENVELOPE_FORMAT));
        json_object_set_new(root, "chain", json_string(env->chain));
        json_object_set(root, "wraps", wraps);
        *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (*out == NULL)
            st = KP_ERR_NOMEM;
    }
    json_decref(wraps);
    json_decref(root);
    return st;
}

static kp_status s_bad(char *err, size_t errlen, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "malformed envelope: %s", why);
    return KP_ERR_INTEGRITY;
}

static kp_status s_decode_wrap(kp_envelope *env, json_t *o, char *err, size_t errlen)
{
    const char *fpr = NULL, *alg = NULL, *w64 = NULL;
    json_int_t v = 0;
    json_error_t jerr;
    if (!json_is_object(o) || json_object_size(o) != 4 ||
        json_unpack_ex(o, &jerr, JSON_STRICT, "{s:s, s:I, s:s, s:s}", "fpr", &fpr, "v", &v, "alg",
                       &alg, "w", &w64) != 0)
        return s_bad(err, errlen, "each wrap needs exactly fpr, v, alg and w");
    if (!kpk_fpr_valid(fpr))
        return s_bad(err, errlen, "fingerprint is not 64 lower-case hex digits");
    if (v < 1 || v > UINT32_MAX)
        return s_bad(err, errlen, "version out of range");
    uint32_t a = kp_wrap_alg_from_name(alg);
    if (a == 0)
        return s_bad(err, errlen, "unknown algorithm");
    uint8_t *bytes = NULL;
    size_t len = 0;
    kp_status st = strlen(w64) <= 4 * KP_WRAPPED_MAX / 3 + 4 ? kp__b64_decode(w64, &bytes, &len)
                                                             : KP_ERR_INVALID_ARG;
    if (st != KP_OK)
        return s_bad(err, errlen, "wrapped bytes are not valid base64 of at most 2048 bytes");
    kp_envelope_wrap w = {fpr, (uint32_t)v, a, bytes, len};
    st = kp_envelope_add(env, &w);
    free(bytes);
    if (st != KP_OK && st != KP_ERR_NOMEM)
        st = s_bad(err, errlen, "wrap entry out of range");
    return st;
}

kp_status kp_envelope_decode(const char *buf, size_t len, kp_envelope **out, char *err,
                             size_t errlen)
{
    KP_ENSURE(buf != NULL && out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    if (len > KP_ENVELOPE_MAX)
        return s_bad(err, errlen, "larger than 64 KiB");
    /* Accept trailing line ends (files written by `keyplane wrap`, editors adding more). */
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return s_bad(err, errlen, "not JSON");
    json_int_t fmt = 0;
    const char *chain = NULL;
    json_t *wraps = NULL;
    kp_status st = KP_OK;
    if (!json_is_object(root) || json_unpack_ex(root, &jerr, JSON_STRICT, "{s:I, s:s, s:o}", "kp",
                                                &fmt, "chain", &chain, "wraps", &wraps) != 0)
        st = s_bad(err, errlen, "needs exactly kp, chain and wraps");
    else if (fmt != KP_ENVELOPE_FORMAT)
        st = s_bad(err, errlen, "unsupported format version");
    else if (!json_is_array(wraps) || json_array_size(wraps) == 0 ||
             json_array_size(wraps) > KP_ENVELOPE_MAX_WRAPS)
        st = s_bad(err, errlen, "wraps must be a list of 1 to 16 entries");
    else if (!kp__name_valid(chain, 63))
        st = s_bad(err, errlen, "invalid chain name");
    kp_envelope *env = NULL;
    if (st == KP_OK)
        st = kp_envelope_new(chain, &env);
    for (size_t i = 0; st == KP_OK && i < json_array_size(wraps); i++)
        st = s_decode_wrap(env, json_array_get(wraps, i), err, errlen);
    json_decref(root);
    if (st != KP_OK) {
        kp_envelope_free(env);
        return st;
    }
    *out = env;
    return KP_OK;
}
