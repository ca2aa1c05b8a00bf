/*
 * Fuzz target of the certificate reader (core/src/format/x509.c, kp_cert_read): a DER .cer
 * that may come from anywhere. Besides memory errors it checks what sqlserver.h promises: a
 * certificate read has the SHA-1 of the input as its thumbprint (40 upper-case hex digits), a
 * well-formed fingerprint, an RSA key size, and NUL-terminated subject and serial; a refusal is
 * KP_ERR_INVALID_ARG with one printable line that does not quote the input, and leaves info all
 * zeros but for a key that is not RSA (then key_bits stays 0).
 *
 * Built as a libFuzzer target (fuzz_cert, Clang) and as a replay program over its corpus
 * (fuzz_cert_replay; ctest fuzz.cert.replay). See README.md.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>
#include <keyplane/sqlserver.h>

#include "fuzz_check.h"

#define T "fuzz_cert"

static int s_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void s_check(const uint8_t *data, size_t size, const kp_cert_info *info)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char digits[] = "0123456789ABCDEF";
    if (!EVP_Digest(data, size, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
        kp_test_fuzz_die(T, "SHA-1", "cannot hash the input");
    if (strlen(info->thumbprint) != 40)
        kp_test_fuzz_die(T, "kp_cert_read", "a thumbprint that is not 40 hex digits");
    for (unsigned i = 0; i < mdlen; i++)
        if (info->thumbprint[2 * i] != digits[md[i] >> 4] ||
            info->thumbprint[2 * i + 1] != digits[md[i] & 0x0f])
            kp_test_fuzz_die(T, "kp_cert_read", "the thumbprint is not the input's SHA-1");
    if (!kpk_fpr_valid(info->fingerprint))
        kp_test_fuzz_die(T, "kp_cert_read", "a fingerprint that is not 64 lower-case hex");
    if (!s_terminated(info->subject, sizeof(info->subject)) ||
        !s_terminated(info->serial, sizeof(info->serial)))
        kp_test_fuzz_die(T, "kp_cert_read", "a subject or serial without its NUL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    kp_cert_info info;
    memset(err, 0, sizeof(err));
    memset(&info, 0x5a, sizeof(info));
    kp_status st = kp_cert_read(data, size, &info, err, sizeof(err));
    if (st == KP_OK) {
        s_check(data, size, &info);
        if (info.key_bits == 0)
            kp_test_fuzz_die(T, "kp_cert_read", "an RSA key of 0 bits");
        return 0;
    }
    if (st != KP_ERR_INVALID_ARG && st != KP_ERR_NOMEM && st != KP_ERR_CRYPTO)
        kp_test_fuzz_die(T, "kp_cert_read", "a status the header does not name");
    kp_test_fuzz_error_text(T, "kp_cert_read", err);
    if (info.key_bits != 0)
        kp_test_fuzz_die(T, "kp_cert_read", "failed with a key size");
    if (info.thumbprint[0] != '\0')
        s_check(data, size, &info); /* a key that is not RSA: the rest stays */
    else {
        static const kp_cert_info zero;
        if (memcmp(&info, &zero, sizeof(info)) != 0)
            kp_test_fuzz_die(T, "kp_cert_read", "failed but left info half filled");
    }
    return 0;
}
