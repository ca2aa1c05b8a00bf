/*
 * export-wrapped and export: a key leaves a store only when it was made exportable, and what
 * leaves must be that key. For KS_EXPORT_WRAPPED the kit makes the RSA wrapping key, unwraps the
 * blob with OpenSSL (RSA-OAEP, then RFC 5649) and compares the fingerprint of the PKCS#8's public
 * key with the version's; methods the instance does not declare, wrapping keys that are not RSA
 * and non-exportable keys are refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/x509.h>

#include "conf_crypto.h"
#include "conf_tests.h"

static kp_status s_export_wrapped(conf_run *r, const char *name, uint32_t m, const uint8_t *spki,
                                  size_t spki_len, uint8_t **out, size_t *len)
{
    conf_buf b;
    *len = 16384;
    if (!conf_buf_new(&b, *len))
        return KP_ERR_NOMEM;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_export_wrapped,
                           KP_FN_KS_EXPORT_WRAPPED)(r->inst, name, 0, m, spki, spki_len, b.p, len);
    if (st == KP_OK && *len > b.cap) {
        conf_fail(r, "KS_EXPORT_WRAPPED lies about a length: %zu bytes in %zu", *len, b.cap);
        st = KP_ERR_PLUGIN;
    }
    *out = b.p;
    return st;
}

/* The fingerprint of the public half of a PKCS#8 the kit got out of a store. */
static bool s_pkcs8_fpr(const uint8_t *der, size_t len, char fpr[65])
{
    EVP_PKEY *k = conf_pkey_from_pkcs8(der, len);
    bool ok = k != NULL && conf_pkey_fpr(k, fpr);
    EVP_PKEY_free(k);
    return ok;
}

/* The exported key's fingerprint got is not the one the plugin reported when it made the key.
 * When the exported key is the one GET_PUBLIC shows for the version, the export is right and the
 * reported fingerprint is wrong; otherwise the store exported another key. */
static void s_wrong_key(conf_run *r, const char *what, const conf_key *key, const char *got)
{
    const char *made = key->priv != NULL ? "KS_IMPORT" : "KS_CREATE";
    size_t n = 0;
    uint8_t *spki = conf_get_spki(r, key->name, key->info.version, &n);
    char pub[65] = "";
    bool have = spki != NULL;
    if (have)
        conf_sha256_hex(spki, n, pub);
    free(spki);
    if (have && strcmp(pub, got) == 0)
        conf_fail(r,
                  "%s exported the key of %s version %u that GET_PUBLIC shows (fingerprint "
                  "%.16s...), but %s reported the fingerprint %.16s... for it: the reported "
                  "fingerprint is wrong",
                  what, key->name, key->info.version, got, made, key->info.fingerprint);
    else if (have)
        conf_fail(r,
                  "%s exported another key (fingerprint %.16s...) than %s version %u, whose "
                  "public key from GET_PUBLIC has %.16s... (%s reported %.16s...)",
                  what, got, key->name, key->info.version, pub, made, key->info.fingerprint);
    else
        conf_fail(r,
                  "%s exported a key with the fingerprint %.16s..., not %.16s... that %s reported",
                  what, got, key->info.fingerprint, made);
}

/* Says why bytes that should be exactly one PKCS#8 are not: often a PKCS#8 with padding behind
 * it, which RFC 5649 makes needless (it carries the exact length) and importers refuse. */
static void s_not_pkcs8(conf_run *r, const uint8_t *p8, size_t n, const char *method)
{
    const unsigned char *p = p8;
    PKCS8_PRIV_KEY_INFO *inf = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)n);
    size_t used = (size_t)(p - p8);
    PKCS8_PRIV_KEY_INFO_free(inf);
    char tail[3 * 8 + 8] = "";
    for (size_t i = used; i < n && i < used + 8; i++)
        snprintf(tail + strlen(tail), sizeof(tail) - strlen(tail), "%s%02x", i > used ? " " : "",
                 p8[i]);
    if (inf != NULL && used < n)
        conf_fail(r,
                  "KS_EXPORT_WRAPPED(%s): the unwrapped bytes are a PKCS#8 private key "
                  "followed by %zu more bytes (%s%s): the AES key wrap must hold the PKCS#8 "
                  "alone",
                  method, n - used, tail, n - used > 8 ? " ..." : "");
    else
        conf_fail(r, "KS_EXPORT_WRAPPED(%s): the unwrapped bytes are not a PKCS#8 private key",
                  method);
}

static void s_method(conf_run *r, const conf_key *key, EVP_PKEY *w, const uint8_t *spki,
                     size_t spki_len, uint32_t m)
{
    uint8_t *out = NULL;
    size_t len = 0;
    kp_status st = s_export_wrapped(r, key->name, m, spki, spki_len, &out, &len);
    size_t n = 0;
    uint8_t *p8 = st == KP_OK ? conf_rsa_aes_unwrap(w, m, out, len, &n) : NULL;
    char fpr[65];
    if (st != KP_OK) {
        if (st != KP_ERR_PLUGIN)
            conf_fail(r, "KS_EXPORT_WRAPPED(%s) of an exportable key: %s: %s", conf_keyx_name(m),
                      conf_status_name(st), conf_reason());
    } else if (p8 == NULL)
        conf_fail(r,
                  "KS_EXPORT_WRAPPED(%s): the blob does not unwrap with OpenSSL (RSA-OAEP, "
                  "then AES key wrap with padding)",
                  conf_keyx_name(m));
    else if (!s_pkcs8_fpr(p8, n, fpr))
        s_not_pkcs8(r, p8, n, conf_keyx_name(m));
    else if (strcmp(fpr, key->info.fingerprint) != 0) {
        char what[64];
        snprintf(what, sizeof(what), "KS_EXPORT_WRAPPED(%s)", conf_keyx_name(m));
        s_wrong_key(r, what, key, fpr);
    }
    if (p8 != NULL)
        OPENSSL_clear_free(p8, n);
    free(out);
}

static void s_expect(conf_run *r, const char *name, uint32_t m, const uint8_t *spki, size_t n,
                     kp_status want, const char *what)
{
    uint8_t *out = NULL;
    size_t len = 0;
    kp_status st = s_export_wrapped(r, name, m, spki, n, &out, &len);
    if (st != want && st != KP_ERR_PLUGIN)
        conf_fail(r, "KS_EXPORT_WRAPPED %s: %s, want %s", what, conf_status_name(st),
                  conf_status_name(want));
    free(out);
}

void conf_t_export_wrapped(conf_run *r)
{
    uint32_t declared = r->kit->iinfo.export_keyx;
    conf_key key, fixed;
    if (!conf_key_make(r, "expw", KP_KEY_EXPORTABLE, false, &key))
        return;
    EVP_PKEY *w = conf_rsa_new(2048), *ec = EVP_EC_gen("P-256");
    size_t n = 0, ecn = 0;
    uint8_t *spki = w != NULL ? conf_spki_der(w, &n) : NULL;
    uint8_t *ecspki = ec != NULL ? conf_spki_der(ec, &ecn) : NULL;
    if (spki == NULL || ecspki == NULL) {
        conf_fail(r, "the kit could not make its wrapping keys");
        goto out;
    }
    uint32_t some = 0;
    for (uint32_t m = KP_KEYX_RSA_AES_KWP_SHA1; m <= KP_KEYX_RSA_OAEP_SHA256; m++) {
        bool rsa_aes = m == KP_KEYX_RSA_AES_KWP_SHA1 || m == KP_KEYX_RSA_AES_KWP_SHA256;
        if (!(declared & KP_KEYX_BIT(m)))
            s_expect(r, key.name, m, spki, n, KP_ERR_UNSUPPORTED, "with an undeclared method");
        else if (rsa_aes)
            s_method(r, &key, w, spki, n, (some = m));
        /* declared RSA-OAEP methods carry symmetric keys only: not tried on an RSA key */
    }
    if (some == 0)
        goto out;
    uint8_t junk[64];
    conf_random(junk, sizeof(junk));
    s_expect(r, key.name, some, junk, sizeof(junk), KP_ERR_INVALID_ARG,
             "under bytes that are not an SPKI");
    s_expect(r, key.name, some, ecspki, ecn, KP_ERR_INVALID_ARG, "under an EC wrapping key");
    if (conf_key_make(r, "expwfixed", 0, false, &fixed)) {
        s_expect(r, fixed.name, some, spki, n, KP_ERR_DENIED,
                 "of a key made without KP_KEY_EXPORTABLE");
        conf_key_free(&fixed);
    }
out:
    free(spki);
    free(ecspki);
    EVP_PKEY_free(w);
    EVP_PKEY_free(ec);
    conf_key_free(&key);
}

void conf_t_export(conf_run *r)
{
    kp_ks_export_fn *fn = CONF_FN(r->kit, ks_export, KP_FN_KS_EXPORT);
    conf_key key, fixed;
    if (!conf_key_make(r, "exp", KP_KEY_EXPORTABLE, false, &key))
        return;
    kp_secret *p8 = NULL;
    conf_err_clear();
    kp_status st = fn(r->inst, key.name, 0, &p8);
    char fpr[65];
    if (st != KP_OK)
        conf_fail(r, "KS_EXPORT of an exportable key: %s: %s", conf_status_name(st), conf_reason());
    else if (conf_secret_adopt(r, p8, "KS_EXPORT")) {
        if (!s_pkcs8_fpr(conf_secret_bytes(p8), conf_secret_size(p8), fpr))
            conf_fail(r, "KS_EXPORT did not give a DER PKCS#8 private key");
        else if (strcmp(fpr, key.info.fingerprint) != 0)
            s_wrong_key(r, "KS_EXPORT", &key, fpr);
        conf_secret_free(p8);
    }
    if (conf_key_make(r, "expfixed", 0, false, &fixed)) {
        p8 = NULL;
        conf_err_clear();
        st = fn(r->inst, fixed.name, 0, &p8);
        if (st != KP_ERR_DENIED)
            conf_fail(r,
                      "KS_EXPORT of a key made without KP_KEY_EXPORTABLE: %s, want "
                      "KP_ERR_DENIED",
                      conf_status_name(st));
        if (st == KP_OK && conf_secret_adopt(r, p8, "KS_EXPORT"))
            conf_secret_free(p8);
        conf_key_free(&fixed);
    }
    conf_key_free(&key);
}
