/*
 * KMS calls every instance kind shares: one call of the JSON protocol, and a base64 plaintext
 * taken out of an answer into a kp_secret (jansson's copy wiped).
 *
 * Which KMS key an S3 object is under, against the instance's `kms_key`: S3 reports the key's
 * ARN (arn:aws:kms:REGION:ACCOUNT:key/ID); the param may be an ARN, a key id or an alias. An
 * alias is resolved once with KMS DescribeKey (kms:DescribeKey); without that permission only
 * the ARN's region is compared, which is what a disaster turns on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

/* The region field of an ARN into out ("" when it is not an ARN). */
static void s_arn_region(const char *arn, char *out, size_t cap)
{
    out[0] = '\0';
    if (strncmp(arn, "arn:", 4) != 0)
        return;
    const char *p = arn;
    for (int field = 0; field < 3 && p != NULL; field++)
        p = strchr(p, ':') != NULL ? strchr(p, ':') + 1 : NULL;
    if (p == NULL)
        return;
    snprintf(out, cap, "%.*s", (int)strcspn(p, ":"), p);
}

void kp_aws_kms_resolve(kp_aws_inst *a)
{
    if (a->kms_arn[0] != '\0' || a->kms_resolve_failed)
        return;
    json_t *j = json_pack("{s:s}", "KeyId", a->kms_key), *out = NULL;
    kp_status st =
        j != NULL ? kp_aws_kms_call(a, "DescribeKey", j, false, &out, NULL, 0) : KP_ERR_NOMEM;
    const char *arn =
        json_string_value(json_object_get(json_object_get(out, "KeyMetadata"), "Arn"));
    if (st == KP_OK && arn != NULL && strlen(arn) < sizeof(a->kms_arn))
        snprintf(a->kms_arn, sizeof(a->kms_arn), "%s", arn);
    else
        a->kms_resolve_failed = true;
    json_decref(j);
    json_decref(out);
}

bool kp_aws_kms_key_is(kp_aws_inst *a, const char *arn)
{
    char region[KP_AWS_REGION_MAX];
    s_arn_region(arn, region, sizeof(region));
    if (strcmp(region, a->region) != 0)
        return false; /* another region's key (or no ARN at all) */
    const char *want = a->kms_key;
    if (strncmp(want, "alias/", 6) == 0 || strstr(want, ":alias/") != NULL) {
        kp_aws_kms_resolve(a);
        if (a->kms_arn[0] == '\0')
            return true; /* the region matches; KMS would not name the alias's key */
        want = a->kms_arn;
    }
    if (strncmp(want, "arn:", 4) == 0)
        return strcmp(want, arn) == 0;
    const char *id = strstr(arn, ":key/");
    return id != NULL && strcmp(id + 5, want) == 0;
}

kp_status kp_aws_kms_call(kp_aws_inst *a, const char *op, const json_t *j, bool unsafe,
                          json_t **out, char *code, size_t codelen)
{
    kp_aws_target t = {.service = "kms",
                       .prefix = "TrentService",
                       .region = a->region,
                       .endpoint = a->service == KP_AWS_KMS ? a->endpoint : a->kms_endpoint};
    return kp_aws_json_call(a, &t, op, j, unsafe, out, code, codelen);
}

kp_status kp_aws_kms_plain(kp_aws_inst *a, json_t *out, const char *field, kp_secret **plain)
{
    json_t *p = json_object_get(out, field);
    const char *text = json_string_value(p);
    size_t tl = text != NULL ? json_string_length(p) : 0, n = 0;
    kp_secret *s = text != NULL ? a->up->secret_new(kpk_b64_decoded_max(tl) + 1) : NULL;
    kp_status st = text == NULL ? kp_aws_err(a, KP_ERR_BACKEND, "kms: the answer has no %s", field)
                   : s == NULL  ? kp_aws_err(a, KP_ERR_NOMEM, "out of memory")
                                : KP_OK;
    kp_status dec = st == KP_OK ? kpk_b64_decode(text, tl, a->up->secret_data(s), &n) : st;
    if (st == KP_OK && (dec != KP_OK || n == 0))
        st = kp_aws_err(a, KP_ERR_BACKEND, "kms: %s is not base64 of a key", field);
    if (st == KP_OK)
        st = a->up->secret_shrink(s, n);
    if (text != NULL)
        OPENSSL_cleanse((char *)text, tl);
    if (st == KP_OK)
        *plain = s;
    else
        a->up->secret_free(s);
    return st;
}

kp_status kp_aws_kms_pages(kp_aws_inst *a, const char *op, const char *member, int limit,
                           bool page_deadline, kp_status (*fn)(void *arg, json_t *item), void *arg)
{
    char marker[1100] = "";
    kp_status st = KP_OK;
    for (int page = 0; st == KP_OK && page < 10000; page++) {
        if (page_deadline)
            a->deadline = kpk_http_clock_ms() + a->deadline_ms;
        json_t *j = json_pack("{s:i}", "Limit", limit), *out = NULL;
        if (j != NULL && marker[0] != '\0')
            json_object_set_new(j, "Marker", json_string(marker));
        st = j != NULL ? kp_aws_kms_call(a, op, j, false, &out, NULL, 0)
                       : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
        json_decref(j);
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(out, member), i, e)
        {
            if (st == KP_OK)
                st = fn(arg, e);
        }
        const char *next = json_string_value(json_object_get(out, "NextMarker"));
        bool more = st == KP_OK && json_is_true(json_object_get(out, "Truncated")) &&
                    next != NULL && next[0] != '\0' && strlen(next) < sizeof(marker) &&
                    strcmp(next, marker) != 0;
        if (more)
            snprintf(marker, sizeof(marker), "%s", next);
        json_decref(out);
        if (!more)
            break;
    }
    return st;
}
