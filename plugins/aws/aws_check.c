/*
 * INSTANCE_CHECK (`keyplane check`): credentials found and accepted, then what the instance
 * needs of its service, one item each: the bucket (in the instance's region) and its listing,
 * the KMS key's name; or the secrets' listing in the instance's region and in every replica
 * region; or KMS, the keystore's versions, and the keys an interrupted import left.
 */
#include <stdio.h>
#include <string.h>

#include "aws_internal.h"

static kp_status s_report(kp_aws_inst *a, kp_check_report_fn report, void *arg, const char *item,
                          kp_status st, const char *detail, kp_status *first)
{
    report(arg, item, st, st == KP_OK ? detail : a->up->get_error(a->h));
    if (st != KP_OK && *first == KP_OK)
        *first = st;
    return st;
}

static kp_status s_none(void *arg, const char *key)
{
    (void)arg, (void)key;
    return KP_OK;
}

static kp_status s_none_json(void *arg, json_t *secret)
{
    (void)arg, (void)secret;
    return KP_OK;
}

static void s_s3(kp_aws_inst *a, kp_check_report_fn report, void *arg, kp_status *first)
{
    char region[KP_AWS_REGION_MAX], detail[400];
    kp_status st = kp_aws_s3_head_bucket(a, region, sizeof(region));
    snprintf(detail, sizeof(detail), "%s in %s", a->bucket, a->region);
    if (s_report(a, report, arg, "bucket", st, detail, first) != KP_OK)
        return;
    st = kp_aws_s3_list(a, a->prefix, s_none, NULL);
    snprintf(detail, sizeof(detail), "objects under %s can be listed", a->prefix);
    s_report(a, report, arg, "listing", st, detail, first);
    kp_aws_kms_resolve(a);
    if (a->kms_arn[0] != '\0')
        snprintf(detail, sizeof(detail), "%.100s is %.140s", a->kms_key, a->kms_arn);
    else
        snprintf(detail, sizeof(detail),
                 "%.100s: KMS did not describe it (no kms:DescribeKey?); objects are checked to "
                 "be under %s, or under a key of %s for an alias",
                 a->kms_key, "that key", a->region);
    report(arg, "kms key", KP_OK, detail);
}

static void s_sm(kp_aws_inst *a, kp_check_report_fn report, void *arg, kp_status *first)
{
    char item[64], detail[400];
    for (size_t i = 0; i <= a->nreplicas; i++) {
        const char *region = i == 0 ? a->region : a->replicas[i - 1].region;
        if (i > 0)
            a->deadline = kpk_http_clock_ms() + a->deadline_ms;
        kp_status st = kp_aws_sm_list(a, i, a->prefix, s_none_json, NULL);
        snprintf(item, sizeof(item), i == 0 ? "secrets" : "replica %s", region);
        snprintf(detail, sizeof(detail), "secrets under %s can be listed in %s", a->prefix, region);
        s_report(a, report, arg, item, st, detail, first);
    }
}

/* Whether the KMS key arn was made by keyplane for a version of this prefix whose alias names
 * another key (or none): what an interrupted import or a lost race left, which claims nothing.
 * *material: the key holds imported key material (a key whose alias was removed: it may be a
 * copy worth keeping). KP_ERR_NOT_FOUND: the key went meanwhile. */
static kp_status s_orphan(kp_aws_inst *a, const char *arn, bool *orphan, bool *material)
{
    char alias[300], want[300];
    kp_aws_kms_key held, own;
    *orphan = *material = false;
    int n = snprintf(want, sizeof(want), "alias/%s", a->prefix);
    KP_GUARD(kp_aws_kms_tag(a, arn, KP_AWS_TAG_ALIAS, alias, sizeof(alias)));
    if (strncmp(alias, want, (size_t)n) != 0)
        return KP_OK;
    kp_status st = kp_aws_kms_describe(a, alias, &held);
    if (st == KP_OK && strcmp(held.arn, arn) == 0)
        return KP_OK;
    if (st != KP_OK && st != KP_ERR_NOT_FOUND)
        return st;
    KP_GUARD(kp_aws_kms_describe(a, arn, &own));
    *orphan = strcmp(own.state, "PendingDeletion") != 0; /* on its way out already */
    *material = strcmp(own.state, "PendingImport") != 0;
    return KP_OK;
}

/* KMS: the region answers and lists keys (kms:ListKeys); the keystore's versions can be listed
 * (kms:ListAliases); keys keyplane made that claim no version are named, for a person to
 * remove (keyplane never schedules a deletion). The first S_SCAN keys are looked at; a scan cut
 * short (the deadline, a refusal) or a longer key list is said, never passed over in silence. */
#define S_SCAN 50
static void s_kms(kp_aws_inst *a, kp_check_report_fn report, void *arg, kp_status *first)
{
    json_t *j = json_pack("{s:i}", "Limit", S_SCAN), *out = NULL;
    kp_status st = j != NULL ? kp_aws_kms_call(a, "ListKeys", j, false, &out, NULL, 0)
                             : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    json_decref(j);
    char detail[KP_ERROR_MAX + 1], why[KP_AWS_ERR] = "";
    snprintf(detail, sizeof(detail), "KMS in %s answers", a->region);
    if (s_report(a, report, arg, "kms", st, detail, first) != KP_OK) {
        json_decref(out);
        return;
    }
    kp_aws_vlist l = {0};
    st = kp_aws_kms_versions(a, NULL, &l);
    snprintf(detail, sizeof(detail), "%zu key versions under alias/%s", l.n, a->prefix);
    kp_aws_vlist_free(&l);
    s_report(a, report, arg, "keystore", st, detail, first);
    a->deadline = kpk_http_clock_ms() + a->deadline_ms; /* the scan's own time */
    size_t i, orphans = 0, named = 0, held = 0, missed = 0, keys = 0;
    json_t *e;
    char list[KP_ERROR_MAX + 1] = "";
    int w = 0;
    json_array_foreach(json_object_get(out, "Keys"), i, e)
    {
        const char *id = json_string_value(json_object_get(e, "KeyArn"));
        bool orphan = false, material = false;
        if (id == NULL)
            continue;
        keys++;
        kp_status r = missed == 0 ? s_orphan(a, id, &orphan, &material) : KP_ERR_TIMEOUT;
        if (r != KP_OK && r != KP_ERR_NOT_FOUND) {
            if (missed++ == 0)
                snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
            continue; /* the first failure ends the scan: the rest are counted */
        }
        if (!orphan)
            continue;
        orphans++;
        held += material;
        if (w >= 0 && (size_t)w + strlen(id) + 40 < sizeof(list)) {
            w += snprintf(list + w, sizeof(list) - (size_t)w, " %s%s", id,
                          material ? " (holds key material)" : "");
            named++;
        }
    }
    bool more = json_is_true(json_object_get(out, "Truncated"));
    json_decref(out);
    /* the counts first: the list of keys is what a long line loses */
    int d = snprintf(detail, sizeof(detail), "%zu %s keyplane made %s no version", orphans,
                     orphans == 1 ? "key" : "keys", orphans == 1 ? "claims" : "claim");
    if (held > 0 && d > 0 && (size_t)d < sizeof(detail))
        d += snprintf(detail + d, sizeof(detail) - (size_t)d,
                      " (%zu hold key material, an alias removed?: compare such a key's public "
                      "key with the chain's before removing it)",
                      held);
    if (missed > 0 && d > 0 && (size_t)d < sizeof(detail))
        d += snprintf(detail + d, sizeof(detail) - (size_t)d,
                      "; %zu of %zu keys not examined (%.200s)", missed, keys, why);
    if (more && d > 0 && (size_t)d < sizeof(detail))
        d += snprintf(detail + d, sizeof(detail) - (size_t)d,
                      "; only the first %d keys ListKeys gave were examined", S_SCAN);
    if (orphans > 0 && d > 0 && (size_t)d < sizeof(detail))
        d += snprintf(detail + d, sizeof(detail) - (size_t)d, ":%s", list);
    if (orphans > named && d > 0 && (size_t)d < sizeof(detail))
        snprintf(detail + d, sizeof(detail) - (size_t)d, " and %zu more", orphans - named);
    if (orphans > 0 || missed > 0 || more) /* not a fault of the keystore: the disaster is
                                              unaffected */
        report(arg, "abandoned keys", KP_OK, detail);
}

kp_status kp_aws_instance_check(void *inst, kp_check_report_fn report, void *arg)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && report != NULL, KP_ERR_INVALID_ARG);
    kp_status first = KP_OK;
    char detail[400];
    kp_aws_begin(a, true);
    kp_status st = kp_aws_creds_ensure(a);
    size_t kl = strlen(a->creds.access_key_id);
    snprintf(detail, sizeof(detail), "from %s (access key ...%s)", a->creds.source,
             kl > 4 ? a->creds.access_key_id + kl - 4 : a->creds.access_key_id);
    if (s_report(a, report, arg, "credentials", st, detail, &first) == KP_OK) {
        if (a->service == KP_AWS_S3)
            s_s3(a, report, arg, &first);
        else if (a->service == KP_AWS_SM)
            s_sm(a, report, arg, &first);
        else
            s_kms(a, report, arg, &first);
    }
    kp_aws_end(a);
    return first;
}
