/*
 * What every cloud plugin decides the same way about HTTP: which kp_status a failed answer is,
 * and whether an endpoint URL from a policy is one to send credentials to. Kept apart from the
 * transport so that it needs no connection to test.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/http.h>

kp_status kpk_http_status(long http_status)
{
    switch (http_status) {
    case 401:
        return KP_ERR_AUTH;
    case 403:
        return KP_ERR_PERMISSION;
    case 404:
        return KP_ERR_NOT_FOUND;
    case 408:
        return KP_ERR_TIMEOUT;
    case 409:
        return KP_ERR_EXISTS;
    case 412:
        return KP_ERR_CONFLICT;
    case 429:
        return KP_ERR_THROTTLED;
    default:
        return http_status >= 500 && http_status <= 599 ? KP_ERR_UNAVAILABLE : KP_ERR_BACKEND;
    }
}

static kp_status s_bad(char *err, size_t errlen, const char *name, const char *why)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s %s", name, why);
    return KP_ERR_CONFIG;
}

kp_status kpk_http_url_parse(const char *name, const char *url, int allow_http, kpk_http_url *out,
                             char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *want =
        allow_http ? "must start with https:// or http://" : "must start with https://";
    if (url == NULL)
        return s_bad(err, errlen, name, want);
    size_t skip = 0;
    if (strncmp(url, "https://", 8) == 0) {
        skip = 8;
        out->https = 1;
    } else if (allow_http && strncmp(url, "http://", 7) == 0) {
        skip = 7;
    } else {
        return s_bad(err, errlen, name, want);
    }
    size_t n = strlen(url);
    if (n > skip && url[n - 1] == '/')
        n--;
    if (n >= sizeof(out->base))
        return s_bad(err, errlen, name, "is too long");
    memcpy(out->base, url, n);
    out->base[n] = '\0';
    const char *host = out->base + skip;
    size_t hl = strcspn(host, ":");
    if (hl == 0 || strpbrk(host, "/?#@\\ ") != NULL || hl >= sizeof(out->host))
        return s_bad(err, errlen, name, "must be scheme://HOST[:PORT] with no path");
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)host[i];
        if (!isalnum(c) && c != '-' && c != '.')
            return s_bad(err, errlen, name, "has an invalid host name");
        out->host[i] = (char)tolower(c);
    }
    if (host[hl] == ':') {
        const char *p = host + hl + 1;
        size_t pl = strlen(p);
        long port = pl > 0 && pl <= 5 && strspn(p, "0123456789") == pl ? strtol(p, NULL, 10) : 0;
        if (port < 1 || port > 65535)
            return s_bad(err, errlen, name, "has an invalid port");
        out->port = (unsigned)port;
    }
    return KP_OK;
}

void kpk_http_config_params(const kp_param *params, kpk_http_config *cfg)
{
    const kp_param *p;
    if ((p = kp_param_find(params, "ca_bundle")) != NULL && p->str != NULL && p->str[0] != '\0')
        cfg->ca_bundle = p->str;
    if ((p = kp_param_find(params, "timeout_ms")) != NULL)
        cfg->timeout_ms = (long)p->num;
    if ((p = kp_param_find(params, "connect_timeout_ms")) != NULL)
        cfg->connect_timeout_ms = (long)p->num;
    if ((p = kp_param_find(params, "max_attempts")) != NULL)
        cfg->max_attempts = (unsigned)p->num;
    if ((p = kp_param_find(params, "request_deadline_ms")) != NULL)
        cfg->deadline_ms = (long)p->num;
}
