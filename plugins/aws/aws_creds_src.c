/*
 * The sources of AWS credentials, one function each, as the AWS CLI (botocore's credential
 * providers) reads them: the environment; a profile of the shared config and credentials files
 * (static keys, or a role assumed with a source profile's keys or with a web identity token);
 * the web identity variables of EKS; the container endpoint of ECS and EKS Pod Identity; EC2's
 * instance metadata (IMDSv2 only). Each returns KP_ERR_NOT_FOUND when it does not apply, so the
 * chain (aws_creds.c) goes on; a source that applies but fails is an error with its reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include <keyplane/kit/params.h>

#include "aws_internal.h"

#define S_ROLE_DEPTH 4                 /* source_profile hops, as a guard against loops */
#define S_KEYS_ONLY (S_ROLE_DEPTH + 1) /* s_profile's depth for a profile's own keys */
#define S_SESSION "keyplane"

void kp_aws_creds_clear(const kp_upcalls *up, kp_aws_creds *c)
{
    up->secret_free(c->secret);
    up->secret_free(c->token);
    memset(c, 0, sizeof(*c));
}

kp_status kp_aws_creds_set(kp_aws_inst *a, kp_aws_creds *out, const char *akid, const char *secret,
                           size_t secret_len, const char *token, time_t expires, const char *source)
{
    kp_aws_creds c;
    memset(&c, 0, sizeof(c));
    if (strlen(akid) >= sizeof(c.access_key_id) || secret_len == 0)
        return kp_aws_err(a, KP_ERR_CONFIG, "%s: malformed credentials", source);
    for (const char *p = akid; *p != '\0'; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return kp_aws_err(a, KP_ERR_CONFIG, "%s: malformed access key id", source);
    memcpy(c.access_key_id, akid, strlen(akid) + 1);
    c.secret = kp_secret_dup(a->up, secret, secret_len);
    if (token != NULL && token[0] != '\0')
        c.token = kp_secret_dup(a->up, token, strlen(token) + 1); /* kept NUL-terminated */
    if (c.secret == NULL || (token != NULL && token[0] != '\0' && c.token == NULL)) {
        kp_aws_creds_clear(a->up, &c);
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    if (c.token != NULL) /* the length without the NUL */
        (void)a->up->secret_shrink(c.token, strlen(token) + 1);
    c.expires = expires;
    snprintf(c.source, sizeof(c.source), "%s", source);
    kp_aws_creds_clear(a->up, out);
    *out = c;
    return KP_OK;
}

kp_status kp_aws_creds_env(kp_aws_inst *a, kp_aws_creds *out)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    bool has_id = id != NULL && id[0] != '\0', has_secret = secret != NULL && secret[0] != '\0';
    if (!has_id && !has_secret)
        return KP_ERR_NOT_FOUND;
    if (!has_id || !has_secret)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "the environment has %s without %s: set both or neither",
                          has_id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                          has_id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    return kp_aws_creds_set(a, out, id, secret, strlen(secret), getenv("AWS_SESSION_TOKEN"), 0,
                            "environment");
}

/* The shared files: AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE, or ~/.aws/... */
static void s_file(char *out, size_t cap, const char *env, const char *base)
{
    const char *v = getenv(env), *home = getenv("HOME");
    if (v != NULL && v[0] != '\0')
        snprintf(out, cap, "%s", v);
    else
        snprintf(out, cap, "%s/.aws/%s", home != NULL ? home : "", base);
}

/* A setting of a profile: the config file's "[profile NAME]" ("[default]" for default), then
 * the credentials file's "[NAME]" when creds_too. "" when absent. */
static kp_status s_setting(kp_aws_inst *a, const char *profile, const char *key, bool creds_too,
                           char *out, size_t cap)
{
    char cfg[1024], cred[1024], section[160], err[KP_AWS_ERR];
    s_file(cfg, sizeof(cfg), "AWS_CONFIG_FILE", "config");
    s_file(cred, sizeof(cred), "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    if (strcmp(profile, "default") == 0)
        snprintf(section, sizeof(section), "default");
    else
        snprintf(section, sizeof(section), "profile %s", profile);
    kp_status st = KP_ERR_NOT_FOUND;
    if (creds_too)
        st = kp_aws_ini_get(cred, profile, key, out, cap, err, sizeof(err));
    if (st == KP_ERR_NOT_FOUND)
        st = kp_aws_ini_get(cfg, section, key, out, cap, err, sizeof(err));
    if (st == KP_ERR_NOT_FOUND) {
        out[0] = '\0';
        return KP_OK;
    }
    if (st != KP_OK)
        return kp_aws_err(a, st, "%s", err);
    return KP_OK;
}

/* Whether profile is in either file. */
static bool s_profile_exists(const char *profile)
{
    char cfg[1024], cred[1024], section[160];
    s_file(cfg, sizeof(cfg), "AWS_CONFIG_FILE", "config");
    s_file(cred, sizeof(cred), "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    snprintf(section, sizeof(section), strcmp(profile, "default") == 0 ? "%s" : "profile %s",
             profile);
    return kp_aws_ini_has(cred, profile) || kp_aws_ini_has(cfg, section);
}

static kp_status s_profile(kp_aws_inst *a, const char *profile, int depth, kp_aws_creds *out);

/* credential_source of a role profile: where the role's source credentials come from. */
static kp_status s_credential_source(kp_aws_inst *a, const char *profile, const char *source,
                                     kp_aws_creds *out)
{
    kp_status st;
    if (strcmp(source, "Environment") == 0)
        st = kp_aws_creds_env(a, out);
    else if (strcmp(source, "EcsContainer") == 0)
        st = kp_aws_creds_container(a, out);
    else if (strcmp(source, "Ec2InstanceMetadata") == 0)
        st = kp_aws_creds_imds(a, out);
    else
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "profile %s: credential_source %s is none of Environment, EcsContainer, "
                          "Ec2InstanceMetadata",
                          profile, source);
    if (st == KP_ERR_NOT_FOUND)
        return kp_aws_err(a, KP_ERR_CONFIG, "profile %s: credential_source %s has no credentials",
                          profile, source);
    return st;
}

/* A profile with role_arn: its source's credentials, then AssumeRole (or web identity). */
static kp_status s_role(kp_aws_inst *a, const char *profile, const char *role, int depth,
                        kp_aws_creds *out)
{
    char src[128], csrc[64], token_file[1024], session[128];
    KP_GUARD(s_setting(a, profile, "source_profile", false, src, sizeof(src)));
    KP_GUARD(s_setting(a, profile, "credential_source", false, csrc, sizeof(csrc)));
    KP_GUARD(
        s_setting(a, profile, "web_identity_token_file", false, token_file, sizeof(token_file)));
    KP_GUARD(s_setting(a, profile, "role_session_name", false, session, sizeof(session)));
    if (session[0] == '\0')
        snprintf(session, sizeof(session), S_SESSION);
    int given = (src[0] != '\0') + (csrc[0] != '\0') + (token_file[0] != '\0');
    if (given != 1)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "profile %s: role_arn needs exactly one of source_profile, "
                          "credential_source and web_identity_token_file",
                          profile);
    if (token_file[0] != '\0')
        return kp_aws_sts_web_identity(a, role, token_file, session, out);
    kp_aws_creds base;
    memset(&base, 0, sizeof(base));
    kp_status st;
    if (src[0] == '\0')
        st = s_credential_source(a, profile, csrc, &base);
    else if (strcmp(src, profile) == 0) /* botocore: the profile's own static keys */
        st = s_profile(a, src, S_KEYS_ONLY, &base);
    else
        st = s_profile(a, src, depth + 1, &base);
    if (st == KP_ERR_NOT_FOUND)
        st = kp_aws_err(a, KP_ERR_CONFIG, "profile %s: source_profile %s has no credentials",
                        profile, src);
    if (st == KP_OK)
        st = kp_aws_sts_assume(a, &base, role, session, out);
    kp_aws_creds_clear(a->up, &base);
    return st;
}

/* A profile: a role when it names one (unless depth is S_KEYS_ONLY), else its keys. A role
 * S_ROLE_DEPTH source_profile hops away is an error (a loop, or a chain too long), not a reason
 * to take that profile's keys instead. */
static kp_status s_profile(kp_aws_inst *a, const char *profile, int depth, kp_aws_creds *out)
{
    char role[256], id[128], secret[256], token[8192], source[160];
    KP_GUARD(s_setting(a, profile, "role_arn", false, role, sizeof(role)));
    if (role[0] != '\0' && depth < S_ROLE_DEPTH)
        return s_role(a, profile, role, depth, out);
    if (role[0] != '\0' && depth == S_ROLE_DEPTH)
        return kp_aws_err(a, KP_ERR_CONFIG,
                          "profile %s: source_profile chain longer than %d (a loop?)", profile,
                          S_ROLE_DEPTH);
    kp_status st = s_setting(a, profile, "aws_access_key_id", true, id, sizeof(id));
    if (st == KP_OK)
        st = s_setting(a, profile, "aws_secret_access_key", true, secret, sizeof(secret));
    if (st == KP_OK)
        st = s_setting(a, profile, "aws_session_token", true, token, sizeof(token));
    if (st == KP_OK && id[0] == '\0' && secret[0] == '\0')
        st = KP_ERR_NOT_FOUND;
    else if (st == KP_OK && (id[0] == '\0' || secret[0] == '\0'))
        st = kp_aws_err(a, KP_ERR_CONFIG,
                        "profile %s has aws_access_key_id or aws_secret_access_key without the "
                        "other",
                        profile);
    snprintf(source, sizeof(source), "profile %s", profile);
    if (st == KP_OK)
        st = kp_aws_creds_set(a, out, id, secret, strlen(secret), token, 0, source);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(token, sizeof(token));
    return st;
}

kp_status kp_aws_creds_profile(kp_aws_inst *a, const char *profile, kp_aws_creds *out)
{
    if (!s_profile_exists(profile))
        return KP_ERR_NOT_FOUND;
    /* botocore's order: the profile's role, then web identity from the environment, and only
     * then the profile's keys (the shared credentials and config file providers come after
     * AssumeRoleWithWebIdentity) */
    char role[256];
    KP_GUARD(s_setting(a, profile, "role_arn", false, role, sizeof(role)));
    if (role[0] == '\0') {
        kp_status st = kp_aws_creds_web_identity(a, out);
        if (st != KP_ERR_NOT_FOUND)
            return st;
    }
    return s_profile(a, profile, 0, out);
}

kp_status kp_aws_creds_web_identity(kp_aws_inst *a, kp_aws_creds *out)
{
    const char *file = getenv("AWS_WEB_IDENTITY_TOKEN_FILE"), *role = getenv("AWS_ROLE_ARN");
    const char *session = getenv("AWS_ROLE_SESSION_NAME");
    if (file == NULL || file[0] == '\0' || role == NULL || role[0] == '\0')
        return KP_ERR_NOT_FOUND;
    return kp_aws_sts_web_identity(
        a, role, file, session != NULL && session[0] != '\0' ? session : S_SESSION, out);
}

/* Credentials from a metadata answer's JSON (container and IMDS share the member names). */
static kp_status s_json_creds(kp_aws_inst *a, const kpk_http_response *r, const char *source,
                              kp_aws_creds *out)
{
    json_t *j = json_loadb((const char *)r->body, r->len, 0, NULL);
    const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
    const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
    const char *token = json_string_value(json_object_get(j, "Token"));
    const char *exp = json_string_value(json_object_get(j, "Expiration"));
    time_t when = exp != NULL ? kp_aws_iso8601(exp) : 0;
    kp_status st;
    if (id == NULL || secret == NULL || secret[0] == '\0' || when < 0)
        st = kp_aws_err(a, KP_ERR_BACKEND, "%s: the answer holds no usable credentials", source);
    else
        st = kp_aws_creds_set(a, out, id, secret, strlen(secret), token, when, source);
    json_decref(j); /* jansson does not wipe: the body, wiped by the caller, is the copy kept */
    return st;
}

/* A short-lived transport for a metadata endpoint: botocore gives them 1 s and 1 attempt
 * (AWS_METADATA_SERVICE_TIMEOUT, AWS_METADATA_SERVICE_NUM_ATTEMPTS), so a host without one is
 * not held up. */
static kp_status s_meta_http(kp_aws_inst *a, kpk_http **out)
{
    const char *t = getenv("AWS_METADATA_SERVICE_TIMEOUT");
    const char *n = getenv("AWS_METADATA_SERVICE_NUM_ATTEMPTS");
    long secs = t != NULL ? strtol(t, NULL, 10) : 1;
    long tries = n != NULL ? strtol(n, NULL, 10) : 1;
    kpk_http_config c = {
        .ca_bundle = a->http_cfg.ca_bundle,
        .connect_timeout_ms = (secs > 0 && secs <= 60 ? secs : 1) * 1000,
        .timeout_ms = (secs > 0 && secs <= 60 ? secs : 1) * 1000,
        .max_attempts = (unsigned)(tries > 0 && tries <= 10 ? tries : 1),
        .user_agent = "keyplane-aws/0.1.0",
    };
    c.deadline_ms = c.timeout_ms * (long)c.max_attempts + 1000;
    char err[KP_AWS_ERR];
    kp_status st = kpk_http_new(&c, out, err, sizeof(err));
    return st == KP_OK ? KP_OK : kp_aws_err(a, st, "metadata endpoint: %s", err);
}

/* One GET or PUT to a metadata endpoint; a non-2xx answer is an error named by what. A 404 is
 * KP_ERR_AUTH (no credentials there for us), never KP_ERR_NOT_FOUND: that would tell the chain
 * the source does not apply and hand over to the next one. */
static kp_status s_meta_send(kp_aws_inst *a, kpk_http *h, const char *method, const char *url,
                             const char *const *headers, const char *what, kpk_http_response *r)
{
    char err[KP_AWS_ERR];
    kpk_http_request req = {.method = method, .url = url, .headers = headers};
    kp_status st = kpk_http_send(h, &req, r, err, sizeof(err));
    if (st != KP_OK)
        return kp_aws_err(a, st, "%s: %s", what, err);
    if (r->status / 100 != 2) {
        long status = r->status;
        kpk_http_response_free(r);
        st = kpk_http_status(status);
        return kp_aws_err(a, st == KP_ERR_NOT_FOUND ? KP_ERR_AUTH : st, "%s: HTTP %ld", what,
                          status);
    }
    return KP_OK;
}

/* The container endpoint's URL: FULL_URI, or 169.254.170.2 + RELATIVE_URI. */
static bool s_container_url(char *url, size_t cap)
{
    const char *rel = getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (rel != NULL && rel[0] == '/')
        snprintf(url, cap, "http://169.254.170.2%s", rel);
    else if (full != NULL && full[0] != '\0')
        snprintf(url, cap, "%s", full);
    else
        return false;
    return true;
}

/* The authorization token: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE's contents (EKS Pod
 * Identity rotates the file), else AWS_CONTAINER_AUTHORIZATION_TOKEN; "" when neither. */
static kp_status s_container_token(kp_aws_inst *a, char *line, size_t cap)
{
    const char *file = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char buf[4096];
    line[0] = '\0';
    if (file != NULL && file[0] != '\0') {
        FILE *f = fopen(file, "r");
        if (f == NULL)
            return kp_aws_err(a, KP_ERR_CONFIG,
                              "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", file);
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        buf[n] = '\0';
        tok = buf;
    }
    kp_status st = KP_OK;
    if (tok != NULL && tok[0] != '\0') {
        if (strpbrk(tok, "\r\n") != NULL)
            st = kp_aws_err(a, KP_ERR_CONFIG, "the container authorization token has a line break");
        else
            snprintf(line, cap, "Authorization: %s", tok);
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return st;
}

kp_status kp_aws_creds_container(kp_aws_inst *a, kp_aws_creds *out)
{
    char url[1024], auth[4200];
    if (!s_container_url(url, sizeof(url)))
        return KP_ERR_NOT_FOUND;
    KP_GUARD(s_container_token(a, auth, sizeof(auth)));
    const char *headers[] = {auth[0] != '\0' ? auth : NULL, NULL};
    kpk_http *h = NULL;
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = s_meta_http(a, &h);
    if (st == KP_OK)
        st = s_meta_send(a, h, "GET", url, headers, "container credentials endpoint", &r);
    if (st == KP_OK)
        st = s_json_creds(a, &r, "container", out);
    kpk_http_response_free(&r);
    kpk_http_free(h);
    OPENSSL_cleanse(auth, sizeof(auth));
    return st;
}

/* IMDSv2: a session token (PUT), the role name, then its credentials (GET with the token). */
kp_status kp_aws_creds_imds(kp_aws_inst *a, kp_aws_creds *out)
{
    bool off = false;
    if (kpk_param_bool(getenv("AWS_EC2_METADATA_DISABLED"), &off) && off)
        return KP_ERR_NOT_FOUND;
    const char *base = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (base == NULL || base[0] == '\0')
        base = "http://169.254.169.254";
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    char url[1200], tokline[200] = "", role[256] = "";
    kpk_http *h = NULL;
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    KP_GUARD(s_meta_http(a, &h));
    static const char *const ttl[] = {"X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL};
    snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)bl, base);
    kp_status st = s_meta_send(a, h, "PUT", url, ttl,
                               "instance metadata (IMDSv2 token; in a container, the instance's "
                               "hop limit may be 1)",
                               &r);
    if (st == KP_OK && (r.len == 0 || r.len > 128 || strpbrk((char *)r.body, "\r\n") != NULL))
        st = kp_aws_err(a, KP_ERR_BACKEND, "instance metadata: a malformed session token");
    if (st == KP_OK)
        snprintf(tokline, sizeof(tokline), "X-aws-ec2-metadata-token: %s", (char *)r.body);
    kpk_http_response_free(&r);
    const char *headers[] = {tokline, NULL};
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/", (int)bl, base);
    if (st == KP_OK)
        st = s_meta_send(a, h, "GET", url, headers, "instance metadata (role name)", &r);
    if (st == KP_OK) {
        size_t n = strcspn((char *)r.body, "\r\n");
        if (n == 0 || n >= sizeof(role) ||
            strspn((char *)r.body, "abcdefghijklmnopqrstuvwxyz"
                                   "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789+=,.@_-") < n)
            st = kp_aws_err(a, KP_ERR_BACKEND, "instance metadata: no instance profile role");
        else
            snprintf(role, sizeof(role), "%.*s", (int)n, (char *)r.body);
        kpk_http_response_free(&r);
    }
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/iam/security-credentials/%s", (int)bl, base,
             role);
    if (st == KP_OK)
        st = s_meta_send(a, h, "GET", url, headers, "instance metadata (credentials)", &r);
    if (st == KP_OK)
        st = s_json_creds(a, &r, "instance-metadata", out);
    kpk_http_response_free(&r);
    kpk_http_free(h);
    OPENSSL_cleanse(tokline, sizeof(tokline));
    return st;
}
