/*
 * certificates (ABI 1.3, KP_INST_CERTS). A SQL Server TDE protector is found by its
 * certificate's thumbprint, so a store that keeps certificates must keep exactly one per
 * version, never swap it, and never keep one whose key is not the version's: KS_CERT_PUT is
 * idempotent for the same bytes, EXISTS for other bytes, INTEGRITY for another key's
 * certificate, NOT_FOUND for a version that does not exist; KS_CERT_GET gives back the bytes
 * put, NOT_FOUND before. The kit's certificates carry the version's public key and are signed
 * by a throwaway key of its own: a store checks whose key a certificate holds, not who signed it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "conf_crypto.h"
#include "conf_tests.h"

/* A DER certificate (malloc'd) holding the public key spki/len, with serial. NULL on failure. */
static uint8_t *s_cert(const uint8_t *spki, size_t len, long serial, EVP_PKEY *signer, size_t *out)
{
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)len);
    X509 *x = X509_new();
    X509_NAME *nm = X509_NAME_new();
    unsigned char *der = NULL;
    int n = -1;
    if (pub != NULL && x != NULL && nm != NULL && X509_set_version(x, 2) &&
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial) &&
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"conformance", -1,
                                   -1, 0) &&
        X509_set_subject_name(x, nm) && X509_set_issuer_name(x, nm) &&
        X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
        X509_gmtime_adj(X509_getm_notAfter(x), 86400L) && X509_set_pubkey(x, pub) &&
        X509_sign(x, signer, EVP_sha256()) > 0)
        n = i2d_X509(x, &der);
    X509_NAME_free(nm);
    X509_free(x);
    EVP_PKEY_free(pub);
    if (n <= 0)
        return NULL;
    *out = (size_t)n;
    return der;
}

static kp_status s_put(conf_run *r, const char *name, uint32_t v, const uint8_t *der, size_t len)
{
    conf_err_clear();
    return CONF_FN(r->kit, ks_cert_put, KP_FN_KS_CERT_PUT)(r->inst, name, v, der, len);
}

static void s_want(conf_run *r, kp_status st, kp_status want, const char *what)
{
    if (st != want)
        conf_fail(r, "KS_CERT_PUT %s: %s, want %s%s%s", what, conf_status_name(st),
                  conf_status_name(want), st != KP_OK ? ": " : "",
                  st != KP_OK ? conf_reason() : "");
}

/* The stored certificate of name/v must be want (NULL: none). */
static void s_is(conf_run *r, const char *name, uint32_t v, const uint8_t *want, size_t wlen,
                 const char *when)
{
    uint8_t buf[KP_CERT_DER_MAX];
    size_t len = sizeof(buf);
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_cert_get, KP_FN_KS_CERT_GET)(r->inst, name, v, buf, &len);
    if (want == NULL && st != KP_ERR_NOT_FOUND)
        conf_fail(r, "KS_CERT_GET %s: %s, want KP_ERR_NOT_FOUND", when, conf_status_name(st));
    else if (want != NULL && st != KP_OK)
        conf_fail(r, "KS_CERT_GET %s: %s: %s", when, conf_status_name(st), conf_reason());
    else if (want != NULL && (len != wlen || memcmp(buf, want, wlen) != 0))
        conf_fail(r, "KS_CERT_GET %s: %zu bytes other than the %zu put", when, len, wlen);
}

void conf_t_cert(conf_run *r)
{
    conf_key key;
    kp_key_info other;
    if (!conf_key_make(r, "cert", 0, false, &key))
        return;
    const char *n = key.name;
    size_t slen = 0, olen = 0, c1len = 0, c2len = 0, c3len = 0;
    uint8_t *spki = conf_get_spki(r, n, 1, &slen);
    EVP_PKEY *signer = conf_rsa_new(2048);
    uint8_t *c1 = NULL, *c2 = NULL, *c3 = NULL, *ospki = NULL;
    kp_status st = conf_make_version(r, n, 2, &other);
    if (st != KP_OK)
        conf_fail(r, "making version 2 of %s: %s: %s", n, conf_status_name(st), conf_reason());
    else
        ospki = conf_get_spki(r, n, 2, &olen);
    if (spki != NULL && ospki != NULL && signer != NULL) {
        c1 = s_cert(spki, slen, 1, signer, &c1len);
        c2 = s_cert(spki, slen, 2, signer, &c2len);
        c3 = s_cert(ospki, olen, 3, signer, &c3len);
    }
    if (c1 == NULL || c2 == NULL || c3 == NULL) {
        conf_fail(r, "the kit could not make its test certificates");
        goto out;
    }
    s_is(r, n, 1, NULL, 0, "before any put");
    s_want(r, s_put(r, n, 1, c3, c3len), KP_ERR_INTEGRITY, "of version 2's certificate to v1");
    s_is(r, n, 1, NULL, 0, "after a refused put");
    s_want(r, s_put(r, n, 1, (const uint8_t *)"not a certificate", 17), KP_ERR_INVALID_ARG,
           "of bytes that are no certificate");
    s_want(r, s_put(r, n, 9, c1, c1len), KP_ERR_NOT_FOUND, "to a version that does not exist");
    s_want(r, s_put(r, n, 1, c1, c1len), KP_OK, "of the version's certificate");
    s_is(r, n, 1, c1, c1len, "after a put");
    s_want(r, s_put(r, n, 1, c1, c1len), KP_OK, "of the same bytes again");
    s_want(r, s_put(r, n, 1, c2, c2len), KP_ERR_EXISTS, "of another certificate of the same key");
    s_is(r, n, 1, c1, c1len, "after a refused second certificate");
    s_is(r, n, 2, NULL, 0, "of the other version");
    s_want(r, s_put(r, n, 2, c3, c3len), KP_OK, "of version 2's certificate");
    s_is(r, n, 2, c3, c3len, "of version 2");
    s_is(r, n, 1, c1, c1len, "of version 1 once version 2 has one");
out:
    OPENSSL_free(c1);
    OPENSSL_free(c2);
    OPENSSL_free(c3);
    free(spki);
    free(ospki);
    EVP_PKEY_free(signer);
    conf_key_free(&key);
}
