/*
 * Parsers of what Key Vault and the token endpoints answer (Key Vault REST reference; the Azure
 * SDK's recorded exchanges). Each takes raw bytes, checks every member it uses for type and range,
 * and says in one line what was wrong; none trusts a length or a nesting it did not check.
 * Pure functions (akv_codec.h): tests/fuzz/fuzz_akv.c links this file and drives them all.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "akv_codec.h"

/* The longest token lifetime believed: Entra ID tokens live at most a day (managed identity
 * ones 24 h). A longer claim is cut to this, so the caller's now + lifetime cannot overflow
 * (expires_in may be any JSON integer up to 2^63 - 1) and a token is fetched again at least
 * once a day. */
#define S_MAX_LIFETIME (24 * 3600)

/* The one way this file reports a failure: why into err, and st back. */
static kp_status s_bad(char *err, size_t errlen, kp_status st, const char *why)
{
    snprintf(err, errlen, "%s", why);
    return st;
}

static json_t *s_load(const uint8_t *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    if (body == NULL || len == 0) {
        s_bad(err, errlen, KP_ERR_BACKEND, "the answer has an empty body where JSON was expected");
        return NULL;
    }
    json_t *j = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        /* jansson quotes up to 20 bytes of the input ("near '...'"), which may be part of a
         * token or a DEK, and may hold a newline: keep only its reason and the position */
        char *near = strstr(je.text, " near ");
        if (near != NULL)
            *near = '\0';
        snprintf(err, errlen, "the answer is not JSON (%s at byte %d)", je.text, je.position);
        return NULL;
    }
    if (!json_is_object(j)) {
        s_bad(err, errlen, KP_ERR_BACKEND, "the answer is JSON but not an object");
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* Copies a string member into out when it is a string that fits; returns true on success. */
static bool s_str(const json_t *obj, const char *key, char *out, size_t outlen)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v) || json_string_length(v) >= outlen)
        return false;
    if (strlen(json_string_value(v)) != json_string_length(v))
        return false;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

/* Printable one-line copy (service text may hold anything). */
static void s_clean(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

void kp_akv_parse_error(const uint8_t *body, size_t len, kp_akv_error_body *out)
{
    char err[KP_AKV_ERR];
    memset(out, 0, sizeof(*out));
    json_t *j = s_load(body, len, err, sizeof(err));
    if (j == NULL)
        return;
    const json_t *e = json_object_get(j, "error");
    if (json_is_object(e)) {
        s_str(e, "code", out->code, sizeof(out->code));
        const json_t *m = json_object_get(e, "message");
        if (json_is_string(m))
            snprintf(out->message, sizeof(out->message), "%s", json_string_value(m));
        const json_t *in = json_object_get(e, "innererror");
        if (json_is_object(in))
            s_str(in, "code", out->inner, sizeof(out->inner));
    }
    json_decref(j);
    s_clean(out->code);
    s_clean(out->inner);
    s_clean(out->message);
}

void kp_akv_bundle_clear(kp_akv_bundle *b)
{
    if (b == NULL)
        return;
    free(b->spki);
    memset(b, 0, sizeof(*b));
}

static bool s_hex32(const char *s)
{
    if (strlen(s) != KP_AKV_VERSION_LEN)
        return false;
    for (; *s != '\0'; s++)
        if (!isxdigit((unsigned char)*s))
            return false;
    return true;
}

/* kid = https://host[:port]/keys/NAME[/VERSION] into b's name, azver and kid; list items of /keys
 * carry no version. */
static bool s_kid_parse(const char *kid, kp_akv_bundle *b, bool need_version)
{
    const char *p = strncmp(kid, "https://", 8) == 0 ? strchr(kid + 8, '/') : NULL;
    if (p == NULL || strncmp(p, "/keys/", 6) != 0)
        return false;
    p += 6;
    const char *slash = strchr(p, '/');
    size_t nlen = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (nlen == 0 || nlen >= sizeof(b->name))
        return false;
    memcpy(b->name, p, nlen);
    b->name[nlen] = '\0';
    for (size_t i = 0; i < nlen; i++)
        if (!isalnum((unsigned char)b->name[i]) && b->name[i] != '-')
            return false;
    if (slash != NULL && slash[1] != '\0') {
        if (strlen(slash + 1) >= sizeof(b->azver) || !s_hex32(slash + 1))
            return false;
        snprintf(b->azver, sizeof(b->azver), "%s", slash + 1);
        for (char *c = b->azver; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
    } else if (need_version) {
        return false;
    }
    snprintf(b->kid, sizeof(b->kid), "%s", kid);
    return true;
}

/* The kid member of obj (a bundle's key, or a list item) into b; missing is missing_why. */
static kp_status s_kid(const json_t *obj, kp_akv_bundle *b, bool need_version,
                       const char *missing_why, char *err, size_t errlen)
{
    char kid[KP_BACKEND_ID_MAX];
    if (!json_is_object(obj) || !s_str(obj, "kid", kid, sizeof(kid)))
        return s_bad(err, errlen, KP_ERR_BACKEND, missing_why);
    if (!s_kid_parse(kid, b, need_version))
        return s_bad(err, errlen, KP_ERR_BACKEND, "the answer has a malformed kid");
    return KP_OK;
}

/* Unix seconds; absent is 0, anything but a non-negative integer is an error. */
static bool s_time(const json_t *attrs, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(attrs, key);
    *out = 0;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* A version-number tag: decimal 1..UINT32_MAX without leading zeros; 0 when absent or not. */
static uint32_t s_tag_number(const json_t *tags, const char *key)
{
    char text[16] = "";
    if (!s_str(tags, key, text, sizeof(text)))
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(text, &end, 10);
    if (text[0] >= '1' && text[0] <= '9' && *end == '\0' && errno == 0 && n <= UINT32_MAX)
        return (uint32_t)n;
    return 0;
}

/* The attributes (absent: enabled, no dates) into b. */
static bool s_attrs(const json_t *attrs, kp_akv_bundle *b)
{
    b->enabled = true;
    if (attrs == NULL)
        return true;
    if (!json_is_object(attrs))
        return false;
    const json_t *en = json_object_get(attrs, "enabled");
    if (en != NULL && !json_is_boolean(en))
        return false;
    b->enabled = en == NULL || json_is_true(en);
    s_str(attrs, "recoveryLevel", b->recovery, sizeof(b->recovery));
    if (!s_time(attrs, "created", &b->created))
        return false;
    return s_time(attrs, "exp", &b->exp);
}

static kp_status s_attrs_tags(const json_t *obj, kp_akv_bundle *b, char *err, size_t errlen)
{
    if (!s_attrs(json_object_get(obj, "attributes"), b))
        return s_bad(err, errlen, KP_ERR_BACKEND, "the answer's attributes are malformed");
    const json_t *tags = json_object_get(obj, "tags");
    if (tags == NULL || json_is_null(tags))
        return KP_OK;
    if (!json_is_object(tags))
        return s_bad(err, errlen, KP_ERR_BACKEND, "the answer's tags are not an object");
    s_str(tags, "kp-chain", b->tag_chain, sizeof(b->tag_chain));
    s_str(tags, "kp-fpr", b->tag_fpr, sizeof(b->tag_fpr));
    b->kp_version = s_tag_number(tags, "kp-version");
    b->kp_pending = s_tag_number(tags, "kp-pending");
    char prev[KP_AKV_VERSION_LEN + 2] = "";
    if (s_str(tags, "kp-prev", prev, sizeof(prev)) && s_hex32(prev))
        for (size_t i = 0; i <= KP_AKV_VERSION_LEN; i++)
            b->tag_prev[i] = (char)tolower((unsigned char)prev[i]);
    return KP_OK;
}

/* A bundle's key member: kid, kty, the public key and key_ops into out (out->spki is malloc'd:
 * the caller clears out on failure). */
static kp_status s_bundle_key(const json_t *key, kp_akv_bundle *out, char *err, size_t errlen)
{
    char kty[16];
    KP_GUARD(s_kid(key, out, true, "the answer has no key.kid", err, errlen));
    if (!s_str(key, "kty", kty, sizeof(kty)) ||
        (strcmp(kty, "RSA") != 0 && strcmp(kty, "RSA-HSM") != 0))
        return s_bad(err, errlen, KP_ERR_BACKEND,
                     "the answer's key is not RSA (kty missing or unsupported)");
    out->hsm = strcmp(kty, "RSA-HSM") == 0;
    const json_t *n = json_object_get(key, "n"), *e = json_object_get(key, "e");
    if (!json_is_string(n) || !json_is_string(e))
        return s_bad(err, errlen, KP_ERR_BACKEND, "the answer's key has no modulus or exponent");
    if (kp_akv_spki_from_ne(json_string_value(n), json_string_length(n), json_string_value(e),
                            json_string_length(e), &out->spki, &out->spki_len, &out->bits,
                            out->fpr) != KP_OK)
        return s_bad(err, errlen, KP_ERR_BACKEND,
                     "the answer's key has a malformed modulus or exponent");
    const json_t *ops = json_object_get(key, "key_ops");
    const json_t *op0 = json_array_get(ops, 0);
    out->import_only = json_is_array(ops) && json_array_size(ops) == 1 && json_is_string(op0) &&
                       strcmp(json_string_value(op0), "import") == 0;
    return KP_OK;
}

kp_status kp_akv_parse_bundle(const uint8_t *body, size_t len, kp_akv_bundle *out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    json_t *j = s_load(body, len, err, errlen);
    KP_ENSURE(j != NULL, KP_ERR_BACKEND);
    kp_status st = s_bundle_key(json_object_get(j, "key"), out, err, errlen);
    if (st == KP_OK)
        st = s_attrs_tags(j, out, err, errlen);
    if (st != KP_OK)
        kp_akv_bundle_clear(out);
    json_decref(j);
    return st;
}

/* The members of a loaded list page. */
static kp_status s_page(const json_t *j, kp_akv_item_fn *item, void *arg, char *next,
                        size_t nextlen, char *err, size_t errlen)
{
    const json_t *value = json_object_get(j, "value"), *nl = json_object_get(j, "nextLink");
    if (!json_is_array(value))
        return s_bad(err, errlen, KP_ERR_BACKEND, "the list answer has no value array");
    if (nl != NULL && !json_is_null(nl) && !s_str(j, "nextLink", next, nextlen))
        return s_bad(err, errlen, KP_ERR_BACKEND,
                     "the list answer's nextLink is malformed or too long");
    size_t i;
    const json_t *it;
    json_array_foreach(value, i, it)
    {
        kp_akv_bundle b;
        char missing[48];
        memset(&b, 0, sizeof(b));
        snprintf(missing, sizeof(missing), "list item %zu has no kid", i);
        KP_GUARD(s_kid(it, &b, false, missing, err, errlen));
        KP_GUARD(s_attrs_tags(it, &b, err, errlen));
        KP_GUARD(item(arg, &b));
    }
    return KP_OK;
}

kp_status kp_akv_parse_page(const uint8_t *body, size_t len, kp_akv_item_fn *item, void *arg,
                            char *next, size_t nextlen, char *err, size_t errlen)
{
    next[0] = '\0';
    json_t *j = s_load(body, len, err, errlen);
    KP_ENSURE(j != NULL, KP_ERR_BACKEND);
    kp_status st = s_page(j, item, arg, next, nextlen, err, errlen);
    json_decref(j);
    return st;
}

kp_status kp_akv_parse_value(const uint8_t *body, size_t len, uint8_t *out, size_t *outlen,
                             char *err, size_t errlen)
{
    json_t *j = s_load(body, len, err, errlen);
    KP_ENSURE(j != NULL, KP_ERR_BACKEND);
    kp_status st = KP_OK;
    json_t *v = json_object_get(j, "value");
    if (!json_is_string(v) || json_string_length(v) == 0)
        st = s_bad(err, errlen, KP_ERR_BACKEND, "the answer has no value");
    else if (kpk_b64_decoded_max(json_string_length(v)) > *outlen)
        st = s_bad(err, errlen, KP_ERR_BACKEND, "the answer's value is longer than expected");
    else if (kpk_b64_decode(json_string_value(v), json_string_length(v), out, outlen) != KP_OK)
        st = s_bad(err, errlen, KP_ERR_BACKEND, "the answer's value is not base64url");
    if (json_is_string(v)) /* an unwrapped key's text form: wipe it before jansson frees it */
        OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    json_decref(j);
    return st;
}

/* A number, or a string of decimal digits (IMDS sends strings, AAD numbers). */
static bool s_seconds(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return *out >= 0;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n > 18 || n != json_string_length(v))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    *out = (int64_t)strtoll(s, NULL, 10);
    return true;
}

/* An access_token a header can carry, shorter than toklen. */
static bool s_token_usable(const json_t *at, size_t toklen)
{
    if (!json_is_string(at) || json_string_length(at) == 0 || json_string_length(at) >= toklen)
        return false;
    return strlen(json_string_value(at)) == json_string_length(at);
}

/* The lifetime from expires_in, or expires_on - now; 0 when neither gives one, -1 when one is not
 * a number. */
static int64_t s_lifetime(const json_t *j, time_t now)
{
    const json_t *ein = json_object_get(j, "expires_in"), *eon = json_object_get(j, "expires_on");
    int64_t in = -1, on = -1;
    if (ein != NULL && !s_seconds(ein, &in))
        return -1;
    if (eon != NULL && !s_seconds(eon, &on))
        return -1;
    if (in < 0 && on >= 0)
        in = on - (int64_t)now;
    return in > 0 ? in : 0;
}

/* The members of a loaded token answer; at is its access_token. */
static kp_status s_token(const json_t *j, const json_t *at, time_t now, char *tok, size_t toklen,
                         int64_t *lifetime, char *err, size_t errlen)
{
    if (!s_token_usable(at, toklen))
        return s_bad(err, errlen, KP_ERR_AUTH, "the token answer has no usable access_token");
    for (const char *c = json_string_value(at); *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return s_bad(err, errlen, KP_ERR_AUTH,
                         "the access_token holds characters a header cannot carry");
    const json_t *tt = json_object_get(j, "token_type");
    if (tt != NULL && (!json_is_string(tt) || strcasecmp(json_string_value(tt), "Bearer") != 0))
        return s_bad(err, errlen, KP_ERR_AUTH, "the token answer's token_type is not Bearer");
    int64_t life = s_lifetime(j, now);
    if (life < 0)
        return s_bad(err, errlen, KP_ERR_AUTH,
                     "the token answer's expires_in/expires_on is not a number");
    if (life == 0)
        return s_bad(err, errlen, KP_ERR_AUTH,
                     "the token answer gives no lifetime (expires_in/expires_on)");
    *lifetime = life < S_MAX_LIFETIME ? life : S_MAX_LIFETIME;
    memcpy(tok, json_string_value(at), json_string_length(at) + 1);
    return KP_OK;
}

kp_status kp_akv_parse_token(const uint8_t *body, size_t len, time_t now, char *tok, size_t toklen,
                             int64_t *lifetime, char *err, size_t errlen)
{
    json_t *j = s_load(body, len, err, errlen);
    KP_ENSURE(j != NULL, KP_ERR_AUTH);
    json_t *at = json_object_get(j, "access_token");
    kp_status st = s_token(j, at, now, tok, toklen, lifetime, err, errlen);
    if (json_is_string(at))
        OPENSSL_cleanse((char *)json_string_value(at), json_string_length(at));
    json_decref(j);
    return st;
}

void kp_akv_parse_token_error(const uint8_t *body, size_t len, char *out, size_t outlen)
{
    char err[KP_AKV_ERR], e[64] = "", d[200] = "";
    out[0] = '\0';
    json_t *j = s_load(body, len, err, sizeof(err));
    if (j == NULL)
        return;
    s_str(j, "error", e, sizeof(e));
    const json_t *dv = json_object_get(j, "error_description");
    if (json_is_string(dv))
        snprintf(d, sizeof(d), "%s", json_string_value(dv));
    json_decref(j);
    d[strcspn(d, "\r\n")] = '\0'; /* AAD appends trace and correlation ids on new lines */
    s_clean(e);
    s_clean(d);
    snprintf(out, outlen, "%s%s%s", e, e[0] != '\0' && d[0] != '\0' ? ": " : "", d);
}

/* One auth-param value: quoted (with \-escapes) or a token. *ok is false when it does not fit in
 * out or a quote is not closed. */
static const char *s_param(const char *p, char *out, size_t outlen, bool *ok)
{
    size_t n = 0;
    *ok = true;
    if (*p == '"') {
        for (p++; *p != '\0' && *p != '"'; p++) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            if (n + 1 >= outlen)
                *ok = false;
            else
                out[n++] = *p;
        }
        if (*p != '"')
            *ok = false;
        else
            p++;
    } else {
        for (; *p != '\0' && *p != ',' && *p != ' '; p++) {
            if (n + 1 >= outlen)
                *ok = false;
            else
                out[n++] = *p;
        }
    }
    out[n] = '\0';
    return p;
}

/* The auth-params after "Bearer": authorization(_uri), resource and scope into out; the others
 * are skipped, and a malformed name ends the list. */
static kp_status s_challenge_params(const char *p, kp_akv_challenge *out, char *err, size_t errlen)
{
    while (*p != '\0') {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *eq = strchr(p, '=');
        if (eq == NULL || eq == p || (size_t)(eq - p) >= 32)
            break;
        char name[32], value[KP_AKV_URL_MAX];
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        bool ok;
        p = s_param(eq + 1, value, sizeof(value), &ok);
        if (!ok)
            return s_bad(err, errlen, KP_ERR_AUTH,
                         "the vault's challenge has a malformed or oversized value");
        if (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "authorization_uri") == 0)
            snprintf(out->authorization, sizeof(out->authorization), "%s", value);
        else if (strcasecmp(name, "resource") == 0)
            snprintf(out->resource, sizeof(out->resource), "%s", value);
        else if (strcasecmp(name, "scope") == 0)
            snprintf(out->scope, sizeof(out->scope), "%s", value);
    }
    return KP_OK;
}

/* Each of scope and resource from the other when only one was given; false when that does not
 * fit or no https resource results. */
static bool s_scope_resource(kp_akv_challenge *out)
{
    size_t sl = strlen(out->scope);
    if (out->scope[0] == '\0' && out->resource[0] != '\0') {
        if (strlen(out->resource) + sizeof("/.default") > sizeof(out->scope))
            return false;
        snprintf(out->scope, sizeof(out->scope), "%.*s/.default", (int)(KP_AKV_URL_MAX - 10),
                 out->resource);
    } else if (out->resource[0] == '\0' && sl > 9 &&
               strcmp(out->scope + sl - 9, "/.default") == 0) {
        snprintf(out->resource, sizeof(out->resource), "%.*s", (int)(sl - 9), out->scope);
    }
    return out->scope[0] != '\0' && strncmp(out->resource, "https://", 8) == 0;
}

kp_status kp_akv_parse_challenge(const char *header, kp_akv_challenge *out, char *err,
                                 size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *p = header;
    while (*p == ' ')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\0'))
        return s_bad(err, errlen, KP_ERR_AUTH, "the vault's challenge is not a Bearer challenge");
    KP_GUARD(s_challenge_params(p + 6, out, err, errlen));
    if (!s_scope_resource(out))
        return s_bad(err, errlen, KP_ERR_AUTH,
                     "the vault's challenge names no https resource or scope");
    /* tenant: the first path segment of the authorization URI */
    const char *a = strncmp(out->authorization, "https://", 8) == 0
                        ? strchr(out->authorization + 8, '/')
                        : NULL;
    if (a != NULL) {
        a++;
        size_t tl = strcspn(a, "/?#");
        if (tl > 0 && tl < sizeof(out->tenant)) {
            memcpy(out->tenant, a, tl);
            out->tenant[tl] = '\0';
        }
    }
    return KP_OK;
}
