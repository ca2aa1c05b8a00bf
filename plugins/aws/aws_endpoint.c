/*
 * Where a service of a region answers, as the AWS SDKs decide it ("Service-specific endpoints"
 * of the AWS SDKs and Tools reference): a URL in the policy first, then AWS_ENDPOINT_URL_<ID>
 * (the service id in capitals, spaces as '_': S3, SECRETS_MANAGER, STS, KMS), then
 * AWS_ENDPOINT_URL, unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true; else AWS's own regional
 * endpoint. Only https:// URLs: credentials are never sent in the clear.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/params.h>

#include "aws_internal.h"

bool kp_aws_region_valid(const char *region)
{
    size_t n = region != NULL ? strlen(region) : 0;
    return n > 0 && n < KP_AWS_REGION_MAX && region[0] >= 'a' && region[0] <= 'z' &&
           strspn(region, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* The environment variable of a signing name. */
static const char *s_env_name(const char *service)
{
    if (strcmp(service, "s3") == 0)
        return "AWS_ENDPOINT_URL_S3";
    if (strcmp(service, "secretsmanager") == 0)
        return "AWS_ENDPOINT_URL_SECRETS_MANAGER";
    if (strcmp(service, "sts") == 0)
        return "AWS_ENDPOINT_URL_STS";
    return "AWS_ENDPOINT_URL_KMS";
}

static bool s_env_ignored(void)
{
    bool ignore = false;
    return kpk_param_bool(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"), &ignore) && ignore;
}

kp_status kp_aws_endpoint(kp_aws_sink to, const char *service, const char *region,
                          const char *param, char out[KP_AWS_URL_MAX])
{
    const char *from = "the endpoint param", *url = param;
    char own[KP_AWS_URL_MAX];
    if ((url == NULL || url[0] == '\0') && !s_env_ignored()) {
        from = s_env_name(service);
        url = getenv(from);
        if (url == NULL || url[0] == '\0') {
            from = "AWS_ENDPOINT_URL";
            url = getenv(from);
        }
    }
    if (url == NULL || url[0] == '\0') {
        bool china = strncmp(region, "cn-", 3) == 0;
        snprintf(own, sizeof(own), "https://%s.%s.amazonaws.com%s", service, region,
                 china ? ".cn" : "");
        from = "the region's endpoint";
        url = own;
    }
    kpk_http_url u;
    char why[KP_AWS_ERR];
    if (kpk_http_url_parse(from, url, 0, &u, why, sizeof(why)) != KP_OK)
        return kp_aws_err(&to, KP_ERR_CONFIG, "%s", why);
    if (strlen(u.base) >= KP_AWS_URL_MAX)
        return kp_aws_err(&to, KP_ERR_CONFIG, "%s is too long", from);
    memcpy(out, u.base, strlen(u.base) + 1);
    /* libcurl sends Host without the scheme's own port: what is signed must say the same */
    size_t n = strlen(out);
    if (u.https && u.port == 443 && n > 4 && strcmp(out + n - 4, ":443") == 0)
        out[n - 4] = '\0';
    return KP_OK;
}
