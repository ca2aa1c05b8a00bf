/*
 * The credential chain, in the AWS CLI's order (botocore's default credential providers):
 *   1. access_key_id and secret_access_key given as params (keyplane's own, first: the policy
 *      said so);
 *   2. the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), unless the
 *      `profile` param names a profile explicitly (botocore skips it then too);
 *   3. the profile (`profile` param, else AWS_PROFILE, else default) when it assumes a role
 *      (role_arn with source_profile, credential_source or web_identity_token_file);
 *   4. web identity from AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN (EKS);
 *   5. the profile's static keys, credentials file first, then the config file;
 *   6. the container endpoint (ECS, EKS Pod Identity);
 *   7. EC2 instance metadata (IMDSv2).
 * Then, when the `role_arn` param is given, that role is assumed with what was found.
 * Temporary credentials are found again KP_AWS_REFRESH_AHEAD_S before they expire; when that
 * fails while the old ones still have a minute, the old ones are used.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_internal.h"

/* Steps 3 to 5 read the profile once: a role profile answers with the role's credentials, a
 * profile without a role with web identity when the environment sets it (step 4, which comes
 * before the profile's keys), else with its keys. */
static kp_status s_chain(kp_aws_inst *a, kp_aws_creds *out)
{
    kp_status st;
    if (a->access_key_param[0] != '\0')
        return kp_aws_creds_set(a, out, a->access_key_param,
                                (const char *)a->up->secret_cdata(a->secret_param),
                                a->up->secret_len(a->secret_param), NULL, 0, "params");
    if (a->profile[0] == '\0' && (st = kp_aws_creds_env(a, out)) != KP_ERR_NOT_FOUND)
        return st;
    const char *env_profile = getenv("AWS_PROFILE");
    const char *profile = a->profile[0] != '\0'                           ? a->profile
                          : env_profile != NULL && env_profile[0] != '\0' ? env_profile
                                                                          : "default";
    bool named = a->profile[0] != '\0' || (env_profile != NULL && env_profile[0] != '\0');
    st = kp_aws_creds_profile(a, profile, out);
    if (st == KP_ERR_NOT_FOUND && named)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "profile %s is in neither the shared config nor the credentials file",
                          profile);
    if (st != KP_ERR_NOT_FOUND)
        return st;
    if ((st = kp_aws_creds_web_identity(a, out)) != KP_ERR_NOT_FOUND)
        return st;
    if ((st = kp_aws_creds_container(a, out)) != KP_ERR_NOT_FOUND)
        return st;
    st = kp_aws_creds_imds(a, out);
    if (st == KP_ERR_NOT_FOUND)
        return kp_aws_err(a, KP_ERR_AUTH,
                          "no AWS credentials: none in the params, the environment, profile %s, "
                          "web identity or a container endpoint, and instance metadata is off",
                          profile);
    if (st == KP_ERR_UNAVAILABLE || st == KP_ERR_TIMEOUT) {
        char why[KP_ERROR_MAX];
        snprintf(why, sizeof(why), "%s", a->up->get_error(a->h));
        return kp_aws_err(a, KP_ERR_AUTH,
                          "no AWS credentials: none in the params, the environment, profile %s, "
                          "web identity or a container endpoint, and %s",
                          profile, why);
    }
    return st;
}

static kp_status s_find(kp_aws_inst *a, kp_aws_creds *out)
{
    kp_aws_creds base;
    memset(&base, 0, sizeof(base));
    kp_status st = s_chain(a, &base);
    if (st == KP_OK && a->role_arn[0] != '\0') {
        st = kp_aws_sts_assume(a, &base, a->role_arn, "keyplane", out);
        kp_aws_creds_clear(a->up, &base);
        return st;
    }
    if (st == KP_OK) {
        kp_aws_creds_clear(a->up, out);
        *out = base;
    }
    return st;
}

kp_status kp_aws_creds_ensure(kp_aws_inst *a)
{
    time_t now = time(NULL);
    bool have = a->creds.access_key_id[0] != '\0';
    if (have && (a->creds.expires == 0 || now + KP_AWS_REFRESH_AHEAD_S < a->creds.expires))
        return KP_OK;
    kp_aws_creds fresh;
    memset(&fresh, 0, sizeof(fresh));
    kp_status st = s_find(a, &fresh);
    if (st == KP_OK) {
        kp_aws_creds_clear(a->up, &a->creds);
        a->creds = fresh;
        return KP_OK;
    }
    if (have && now + 60 < a->creds.expires)
        return KP_OK; /* the refresh failed; the old ones still serve */
    kp_aws_creds_clear(a->up, &a->creds);
    return st;
}
