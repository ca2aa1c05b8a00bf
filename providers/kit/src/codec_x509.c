/*
 * The one check every holder of a protector's certificate makes: the bytes are exactly one DER
 * X.509 certificate (RFC 5280 4.1), and its public key is a given version's, by the version
 * fingerprint (the SHA-256 of the SubjectPublicKeyInfo). A keystore that keeps certificates
 * (KS_CERT_PUT) and the core that reads them back use it, so a certificate never sits beside a
 * key it does not belong to.
 */
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>

kp_status kpk_cert_fpr(const uint8_t *der, size_t len, char *hex)
{
    if (der == NULL || len == 0 || len > KP_CERT_DER_MAX || hex == NULL)
        return KP_ERR_INVALID_ARG;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    kp_status st = KP_ERR_INVALID_ARG;
    /* Trailing bytes would be a second object hiding behind the first. */
    if (x != NULL && p == der + len) {
        const EVP_PKEY *pk = X509_get0_pubkey(x);
        st = pk != NULL ? kpk_fpr_pkey(pk, hex) : KP_ERR_INVALID_ARG;
    }
    X509_free(x);
    return st;
}
