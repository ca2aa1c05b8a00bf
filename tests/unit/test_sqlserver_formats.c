/*
 * SQL Server's key formats (keyplane/sqlserver.h): the PVK private key file and the DER
 * certificate. A real export of SQL Server 2017 (tests/fixtures/sqlserver-real), files the
 * openssl command writes and reads in both directions (all three PVK protections), hostile
 * files, certificates keyplane makes, and RC4 kept out of the process's default OpenSSL context.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/sqlserver.h>

#include "format/ossl_legacy.h"
#include "kp_test.h"

#define REAL_DIR KP_TEST_SOURCE_DIR "/tests/fixtures/sqlserver-real"
#define REAL_PASSWORD "Pa$$w0rd"
#define REAL_THUMBPRINT "9E00202C7055170AE891B333E15DBDC62C568326"
#define INTEROP_PASSWORD "interop-Pass-1"
/* The openssl command needs the legacy provider for RC4, and default for the rest. */
#define OSSL_PROVIDERS "-provider legacy -provider default"

/* Shared by the tests: a scratch directory, and an RSA key openssl genpkey made there. */
static char *s_dir;
static kp_secret *s_key; /* PKCS#8 DER of s_dir/key.pem */

/* ---- helpers ------------------------------------------------------------------------------ */

static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        kp_test_fail("cannot open %s", path);
    uint8_t *buf = malloc(KP_PVK_MAX + 1);
    assert_non_null(buf);
    *len = fread(buf, 1, KP_PVK_MAX + 1, f);
    fclose(f);
    return buf;
}

static void s_spill(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len)
        kp_test_fail("cannot write %s", path);
    fclose(f);
}

static char *s_path(const char *name)
{
    char *p = NULL;
    if (asprintf(&p, "%s/%s", s_dir, name) < 0)
        kp_test_fail("out of memory");
    return p;
}

/* Runs a shell command line built from fmt; returns its exit status. */
__attribute__((format(printf, 1, 2))) static int s_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static kp_secret *s_pw(const char *text)
{
    kp_secret *s = kp_secret_new_copy(text, strlen(text));
    assert_non_null(s);
    return s;
}

static EVP_PKEY *s_pkey(const kp_secret *p8der)
{
    const unsigned char *p = kp_secret_cdata(p8der);
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(p8der));
    assert_non_null(p8);
    EVP_PKEY *pk = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_non_null(pk);
    return pk;
}

/* The version fingerprint of a PKCS#8 key's public half. */
static void s_fpr(const kp_secret *p8der, char hex[KPK_FPR_HEX])
{
    EVP_PKEY *pk = s_pkey(p8der);
    assert_int_equal(kpk_fpr_pkey(pk, hex), KP_OK);
    EVP_PKEY_free(pk);
}

static kp_secret *s_p8_of(EVP_PKEY *pk)
{
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pk);
    unsigned char *der = NULL;
    int n = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, &der) : -1;
    assert_true(n > 0);
    kp_secret *s = kp_secret_new_copy(der, (size_t)n);
    OPENSSL_clear_free(der, (size_t)n);
    PKCS8_PRIV_KEY_INFO_free(p8);
    assert_non_null(s);
    return s;
}

static kp_secret *s_rsa_p8(unsigned bits)
{
    EVP_PKEY *pk = EVP_RSA_gen(bits);
    assert_non_null(pk);
    kp_secret *s = s_p8_of(pk);
    EVP_PKEY_free(pk);
    return s;
}

/* kp_pvk_read with password given as text (NULL for none); returns the status. */
static kp_status s_read_pvk(const uint8_t *buf, size_t len, const char *password, kp_secret **out,
                            kp_pvk_enc *enc, char *err, size_t errlen)
{
    kp_secret *pw = password != NULL ? s_pw(password) : NULL;
    kp_status st = kp_pvk_read(buf, len, pw, out, enc, err, errlen);
    kp_secret_free(pw);
    return st;
}

/* ---- setup -------------------------------------------------------------------------------- */

static int s_setup(void **state)
{
    (void)state;
    s_dir = kp_test_tmpdir();
    if (s_sh("%s genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s/key.pem "
             "2>/dev/null",
             KP_TEST_OPENSSL, s_dir) != 0)
        return -1;
    char *path = s_path("key.pem");
    size_t len = 0;
    uint8_t *pem = s_slurp(path, &len);
    kp_secret *in = kp_secret_new_copy(pem, len);
    char err[256];
    kp_status st = kp_private_key_to_pkcs8(in, NULL, &s_key, err, sizeof(err));
    kp_secret_free(in);
    free(pem);
    free(path);
    return st == KP_OK ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    kp_secret_free(s_key);
    kp_test_rmtree(s_dir);
    free(s_dir);
    return 0;
}

/* ---- the real export ---------------------------------------------------------------------- */

static void test_rc4_not_in_default_before(void **state)
{
    (void)state;
    /* The premise of the last test: nothing gave the default context RC4 to begin with. */
    EVP_CIPHER *rc4 = EVP_CIPHER_fetch(NULL, "RC4", NULL);
    assert_null(rc4);
}

static void test_real_export(void **state)
{
    (void)state;
    size_t pvklen = 0, cerlen = 0;
    uint8_t *pvk = s_slurp(REAL_DIR "/dbm_certificate.pvk", &pvklen);
    uint8_t *cer = s_slurp(REAL_DIR "/dbm_certificate.cer", &cerlen);
    kp_secret *key = NULL;
    kp_pvk_enc enc = KP_PVK_NONE;
    char err[256] = "";
    assert_int_equal(s_read_pvk(pvk, pvklen, REAL_PASSWORD, &key, &enc, err, sizeof(err)), KP_OK);
    assert_string_equal(err, "");
    assert_int_equal(enc, KP_PVK_STRONG);

    kp_cert_info info;
    assert_int_equal(kp_cert_read(cer, cerlen, &info, err, sizeof(err)), KP_OK);
    assert_string_equal(info.thumbprint, REAL_THUMBPRINT);
    assert_string_equal(info.subject, "CN=dbm");
    assert_string_equal(info.serial, "78B5C43F65B9CF9A4647C490B3A46DF8");
    assert_int_equal(info.key_bits, 2048);
    char fpr[KPK_FPR_HEX];
    s_fpr(key, fpr);
    assert_string_equal(fpr, info.fingerprint);
    assert_true(kpk_fpr_valid(info.fingerprint));
    /* 2018-05-15 14:06:04 and 2019-05-15 14:06:04 UTC: expired. */
    assert_int_equal(info.not_before, 1526393164);
    assert_int_equal(info.not_after, 1557929164);
    time_t t = (time_t)info.not_after;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_int_equal(tm.tm_year + 1900, 2019);

    /* A password on a file that needs none, and the enc output left out: both fine. */
    kp_secret *again = NULL;
    assert_int_equal(s_read_pvk(pvk, pvklen, REAL_PASSWORD, &again, NULL, err, sizeof(err)), KP_OK);
    assert_true(kp_secret_equal(key, again));
    kp_secret_free(again);
    kp_secret_free(key);
    free(cer);
    free(pvk);
}

static void test_real_wrong_or_no_password(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *pvk = s_slurp(REAL_DIR "/dbm_certificate.pvk", &len);
    kp_secret *key = NULL;
    kp_pvk_enc enc = KP_PVK_NONE;
    char err[256];
    const char *wrong[] = {"Pa$$w0rd!", "pa$$w0rd", "", "Pa$$w0r"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        assert_int_equal(s_read_pvk(pvk, len, wrong[i], &key, &enc, err, sizeof(err)), KP_ERR_AUTH);
        assert_string_equal(err, "wrong password");
        assert_null(key);
    }
    assert_int_equal(s_read_pvk(pvk, len, NULL, &key, &enc, err, sizeof(err)), KP_ERR_INVALID_ARG);
    assert_string_equal(err, "the PVK file is encrypted; a password is needed");
    assert_null(key);
    /* Longer than OpenSSL's password buffer. */
    char longpw[PEM_BUFSIZE + 2];
    memset(longpw, 'x', sizeof(longpw) - 1);
    longpw[sizeof(longpw) - 1] = '\0';
    assert_int_equal(s_read_pvk(pvk, len, longpw, &key, &enc, err, sizeof(err)),
                     KP_ERR_INVALID_ARG);
    assert_null(key);
    free(pvk);
}

/* ---- OpenSSL interop ---------------------------------------------------------------------- */

static void test_openssl_writes_keyplane_reads(void **state)
{
    (void)state;
    static const struct {
        const char *form;
        kp_pvk_enc enc;
    } forms[] = {{"strong", KP_PVK_STRONG}, {"weak", KP_PVK_WEAK}, {"none", KP_PVK_NONE}};
    char want[KPK_FPR_HEX];
    s_fpr(s_key, want);
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        assert_int_equal(s_sh("%s rsa -in %s/key.pem -outform PVK -pvk-%s -passout pass:%s "
                              "-out %s/openssl-%s.pvk " OSSL_PROVIDERS " 2>/dev/null",
                              KP_TEST_OPENSSL, s_dir, forms[i].form, INTEROP_PASSWORD, s_dir,
                              forms[i].form),
                         0);
        char name[64];
        snprintf(name, sizeof(name), "openssl-%s.pvk", forms[i].form);
        char *path = s_path(name);
        size_t len = 0;
        uint8_t *pvk = s_slurp(path, &len);
        kp_secret *key = NULL;
        kp_pvk_enc enc = (kp_pvk_enc)-1;
        char err[256] = "";
        const char *pw = forms[i].enc == KP_PVK_NONE ? NULL : INTEROP_PASSWORD;
        assert_int_equal(s_read_pvk(pvk, len, pw, &key, &enc, err, sizeof(err)), KP_OK);
        assert_int_equal(enc, forms[i].enc);
        char got[KPK_FPR_HEX];
        s_fpr(key, got);
        assert_string_equal(got, want);
        /* the same private key, not only the same public half */
        assert_true(kp_secret_equal(key, s_key));
        kp_secret_free(key);
        if (forms[i].enc != KP_PVK_NONE) {
            assert_int_equal(s_read_pvk(pvk, len, "not-it", &key, &enc, err, sizeof(err)),
                             KP_ERR_AUTH);
            assert_string_equal(err, "wrong password");
        }
        free(pvk);
        free(path);
    }
}

static void test_keyplane_writes_openssl_reads(void **state)
{
    (void)state;
    assert_int_equal(
        s_sh("%s pkey -in %s/key.pem -pubout -out %s/want.pub", KP_TEST_OPENSSL, s_dir, s_dir), 0);
    size_t wantlen = 0;
    char *wantpath = s_path("want.pub");
    uint8_t *want = s_slurp(wantpath, &wantlen);
    for (int encrypted = 1; encrypted >= 0; encrypted--) {
        kp_secret *pw = encrypted ? s_pw(INTEROP_PASSWORD) : NULL;
        kp_secret *pvk = NULL;
        char err[256] = "";
        assert_int_equal(kp_pvk_write(s_key, pw, &pvk, err, sizeof(err)), KP_OK);
        const uint8_t *b = kp_secret_cdata(pvk);
        /* magic, key type KEYX as SQL Server writes, the flag, a 16-byte salt when encrypted */
        assert_int_equal(b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24, 0xb0b5f11eu);
        assert_int_equal(b[8], 1);
        assert_int_equal(b[12], encrypted);
        assert_int_equal(b[16], encrypted ? 16 : 0);

        char name[64];
        snprintf(name, sizeof(name), "keyplane-%d.pvk", encrypted);
        char *path = s_path(name);
        s_spill(path, kp_secret_cdata(pvk), kp_secret_len(pvk));
        assert_int_equal(
            s_sh("%s rsa -inform PVK -in %s -passin pass:%s -pubout -out %s/got.pub " OSSL_PROVIDERS
                 " 2>/dev/null",
                 KP_TEST_OPENSSL, path, INTEROP_PASSWORD, s_dir),
            0);
        char *gotpath = s_path("got.pub");
        size_t gotlen = 0;
        uint8_t *got = s_slurp(gotpath, &gotlen);
        assert_int_equal(gotlen, wantlen);
        assert_memory_equal(got, want, wantlen);

        /* and back through keyplane */
        kp_secret *back = NULL;
        kp_pvk_enc enc = (kp_pvk_enc)-1;
        assert_int_equal(kp_pvk_read(kp_secret_cdata(pvk), kp_secret_len(pvk), pw, &back, &enc, err,
                                     sizeof(err)),
                         KP_OK);
        assert_int_equal(enc, encrypted ? KP_PVK_STRONG : KP_PVK_NONE);
        assert_true(kp_secret_equal(back, s_key));
        kp_secret_free(back);
        unlink(gotpath);
        free(got);
        free(gotpath);
        free(path);
        kp_secret_free(pvk);
        kp_secret_free(pw);
    }
    free(want);
    free(wantpath);
}

static void test_pvk_write_refusals(void **state)
{
    (void)state;
    kp_secret *pvk = NULL;
    char err[256];
    kp_secret *empty = kp_secret_new(0);
    assert_int_equal(kp_pvk_write(s_key, empty, &pvk, err, sizeof(err)), KP_ERR_INVALID_ARG);
    assert_null(pvk);
    kp_secret_free(empty);
    /* not PKCS#8 */
    kp_secret *junk = s_pw("not a key");
    assert_int_equal(kp_pvk_write(junk, NULL, &pvk, err, sizeof(err)), KP_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "not a PKCS#8 private key"));
    kp_secret_free(junk);
    /* an EC key */
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    assert_non_null(ec);
    kp_secret *ecp8 = s_p8_of(ec);
    assert_int_equal(kp_pvk_write(ecp8, NULL, &pvk, err, sizeof(err)), KP_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "not RSA"));
    assert_null(pvk);
    kp_secret_free(ecp8);
    EVP_PKEY_free(ec);
}

/* ---- hostile PVK files -------------------------------------------------------------------- */

static void s_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Reading buf/len must fail with want and, when given, exactly the text msg. */
static void s_pvk_refused(const uint8_t *buf, size_t len, const char *password, kp_status want,
                          const char *msg)
{
    kp_secret *key = NULL;
    kp_pvk_enc enc = KP_PVK_NONE;
    char err[256] = "";
    kp_status st = s_read_pvk(buf, len, password, &key, &enc, err, sizeof(err));
    if (st != want || key != NULL || err[0] == '\0' || (msg != NULL && strcmp(err, msg) != 0))
        kp_test_fail("PVK of %zu bytes: status %d (want %d), err \"%s\" (want \"%s\")", len,
                     (int)st, (int)want, err, msg != NULL ? msg : "any");
}

static void test_pvk_hostile(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *real = s_slurp(REAL_DIR "/dbm_certificate.pvk", &len);
    assert_int_equal(len, 1212);
    uint8_t *buf = malloc(len + 16);
    assert_non_null(buf);

    /* every prefix, with and without the password: refused, never a key */
    for (size_t n = 0; n < len; n++) {
        for (int withpw = 0; withpw < 2; withpw++) {
            kp_secret *key = NULL;
            char err[256] = "";
            kp_status st =
                s_read_pvk(real, n, withpw ? REAL_PASSWORD : NULL, &key, NULL, err, sizeof(err));
            if ((st != KP_ERR_INVALID_ARG && st != KP_ERR_AUTH) || key != NULL || err[0] == '\0')
                kp_test_fail("prefix of %zu bytes: status %d, err \"%s\"", n, (int)st, err);
        }
    }
    s_pvk_refused(real, 0, NULL, KP_ERR_INVALID_ARG, "truncated PVK file (0 of 24 bytes)");
    s_pvk_refused(real, 10, NULL, KP_ERR_INVALID_ARG, "truncated PVK file (10 of 24 bytes)");
    s_pvk_refused(real, 100, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "truncated PVK file (100 of 1212 bytes)");
    s_pvk_refused(real, 1211, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "truncated PVK file (1211 of 1212 bytes)");

    /* trailing bytes */
    memcpy(buf, real, len);
    buf[len] = 0;
    s_pvk_refused(buf, len + 1, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "1 bytes after the key in the PVK file");

    /* wrong magic */
    memcpy(buf, real, len);
    s_put32(buf, 0x12345678u);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, "not a PVK file (magic 0x12345678)");
    s_pvk_refused((const uint8_t *)"-----BEGIN RSA", 14, NULL, KP_ERR_INVALID_ARG, NULL);

    /* a DSS algorithm id in the clear blob header */
    memcpy(buf, real, len);
    s_put32(buf + 24 + 16 + 4, 0x2200u);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, "the PVK key is not RSA");
    /* not a private key blob, another blob version */
    memcpy(buf, real, len);
    buf[24 + 16] = 0x06;
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    memcpy(buf, real, len);
    buf[24 + 16 + 1] = 0x03;
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);

    /* header fields out of range: key type, flag, flag against salt, sizes */
    memcpy(buf, real, len);
    s_put32(buf + 8, 3);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    memcpy(buf, real, len);
    s_put32(buf + 12, 2);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    memcpy(buf, real, len);
    s_put32(buf + 12, 0);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "the PVK file has a salt but says it is not encrypted");
    memcpy(buf, real, len);
    s_put32(buf + 16, 0);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "the PVK file says it is encrypted but has no salt");
    memcpy(buf, real, len);
    s_put32(buf + 20, 0xffffffffu);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "the PVK header declares 4294967335 bytes, more than the 65536 keyplane "
                  "takes");
    memcpy(buf, real, len);
    s_put32(buf + 16, 0xffffffffu);
    s_put32(buf + 20, 0xffffffffu);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    /* a key blob too short for its headers, the file cut to match */
    memcpy(buf, real, len);
    s_put32(buf + 20, 12);
    s_pvk_refused(buf, 24 + 16 + 12, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "the PVK key blob is 12 bytes, too short for a key");
    /* a key blob shorter than its 2048 bits need, the file cut to match */
    memcpy(buf, real, len);
    s_put32(buf + 20, 1000);
    s_pvk_refused(buf, 24 + 16 + 1000, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);

    /* a damaged byte inside the encrypted numbers: opens, but the key does not hold */
    memcpy(buf, real, len);
    buf[600] ^= 0x01;
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    /* a damaged byte of the salt: the password no longer opens it */
    memcpy(buf, real, len);
    buf[30] ^= 0x01;
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_AUTH, "wrong password");

    /* garbage of every size around the header's */
    for (size_t n = 0; n < 64; n++)
        buf[n] = (uint8_t)(n * 37 + 11);
    for (size_t n = 0; n < 64; n++)
        s_pvk_refused(buf, n, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    /* a right header over garbage */
    memcpy(buf, real, 40);
    for (size_t n = 40; n < len; n++)
        buf[n] = (uint8_t)(n * 131 + 7);
    s_pvk_refused(buf, len, REAL_PASSWORD, KP_ERR_INVALID_ARG, NULL);
    /* too large */
    uint8_t *big = calloc(1, KP_PVK_MAX + 1);
    assert_non_null(big);
    memcpy(big, real, 24);
    s_pvk_refused(big, KP_PVK_MAX + 1, REAL_PASSWORD, KP_ERR_INVALID_ARG,
                  "the PVK file is 65537 bytes, more than the 65536 keyplane takes");
    free(big);
    free(buf);
    free(real);
}

/* An unencrypted PVK with its clear numbers changed: the "RSA2" magic, the bit count. */
static void test_pvk_hostile_clear(void **state)
{
    (void)state;
    kp_secret *pvk = NULL;
    char err[256];
    assert_int_equal(kp_pvk_write(s_key, NULL, &pvk, err, sizeof(err)), KP_OK);
    size_t len = kp_secret_len(pvk);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memcpy(buf, kp_secret_cdata(pvk), len);
    s_put32(buf + 24 + 8, 0x32535344u); /* DSS2 */
    s_pvk_refused(buf, len, NULL, KP_ERR_INVALID_ARG, "the PVK key is not RSA");
    memcpy(buf, kp_secret_cdata(pvk), len);
    s_put32(buf + 24 + 12, 4096);
    s_pvk_refused(buf, len, NULL, KP_ERR_INVALID_ARG,
                  "the PVK key blob is 1172 bytes; a 4096-bit RSA key takes 2324");
    memcpy(buf, kp_secret_cdata(pvk), len);
    s_put32(buf + 24 + 12, 0);
    s_pvk_refused(buf, len, NULL, KP_ERR_INVALID_ARG,
                  "the PVK key is 0 bits; keyplane takes 512 to 16384");
    memcpy(buf, kp_secret_cdata(pvk), len);
    buf[len - 1] ^= 0x40; /* d's top byte */
    s_pvk_refused(buf, len, NULL, KP_ERR_INVALID_ARG, NULL);
    free(buf);
    kp_secret_free(pvk);
}

/* ---- certificates ------------------------------------------------------------------------- */

static void s_cert_refused(const uint8_t *der, size_t len, const char *msg)
{
    kp_cert_info info;
    char err[256] = "";
    kp_status st = kp_cert_read(der, len, &info, err, sizeof(err));
    if (st != KP_ERR_INVALID_ARG || err[0] == '\0' || (msg != NULL && strcmp(err, msg) != 0))
        kp_test_fail("certificate of %zu bytes: status %d, err \"%s\" (want \"%s\")", len, (int)st,
                     err, msg != NULL ? msg : "any");
}

static void test_cert_hostile(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *real = s_slurp(REAL_DIR "/dbm_certificate.cer", &len);
    uint8_t *buf = malloc(len + 16);
    assert_non_null(buf);
    for (size_t n = 0; n < len; n++)
        s_cert_refused(real, n, NULL);
    memcpy(buf, real, len);
    buf[len] = 0;
    buf[len + 1] = 0;
    s_cert_refused(buf, len + 2, "2 bytes after the certificate");
    /* garbage */
    for (size_t n = 0; n < 200; n++)
        buf[n] = (uint8_t)(n * 53 + 1);
    s_cert_refused(buf, 200, NULL);
    /* PEM, as openssl writes it */
    assert_int_equal(s_sh("%s x509 -inform DER -in %s/dbm_certificate.cer -out %s/dbm.pem",
                          KP_TEST_OPENSSL, REAL_DIR, s_dir),
                     0);
    char *pempath = s_path("dbm.pem");
    size_t pemlen = 0;
    uint8_t *pem = s_slurp(pempath, &pemlen);
    s_cert_refused(pem, pemlen,
                   "PEM, expected DER: convert it with openssl x509 -inform PEM -outform DER");
    free(pem);
    free(pempath);
    /* too large */
    uint8_t *big = calloc(1, KP_CERT_MAX + 1);
    assert_non_null(big);
    memcpy(big, real, len);
    s_cert_refused(big, KP_CERT_MAX + 1,
                   "the certificate is 16385 bytes, more than the 16384 keyplane takes");
    free(big);
    free(buf);
    free(real);
}

/* A certificate whose key is not RSA is refused, but its thumbprint and subject are told. */
static void test_cert_not_rsa(void **state)
{
    (void)state;
    static const char *const kinds[] = {"ec -pkeyopt ec_paramgen_curve:P-256", "ed25519"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(s_sh("%s genpkey -algorithm %s -out %s/nonrsa.key 2>/dev/null && "
                              "%s req -x509 -new -key %s/nonrsa.key -subj /CN=other -days 30 "
                              "-outform DER -out %s/nonrsa.cer 2>/dev/null",
                              KP_TEST_OPENSSL, kinds[i], s_dir, KP_TEST_OPENSSL, s_dir, s_dir),
                         0);
        char *path = s_path("nonrsa.cer");
        size_t len = 0;
        uint8_t *der = s_slurp(path, &len);
        kp_cert_info info;
        char err[256] = "";
        assert_int_equal(kp_cert_read(der, len, &info, err, sizeof(err)), KP_ERR_INVALID_ARG);
        assert_string_equal(err, "the certificate's key is not RSA");
        assert_string_equal(info.subject, "CN=other");
        assert_int_equal(strlen(info.thumbprint), 40);
        assert_int_equal(info.key_bits, 0);
        free(der);
        free(path);
    }
}

static void test_cert_generate(void **state)
{
    (void)state;
    const char *subject = "CN=TDE protector,O=Contoso";
    int64_t nb = 1767225600; /* 2026-01-01 */
    int64_t na = 2840140800; /* 2060-01-01: GeneralizedTime */
    uint8_t *der = NULL;
    size_t len = 0;
    char err[256] = "";
    assert_int_equal(kp_cert_generate(s_key, subject, nb, na, &der, &len, err, sizeof(err)), KP_OK);
    kp_cert_info info;
    assert_int_equal(kp_cert_read(der, len, &info, err, sizeof(err)), KP_OK);
    char fpr[KPK_FPR_HEX];
    s_fpr(s_key, fpr);
    assert_string_equal(info.fingerprint, fpr);
    assert_string_equal(info.subject, subject);
    assert_int_equal(info.key_bits, 2048);
    assert_int_equal(info.not_before, nb);
    assert_int_equal(info.not_after, na);
    assert_int_equal(strlen(info.serial), 32);
    assert_non_null(strchr("1234567", info.serial[0]));

    /* its own key verifies its signature, and issuer == subject */
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    assert_non_null(x);
    EVP_PKEY *pk = s_pkey(s_key);
    assert_int_equal(X509_verify(x, pk), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_get_signature_nid(x), NID_sha256WithRSAEncryption);
    EVP_PKEY_free(pk);
    X509_free(x);

    /* openssl agrees on the thumbprint and the self-signature */
    char *path = s_path("generated.cer");
    s_spill(path, der, len);
    assert_int_equal(s_sh("%s x509 -inform DER -in %s -noout -fingerprint -sha1 > %s/sha1.txt",
                          KP_TEST_OPENSSL, path, s_dir),
                     0);
    char *sha1path = s_path("sha1.txt");
    size_t tlen = 0;
    char *text = (char *)s_slurp(sha1path, &tlen);
    char hex[KP_THUMBPRINT_HEX + 8];
    size_t k = 0;
    const char *eq = memchr(text, '=', tlen);
    assert_non_null(eq);
    for (const char *c = eq + 1; c < text + tlen && *c != '\n' && k + 1 < sizeof(hex); c++)
        if (*c != ':')
            hex[k++] = *c;
    hex[k] = '\0';
    assert_string_equal(hex, info.thumbprint);
    assert_int_equal(s_sh("%s x509 -inform DER -in %s -out %s/generated.pem && "
                          "%s verify -check_ss_sig -partial_chain -CAfile %s/generated.pem "
                          "%s/generated.pem > /dev/null",
                          KP_TEST_OPENSSL, path, s_dir, KP_TEST_OPENSSL, s_dir, s_dir),
                     0);
    free(text);
    free(sha1path);
    free(path);
    kp_free(der);

    /* escapes round-trip; UTCTime dates before 2050 */
    const char *escaped = "CN=a\\,b \\+ c,OU=Ops,O=Contoso\\, Ltd,C=US";
    assert_int_equal(
        kp_cert_generate(s_key, escaped, 946684800, 978307200, &der, &len, err, sizeof(err)),
        KP_OK);
    assert_int_equal(kp_cert_read(der, len, &info, err, sizeof(err)), KP_OK);
    assert_string_equal(info.subject, escaped);
    assert_int_equal(info.not_before, 946684800);
    assert_int_equal(info.not_after, 978307200);
    kp_free(der);
    /* spaces around names and values are not kept; case of the names is OpenSSL's */
    assert_int_equal(
        kp_cert_generate(s_key, " cn = x , o = y ", nb, na, &der, &len, err, sizeof(err)), KP_OK);
    assert_int_equal(kp_cert_read(der, len, &info, err, sizeof(err)), KP_OK);
    assert_string_equal(info.subject, "CN=x,O=y");
    kp_free(der);
}

static void s_generate_refused(const kp_secret *key, const char *subject, int64_t nb, int64_t na,
                               const char *msg)
{
    uint8_t *der = (uint8_t *)1;
    size_t len = 1;
    char err[256] = "";
    kp_status st = kp_cert_generate(key, subject, nb, na, &der, &len, err, sizeof(err));
    if (st != KP_ERR_INVALID_ARG || der != NULL || len != 0 || err[0] == '\0' ||
        (msg != NULL && strcmp(err, msg) != 0))
        kp_test_fail("subject \"%s\": status %d, err \"%s\" (want \"%s\")", subject, (int)st, err,
                     msg != NULL ? msg : "any");
}

static void test_cert_generate_refusals(void **state)
{
    (void)state;
    int64_t nb = 1767225600, na = nb + 86400;
    kp_secret *small = s_rsa_p8(1024);
    s_generate_refused(small, "CN=x", nb, na,
                       "the key is 1024 bits; a certificate takes an RSA key of 2048 bits or "
                       "more");
    kp_secret_free(small);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    kp_secret *ecp8 = s_p8_of(ec);
    s_generate_refused(ecp8, "CN=x", nb, na, NULL);
    kp_secret_free(ecp8);
    EVP_PKEY_free(ec);

    s_generate_refused(s_key, "CN=x", nb, nb,
                       "the certificate would end before it starts (not_after <= not_before)");
    s_generate_refused(s_key, "CN=x", nb, nb - 1, NULL);

    s_generate_refused(s_key, "", nb, na, "the subject is empty");
    s_generate_refused(s_key, "CN", nb, na,
                       "attribute 1 of the subject has no '=' (write e.g. CN=name)");
    s_generate_refused(s_key, "CN=x,", nb, na, NULL);
    s_generate_refused(s_key, "CN=x,,O=y", nb, na, NULL);
    s_generate_refused(s_key, "FOO=bar", nb, na,
                       "unknown attribute 'FOO' in the subject; use CN, O, OU, C, L, ST, STREET, "
                       "DC, UID, emailAddress, serialNumber or title");
    s_generate_refused(s_key, "sha256=x", nb, na, NULL);
    s_generate_refused(s_key, "CN=", nb, na, "an empty value for CN in the subject");
    s_generate_refused(s_key, "CN=   ", nb, na, "an empty value for CN in the subject");
    s_generate_refused(s_key, "CN=a+O=b", nb, na, NULL);
    s_generate_refused(s_key, "CN=a\\", nb, na, NULL);
    s_generate_refused(s_key, "CN=a\\q", nb, na, NULL);
    s_generate_refused(s_key, "CN=a\\0a", nb, na, "a control character in the subject");
    s_generate_refused(s_key, "C=USA", nb, na, NULL);
    char longcn[80] = "CN=";
    memset(longcn + 3, 'x', 65);
    longcn[68] = '\0';
    s_generate_refused(s_key, longcn, nb, na, NULL);
    char many[256] = "";
    for (int i = 0; i < 17; i++)
        strcat(many, i == 0 ? "OU=x" : ",OU=x");
    s_generate_refused(s_key, many, nb, na, "the subject has more than 16 attributes");
    char huge[1100];
    memset(huge, 'x', sizeof(huge) - 1);
    memcpy(huge, "CN=", 3);
    huge[sizeof(huge) - 1] = '\0';
    s_generate_refused(s_key, huge, nb, na, "the subject is longer than 1024 characters");
    kp_secret *junk = s_pw("junk");
    s_generate_refused(junk, "CN=x", nb, na, NULL);
    kp_secret_free(junk);
}

/* ---- the default context ------------------------------------------------------------------ */

static void test_rc4_not_in_default_after(void **state)
{
    (void)state;
    /* The PVK tests above used RC4, from keyplane's own context ... */
    OSSL_LIB_CTX *lib = kp__ossl_legacy_ctx();
    assert_non_null(lib);
    EVP_CIPHER *rc4 = EVP_CIPHER_fetch(lib, "RC4", NULL);
    assert_non_null(rc4);
    EVP_CIPHER_free(rc4);
    /* ... and the process's default context still has none. */
    rc4 = EVP_CIPHER_fetch(NULL, "RC4", NULL);
    assert_null(rc4);
    assert_null(EVP_CIPHER_fetch(NULL, "RC4-40", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rc4_not_in_default_before),
        cmocka_unit_test(test_real_export),
        cmocka_unit_test(test_real_wrong_or_no_password),
        cmocka_unit_test(test_openssl_writes_keyplane_reads),
        cmocka_unit_test(test_keyplane_writes_openssl_reads),
        cmocka_unit_test(test_pvk_write_refusals),
        cmocka_unit_test(test_pvk_hostile),
        cmocka_unit_test(test_pvk_hostile_clear),
        cmocka_unit_test(test_cert_hostile),
        cmocka_unit_test(test_cert_not_rsa),
        cmocka_unit_test(test_cert_generate),
        cmocka_unit_test(test_cert_generate_refusals),
        cmocka_unit_test(test_rc4_not_in_default_after),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
