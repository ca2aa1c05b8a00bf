/*
 * Base64 in both alphabets on OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock.
 *
 * EVP_DecodeBlock knows only the standard alphabet, wants whole padded groups, skips
 * whitespace and counts padding as zero bytes; so the text is checked here first, translated
 * to the standard alphabet a bounded chunk at a time, and the last group's length is fixed up.
 * Base64 of key material passes through the chunk buffers, so they are wiped. The allocating
 * forms at the end are the ones every caller that keeps the text or bytes in malloc'd memory
 * uses, so no store sizes the buffers its own way.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <keyplane/kit/codec.h>
#include <keyplane/provider.h>

/* Characters handed to EVP_DecodeBlock per call: a multiple of 4. */
#define S_CHUNK 256
/* Bytes handed to EVP_EncodeBlock per call: a multiple of 3, its output a multiple of 4. */
#define S_ENC_CHUNK (3 * 1024)

enum { S_STD = 1, S_URL = 2 };

/* 0 for a character of both alphabets, S_STD or S_URL for one of a single alphabet, -1 else. */
static int s_class(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 0;
    if (c == '+' || c == '/')
        return S_STD;
    if (c == '-' || c == '_')
        return S_URL;
    return -1;
}

static char s_to_std(char c)
{
    if (c == '-')
        return '+';
    if (c == '_')
        return '/';
    return c;
}

size_t kpk_b64_decoded_max(size_t inlen)
{
    return (inlen / 4 + (inlen % 4 != 0)) * 3;
}

/* Checks in/inlen and returns the number of data characters (padding excluded), or -1. */
static long long s_check(const char *in, size_t inlen)
{
    size_t pad = 0;
    while (pad < inlen && pad < 2 && in[inlen - 1 - pad] == '=')
        pad++;
    if (pad > 0 && inlen % 4 != 0)
        return -1; /* padded text comes in whole groups */
    size_t data = inlen - pad;
    if (data % 4 == 1)
        return -1; /* one character carries 6 bits: not even a byte */
    int seen = 0;
    for (size_t i = 0; i < data; i++) {
        int cls = s_class((unsigned char)in[i]);
        if (cls < 0)
            return -1; /* includes '=' before the end and a third '=' */
        seen |= cls;
    }
    if (seen == (S_STD | S_URL))
        return -1;
    return (long long)data;
}

kp_status kpk_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t *outlen)
{
    if (outlen != NULL)
        *outlen = 0;
    if ((in == NULL && inlen > 0) || outlen == NULL || (out == NULL && inlen > 0))
        return KP_ERR_INVALID_ARG;
    long long checked = s_check(in, inlen);
    if (checked < 0)
        return KP_ERR_INVALID_ARG;
    size_t data = (size_t)checked;
    size_t whole = data - data % 4;
    char chunk[S_CHUNK];
    size_t o = 0;
    kp_status st = KP_OK;

    for (size_t i = 0; i < whole && st == KP_OK;) {
        size_t n = whole - i < S_CHUNK ? whole - i : S_CHUNK;
        for (size_t j = 0; j < n; j++)
            chunk[j] = s_to_std(in[i + j]);
        if (EVP_DecodeBlock(out + o, (const unsigned char *)chunk, (int)n) != (int)(n / 4 * 3))
            st = KP_ERR_INVALID_ARG;
        o += n / 4 * 3;
        i += n;
    }
    if (st == KP_OK && data % 4 != 0) {
        /* The last 2 or 3 characters: fill the group with 'A' (zero bits) instead of '=',
         * decode three bytes and keep the 1 or 2 the characters carry. */
        uint8_t tail[3];
        size_t rest = data % 4;
        for (size_t j = 0; j < 4; j++)
            chunk[j] = (char)(j < rest ? s_to_std(in[whole + j]) : 'A');
        if (EVP_DecodeBlock(tail, (const unsigned char *)chunk, 4) != 3 || tail[rest - 1] != 0) {
            /* the second check: bits past the last byte must be zero (canonical text, as
             * every encoder writes and as the core's decoder insists) */
            st = KP_ERR_INVALID_ARG;
        } else {
            memcpy(out + o, tail, rest - 1);
            o += rest - 1;
        }
        OPENSSL_cleanse(tail, sizeof tail);
    }
    OPENSSL_cleanse(chunk, sizeof chunk);
    if (st != KP_OK) {
        OPENSSL_cleanse(out, o);
        o = 0;
    }
    *outlen = o;
    return st;
}

size_t kpk_b64_encoded_size(size_t inlen)
{
    return (inlen / 3 + (inlen % 3 != 0)) * 4 + 1;
}

size_t kpk_b64_encode(const uint8_t *in, size_t inlen, char *out)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < inlen;) {
        size_t n = inlen - i < S_ENC_CHUNK ? inlen - i : S_ENC_CHUNK;
        o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + i, (int)n);
        i += n;
    }
    return o;
}

size_t kpk_b64url_encode(const uint8_t *in, size_t inlen, char *out)
{
    size_t n = kpk_b64_encode(in, inlen, out);
    while (n > 0 && out[n - 1] == '=')
        n--;
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return n;
}

kp_status kpk_b64_encode_alloc(const uint8_t *in, size_t inlen, bool url, char **out)
{
    KP_ENSURE(out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    KP_ENSURE(in != NULL || inlen == 0, KP_ERR_INVALID_ARG);
    /* kpk_b64_encoded_size must not wrap: 4 characters for each 3 bytes begun, and the NUL */
    KP_ENSURE(inlen / 3 < (SIZE_MAX - 1) / 4 - 1, KP_ERR_NOMEM);
    char *text = malloc(kpk_b64_encoded_size(inlen));
    KP_ENSURE(text != NULL, KP_ERR_NOMEM);
    if (url)
        kpk_b64url_encode(in, inlen, text);
    else
        kpk_b64_encode(in, inlen, text);
    *out = text;
    return KP_OK;
}

kp_status kpk_b64_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    KP_ENSURE(out != NULL && outlen != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    *outlen = 0;
    KP_ENSURE(in != NULL || inlen == 0, KP_ERR_INVALID_ARG);
    size_t max = kpk_b64_decoded_max(inlen);
    uint8_t *buf = malloc(max > 0 ? max : 1);
    KP_ENSURE(buf != NULL, KP_ERR_NOMEM);
    size_t got = 0;
    kp_status st = kpk_b64_decode(in, inlen, buf, &got);
    if (st == KP_OK) {
        *out = buf;
        *outlen = got;
        buf = NULL;
    }
    free(buf); /* kpk_b64_decode wiped what it wrote when it failed */
    return st;
}
