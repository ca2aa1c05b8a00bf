/*
 * Microsoft PVK private key files, the form SQL Server's BACKUP CERTIFICATE ... WITH PRIVATE
 * KEY writes and CREATE CERTIFICATE ... FROM FILE reads (sqlserver.h). OpenSSL does the
 * reading and writing (its PVK decoder, i2b_PVK_bio_ex), with RC4 from keyplane's own legacy
 * context (format/ossl_legacy.h). The file's header is checked here first: OpenSSL reports most
 * faults of a file with one generic reason, ignores bytes after the key, and does not say which
 * of the two key derivations opened it.
 *
 * The layout, every number a little-endian 32-bit word: a 24-byte header (magic 0xb0b5f11e,
 * reserved, key type, encrypted flag, salt length, key length), the salt, then the key blob.
 * The blob starts with an 8-byte BLOBHEADER (type 7 for a private key, version 2, two reserved
 * bytes, the algorithm id), which stays in the clear; the rest (the "RSA2" magic, the modulus
 * bits, the public exponent, then n, p, q, dP, dQ, qInv, d) is RC4-encrypted in an encrypted
 * file, under SHA-1(salt || password): its first 16 bytes for the strong form, its first 5
 * followed by 11 zero bytes for the weak, 40-bit one.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/sqlserver.h>

#include "format/err_text.h"
#include "format/ossl_legacy.h"
#include "format/pkcs8.h"

#define S_MAGIC 0xb0b5f11eu
#define S_HEADER 24u    /* the six words before the salt */
#define S_BLOBHEADER 8u /* bType, bVersion, reserved, aiKey: never encrypted */
#define S_RSAPUBKEY 12u /* magic, bit length, public exponent */
#define S_KEYTYPE_KEYX 1u
#define S_KEYTYPE_SIGNATURE 2u
#define S_PRIVATEKEYBLOB 0x07u
#define S_BLOB_VERSION 0x02u
#define S_CALG_RSA_KEYX 0xa400u
#define S_CALG_RSA_SIGN 0x2400u
#define S_RSA2 0x32415352u
/* Modulus sizes taken: SQL Server before 2016 made 1024-bit keys, and reading an old backup
 * must work; the top bounds the work a hostile file can ask for (the consistency check's
 * modular exponentiations grow with the cube of the size). */
#define S_BITS_MIN 512u
#define S_BITS_MAX 16384u
/* The room OpenSSL's PVK code gives the password callback. */
#define S_PASSWORD_MAX PEM_BUFSIZE

/* What the header says, once checked against the file's size. */
typedef struct s_pvk {
    int encrypted;
    size_t saltlen, keylen;
    const uint8_t *salt, *blob;
} s_pvk;

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The bytes of an RSA private key blob of bits modulus bits: the two headers, then n and d at
 * full length and the five CRT values at half length, each rounded up to whole bytes. */
static uint64_t s_rsa_blob_len(uint32_t bits)
{
    uint64_t full = ((uint64_t)bits + 7) / 8, half = ((uint64_t)bits + 15) / 16;
    return S_BLOBHEADER + S_RSAPUBKEY + 2 * full + 5 * half;
}

/* The size of the key proper against the blob's length and keyplane's bounds. */
static kp_status s_check_bits(const s_pvk *h, uint32_t bits, char *err, size_t errlen)
{
    if (bits < S_BITS_MIN || bits > S_BITS_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK key is %" PRIu32 " bits; keyplane takes %u to %u", bits,
                            S_BITS_MIN, S_BITS_MAX);
    uint64_t want = s_rsa_blob_len(bits);
    if (want != h->keylen)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK key blob is %zu bytes; a %" PRIu32
                            "-bit RSA key takes %" PRIu64,
                            h->keylen, bits, want);
    return KP_OK;
}

/* Checks everything the file says about itself that can be checked without the password. */
static kp_status s_header(const uint8_t *pvk, size_t len, s_pvk *h, char *err, size_t errlen)
{
    if (len >= 4 && s_le32(pvk) != S_MAGIC)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "not a PVK file (magic 0x%08" PRIx32 ")", s_le32(pvk));
    if (len > KP_PVK_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK file is %zu bytes, more than the %d keyplane takes", len,
                            KP_PVK_MAX);
    if (len < S_HEADER)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "truncated PVK file (%zu of %zu bytes)", len, (size_t)S_HEADER);
    uint32_t keytype = s_le32(pvk + 8), encrypted = s_le32(pvk + 12);
    uint32_t saltlen = s_le32(pvk + 16), keylen = s_le32(pvk + 20);
    if (keytype != S_KEYTYPE_KEYX && keytype != S_KEYTYPE_SIGNATURE)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK key type is %" PRIu32 "; expected 1 (KEYX) or 2 (SIGNATURE)",
                            keytype);
    if (encrypted > 1)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK encryption flag is %" PRIu32 "; expected 0 or 1", encrypted);
    /* OpenSSL decrypts whenever there is a salt, whatever the flag says; a file whose flag and
     * salt disagree is refused rather than read one way or the other. */
    if (encrypted == 1 && saltlen == 0)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK file says it is encrypted but has no salt");
    if (encrypted == 0 && saltlen != 0)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK file has a salt but says it is not encrypted");
    uint64_t total = (uint64_t)S_HEADER + saltlen + keylen;
    if (total > KP_PVK_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK header declares %" PRIu64
                            " bytes, more than the %d keyplane takes",
                            total, KP_PVK_MAX);
    if (len < total)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "truncated PVK file (%zu of %zu bytes)", len, (size_t)total);
    if (len > total)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "%zu bytes after the key in the PVK file", len - (size_t)total);
    if (keylen < S_BLOBHEADER + S_RSAPUBKEY)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK key blob is %" PRIu32 " bytes, too short for a key", keylen);
    h->encrypted = encrypted == 1;
    h->saltlen = saltlen;
    h->keylen = keylen;
    h->salt = pvk + S_HEADER;
    h->blob = h->salt + saltlen;
    if (h->blob[0] != S_PRIVATEKEYBLOB || h->blob[1] != S_BLOB_VERSION)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK key blob is not a private key blob (type 0x%02x, version %u)",
                            h->blob[0], h->blob[1]);
    uint32_t alg = s_le32(h->blob + 4);
    if (alg != S_CALG_RSA_KEYX && alg != S_CALG_RSA_SIGN)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the PVK key is not RSA");
    if (h->encrypted)
        return KP_OK;
    /* In the clear the key's own header can be checked too; an encrypted one is checked once
     * it is open (s_probe). */
    if (s_le32(h->blob + S_BLOBHEADER) != S_RSA2)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the PVK key is not RSA");
    return s_check_bits(h, s_le32(h->blob + S_BLOBHEADER + 4), err, errlen);
}

/* OpenSSL's pem_password_cb: hands over the password (u, a kp_secret), never prompts. */
static int s_password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const kp_secret *pw = u;
    if (pw == NULL || size < 0 || kp_secret_len(pw) > (size_t)size)
        return -1;
    if (kp_secret_len(pw) > 0)
        memcpy(buf, kp_secret_cdata(pw), kp_secret_len(pw));
    return (int)kp_secret_len(pw);
}

/* Which key derivation opens the encrypted file h: OpenSSL has just opened it, trying the
 * strong key and then the weak one, but does not say which worked. The first 8 bytes of the
 * key proper (the "RSA2" magic and the modulus bits) are decrypted under the strong key, and
 * under the weak one when the magic does not show; *bits receives the modulus bits. */
/* PVK's RC4 over len bytes of in into out: the key is SHA-1(salt || password), all of its
 * first 16 bytes (strong) or its first 5 and 11 zeros (weak). The cipher comes from lib, the
 * only context that has RC4; 0 on failure. */
static int s_rc4(OSSL_LIB_CTX *lib, const uint8_t *salt, size_t saltlen, const kp_secret *password,
                 bool weak, const uint8_t *in, uint8_t *out, size_t len)
{
    unsigned char key[EVP_MAX_MD_SIZE];
    unsigned int keylen = 0;
    int n = 0, ok = 0;
    EVP_MD *sha1 = EVP_MD_fetch(lib, "SHA1", NULL);
    EVP_CIPHER *rc4 = EVP_CIPHER_fetch(lib, "RC4", NULL);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_CIPHER_CTX *cc = EVP_CIPHER_CTX_new();
    if (sha1 != NULL && rc4 != NULL && md != NULL && cc != NULL && len <= INT_MAX &&
        EVP_DigestInit_ex(md, sha1, NULL) && EVP_DigestUpdate(md, salt, saltlen) &&
        EVP_DigestUpdate(md, kp_secret_cdata(password), kp_secret_len(password)) &&
        EVP_DigestFinal_ex(md, key, &keylen) && keylen >= 16) {
        if (weak)
            memset(key + 5, 0, 11);
        ok = EVP_EncryptInit_ex(cc, rc4, NULL, key, NULL) &&
             EVP_EncryptUpdate(cc, out, &n, in, (int)len) && n == (int)len;
    }
    OPENSSL_cleanse(key, sizeof(key));
    EVP_CIPHER_CTX_free(cc);
    EVP_MD_CTX_free(md);
    EVP_CIPHER_free(rc4);
    EVP_MD_free(sha1);
    ERR_clear_error();
    return ok;
}

static kp_status s_probe(OSSL_LIB_CTX *lib, const s_pvk *h, const kp_secret *password,
                         kp_pvk_enc *enc, uint32_t *bits)
{
    kp_status st = KP_ERR_CRYPTO;
    unsigned char plain[8];
    for (int weak = 0; weak < 2 && st != KP_OK; weak++) {
        if (!s_rc4(lib, h->salt, h->saltlen, password, weak, h->blob + S_BLOBHEADER, plain,
                   sizeof(plain)))
            break;
        if (s_le32(plain) == S_RSA2) {
            *enc = weak ? KP_PVK_WEAK : KP_PVK_STRONG;
            *bits = s_le32(plain + 4);
            st = KP_OK;
        }
    }
    OPENSSL_cleanse(plain, sizeof(plain));
    return st;
}

kp_status kp_pvk_read(const uint8_t *pvk, size_t len, const kp_secret *password,
                      kp_secret **pkcs8_der, kp_pvk_enc *enc, char *err, size_t errlen)
{
    KP_ENSURE(pkcs8_der != NULL && (pvk != NULL || len == 0), KP_ERR_INVALID_ARG);
    *pkcs8_der = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    s_pvk h;
    memset(&h, 0, sizeof(h));
    KP_GUARD(s_header(pvk, len, &h, err, errlen));
    if (h.encrypted && password == NULL)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the PVK file is encrypted; a password is needed");
    if (h.encrypted && kp_secret_len(password) > S_PASSWORD_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the password is longer than %d bytes",
                            S_PASSWORD_MAX);
    /* A file in the clear needs no RC4: the default context reads it when legacy is missing. */
    OSSL_LIB_CTX *lib = kp__ossl_legacy_ctx();
    if (h.encrypted && lib == NULL)
        return kp__fmt_fail(err, errlen, KP_ERR_UNSUPPORTED,
                            "OpenSSL's legacy provider (RC4, for PVK) is not available");

    kp_status st = KP_OK;
    kp_pvk_enc how = KP_PVK_NONE;
    uint32_t bits = 0;
    EVP_PKEY *pk = NULL;
    const unsigned char *p = pvk;
    size_t left = len;
    /* Through the decoder rather than b2i_PVK_bio_ex: OpenSSL 3.0's b2i_PVK_bio_ex drops the
     * library context it is given and fetches RC4 from the default one, where it is not. The
     * default provider's PVK decoder runs the same PVK code with its own context, ours. */
    OSSL_DECODER_CTX *dctx =
        OSSL_DECODER_CTX_new_for_pkey(&pk, "PVK", NULL, "RSA", EVP_PKEY_KEYPAIR, lib, NULL);
    if (dctx == NULL || OSSL_DECODER_CTX_get_num_decoders(dctx) == 0 ||
        !OSSL_DECODER_CTX_set_pem_password_cb(dctx, s_password_cb, (void *)password)) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_UNSUPPORTED,
                               "cannot set up OpenSSL's PVK decoder");
        goto out;
    }
    ERR_clear_error();
    if (!OSSL_DECODER_from_data(dctx, &p, &left) || pk == NULL) {
        unsigned long e = ERR_peek_last_error();
        if (h.encrypted && ERR_GET_LIB(e) == ERR_LIB_PEM &&
            ERR_GET_REASON(e) == PEM_R_BAD_DECRYPT) {
            ERR_clear_error();
            st = kp__fmt_fail(err, errlen, KP_ERR_AUTH, "wrong password");
        } else {
            st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG, "the PVK key does not parse");
        }
        goto out;
    }
    /* The algorithm id said RSA; in an encrypted file only the decrypted magic says which
     * numbers follow. */
    if (!EVP_PKEY_is_a(pk, "RSA")) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the PVK key is not RSA");
        goto out;
    }
    if (h.encrypted) {
        st = s_probe(lib, &h, password, &how, &bits);
        if (st != KP_OK) {
            st = kp__fmt_fail(err, errlen, st, "cannot tell how the PVK file is encrypted");
            goto out;
        }
        st = s_check_bits(&h, bits, err, errlen);
        if (st != KP_OK)
            goto out;
    }
    /* A key that opened but does not hold together is a damaged file, not a wrong password:
     * a wrong password yields the "RSA2" magic only once in 2^31 tries. */
    if (!kpk_rsa_consistent(pk)) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                          "the PVK key's numbers do not make an RSA key (a damaged file?)");
        goto out;
    }
    st = kp__pkey_pkcs8(pk, pkcs8_der, err, errlen);
    if (st == KP_OK && enc != NULL)
        *enc = how;
out:
    EVP_PKEY_free(pk);
    OSSL_DECODER_CTX_free(dctx);
    return st;
}

static void s_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The clear PVK file plain/len encrypted the strong way under password into *pvk: the header's
 * encrypted flag and salt length set, 16 random bytes of salt after it, and RC4 over the key
 * blob after its 8-byte BLOBHEADER (the layout s_header reads). Not i2b_PVK_bio_ex's own
 * encryption: that salts from the library context it is given, and OpenSSL 3.0 keeps a random
 * generator per thread for a context other than the default one and never frees it, so every
 * worker thread that wrote a .pvk would leak one. Here the salt comes from the default context
 * and only RC4 from keyplane's. */
static kp_status s_encrypt(OSSL_LIB_CTX *lib, const uint8_t *plain, size_t len,
                           const kp_secret *password, kp_secret **pvk, char *err, size_t errlen)
{
    const size_t saltlen = 16;
    size_t keylen = len - S_HEADER;
    if (s_le32(plain) != S_MAGIC || s_le32(plain + 12) != 0 || s_le32(plain + 16) != 0 ||
        s_le32(plain + 20) != keylen || keylen <= S_BLOBHEADER)
        return kp__fmt_fail(err, errlen, KP_ERR_CRYPTO,
                            "OpenSSL wrote a PVK file of another shape");
    *pvk = kp_secret_new(len + saltlen);
    if (*pvk == NULL)
        return kp__fmt_fail(err, errlen, KP_ERR_NOMEM, "out of memory for the PVK file");
    uint8_t *o = kp_secret_data(*pvk);
    memcpy(o, plain, S_HEADER);
    s_put_le32(o + 12, 1);
    s_put_le32(o + 16, (uint32_t)saltlen);
    uint8_t *salt = o + S_HEADER, *blob = salt + saltlen;
    memcpy(blob, plain + S_HEADER, S_BLOBHEADER);
    if (RAND_bytes(salt, (int)saltlen) != 1 ||
        !s_rc4(lib, salt, saltlen, password, false, plain + S_HEADER + S_BLOBHEADER,
               blob + S_BLOBHEADER, keylen - S_BLOBHEADER)) {
        kp_secret_free(*pvk);
        *pvk = NULL;
        return kp__fmt_fail(err, errlen, KP_ERR_CRYPTO, "cannot encrypt the PVK file");
    }
    return KP_OK;
}

kp_status kp_pvk_write(const kp_secret *pkcs8_der, const kp_secret *password, kp_secret **pvk,
                       char *err, size_t errlen)
{
    KP_ENSURE(pkcs8_der != NULL && pvk != NULL, KP_ERR_INVALID_ARG);
    *pvk = NULL;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    /* OpenSSL refuses an empty password when writing, and hands its callback PEM_BUFSIZE. */
    if (password != NULL &&
        (kp_secret_len(password) == 0 || kp_secret_len(password) > S_PASSWORD_MAX))
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "a PVK password takes 1 to %d bytes",
                            S_PASSWORD_MAX);
    OSSL_LIB_CTX *lib = kp__ossl_legacy_ctx();
    if (password != NULL && lib == NULL)
        return kp__fmt_fail(err, errlen, KP_ERR_UNSUPPORTED,
                            "OpenSSL's legacy provider (RC4, for PVK) is not available");

    kp_status st = KP_OK;
    EVP_PKEY *pk = NULL;
    BIO *out = NULL;
    char *data = NULL;
    long n = 0;
    pk = kp__pkcs8_pkey(pkcs8_der);
    if (pk == NULL) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "not a PKCS#8 private key");
        goto out;
    }
    if (!EVP_PKEY_is_a(pk, "RSA")) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                          "the key is not RSA; SQL Server's PVK "
                          "files hold RSA keys");
        goto out;
    }
    /* The secure heap when the program set one up; the buffer is wiped before it is freed
     * either way. OpenSSL writes the file in the clear, with key type KEYX as SQL Server does;
     * the encryption is added below (s_encrypt). */
    out = BIO_new(BIO_s_secmem());
    if (out == NULL || i2b_PVK_bio_ex(out, pk, 0, NULL, NULL, NULL, NULL) <= 0) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot write the key as PVK");
        goto out;
    }
    n = BIO_get_mem_data(out, &data);
    st = n > (long)S_HEADER ? KP_OK : kp__fmt_fail(err, errlen, KP_ERR_CRYPTO, "no PVK written");
    if (st == KP_OK && password != NULL)
        st = s_encrypt(lib, (const uint8_t *)data, (size_t)n, password, pvk, err, errlen);
    else if (st == KP_OK && (*pvk = kp_secret_new_copy(data, (size_t)n)) == NULL)
        st = kp__fmt_fail(err, errlen, KP_ERR_NOMEM, "out of memory for the PVK file");
    if (n > 0)
        OPENSSL_cleanse(data, (size_t)n);
out:
    BIO_free(out);
    EVP_PKEY_free(pk);
    return st;
}
