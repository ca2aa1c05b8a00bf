/*
 * The plugin's parameters: what it declares (PLUGIN_PARAMS, `keyplane plugins --params`), how
 * an instance reads them, and what an instance is before it is opened (PLUGIN_DESCRIBE) and
 * after (INSTANCE_INFO). Opening contacts nothing: credentials are found on the first request,
 * so a policy naming a region that is down still loads and `keyplane check` can say what is
 * wrong.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "aws_internal.h"

#define S_OPT(n, t, h)                                                                             \
    {                                                                                              \
        .name = (n), .type = (t), .help = (h)                                                      \
    }

const kp_param_desc kp_aws_param_list[] = {
    {.name = "service",
     .type = KP_PARAM_STRING,
     .flags = KP_PARAM_REQUIRED,
     .help = "what the instance is: s3 (objects in a bucket), secretsmanager (secrets) or kms "
             "(a keystore of imported RSA keys, and data keys)"},
    {.name = "region",
     .type = KP_PARAM_STRING,
     .flags = KP_PARAM_REQUIRED,
     .help = "AWS region of the bucket, the secrets or the KMS keys, e.g. us-east-1"},
    S_OPT("bucket", KP_PARAM_STRING, "s3: the bucket (it must exist, in region)"),
    S_OPT("prefix", KP_PARAM_STRING,
          "object key, secret name or KMS alias prefix (default keyplane/): version N of NAME is "
          "<prefix>NAME/vN (kms: alias/<prefix>NAME/vN; a kms prefix ends with '/')"),
    S_OPT("kms_key", KP_PARAM_STRING,
          "KMS key in region (id, ARN or alias/NAME): s3: the SSE-KMS key of every object "
          "(required); secretsmanager: the secrets' KmsKeyId (default aws/secretsmanager)"),
    S_OPT("replicas", KP_PARAM_STRING,
          "secretsmanager: regions every secret is replicated to, each with its own KMS key: "
          "REGION=KEY[,REGION=KEY...]"),
    S_OPT("endpoint", KP_PARAM_STRING,
          "https:// URL of the service (default: AWS_ENDPOINT_URL_S3, "
          "AWS_ENDPOINT_URL_SECRETS_MANAGER or AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, then "
          "AWS's own)"),
    S_OPT("replica_endpoints", KP_PARAM_STRING,
          "secretsmanager: REGION=URL[,REGION=URL...] for replica regions (default: as endpoint)"),
    S_OPT("sts_endpoint", KP_PARAM_STRING,
          "https:// URL of STS for role_arn and profiles that assume roles (default: "
          "AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, then sts.REGION.amazonaws.com)"),
    S_OPT("kms_endpoint", KP_PARAM_STRING,
          "s3: https:// URL of KMS, to resolve an alias kms_key (default: AWS_ENDPOINT_URL_KMS, "
          "AWS_ENDPOINT_URL, then kms.REGION.amazonaws.com)"),
    S_OPT("s3_endpoint", KP_PARAM_STRING,
          "kms: https:// URL of S3, for `keyplane backup` objects (default: "
          "AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then s3.REGION.amazonaws.com)"),
    S_OPT("addressing", KP_PARAM_STRING,
          "s3: path or virtual (default: virtual on AWS's endpoint, path on another)"),
    S_OPT("profile", KP_PARAM_STRING,
          "profile of the shared config and credentials files (default: AWS_PROFILE, then "
          "default)"),
    S_OPT("role_arn", KP_PARAM_STRING,
          "a role to assume (STS AssumeRole) with the credentials found"),
    S_OPT("access_key_id", KP_PARAM_STRING, "access key id, with secret_access_key"),
    S_OPT("secret_access_key", KP_PARAM_SECRET,
          "secret access key, env:NAME or file:PATH (default: the AWS CLI's credential chain)"),
    KPK_HTTP_PARAM_ROWS,
    {.name = "deadline_ms",
     .type = KP_PARAM_INT,
     .min = 100,
     .max = 600000,
     .help = "time limit of one lookup, listing or read, its retries and waits included: past it "
             "the core fails over to another replica (default 10000)"},
    {.name = NULL},
};

static const char *s_str(const kp_param *params, const char *name)
{
    const kp_param *p = kp_param_find(params, name);
    return p != NULL && p->str != NULL ? p->str : NULL;
}

kp_aws_service kp_aws_params_service(kp_aws_sink to, const kp_param *params)
{
    const char *s = s_str(params, "service");
    if (s != NULL && strcmp(s, "s3") == 0)
        return KP_AWS_S3;
    if (s != NULL && strcmp(s, "secretsmanager") == 0)
        return KP_AWS_SM;
    if (s != NULL && strcmp(s, "kms") == 0)
        return KP_AWS_KMS;
    kp_aws_err(&to, KP_ERR_CONFIG, "service must be s3, secretsmanager or kms");
    return 0;
}

/* Copies a string param (dflt when absent) into out; KP_ERR_CONFIG when too long or holding
 * a space or control character. */
static kp_status s_copy(kp_aws_inst *a, const kp_param *params, const char *name, char *out,
                        size_t outlen, const char *dflt)
{
    const char *v = s_str(params, name);
    if (v == NULL)
        v = dflt != NULL ? dflt : "";
    if (strlen(v) >= outlen)
        return kp_aws_err(a, KP_ERR_CONFIG, "%s is longer than %zu characters", name, outlen - 1);
    for (const char *c = v; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return kp_aws_err(a, KP_ERR_CONFIG, "%s holds a space or control character", name);
    memcpy(out, v, strlen(v) + 1);
    return KP_OK;
}

/* S3's bucket naming rules (the S3 user guide): 3..63 of [a-z0-9.-], starting and ending with
 * a letter or digit, no "..", not shaped like an IP address. */
static bool s_bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63 || strspn(b, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n)
        return false;
    if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]) ||
        strstr(b, "..") != NULL)
        return false;
    return strspn(b, "0123456789.") != n;
}

/* The prefix: characters both an S3 key and a Secrets Manager name take. */
static kp_status s_prefix(kp_aws_inst *a, const kp_param *params)
{
    KP_GUARD(s_copy(a, params, "prefix", a->prefix, sizeof(a->prefix), "keyplane/"));
    size_t n = strlen(a->prefix);
    if (strspn(a->prefix,
               "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-") != n)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "prefix allows only letters, digits and / _ + = . @ - (what both S3 keys "
                          "and Secrets Manager names take)");
    if (a->prefix[0] == '/')
        return kp_aws_err(a, KP_ERR_CONFIG, "prefix must not start with '/'");
    /* a KMS alias name takes fewer characters, and alias/aws/ is AWS's own */
    if (a->service == KP_AWS_KMS &&
        (strspn(a->prefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-") !=
             n ||
         strncmp(a->prefix, "aws/", 4) == 0))
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "kms: prefix allows only letters, digits and / _ - (what a KMS alias "
                          "name takes), and must not start with aws/");
    /* a key name takes no '/': with it last, no two prefixes claim one alias ("kp" + "tde" and
     * "kpt" + "de" would), nor does an empty one read every alias/NAME/vN of the account */
    if (a->service == KP_AWS_KMS && (n == 0 || a->prefix[n - 1] != '/'))
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "kms: prefix must end with '/' (alias/<prefix>NAME/vN): without it two "
                          "prefixes could claim one alias");
    return KP_OK;
}

/* One "REGION=VALUE" item of a list param into region and value; KP_ERR_CONFIG. */
static kp_status s_pair(kp_aws_inst *a, const char *param, const char *item, size_t len,
                        char *region, char *value, size_t valuelen)
{
    const char *eq = memchr(item, '=', len);
    size_t rl = eq != NULL ? (size_t)(eq - item) : 0, vl = eq != NULL ? len - rl - 1 : 0;
    if (eq == NULL || rl == 0 || rl >= KP_AWS_REGION_MAX || vl == 0 || vl >= valuelen)
        return kp_aws_err(a, KP_ERR_CONFIG, "%s: '%.*s' is not REGION=VALUE", param, (int)len,
                          item);
    memcpy(region, item, rl);
    region[rl] = '\0';
    memcpy(value, eq + 1, vl);
    value[vl] = '\0';
    if (!kp_aws_region_valid(region))
        return kp_aws_err(a, KP_ERR_CONFIG, "%s: '%s' is not a region name", param, region);
    return KP_OK;
}

static kp_aws_replica *s_replica(kp_aws_inst *a, const char *region)
{
    for (size_t i = 0; i < a->nreplicas; i++)
        if (strcmp(a->replicas[i].region, region) == 0)
            return &a->replicas[i];
    return NULL;
}

/* replicas: REGION=KEY,...; replica_endpoints: REGION=URL,... naming only listed regions. */
static kp_status s_replicas(kp_aws_inst *a, const kp_param *params)
{
    const char *list = s_str(params, "replicas");
    if (list != NULL && a->service != KP_AWS_SM)
        return kp_aws_err(a, KP_ERR_CONFIG, "replicas is a secretsmanager param");
    for (const char *p = list; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (a->nreplicas == KP_AWS_MAX_REPLICAS)
            return kp_aws_err(a, KP_ERR_CONFIG, "replicas: at most %d regions",
                              KP_AWS_MAX_REPLICAS);
        kp_aws_replica *r = &a->replicas[a->nreplicas];
        KP_GUARD(s_pair(a, "replicas", p, len, r->region, r->kms_key, sizeof(r->kms_key)));
        if (strcmp(r->region, a->region) == 0 || s_replica(a, r->region) != NULL)
            return kp_aws_err(a, KP_ERR_CONFIG,
                              "replicas: %s is given twice or is the instance's own region",
                              r->region);
        a->nreplicas++;
        p += len + (p[len] == ',' ? 1 : 0);
    }
    const char *eps = s_str(params, "replica_endpoints");
    if (eps != NULL && a->service != KP_AWS_SM)
        return kp_aws_err(a, KP_ERR_CONFIG, "replica_endpoints is a secretsmanager param");
    for (const char *p = eps; p != NULL && *p != '\0';) {
        size_t len = strcspn(p, ",");
        char region[KP_AWS_REGION_MAX], url[KP_AWS_URL_MAX];
        KP_GUARD(s_pair(a, "replica_endpoints", p, len, region, url, sizeof(url)));
        kp_aws_replica *r = s_replica(a, region);
        if (r == NULL)
            return kp_aws_err(a, KP_ERR_CONFIG, "replica_endpoints: %s is not in replicas", region);
        KP_GUARD(kp_aws_endpoint(KP_AWS_SINK(a), "secretsmanager", region, url, r->endpoint));
        p += len + (p[len] == ',' ? 1 : 0);
    }
    for (size_t i = 0; i < a->nreplicas; i++)
        if (a->replicas[i].endpoint[0] == '\0')
            KP_GUARD(kp_aws_endpoint(KP_AWS_SINK(a), "secretsmanager", a->replicas[i].region, NULL,
                                     a->replicas[i].endpoint));
    return KP_OK;
}

/* Where objects go (`keyplane backup`): an s3 instance's own endpoint and addressing; a kms
 * instance's s3_endpoint, virtual-host addressing on AWS's own. Secrets Manager keeps none. */
static kp_status s_objects(kp_aws_inst *a, const kp_param *params)
{
    const char *param = s_str(params, "s3_endpoint");
    if (param != NULL && a->service != KP_AWS_KMS)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          a->service == KP_AWS_S3
                              ? "s3_endpoint is a kms param: an s3 instance's URL is endpoint"
                              : "s3_endpoint is a kms param: a secretsmanager instance keeps no "
                                "objects");
    a->objects = a->service != KP_AWS_SM;
    if (a->service == KP_AWS_S3) {
        memcpy(a->s3_endpoint, a->endpoint, sizeof(a->s3_endpoint));
        a->s3_virtual = a->virtual_host;
    } else if (a->service == KP_AWS_KMS) {
        KP_GUARD(kp_aws_endpoint(KP_AWS_SINK(a), "s3", a->region, param, a->s3_endpoint));
        a->s3_virtual = strstr(a->s3_endpoint, ".amazonaws.com") != NULL;
    }
    return KP_OK;
}

/* Where the data is: service, region, bucket, prefix, key, endpoints, addressing. */
static kp_status s_place(kp_aws_inst *a, const kp_param *params)
{
    a->service = kp_aws_params_service(KP_AWS_SINK(a), params);
    if (a->service == 0)
        return KP_ERR_CONFIG;
    KP_GUARD(s_copy(a, params, "region", a->region, sizeof(a->region), NULL));
    if (!kp_aws_region_valid(a->region))
        return kp_aws_err(a, KP_ERR_CONFIG, "region '%s' is not a region name", a->region);
    KP_GUARD(s_copy(a, params, "bucket", a->bucket, sizeof(a->bucket), NULL));
    if (a->service == KP_AWS_S3 && !s_bucket_valid(a->bucket))
        return kp_aws_err(a, KP_ERR_CONFIG,
                          a->bucket[0] == '\0' ? "service s3 needs bucket"
                                               : "bucket: 3-63 of a-z 0-9 . -, starting and ending "
                                                 "with a letter or digit");
    if (a->service != KP_AWS_S3 && a->bucket[0] != '\0')
        return kp_aws_err(a, KP_ERR_CONFIG, "bucket is an s3 param");
    KP_GUARD(s_prefix(a, params));
    /* a kms instance is KMS itself: its URL is `endpoint`, and its keys are named per call */
    if (a->service == KP_AWS_KMS && s_str(params, "kms_endpoint") != NULL)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "kms_endpoint is an s3 param: a kms instance's URL is endpoint");
    if (a->service == KP_AWS_KMS && s_str(params, "kms_key") != NULL)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "kms_key is an s3 and secretsmanager param: a kms instance's keys are "
                          "its versions' aliases, and datakey's --key-id");
    KP_GUARD(s_copy(a, params, "kms_key", a->kms_key, sizeof(a->kms_key), NULL));
    if (a->service == KP_AWS_S3 && a->kms_key[0] == '\0')
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "service s3 needs kms_key: every object is encrypted (SSE-KMS) under "
                          "a key of the bucket's own region");
    const char *svc = a->service == KP_AWS_S3   ? "s3"
                      : a->service == KP_AWS_SM ? "secretsmanager"
                                                : "kms";
    KP_GUARD(
        kp_aws_endpoint(KP_AWS_SINK(a), svc, a->region, s_str(params, "endpoint"), a->endpoint));
    KP_GUARD(s_replicas(a, params));
    const char *addr = s_str(params, "addressing");
    bool aws_own = strstr(a->endpoint, ".amazonaws.com") != NULL;
    if (addr != NULL && a->service != KP_AWS_S3)
        return kp_aws_err(a, KP_ERR_CONFIG, "addressing is an s3 param");
    if (addr != NULL && strcmp(addr, "path") != 0 && strcmp(addr, "virtual") != 0)
        return kp_aws_err(a, KP_ERR_CONFIG, "addressing must be path or virtual");
    a->virtual_host = addr != NULL ? strcmp(addr, "virtual") == 0 : aws_own;
    if (a->virtual_host && strchr(a->bucket, '.') != NULL && strncmp(a->endpoint, "https", 5) == 0)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "bucket %s has a '.': virtual-host addressing would fail TLS host name "
                          "checks; use addressing: path",
                          a->bucket);
    return s_objects(a, params);
}

/* Who signs: a profile, a role, or keys given as params. */
static kp_status s_identity(kp_aws_inst *a, const kp_param *params)
{
    KP_GUARD(s_copy(a, params, "profile", a->profile, sizeof(a->profile), NULL));
    KP_GUARD(s_copy(a, params, "role_arn", a->role_arn, sizeof(a->role_arn), NULL));
    if (a->role_arn[0] != '\0' && strncmp(a->role_arn, "arn:", 4) != 0)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "role_arn must be an ARN (arn:aws:iam::ACCOUNT:role/NAME)");
    KP_GUARD(
        s_copy(a, params, "access_key_id", a->access_key_param, sizeof(a->access_key_param), NULL));
    const kp_param *secret = kp_param_find(params, "secret_access_key");
    if ((secret != NULL) != (a->access_key_param[0] != '\0'))
        return kp_aws_err(a, KP_ERR_CONFIG, "access_key_id and secret_access_key go together");
    if (secret != NULL && secret->secret != NULL) {
        size_t len = a->up->secret_len(secret->secret);
        if (len == 0)
            return kp_aws_err(a, KP_ERR_CONFIG, "secret_access_key is empty");
        a->secret_param = kp_secret_dup(a->up, a->up->secret_cdata(secret->secret), len);
        if (a->secret_param == NULL)
            return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    return KP_OK;
}

kp_status kp_aws_params_take(kp_aws_inst *a, const kp_param *params)
{
    KP_GUARD(s_place(a, params));
    KP_GUARD(s_identity(a, params));
    KP_GUARD(kp_aws_endpoint(KP_AWS_SINK(a), "sts", a->region, s_str(params, "sts_endpoint"),
                             a->sts_endpoint));
    KP_GUARD(kp_aws_endpoint(KP_AWS_SINK(a), "kms", a->region, s_str(params, "kms_endpoint"),
                             a->kms_endpoint));
    /* the CA bundle: the param, else AWS_CA_BUNDLE as the AWS CLI reads it */
    const char *env_ca = getenv("AWS_CA_BUNDLE");
    KP_GUARD(s_copy(a, params, "ca_bundle", a->ca_bundle, sizeof(a->ca_bundle),
                    env_ca != NULL && env_ca[0] != '\0' ? env_ca : NULL));
    memset(&a->http_cfg, 0, sizeof(a->http_cfg));
    kpk_http_config_params(params, &a->http_cfg);
    a->http_cfg.ca_bundle = a->ca_bundle[0] != '\0' ? a->ca_bundle : NULL;
    a->http_cfg.user_agent = "keyplane-aws/0.1.0";
    /* an S3 object is read whole: up to a few parts' worth */
    a->http_cfg.max_response = a->service == KP_AWS_S3 ? 64u * 1024 * 1024 : 1024 * 1024;
    const kp_param *p = kp_param_find(params, "deadline_ms");
    a->deadline_ms = p != NULL ? (long)p->num : KP_AWS_DEFAULT_DEADLINE_MS;
    return KP_OK;
}

/* What an instance of these params is: a secret store, with Secrets Manager's value limit; or
 * KMS, a keystore of imported RSA keys (RSA-OAEP both ways, wrapped imports with
 * RSA_AES_KEY_WRAP_SHA_256: one import token serves one wrapping algorithm, and SHA-256 is the
 * one every source that exports wrapped keys here offers) that hands no key out, and data keys. */
static void s_info(kp_aws_service service, bool objects, kp_instance_info *info)
{
    if (objects)
        info->flags |= KP_INST_OBJECTS;
    info->capabilities =
        service == KP_AWS_KMS ? KP_CAP_KEYSTORE | KP_CAP_DATAKEY : KP_CAP_SECRETSTORE;
    info->secret_max = service == KP_AWS_SM ? KP_AWS_SM_VALUE_MAX : 0;
    if (service != KP_AWS_KMS)
        return;
    info->wrap_algs = info->unwrap_algs =
        KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    info->key_bits = KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096;
    info->import_keyx = KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256);
    info->flags |= KP_INST_NO_EXPORT;
}

kp_status kp_aws_plugin_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    kp_aws_plugin *pl = plugin_ctx;
    KP_ENSURE(pl != NULL && info != NULL, KP_ERR_INVALID_ARG);
    /* every param rule an open would apply, so policy validation reports them where they are
     * written (secrets are not read here) */
    kp_aws_inst *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return KP_ERR_NOMEM;
    a->up = &pl->up;
    a->h = pl->h;
    kp_status st = kp_aws_params_take(a, params);
    if (st == KP_OK)
        s_info(a->service, a->objects && pl->core_minor >= 6, info);
    a->up->secret_free(a->secret_param);
    free(a);
    return st;
}

kp_status kp_aws_instance_info(void *inst, kp_instance_info *info)
{
    kp_aws_inst *a = inst;
    KP_ENSURE(a != NULL && info != NULL, KP_ERR_INVALID_ARG);
    s_info(a->service, a->objects, info);
    return KP_OK;
}
