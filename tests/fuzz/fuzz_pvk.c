/*
 * Fuzz target of the PVK reader (core/src/format/pvk.c, kp_pvk_read): a SQL Server private key
 * backup, which may come from anywhere. Each input is read twice, with the password the seeds
 * were made with and with none. Besides memory errors it checks what sqlserver.h promises: a
 * key read is an RSA PKCS#8 PrivateKeyInfo, its protection one of the three, and it writes back
 * (kp_pvk_write, no password) to a file that reads as the same key; a refusal hands out no key
 * and says why in one printable line that holds neither the password nor a quote of the input,
 * with a status of the ones the header names.
 *
 * Built as a libFuzzer target (fuzz_pvk, Clang) and as a replay program over its corpus
 * (fuzz_pvk_replay; ctest fuzz.pvk.replay). See README.md.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <keyplane/keyplane.h>
#include <keyplane/sqlserver.h>

#include "fuzz_check.h"

#define T "fuzz_pvk"
/* The password of the corpus's encrypted seeds (the real SQL Server export's). */
#define S_PASSWORD "Pa$$w0rd"

/* A key kp_pvk_read handed out: RSA PKCS#8 DER, nothing after it. */
static void s_check_key(const kp_secret *key)
{
    const unsigned char *p = kp_secret_cdata(key);
    size_t len = kp_secret_len(key);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL || p != kp_secret_cdata(key) + len)
        kp_test_fuzz_die(T, "kp_pvk_read", "the key is not PKCS#8 DER");
    EVP_PKEY *pk = EVP_PKCS82PKEY(p8);
    if (pk == NULL || !EVP_PKEY_is_a(pk, "RSA"))
        kp_test_fuzz_die(T, "kp_pvk_read", "the key is not an RSA key");
    EVP_PKEY_free(pk);
    PKCS8_PRIV_KEY_INFO_free(p8);
}

/* The key written as a clear PVK reads back as itself. */
static void s_round_trip(const kp_secret *key)
{
    char err[256] = "";
    kp_secret *pvk = NULL, *back = NULL;
    kp_pvk_enc enc = KP_PVK_STRONG;
    if (kp_pvk_write(key, NULL, &pvk, err, sizeof(err)) != KP_OK)
        kp_test_fuzz_die(T, "kp_pvk_write", "a key kp_pvk_read handed out does not write");
    if (kp_pvk_read(kp_secret_cdata(pvk), kp_secret_len(pvk), NULL, &back, &enc, err,
                    sizeof(err)) != KP_OK ||
        enc != KP_PVK_NONE)
        kp_test_fuzz_die(T, "kp_pvk_read", "a file kp_pvk_write made does not read");
    if (!kp_secret_equal(key, back))
        kp_test_fuzz_die(T, "kp_pvk_read", "a written key reads back as another");
    kp_secret_free(back);
    kp_secret_free(pvk);
}

static void s_one(const uint8_t *data, size_t size, const kp_secret *password)
{
    char err[256];
    kp_secret *key = NULL;
    kp_pvk_enc enc = (kp_pvk_enc)-1;
    memset(err, 0, sizeof(err));
    kp_status st = kp_pvk_read(data, size, password, &key, &enc, err, sizeof(err));
    if (st != KP_OK) {
        if (key != NULL)
            kp_test_fuzz_die(T, "kp_pvk_read", "failed but handed out a key");
        if (st != KP_ERR_INVALID_ARG && st != KP_ERR_AUTH && st != KP_ERR_NOMEM &&
            st != KP_ERR_UNSUPPORTED && st != KP_ERR_CRYPTO)
            kp_test_fuzz_die(T, "kp_pvk_read", "a status the header does not name");
        kp_test_fuzz_error_text(T, "kp_pvk_read", err);
        if (strstr(err, S_PASSWORD) != NULL)
            kp_test_fuzz_die(T, "kp_pvk_read", "the error text holds the password");
        return;
    }
    if (key == NULL)
        kp_test_fuzz_die(T, "kp_pvk_read", "succeeded without a key");
    if (enc != KP_PVK_NONE && enc != KP_PVK_WEAK && enc != KP_PVK_STRONG)
        kp_test_fuzz_die(T, "kp_pvk_read", "succeeded without saying how the file was kept");
    if (password == NULL && enc != KP_PVK_NONE)
        kp_test_fuzz_die(T, "kp_pvk_read", "opened an encrypted file without a password");
    s_check_key(key);
    s_round_trip(key);
    kp_secret_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kp_secret *password = kp_secret_new_copy(S_PASSWORD, strlen(S_PASSWORD));
    if (password == NULL)
        return 0;
    s_one(data, size, password);
    s_one(data, size, NULL);
    kp_secret_free(password);
    return 0;
}
