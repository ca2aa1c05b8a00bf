/*
 * How a key version is described to the core: kp_key_info with an RFC 7512 PKCS#11 URI as
 * backend_id, and CKA_START_DATE as the creation time (a CK_DATE has no time of day, so
 * "created" is midnight UTC of the creation day).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <keyplane/kit/codec.h>

#include "p11_internal.h"

/* RFC 7512 percent-encoding of a path attribute value. */
static size_t s_pct(char *out, size_t size, const uint8_t *in, size_t len, bool all)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        bool plain = !all && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                              (c >= '0' && c <= '9') || strchr("-._~:[]@!$'()*+,=", c) != NULL);
        if (o + (plain ? 1 : 3) >= size)
            return 0;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        }
    }
    out[o] = '\0';
    return o;
}

void kp_p11_key_info(kp_p11_inst *pi, const kp_p11_key *key, kp_key_info *info)
{
    char token[3 * KP_P11_LABEL_MAX + 1], object[3 * KP_P11_OBJLABEL_MAX + 1],
        label[KP_P11_OBJLABEL_MAX], id[3 * KP_P11_ID_MAX + 1];
    char uri[sizeof(token) + sizeof(object) + sizeof(id) + 32];

    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    snprintf(info->name, sizeof(info->name), "%s", key->name);
    info->version = key->version;
    info->type = key->type;
    info->bits = key->bits;
    info->flags = key->extractable ? KP_KEY_EXPORTABLE : 0;
    info->state = KP_KEY_ENABLED;
    info->created = key->created;
    if (key->type == KP_KEY_RSA && key->idlen == KP_P11_SHA256_LEN)
        kpk_hex_encode(key->id, key->idlen, info->fingerprint);
    s_pct(token, sizeof(token), (const uint8_t *)pi->token, strlen(pi->token), false);
    s_pct(id, sizeof(id), key->id, key->idlen, true);
    object[0] = '\0';
    if (kp_p11_label(pi, key->name, key->version, label, sizeof(label)) == KP_OK)
        s_pct(object, sizeof(object), (const uint8_t *)label, strlen(label), false);
    snprintf(uri, sizeof(uri), "pkcs11:token=%s;object=%s;id=%s", token, object, id);
    /* Token and ID alone still name the object when a long label does not fit. */
    if (strlen(uri) >= sizeof(info->backend_id))
        snprintf(uri, sizeof(uri), "pkcs11:token=%s;id=%s", token, id);
    if (strlen(uri) < sizeof(info->backend_id))
        memcpy(info->backend_id, uri, strlen(uri) + 1);
}

void kp_p11_today(CK_DATE *date, int64_t *unix_time)
{
    time_t now = time(NULL);
    struct tm tm;
    char buf[40];

    gmtime_r(&now, &tm);
    snprintf(buf, sizeof(buf), "%04d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    memcpy(date->year, buf, 4);
    memcpy(date->month, buf + 4, 2);
    memcpy(date->day, buf + 6, 2);
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    *unix_time = (int64_t)timegm(&tm);
}

static int s_digits(const CK_CHAR *p, size_t n)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

int64_t kp_p11_date_time(const CK_DATE *date)
{
    int y = s_digits(date->year, 4), m = s_digits(date->month, 2), d = s_digits(date->day, 2);
    struct tm tm;

    if (y < 1970 || m < 1 || m > 12 || d < 1 || d > 31)
        return 0;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = m - 1;
    tm.tm_mday = d;
    return (int64_t)timegm(&tm);
}
