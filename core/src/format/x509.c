/*
 * X.509 certificates as SQL Server takes them (sqlserver.h): a DER .cer read for what keyplane
 * needs to know of it (the thumbprint SQL Server finds a TDE protector by, the fingerprint of
 * its key as keyplane names key versions, subject, serial, dates), and a self-signed one made
 * for a key keyplane holds, for CREATE CERTIFICATE ... FROM FILE.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <keyplane/keyplane.h>
#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/sqlserver.h>

#include "format/err_text.h"
#include "format/pkcs8.h"
#include "format/x509.h"

/* The smallest RSA key a generated certificate takes: SQL Server 2016 and later make 2048-bit
 * keys themselves, and nothing shorter is worth protecting a database with. */
#define S_BITS_MIN 2048
/* Bounds on the subject text kp_cert_generate parses. */
#define S_SUBJECT_MAX 1024
#define S_RDN_MAX 16
#define S_SERIAL_BYTES 16

/* Upper-case hex, as SQL Server and Windows show thumbprints. */
static void s_hex_upper(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* A PEM file starts with its armour line, perhaps after a byte-order mark or blank lines. */
static int s_looks_pem(const uint8_t *p, size_t len)
{
    static const char armour[] = "-----BEGIN";
    size_t i = 0;
    if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        i = 3;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return len - i >= sizeof(armour) - 1 && memcmp(p + i, armour, sizeof(armour) - 1) == 0;
}

/* t as Unix seconds. */
static int s_time(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
        return 0;
    *out = (int64_t)timegm(&tm);
    return 1;
}

/* The subject in RFC 2253 form (most specific attribute first, as SQL Server's SUBJECT is
 * written; bytes outside ASCII escaped, so the text is safe to print), truncated to fit. */
static int s_subject_text(const X509_NAME *name, char *out, size_t cap)
{
    char *data = NULL;
    BIO *b = BIO_new(BIO_s_mem());
    int ok = b != NULL && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0;
    long n = ok ? BIO_get_mem_data(b, &data) : 0;
    if (ok) {
        size_t k = n > 0 ? (size_t)n : 0;
        if (k > cap - 1)
            k = cap - 1;
        if (k > 0)
            memcpy(out, data, k);
        out[k] = '\0';
    }
    BIO_free(b);
    return ok;
}

/* The serial as upper-case hex without separators (a leading '-' for a negative one). */
static int s_serial_text(const ASN1_INTEGER *serial, char *out, size_t cap)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    if (hex != NULL)
        snprintf(out, cap, "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    return hex != NULL;
}

kp_status kp_cert_read(const uint8_t *der, size_t len, kp_cert_info *info, char *err, size_t errlen)
{
    KP_ENSURE(info != NULL && (der != NULL || len == 0), KP_ERR_INVALID_ARG);
    memset(info, 0, sizeof(*info));
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (s_looks_pem(der, len))
        return kp__fmt_fail(
            err, errlen, KP_ERR_INVALID_ARG,
            "PEM, expected DER: convert it with openssl x509 -inform PEM -outform DER");
    if (len > KP_CERT_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the certificate is %zu bytes, more than the %d keyplane takes", len,
                            KP_CERT_MAX);
    if (len == 0)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "not a certificate: no bytes");

    kp_status st = KP_OK;
    int keep = 0; /* info stays filled on this failure */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_PKEY *pk = NULL;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG, "not a DER X.509 certificate");
        goto out;
    }
    if (p != der + len) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "%zu bytes after the certificate",
                          (size_t)(der + len - p));
        goto out;
    }
    /* The thumbprint is the hash of the file's bytes, which are the certificate's DER: what
     * Windows and SQL Server hash. */
    if (!EVP_Digest(der, len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot hash the certificate");
        goto out;
    }
    s_hex_upper(md, mdlen, info->thumbprint);
    if (!s_subject_text(X509_get_subject_name(x), info->subject, sizeof(info->subject)) ||
        !s_serial_text(X509_get0_serialNumber(x), info->serial, sizeof(info->serial))) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG,
                               "cannot print the certificate's subject or serial");
        goto out;
    }
    if (!s_time(X509_get0_notBefore(x), &info->not_before) ||
        !s_time(X509_get0_notAfter(x), &info->not_after)) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG,
                               "the certificate's validity dates do not parse");
        goto out;
    }
    pk = X509_get0_pubkey(x);
    if (pk == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG,
                               "the certificate's public key does not decode");
        goto out;
    }
    st = kpk_fpr_pkey(pk, info->fingerprint);
    if (st != KP_OK) {
        st = kp__fmt_ossl_fail(err, errlen, st, "cannot fingerprint the certificate's key");
        goto out;
    }
    /* info stays filled for a key of another kind, key_bits 0, so a caller can still say
     * which certificate it refused. */
    if (!EVP_PKEY_is_a(pk, "RSA")) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the certificate's key is not RSA");
        keep = 1;
        goto out;
    }
    info->key_bits = (uint32_t)EVP_PKEY_get_bits(pk);
out:
    X509_free(x);
    if (st != KP_OK && !keep)
        memset(info, 0, sizeof(*info));
    return st;
}

/* ---- kp_cert_generate --------------------------------------------------------------------- */

/* The attribute types a subject may name, spelled as OpenSSL knows them. A name outside the
 * list is refused: OpenSSL would take any object name it knows ("sha256" among them). */
static const char *const s_attrs[] = {"CN",           "O",      "OU", "C",   "L",
                                      "ST",           "STREET", "DC", "UID", "emailAddress",
                                      "serialNumber", "title"};
#define S_ATTRS_TEXT "CN, O, OU, C, L, ST, STREET, DC, UID, emailAddress, serialNumber or title"

static const char *s_attr(const char *t, size_t n)
{
    for (size_t i = 0; i < sizeof(s_attrs) / sizeof(s_attrs[0]); i++)
        if (strlen(s_attrs[i]) == n && strncasecmp(s_attrs[i], t, n) == 0)
            return s_attrs[i];
    return NULL;
}

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* What one subject text holds, attributes in the order written. */
typedef struct s_rdns {
    size_t n;
    const char *type[S_RDN_MAX];
    size_t off[S_RDN_MAX], len[S_RDN_MAX];
    char buf[S_SUBJECT_MAX + 1];
} s_rdns;

/* Reads the value starting at *pp into r's buffer, up to an unescaped ',' or the end: escapes
 * are "\" before one of ,+"\<>;=# and space, or "\" and two hex digits; unescaped spaces at
 * either end are dropped. */
static kp_status s_value(const char **pp, s_rdns *r, size_t *used, char *err, size_t errlen)
{
    const char *p = *pp;
    size_t start = *used;
    size_t keep = start;
    while (*p == ' ')
        p++;
    while (*p != '\0' && *p != ',') {
        char c = *p++;
        int escaped = 0;
        if (c == '+')
            return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "a multi-valued attribute ('+') in the subject; write a literal + "
                                "as \\+");
        if (c == '\\') {
            int hi = s_hexval(p[0]), lo = hi >= 0 ? s_hexval(p[1]) : -1;
            if (*p != '\0' && strchr(",+\"\\<>;=# ", *p) != NULL) {
                c = *p++;
            } else if (hi >= 0 && lo >= 0) {
                c = (char)(hi << 4 | lo);
                p += 2;
            } else {
                return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                    "a backslash in the subject escapes nothing it may escape");
            }
            escaped = 1;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f)
            return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "a control character in the subject");
        r->buf[(*used)++] = c;
        if (escaped || c != ' ')
            keep = *used;
    }
    *used = keep;
    r->off[r->n] = start;
    r->len[r->n] = keep - start;
    *pp = p;
    return KP_OK;
}

/* Splits RFC 2253 text ("CN=TDE protector,O=Contoso") into its attributes. */
static kp_status s_rdns_parse(const char *text, s_rdns *r, char *err, size_t errlen)
{
    size_t tlen = strlen(text), used = 0;
    if (tlen == 0)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "the subject is empty");
    if (tlen > S_SUBJECT_MAX)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the subject is longer than %d characters", S_SUBJECT_MAX);
    const char *p = text;
    for (r->n = 0;; r->n++) {
        if (r->n == S_RDN_MAX)
            return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "the subject has more than %d attributes", S_RDN_MAX);
        while (*p == ' ')
            p++;
        const char *t = p;
        while (*p != '\0' && *p != '=' && *p != ',')
            p++;
        size_t tl = (size_t)(p - t);
        while (tl > 0 && t[tl - 1] == ' ')
            tl--;
        if (*p != '=')
            return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "attribute %zu of the subject has no '=' (write e.g. CN=name)",
                                r->n + 1);
        r->type[r->n] = s_attr(t, tl);
        if (r->type[r->n] == NULL) {
            int printable = tl > 0 && tl <= 32;
            for (size_t i = 0; printable && i < tl; i++)
                printable = t[i] > 0x20 && t[i] < 0x7f;
            return printable
                       ? kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                      "unknown attribute '%.*s' in the subject; use " S_ATTRS_TEXT,
                                      (int)tl, t)
                       : kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                      "an unknown attribute in the subject; use " S_ATTRS_TEXT);
        }
        p++;
        KP_GUARD(s_value(&p, r, &used, err, errlen));
        if (r->len[r->n] == 0)
            return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                                "an empty value for %s in the subject", r->type[r->n]);
        /* each attribute consumed at least its type and '=' without writing them: room for
         * the NUL that ends its value */
        r->buf[used++] = '\0';
        if (*p == '\0')
            break;
        p++;
    }
    r->n++;
    return KP_OK;
}

/* The X509_NAME of RFC 2253 text. The text names the most specific attribute first, the
 * opposite of the certificate's order, so the attributes are added last to first (and print
 * back, with XN_FLAG_RFC2253, as written). */
static kp_status s_subject(const char *text, X509_NAME **out, char *err, size_t errlen)
{
    s_rdns *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return kp__fmt_fail(err, errlen, KP_ERR_NOMEM, "out of memory for the subject");
    kp_status st = s_rdns_parse(text, r, err, errlen);
    X509_NAME *name = st == KP_OK ? X509_NAME_new() : NULL;
    if (st == KP_OK && name == NULL)
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_NOMEM, "out of memory for the subject");
    for (size_t i = r->n; st == KP_OK && i-- > 0;) {
        /* MBSTRING_UTF8: OpenSSL picks each attribute's string type and checks its bounds
         * (two letters for C, 64 characters for CN, ...). */
        if (!X509_NAME_add_entry_by_txt(name, r->type[i], MBSTRING_UTF8,
                                        (const unsigned char *)r->buf + r->off[i], (int)r->len[i],
                                        -1, 0)) {
            char msg[64];
            snprintf(msg, sizeof(msg), "the subject's %s value is not accepted", r->type[i]);
            st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG, msg);
        }
    }
    if (st == KP_OK)
        *out = name;
    else
        X509_NAME_free(name);
    free(r);
    return st;
}

kp_status kp__cert_subject_check(const char *text, char *err, size_t errlen)
{
    KP_ENSURE(text != NULL, KP_ERR_INVALID_ARG);
    X509_NAME *name = NULL;
    /* the whole of kp_cert_generate's parse, OpenSSL's bounds on each attribute included */
    kp_status st = s_subject(text, &name, err, errlen);
    X509_NAME_free(name);
    return st;
}

/* A random positive serial of exactly S_SERIAL_BYTES bytes: the top bit clear keeps it
 * positive, a non-zero first byte keeps DER from shortening it. */
static ASN1_INTEGER *s_serial(void)
{
    unsigned char b[S_SERIAL_BYTES];
    if (RAND_bytes(b, (int)sizeof(b)) != 1)
        return NULL;
    /* positive (top bit clear) and no leading zero nibble: 0x10..0x7f first, so the serial is
     * 16 bytes and 32 hex digits in every tool's printing */
    b[0] = (unsigned char)((b[0] & 0x7f) | 0x10);
    BIGNUM *bn = BN_bin2bn(b, (int)sizeof(b), NULL);
    ASN1_INTEGER *serial = bn != NULL ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    BN_free(bn);
    return serial;
}

/* Adds the extension nid with value v (OpenSSL's configuration syntax) to x. */
static int s_add_ext(X509 *x, int nid, const char *v)
{
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &v3, nid, v);
    int ok = ext != NULL && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

kp_status kp_cert_generate(const kp_secret *pkcs8_der, const char *subject, int64_t not_before,
                           int64_t not_after, uint8_t **der, size_t *len, char *err, size_t errlen)
{
    KP_ENSURE(pkcs8_der != NULL && subject != NULL && der != NULL && len != NULL,
              KP_ERR_INVALID_ARG);
    *der = NULL;
    *len = 0;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (not_after <= not_before)
        return kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                            "the certificate would end before it starts (not_after <= not_before)");

    kp_status st = KP_OK;
    EVP_PKEY *pk = NULL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    ASN1_INTEGER *serial = NULL;
    unsigned char *buf = NULL, *q = NULL;
    int n = 0, bits = 0;
    pk = kp__pkcs8_pkey(pkcs8_der);
    if (pk == NULL) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG, "not a PKCS#8 private key");
        goto out;
    }
    bits = EVP_PKEY_get_bits(pk);
    if (!EVP_PKEY_is_a(pk, "RSA") || bits < S_BITS_MIN) {
        st = kp__fmt_fail(err, errlen, KP_ERR_INVALID_ARG,
                          EVP_PKEY_is_a(pk, "RSA")
                              ? "the key is %d bits; a certificate takes an RSA "
                                "key of 2048 bits or more"
                              : "the key is not RSA (%d bits); a certificate "
                                "takes an RSA key of 2048 bits or more",
                          bits);
        goto out;
    }
    st = s_subject(subject, &name, err, errlen);
    if (st != KP_OK)
        goto out;
    x = X509_new();
    serial = s_serial();
    if (x == NULL || serial == NULL || !X509_set_version(x, X509_VERSION_3) ||
        !X509_set_serialNumber(x, serial) || !X509_set_subject_name(x, name) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pk)) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot build the certificate");
        goto out;
    }
    /* ASN1_TIME_set writes UTCTime up to 2049 and GeneralizedTime after, as RFC 5280 asks. */
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_INVALID_ARG,
                               "the certificate's validity dates are out of range");
        goto out;
    }
    if (!s_add_ext(x, NID_basic_constraints, "CA:FALSE") ||
        !s_add_ext(x, NID_subject_key_identifier, "hash") || X509_sign(x, pk, EVP_sha256()) <= 0) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_CRYPTO, "cannot sign the certificate");
        goto out;
    }
    n = i2d_X509(x, NULL);
    buf = n > 0 ? malloc((size_t)n) : NULL;
    q = buf;
    if (buf == NULL || i2d_X509(x, &q) != n) {
        st = kp__fmt_ossl_fail(err, errlen, KP_ERR_NOMEM, "cannot encode the certificate");
        goto out;
    }
    *der = buf;
    *len = (size_t)n;
    buf = NULL;
out:
    free(buf);
    ASN1_INTEGER_free(serial);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pk);
    return st;
}
