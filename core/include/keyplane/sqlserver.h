/*
 * libkeyplane: SQL Server's key formats. A TDE protector is a certificate: SQL Server finds it
 * by thumbprint (the SHA-1 of the certificate's DER) and restores it from a DER .cer and a
 * Microsoft PVK private key file (docs/sqlserver.md).
 *
 * PVK's RC4 lives in OpenSSL's legacy provider; keyplane loads it into a library context of its
 * own, never into the process's default one, so nothing else in the process gains RC4.
 */
#ifndef KEYPLANE_SQLSERVER_H
#define KEYPLANE_SQLSERVER_H

#include <stddef.h>
#include <stdint.h>

#include <keyplane/error.h>
#include <keyplane/provider.h>
#include <keyplane/secret.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A certificate's SHA-1 thumbprint: 40 upper-case hex digits, as SQL Server shows it after
 *  0x, with the NUL. */
#define KP_THUMBPRINT_HEX 41
/** Room for a certificate's subject as kp_cert_read writes it (RFC 2253, truncated to fit). */
#define KP_CERT_SUBJECT_MAX 256
/** Largest certificate keyplane takes, in DER bytes. */
#define KP_CERT_MAX (16 * 1024)

/** What keyplane needs to know of an X.509 certificate. */
typedef struct kp_cert_info {
    char thumbprint[KP_THUMBPRINT_HEX]; /**< SHA-1 of the DER, upper-case hex */
    char fingerprint[KPK_FPR_HEX];      /**< the version fingerprint of its public key */
    char subject[KP_CERT_SUBJECT_MAX];  /**< RFC 2253, e.g. "CN=dbm" */
    char serial[KP_CERT_SUBJECT_MAX];   /**< upper-case hex, no separators */
    int64_t not_before, not_after;      /**< Unix seconds */
    uint32_t key_bits;                  /**< RSA modulus bits; 0 for a key that is not RSA */
} kp_cert_info;

/**
 * Reads a DER X.509 certificate that is exactly der/len bytes (nothing before or after it).
 * On error err receives one line: PEM given where DER is expected ("PEM, expected DER: convert
 * it with openssl x509 -inform PEM -outform DER"), not a certificate, bytes after it, larger
 * than KP_CERT_MAX, a key that is not RSA. KP_ERR_INVALID_ARG for each of those. For a key
 * that is not RSA, info is still filled (key_bits 0), so the caller can name the certificate it
 * refuses; on any other error info is all zeros.
 */
KP_API KP_WARN_UNUSED kp_status kp_cert_read(const uint8_t *der, size_t len, kp_cert_info *info,
                                             char *err, size_t errlen);

/**
 * Makes a self-signed certificate SQL Server accepts for the RSA private key pkcs8_der (PKCS#8
 * PrivateKeyInfo DER, 2048 bits or more): X.509 v3, sha256WithRSAEncryption, a random positive
 * 16-byte serial, subject and issuer the distinguished name subject (RFC 2253 text such as
 * "CN=TDE protector,O=Contoso"), valid from not_before to not_after (Unix seconds). *der is
 * allocated (free with kp_free()). KP_ERR_INVALID_ARG for a key under 2048 bits, a subject that
 * does not parse, or not_after <= not_before; err says which.
 */
KP_API KP_WARN_UNUSED kp_status kp_cert_generate(const kp_secret *pkcs8_der, const char *subject,
                                                 int64_t not_before, int64_t not_after,
                                                 uint8_t **der, size_t *len, char *err,
                                                 size_t errlen);

/** How a PVK file protects its key. */
typedef enum kp_pvk_enc {
    KP_PVK_NONE = 0,   /**< not encrypted */
    KP_PVK_WEAK = 1,   /**< RC4 with a 40-bit key */
    KP_PVK_STRONG = 2, /**< RC4 with a 128-bit key (what SQL Server writes) */
} kp_pvk_enc;

/** Largest PVK file keyplane takes, in bytes. */
#define KP_PVK_MAX (64 * 1024)

/**
 * Reads a PVK file (pvk/len, the whole file) into PKCS#8 PrivateKeyInfo DER (*pkcs8_der, a new
 * secret). password may be NULL for an unencrypted file; *enc (may be NULL) receives how the
 * file was protected. The file's own header is checked before anything is decrypted, so each
 * failure has its own line in err, and KP_ERR_INVALID_ARG: not a PVK file (its magic), a
 * truncated file (its header's lengths against its size), bytes after the key, an encrypted
 * file with no password, a key type that is not RSA, a key outside 512..16384 bits or whose
 * numbers do not make an RSA key (a damaged file). A password that does not open the key:
 * KP_ERR_AUTH, err "wrong password". KP_ERR_UNSUPPORTED for an encrypted file when OpenSSL's
 * legacy provider (RC4) cannot be loaded.
 */
KP_API KP_WARN_UNUSED kp_status kp_pvk_read(const uint8_t *pvk, size_t len,
                                            const kp_secret *password, kp_secret **pkcs8_der,
                                            kp_pvk_enc *enc, char *err, size_t errlen);

/**
 * Writes the RSA private key pkcs8_der as a PVK file encrypted with RC4-128 under password
 * (the "strong" form SQL Server's CREATE CERTIFICATE ... DECRYPTION BY PASSWORD reads), or
 * unencrypted when password is NULL. The file's key type is KEYX, as SQL Server writes it.
 * *pvk is a new secret holding the file's bytes. KP_ERR_INVALID_ARG for a key that is not RSA
 * or a password outside 1..1024 bytes; KP_ERR_UNSUPPORTED with a password when OpenSSL's legacy
 * provider (RC4) cannot be loaded.
 */
KP_API KP_WARN_UNUSED kp_status kp_pvk_write(const kp_secret *pkcs8_der, const kp_secret *password,
                                             kp_secret **pvk, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_SQLSERVER_H */
