/*
 * How keyplane names what it keeps on a token: the key name rule, a version's label
 * "<prefix><name>/v<N>", the pending label "<prefix><name>/v<N>~<time>~<random>" of a version a
 * writer has made but not yet published (p11_version.c), and the tag that finds every version
 * of one key (p11_lookup.c). Nothing here talks to the token, so every file that makes or finds
 * objects can use it.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

kp_status kp_p11_check_name(kp_p11_inst *pi, const char *name)
{
    if (name == NULL)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "key name is missing");
    if (kpk_key_name_valid(name))
        return KP_OK;
    /* The name itself may be garbage; do not echo it. */
    return kp_p11_err(pi, KP_ERR_INVALID_ARG,
                      "invalid key name: use 1-127 of [A-Za-z0-9._-], not starting with '.'");
}

kp_status kp_p11_label(kp_p11_inst *pi, const char *name, uint32_t version, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s%s/v%u", pi->prefix, name, version);

    if (n < 0 || (size_t)n >= size)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "object label for key %s is too long", name);
    return KP_OK;
}

kp_status kp_p11_pending_label(kp_p11_inst *pi, const char *name, uint32_t version, int64_t since,
                               char *buf, size_t size)
{
    uint8_t rnd[KP_P11_PENDING_RND];
    char hex[2 * sizeof(rnd) + 1];
    kp_status st = kp_p11_random(pi, rnd, sizeof(rnd));
    int n;

    if (st != KP_OK)
        return st;
    kpk_hex_encode(rnd, sizeof(rnd), hex);
    n = snprintf(buf, size, "%s%s/v%u~%lld~%s", pi->prefix, name, version, (long long)since, hex);
    if (n < 0 || (size_t)n >= size)
        return kp_p11_err(pi, KP_ERR_INVALID_ARG, "pending label for key %s is too long", name);
    return KP_OK;
}

/* A canonical decimal of at most max digits (no sign, no leading zero unless "0") ending at the
 * first of stop (or the string's end), as *v; the rest in *end. */
static bool s_number(const char *p, char stop, unsigned max, uint64_t *v, const char **end)
{
    unsigned n = 0;

    *v = 0;
    for (; *p >= '0' && *p <= '9'; p++, n++) {
        if (n == max || (n == 1 && *v == 0))
            return false;
        *v = *v * 10 + (uint64_t)(*p - '0');
    }
    *end = p;
    return n > 0 && *p == stop;
}

bool kp_p11_label_parse(const kp_p11_inst *pi, const char *label, kp_p11_label_info *out)
{
    size_t plen = strlen(pi->prefix), nlen;
    const char *rest, *slash, *end;
    uint64_t v, t;

    memset(out, 0, sizeof(*out));
    if (strncmp(label, pi->prefix, plen) != 0)
        return false;
    rest = label + plen;
    /* A name holds no '/' or '~' (kpk_key_name_valid), so the last '/' ends it. */
    if ((slash = strrchr(rest, '/')) == NULL || slash[1] != 'v' || slash[2] == '0')
        return false;
    if (!s_number(slash + 2, strchr(slash + 2, '~') != NULL ? '~' : '\0', 10, &v, &end) || v == 0 ||
        v > UINT32_MAX)
        return false;
    if (*end == '~') {
        /* pending: "~<time>~<random hex>" */
        if (!s_number(end + 1, '~', 18, &t, &end) || strlen(end + 1) != 2 * KP_P11_PENDING_RND ||
            kpk_hex_decode(end + 1, out->rnd, KP_P11_PENDING_RND) != KP_OK)
            return false;
        out->pending = true;
        out->since = (int64_t)t;
    }
    nlen = (size_t)(slash - rest);
    if (nlen == 0 || nlen >= KP_NAME_MAX)
        return false;
    memcpy(out->name, rest, nlen);
    out->name[nlen] = '\0';
    if (!kpk_key_name_valid(out->name))
        return false;
    out->version = (uint32_t)v;
    return true;
}

kp_status kp_p11_tag(kp_p11_inst *pi, const char *name, uint8_t *subject, size_t *len,
                     uint8_t aes_id[KP_P11_AES_ID_LEN])
{
    char cn[KP_P11_PREFIX_MAX + KP_NAME_MAX + 1];
    X509_NAME *nm = X509_NAME_new();
    unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    kp_status st = KP_OK;
    int k = 0;

    snprintf(cn, sizeof(cn), "%s%s", pi->prefix, name);
    /* A UTF8String given as such (not MBSTRING_*) skips X.520's 64-character bound on a CN:
     * a prefix and a name reach 191. Both are ASCII, so it is valid UTF-8. */
    if (nm == NULL ||
        X509_NAME_add_entry_by_NID(nm, NID_commonName, V_ASN1_UTF8STRING, (const unsigned char *)cn,
                                   (int)strlen(cn), -1, 0) != 1 ||
        (k = i2d_X509_NAME(nm, &der)) <= 0 || (size_t)k > KP_P11_TAG_MAX ||
        (aes_id != NULL && EVP_Digest(der, (size_t)k, md, &mdlen, EVP_sha256(), NULL) != 1)) {
        st = kp_p11_ossl_err(pi, KP_ERR_CRYPTO, "cannot encode the tag of key %s", name);
    } else {
        memcpy(subject, der, (size_t)k);
        *len = (size_t)k;
        if (aes_id != NULL)
            memcpy(aes_id, md, KP_P11_AES_ID_LEN);
    }
    OPENSSL_free(der);
    X509_NAME_free(nm);
    return st;
}
