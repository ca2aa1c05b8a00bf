/* The kit's wraps under a public key (codec_keyx.c): kpk_oaep_wrap opens with OpenSSL's
 * RSA-OAEP decryption of the same hash; a key too small for the hash's overhead, or a DEK too
 * long, is KP_ERR_INVALID_ARG (not a failed encryption); the buffer convention. kpk_keyx_wrap
 * opens as CKM_RSA_AES_KEY_WRAP (RSA-OAEP of the AES key, then RFC 5649); a wrapping key under
 * 2048 bits is refused. The upcalls are a minimal stand-in for the core's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

#include "kp_test.h"

struct kp_secret {
    size_t len;
    unsigned char d[];
};

static char s_error[512];

static kp_status s_set_error(kp_core_handle *h, kp_status st, const char *msg)
{
    (void)h;
    snprintf(s_error, sizeof(s_error), "%s", msg);
    return st;
}

static kp_secret *s_new(size_t len)
{
    kp_secret *s = calloc(1, sizeof(*s) + len + 1);
    if (s != NULL)
        s->len = len;
    return s;
}

static void s_free(kp_secret *s)
{
    free(s);
}

static unsigned char *s_data(kp_secret *s)
{
    return s->d;
}

static const unsigned char *s_cdata(const kp_secret *s)
{
    return s->d;
}

static size_t s_len(const kp_secret *s)
{
    return s->len;
}

static const kp_upcalls s_up = {.set_error = s_set_error,
                                .secret_new = s_new,
                                .secret_free = s_free,
                                .secret_data = s_data,
                                .secret_cdata = s_cdata,
                                .secret_len = s_len};

/* The SPKI DER of a new RSA key of bits (malloc'ed), the key in *key. */
static uint8_t *s_spki(unsigned bits, EVP_PKEY **key, size_t *len)
{
    *key = EVP_RSA_gen(bits);
    assert_non_null(*key);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(*key, &der);
    assert_true(n > 0);
    *len = (size_t)n;
    return der;
}

static kp_secret *s_bytes(size_t len, unsigned char seed)
{
    kp_secret *s = s_new(len);
    for (size_t i = 0; i < len; i++)
        s->d[i] = (unsigned char)(seed + i);
    return s;
}

/* RSA-OAEP decryption with md (MGF1 the same) of in under key. */
static size_t s_oaep_open(EVP_PKEY *key, const EVP_MD *md, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t cap)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    size_t n = cap;
    assert_int_equal(EVP_PKEY_decrypt_init(c), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(c, md), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(c, md), 1);
    assert_int_equal(EVP_PKEY_decrypt(c, out, &n, in, inlen), 1);
    EVP_PKEY_CTX_free(c);
    return n;
}

static void test_oaep_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    size_t spki_len = 0;
    uint8_t *spki = s_spki(2048, &key, &spki_len);
    kp_secret *dek = s_bytes(32, 7);
    uint8_t out[512], plain[512];
    size_t outlen = 10;
    /* too small a buffer: the size, nothing else */
    assert_int_equal(
        kpk_oaep_wrap(&s_up, NULL, KP_WRAP_RSA_OAEP_SHA256, spki, spki_len, dek, out, &outlen),
        KP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(outlen, 256);
    outlen = sizeof(out);
    assert_int_equal(
        kpk_oaep_wrap(&s_up, NULL, KP_WRAP_RSA_OAEP_SHA256, spki, spki_len, dek, out, &outlen),
        KP_OK);
    assert_int_equal(outlen, 256);
    size_t n = s_oaep_open(key, EVP_sha256(), out, outlen, plain, sizeof(plain));
    assert_int_equal(n, 32);
    assert_memory_equal(plain, dek->d, 32);
    outlen = sizeof(out);
    assert_int_equal(
        kpk_oaep_wrap(&s_up, NULL, KP_WRAP_RSA_OAEP_SHA1, spki, spki_len, dek, out, &outlen),
        KP_OK);
    n = s_oaep_open(key, EVP_sha1(), out, outlen, plain, sizeof(plain));
    assert_int_equal(n, 32);
    assert_memory_equal(plain, dek->d, 32);
    /* RSA-2048 with SHA-256 holds 190 bytes, not 191 */
    kp_secret *big = s_bytes(191, 1);
    outlen = sizeof(out);
    assert_int_equal(
        kpk_oaep_wrap(&s_up, NULL, KP_WRAP_RSA_OAEP_SHA256, spki, spki_len, big, out, &outlen),
        KP_ERR_INVALID_ARG);
    s_free(big);
    s_free(dek);
    OPENSSL_free(spki);
    EVP_PKEY_free(key);
}

/* A key smaller than the hash's overhead (2 * 32 + 2 bytes for SHA-256) holds no DEK at all:
 * the room is 0, not a huge number from an unsigned subtraction. */
static void test_oaep_tiny_key(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    size_t spki_len = 0;
    uint8_t *spki = s_spki(512, &key, &spki_len); /* 64 bytes */
    kp_secret *dek = s_bytes(16, 3);
    uint8_t out[512];
    size_t outlen = sizeof(out);
    s_error[0] = '\0';
    assert_int_equal(
        kpk_oaep_wrap(&s_up, NULL, KP_WRAP_RSA_OAEP_SHA256, spki, spki_len, dek, out, &outlen),
        KP_ERR_INVALID_ARG);
    assert_non_null(strstr(s_error, "does not fit"));
    s_free(dek);
    OPENSSL_free(spki);
    EVP_PKEY_free(key);
}

static void test_keyx_round_trip(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    size_t spki_len = 0;
    uint8_t *spki = s_spki(3072, &key, &spki_len);
    kp_secret *p8 = s_bytes(1217, 9); /* any bytes: the wrap does not parse them */
    size_t need = 384 + (1217 + 7) / 8 * 8 + 8, outlen = 100;
    uint8_t *out = malloc(need + 16), plain[512];
    assert_int_equal(
        kpk_keyx_wrap(&s_up, NULL, KP_KEYX_RSA_AES_KWP_SHA256, spki, spki_len, p8, out, &outlen),
        KP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(outlen, need);
    outlen = need + 16;
    assert_int_equal(
        kpk_keyx_wrap(&s_up, NULL, KP_KEYX_RSA_AES_KWP_SHA256, spki, spki_len, p8, out, &outlen),
        KP_OK);
    assert_int_equal(outlen, need);
    /* the RSA part opens to the AES key, the AES part to the PKCS#8 */
    assert_int_equal(s_oaep_open(key, EVP_sha256(), out, 384, plain, sizeof(plain)), 32);
    EVP_CIPHER *kwp = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t *back = malloc(need);
    int n1 = 0, n2 = 0;
    assert_int_equal(EVP_DecryptInit_ex2(c, kwp, plain, NULL, NULL), 1);
    assert_int_equal(EVP_DecryptUpdate(c, back, &n1, out + 384, (int)(need - 384)), 1);
    assert_int_equal(EVP_DecryptFinal_ex(c, back + n1, &n2), 1);
    assert_int_equal(n1 + n2, 1217);
    assert_memory_equal(back, p8->d, 1217);
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(kwp);
    free(back);
    free(out);
    s_free(p8);
    OPENSSL_free(spki);
    EVP_PKEY_free(key);
}

static void test_keyx_weak_wrapping_key(void **state)
{
    (void)state;
    EVP_PKEY *key = NULL;
    size_t spki_len = 0;
    uint8_t *spki = s_spki(1024, &key, &spki_len);
    kp_secret *p8 = s_bytes(600, 5);
    uint8_t out[2048];
    size_t outlen = sizeof(out);
    assert_int_equal(
        kpk_keyx_wrap(&s_up, NULL, KP_KEYX_RSA_AES_KWP_SHA1, spki, spki_len, p8, out, &outlen),
        KP_ERR_INVALID_ARG);
    assert_non_null(strstr(s_error, "too weak"));
    s_free(p8);
    OPENSSL_free(spki);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oaep_round_trip),
        cmocka_unit_test(test_oaep_tiny_key),
        cmocka_unit_test(test_keyx_round_trip),
        cmocka_unit_test(test_keyx_weak_wrapping_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
