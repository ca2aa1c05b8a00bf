/* Helpers of the azure-keyvault drivers: see azure_vault.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "azure_vault.h"

#define S_TENANT "00000000-0000-0000-0000-000000000001"

static kp_test_vault *s_vault;
static kp_test_fx *s_fx;

static void s_instance(FILE *f, const char *name, unsigned attempts)
{
    const char *url = kp_test_vault_url(s_vault);
    fprintf(f,
            "  %s:\n    plugin: azure-keyvault\n    vault_url: %s\n    tenant: %s\n"
            "    client_id: kp-client\n    client_secret: env:AZ_SECRET\n    authority: %s\n"
            "    ca_bundle: %s\n    verify_challenge_resource: false\n    max_attempts: %u\n"
            "    timeout_ms: 20000\n",
            name, url, S_TENANT, url, kp_test_vault_ca(), attempts);
}

void kp_test_akv_init(void)
{
    s_vault = kp_test_vault_open("vault1");
    if (setenv("AZ_SECRET", "kp-secret", 1) != 0)
        kp_test_fail("setenv");
    char *policy = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&policy, &len);
    if (f == NULL)
        kp_test_fail("out of memory");
    fputs("version: 1\nproviders:\n", f);
    s_instance(f, "vault1", 4);
    s_instance(f, "vault1-a3", 3);
    fclose(f);
    s_fx = kp_test_fx_new(sizeof(kp_test_fx), NULL, 0);
    kp_test_fx_load(s_fx, policy);
    free(policy);
}

void kp_test_akv_done(void)
{
    kp_test_fx_free(s_fx);
    kp_test_vault_close(s_vault);
    s_fx = NULL;
    s_vault = NULL;
}

kp_ctx *kp_test_akv_ctx(void)
{
    return s_fx->ctx;
}

kp_test_vault *kp_test_akv_vault(void)
{
    return s_vault;
}

kp_instance *kp_test_akv_open(const char *name)
{
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(s_fx->ctx, s_fx->pol, name, &inst);
    if (st != KP_OK)
        kp_test_fail("open %s: %s: %s", name, kp_status_name(st), kp_ctx_last_error(s_fx->ctx));
    return inst;
}

kp_secret *kp_test_akv_random_dek(size_t n)
{
    kp_secret *s = kp_secret_new(n);
    if (s == NULL || RAND_bytes(kp_secret_data(s), (int)n) != 1)
        kp_test_fail("random DEK");
    return s;
}

void kp_test_akv_local_wrap(const uint8_t *spki, size_t spki_len, const kp_secret *dek,
                            uint8_t **out, size_t *outlen)
{
    const unsigned char *p = spki;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki_len);
    EVP_PKEY_CTX *c = pk != NULL ? EVP_PKEY_CTX_new(pk, NULL) : NULL;
    size_t n = 0;
    if (c == NULL || EVP_PKEY_encrypt_init(c) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) <= 0 ||
        EVP_PKEY_encrypt(c, NULL, &n, kp_secret_cdata(dek), kp_secret_len(dek)) <= 0 ||
        (*out = malloc(n)) == NULL ||
        EVP_PKEY_encrypt(c, *out, &n, kp_secret_cdata(dek), kp_secret_len(dek)) <= 0)
        kp_test_fail("local RSA-OAEP-256 wrap");
    *outlen = n;
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(pk);
}

EVP_PKEY *kp_test_akv_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    if (k == NULL)
        kp_test_fail("RSA-%u key generation", bits);
    return k;
}

void kp_test_akv_spki(EVP_PKEY *key, uint8_t **spki, size_t *len, char fpr[KPK_FPR_HEX])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0 || (*spki = malloc((size_t)n)) == NULL)
        kp_test_fail("SubjectPublicKeyInfo");
    memcpy(*spki, der, (size_t)n);
    *len = (size_t)n;
    OPENSSL_free(der);
    if (kp_fingerprint_spki(*spki, *len, fpr) != KP_OK)
        kp_test_fail("fingerprint");
}

kp_secret *kp_test_akv_pkcs8(EVP_PKEY *key)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(key);
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    kp_secret *s = n > 0 ? kp_secret_new((size_t)n) : NULL;
    if (s == NULL)
        kp_test_fail("PKCS#8");
    memcpy(kp_secret_data(s), der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return s;
}

void kp_test_akv_keyx_blob(const uint8_t *spki, size_t spki_len, EVP_PKEY *key, uint8_t **blob,
                           size_t *len)
{
    kp_secret *p8 = kp_test_akv_pkcs8(key);
    unsigned char aes[32];
    const unsigned char *p = spki;
    EVP_PKEY *kek = d2i_PUBKEY(NULL, &p, (long)spki_len);
    EVP_PKEY_CTX *c = kek != NULL ? EVP_PKEY_CTX_new(kek, NULL) : NULL;
    size_t rsa_len = 0;
    if (RAND_bytes(aes, sizeof aes) != 1 || c == NULL || EVP_PKEY_encrypt_init(c) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha1()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha1()) <= 0 ||
        EVP_PKEY_encrypt(c, NULL, &rsa_len, aes, sizeof aes) <= 0)
        kp_test_fail("BYOK blob: RSA-OAEP-SHA-1 setup");
    /* RFC 5649 output: the input padded to a multiple of 8, plus 8 */
    size_t p8len = kp_secret_len(p8), cap = rsa_len + (p8len + 7) / 8 * 8 + 8;
    if ((*blob = malloc(cap)) == NULL || EVP_PKEY_encrypt(c, *blob, &rsa_len, aes, sizeof aes) <= 0)
        kp_test_fail("BYOK blob: RSA-OAEP-SHA-1");
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n1 = 0, n2 = 0;
    if (x == NULL)
        kp_test_fail("out of memory");
    EVP_CIPHER_CTX_set_flags(x, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_EncryptInit_ex(x, EVP_aes_256_wrap_pad(), NULL, aes, NULL) != 1 ||
        EVP_EncryptUpdate(x, *blob + rsa_len, &n1, kp_secret_cdata(p8), (int)p8len) != 1 ||
        EVP_EncryptFinal_ex(x, *blob + rsa_len + n1, &n2) != 1)
        kp_test_fail("BYOK blob: AES key wrap with padding");
    *len = rsa_len + (size_t)n1 + (size_t)n2;
    EVP_CIPHER_CTX_free(x);
    OPENSSL_cleanse(aes, sizeof aes);
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(kek);
    kp_secret_free(p8);
}
