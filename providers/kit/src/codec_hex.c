/*
 * Hex, fingerprints and names: the small encodings every store and the core share, so a
 * fingerprint is computed and checked one way everywhere (lower-case hex SHA-256 of the SPKI),
 * and a key name or a plugin name is held to one rule by every side that checks it.
 */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

void kpk_hex_encode(const uint8_t *in, size_t inlen, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < inlen; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * inlen] = '\0';
}

bool kpk_uuid4(char out[37])
{
    uint8_t r[16];
    bool ok = RAND_bytes(r, sizeof(r)) == 1;
    if (!ok)
        memset(r, 0, sizeof(r));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* the RFC's variant */
    char hex[33];
    kpk_hex_encode(r, sizeof(r), hex);
    memcpy(out, hex, 8);
    out[8] = '-';
    memcpy(out + 9, hex + 8, 4);
    out[13] = '-';
    memcpy(out + 14, hex + 12, 4);
    out[18] = '-';
    memcpy(out + 19, hex + 16, 4);
    out[23] = '-';
    memcpy(out + 24, hex + 20, 12);
    out[36] = '\0';
    return ok;
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

kp_status kpk_hex_decode(const char *in, uint8_t *out, size_t outlen)
{
    if (in == NULL || strlen(in) != 2 * outlen)
        return KP_ERR_INVALID_ARG;
    for (size_t i = 0; i < outlen; i++) {
        int hi = s_nibble(in[2 * i]), lo = s_nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return KP_ERR_INVALID_ARG;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return KP_OK;
}

kp_status kpk_fpr_spki(const uint8_t *spki, size_t len, char *hex)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (spki == NULL || len == 0 || hex == NULL)
        return KP_ERR_INVALID_ARG;
    if (EVP_Digest(spki, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof(md))
        return KP_ERR_CRYPTO;
    kpk_hex_encode(md, sizeof(md), hex);
    return KP_OK;
}

kp_status kpk_fpr_pkey(const void *pkey, char *hex)
{
    unsigned char *der = NULL;
    int n = pkey != NULL ? i2d_PUBKEY((EVP_PKEY *)pkey, &der) : -1;
    if (n <= 0)
        return KP_ERR_INVALID_ARG;
    kp_status st = kpk_fpr_spki(der, (size_t)n, hex);
    OPENSSL_free(der);
    return st;
}

bool kpk_fpr_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t i = 0;
    for (; s[i] != '\0'; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')) || i >= KPK_FPR_CHARS)
            return false;
    return i == KPK_FPR_CHARS;
}

bool kpk_key_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || name[0] == '.')
        return false;
    size_t len = strlen(name);
    /* 127: KP_NAME_MAX of provider.h less its NUL */
    return len <= 127 && strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789._-") == len;
}

bool kpk_plugin_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    return len > 0 && len <= KPK_PLUGIN_NAME_MAX &&
           strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

const char *kpk_after_name(const char *text, const char *name)
{
    size_t len = strlen(name);
    if (strncmp(text, name, len) == 0 && strncmp(text + len, ": ", 2) == 0)
        return text + len + 2;
    return text;
}
