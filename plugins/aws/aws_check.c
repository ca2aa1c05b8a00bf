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

/* Whether the alias list l names key id. */
static bool s_claimed(const kp_aws_vlist *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].id != NULL && strcmp(l->v[i].id, id) == 0)
            return true;
    return false;
}

/* One key no alias of the prefix names: reported when keyplane made it for an alias of this
 * instance's prefix (its keyplane-alias tag; another prefix's keys are not this instance's) and
 * that alias names another key or none. A key whose tags or state cannot be read is counted in
 * *unread. */
static void s_unclaimed_key(kp_aws_inst *a, kp_check_report_fn report, void *arg, const char *id,
                            size_t *found, size_t *unread, char *why, size_t whylen)
{
    a->deadline = kpk_http_clock_ms() + a->deadline_ms; /* one lookup per key */
    char alias[300], want[300];
    kp_aws_kms_key k, held;
    int n = snprintf(want, sizeof(want), "alias/%s", a->prefix);
    kp_status st = kp_aws_kms_tag(a, id, KP_AWS_TAG_ALIAS, alias, sizeof(alias));
    if (st == KP_OK && (n < 0 || strncmp(alias, want, (size_t)n) != 0))
        return; /* not keyplane's, or another prefix's */
    if (st == KP_OK)
        st = kp_aws_kms_describe(a, id, &k);
    kp_status at = st == KP_OK ? kp_aws_kms_describe(a, alias, &held) : st;
    if (st != KP_OK || (at != KP_OK && at != KP_ERR_NOT_FOUND)) {
        if ((*unread)++ == 0) /* the first reason: a permission missing, most often */
            snprintf(why, whylen, "%s", a->up->get_error(a->h));
        return;
    }
    if ((at == KP_OK && strcmp(held.arn, k.arn) == 0) || strcmp(k.state, "PendingDeletion") == 0)
        return; /* the alias's own key (listed since), or on its way out already */
    char detail[KP_ERROR_MAX + 1];
    if (strcmp(k.state, "PendingImport") == 0)
        snprintf(detail, sizeof(detail),
                 "%.120s (%s) was made for %.150s, which names another key or none: it claims no "
                 "version, and nothing uses it (a claim a killed run left, or one that lost to "
                 "another run). Once no keyplane run is importing that version: aws kms "
                 "schedule-key-deletion --key-id %.120s --region %s",
                 k.arn, k.state, alias, k.arn, a->region);
    else /* material in it: perhaps the only key of a version whose alias someone removed */
        snprintf(detail, sizeof(detail),
                 "%.120s (%s) holds key material and was made for %.150s, which names another "
                 "key or none. If that version's alias was removed, put it back (aws kms "
                 "create-alias --alias-name %.150s --target-key-id %.120s --region %s); do not "
                 "delete the key before `keyplane verify` proves every version elsewhere",
                 k.arn, k.state, alias, alias, k.arn, a->region);
    report(arg, "unclaimed key", KP_OK, detail);
    (*found)++;
}

/* The keys keyplane made that no alias claims (aws_kms_import.c): the region's keys are listed
 * (kms:ListKeys), and each key no alias of the prefix names is read (kms:ListResourceTags,
 * kms:DescribeKey). Nothing is deleted: a person removes them. */
typedef struct s_claims {
    kp_aws_inst *a;
    kp_check_report_fn report;
    void *arg;
    kp_aws_vlist l;
    size_t keys, found, unread;
    char why[KP_ERROR_MAX + 1];
} s_claims;

static kp_status s_claims_key(void *arg, json_t *e)
{
    s_claims *c = arg;
    const char *id = json_string_value(json_object_get(e, "KeyId"));
    c->keys++;
    if (id != NULL && !s_claimed(&c->l, id))
        s_unclaimed_key(c->a, c->report, c->arg, id, &c->found, &c->unread, c->why, sizeof(c->why));
    return KP_OK;
}

static void s_kms_claims(kp_aws_inst *a, kp_check_report_fn report, void *arg, kp_status *first)
{
    s_claims c = {.a = a, .report = report, .arg = arg};
    kp_status st = kp_aws_kms_versions(a, NULL, &c.l);
    if (st == KP_OK)
        st = kp_aws_kms_pages(a, "ListKeys", "Keys", 1000, true, s_claims_key, &c);
    char detail[KP_ERROR_MAX + 1], more[700] = "";
    if (c.unread > 0)
        snprintf(more, sizeof(more),
                 "; %zu whose tags or state could not be read (the first: %.500s)", c.unread,
                 c.why);
    snprintf(detail, sizeof(detail),
             "%zu version%s claimed by aliases under alias/%s; of the %zu keys of %s, %zu made for "
             "a version that no alias claims%s",
             c.l.n, c.l.n == 1 ? "" : "s", a->prefix, c.keys, a->region, c.found, more);
    kp_aws_vlist_free(&c.l);
    s_report(a, report, arg, "claims", st, detail, first);
}

/* KMS: the region answers and its keys can be listed (kms:ListKeys); the claims. */
static void s_kms(kp_aws_inst *a, kp_check_report_fn report, void *arg, kp_status *first)
{
    json_t *j = json_pack("{s:i}", "Limit", 1), *out = NULL;
    kp_status st = j != NULL ? kp_aws_kms_call(a, "ListKeys", j, false, &out, NULL, 0)
                             : kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    json_decref(j);
    json_decref(out);
    char detail[160];
    snprintf(detail, sizeof(detail), "KMS in %s answers", a->region);
    if (s_report(a, report, arg, "kms", st, detail, first) == KP_OK)
        s_kms_claims(a, report, arg, first);
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
