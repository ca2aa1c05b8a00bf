/*
 * One signed request to an AWS service and what its answer means. The instance's transport (the
 * kit's client, made on first use) carries every request; SigV4 is the kit's (why not libcurl's:
 * keyplane/kit/sigv4.h). AWS's JSON services answer throttling with 400 ThrottlingException,
 * which the transport is told to treat as a 429 (repeated with backoff); every other 4xx comes
 * back at once. Error answers are read in both of AWS's shapes: XML (S3, STS) and JSON
 * (Secrets Manager, KMS), and the error text names the code, the message and the request id,
 * never a credential.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_internal.h"

#define S_HEADERS_MAX 24

void kp_aws_begin(kp_aws_inst *a, bool bounded)
{
    pthread_mutex_lock(&a->lock);
    a->deadline = bounded ? kpk_http_clock_ms() + a->deadline_ms : 0;
}

void kp_aws_end(kp_aws_inst *a)
{
    a->deadline = 0;
    pthread_mutex_unlock(&a->lock);
}

/* The code and message of an error answer. */
typedef struct s_error {
    char code[128];
    char message[256];
    char request_id[64];
} s_error;

static kp_status s_xml_leaf(void *arg, const char *path, const char *text)
{
    s_error *e = arg;
    const char *leaf = strrchr(path, '/');
    leaf = leaf != NULL ? leaf + 1 : path;
    if (strcmp(leaf, "Code") == 0 && e->code[0] == '\0')
        snprintf(e->code, sizeof(e->code), "%s", text);
    else if (strcmp(leaf, "Message") == 0 && e->message[0] == '\0')
        snprintf(e->message, sizeof(e->message), "%s", text);
    else if (strcmp(leaf, "RequestId") == 0 && e->request_id[0] == '\0')
        snprintf(e->request_id, sizeof(e->request_id), "%s", text);
    return KP_OK;
}

/* Reads code and message from a JSON body ({"__type": "prefix#Code:extra", "message" or
 * "Message"}, as botocore reads them) or an XML one (<Error><Code/><Message/>, also inside
 * <ErrorResponse>). A body of neither shape leaves them empty. */
static void s_error_read(const uint8_t *body, size_t len, s_error *e)
{
    memset(e, 0, sizeof(*e));
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t'))
        i++;
    if (i < len && body[i] == '{') {
        json_t *j = json_loadb((const char *)body, len, 0, NULL);
        const char *type = json_string_value(json_object_get(j, "__type"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        if (msg == NULL)
            msg = json_string_value(json_object_get(j, "Message"));
        if (type != NULL) {
            const char *hash = strrchr(type, '#');
            type = hash != NULL ? hash + 1 : type;
            snprintf(e->code, sizeof(e->code), "%.*s", (int)strcspn(type, ":"), type);
        }
        if (msg != NULL)
            snprintf(e->message, sizeof(e->message), "%s", msg);
        json_decref(j);
    } else if (i < len && body[i] == '<') {
        char why[KP_AWS_ERR];
        if (kp_aws_xml_walk(body, len, s_xml_leaf, e, why, sizeof(why)) != KP_OK)
            memset(e, 0, sizeof(*e));
    }
    /* control characters from a hostile service never reach a log line */
    for (char *c = e->message; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    for (char *c = e->code; *c != '\0'; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            *c = '?';
}

/* botocore's throttling codes (its retry handler's list). */
static bool s_throttling(const char *code)
{
    static const char *const codes[] = {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return false;
}

static bool s_throttle(void *arg, long status, const uint8_t *body, size_t len)
{
    (void)arg, (void)status;
    s_error e;
    s_error_read(body, len, &e);
    return s_throttling(e.code);
}

/* host[:port] of an endpoint URL: what the Host header and the signature carry. */
static const char *s_host(const char *endpoint)
{
    const char *p = strstr(endpoint, "://");
    return p != NULL ? p + 3 : endpoint;
}

kp_status kp_aws_send_with(kp_aws_inst *a, const kp_aws_req *req, const kp_aws_creds *creds,
                           kpk_http_response *resp)
{
    char err[KP_AWS_ERR];
    kp_status st = KP_OK;
    if (a->http == NULL) {
        st = kpk_http_new(&a->http_cfg, &a->http, err, sizeof(err));
        if (st != KP_OK)
            return kp_aws_err(a, st, "%s: %s", req->service, err);
    }
    size_t ulen = strlen(req->endpoint) + strlen(req->path) +
                  (req->query != NULL ? strlen(req->query) + 1 : 0) + 1;
    char *url = malloc(ulen);
    if (url == NULL)
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    snprintf(url, ulen, "%s%s%s%s", req->endpoint, req->path,
             req->query != NULL && req->query[0] != '\0' ? "?" : "",
             req->query != NULL ? req->query : "");
    const char *lines[S_HEADERS_MAX + 5];
    size_t n = 0;
    for (const char *const *h = req->headers; h != NULL && *h != NULL && n < S_HEADERS_MAX; h++)
        lines[n++] = *h;
    kpk_sigv4_out sig;
    memset(&sig, 0, sizeof(sig));
    if (!req->anonymous) {
        kpk_sigv4_creds c = {
            .access_key_id = creds->access_key_id,
            .secret_access_key = (const char *)a->up->secret_cdata(creds->secret),
            .secret_len = a->up->secret_len(creds->secret),
            .session_token =
                creds->token != NULL ? (const char *)a->up->secret_cdata(creds->token) : NULL,
        };
        kpk_sigv4_request sr = {
            .method = req->method,
            .host = s_host(req->endpoint),
            .path = req->path,
            .query = req->query,
            .region = req->region,
            .service = req->service,
            .headers = req->headers,
            .body = req->body,
            .body_len = req->body_len,
            .s3 = strcmp(req->service, "s3") == 0,
            .payload_hash = req->unsigned_payload ? KPK_SIGV4_UNSIGNED : NULL,
        };
        st = kpk_sigv4_sign(&sr, &c, &sig, err, sizeof(err));
        if (st != KP_OK) {
            free(url);
            return kp_aws_err(a, st, "%s: cannot sign the request: %s", req->service, err);
        }
        lines[n++] = sig.authorization;
        lines[n++] = sig.amz_date;
        if (sig.content_sha256[0] != '\0')
            lines[n++] = sig.content_sha256;
        if (sig.security_token != NULL)
            lines[n++] = sig.security_token;
    }
    lines[n] = NULL;
    kpk_http_request hr = {
        .method = req->method,
        .url = url,
        .headers = lines,
        .body = req->body,
        .body_len = req->body_len,
        .flags = req->flags,
        .deadline = a->deadline,
        .throttle = s_throttle,
        .into = req->into,
        .into_cap = req->into_cap,
    };
    /* a body-less PUT or POST still says Content-Length: 0 (the transport's rule) */
    st = kpk_http_send(a->http, &hr, resp, err, sizeof(err));
    kpk_sigv4_out_free(&sig);
    free(url);
    if (st != KP_OK)
        return kp_aws_err(a, st, "%s", err);
    return KP_OK;
}

kp_status kp_aws_send(kp_aws_inst *a, const kp_aws_req *req, kpk_http_response *resp)
{
    KP_GUARD(kp_aws_creds_ensure(a));
    KP_GUARD(kp_aws_send_with(a, req, &a->creds, resp));
    if ((resp->status == 400 || resp->status == 403) && a->creds.expires != 0) {
        /* temporary credentials that expired early (revoked sessions, a skewed clock): found
         * again once */
        s_error e;
        s_error_read(resp->body, resp->len, &e);
        if (strcmp(e.code, "ExpiredToken") == 0 || strcmp(e.code, "ExpiredTokenException") == 0 ||
            strcmp(e.code, "RequestExpired") == 0) {
            kp_aws_creds_clear(a->up, &a->creds);
            kpk_http_response_free(resp);
            KP_GUARD(kp_aws_creds_ensure(a));
            KP_GUARD(kp_aws_send_with(a, req, &a->creds, resp));
        }
    }
    return KP_OK;
}

/* The status of an AWS error code; 0 when the code says nothing the HTTP status does not. */
static kp_status s_code_status(const char *code)
{
    static const struct {
        const char *code;
        kp_status st;
    } map[] = {
        {"SignatureDoesNotMatch", KP_ERR_AUTH},
        {"InvalidSignatureException", KP_ERR_AUTH},
        {"InvalidAccessKeyId", KP_ERR_AUTH},
        {"UnrecognizedClientException", KP_ERR_AUTH},
        {"InvalidClientTokenId", KP_ERR_AUTH},
        {"ExpiredToken", KP_ERR_AUTH},
        {"ExpiredTokenException", KP_ERR_AUTH},
        {"AuthorizationHeaderMalformed", KP_ERR_AUTH},
        {"RequestTimeTooSkewed", KP_ERR_AUTH},
        {"AccessDenied", KP_ERR_PERMISSION},
        {"AccessDeniedException", KP_ERR_PERMISSION},
        {"ResourceNotFoundException", KP_ERR_NOT_FOUND},
        {"NoSuchKey", KP_ERR_NOT_FOUND},
        {"NoSuchBucket", KP_ERR_NOT_FOUND},
        {"ResourceExistsException", KP_ERR_EXISTS},
        {"PreconditionFailed", KP_ERR_EXISTS},
        {"KMS.NotFoundException", KP_ERR_CONFIG},
        {"KMS.DisabledException", KP_ERR_CONFIG},
    };
    if (s_throttling(code))
        return KP_ERR_THROTTLED;
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(code, map[i].code) == 0)
            return map[i].st;
    return 0;
}

kp_status kp_aws_fail(kp_aws_inst *a, const kpk_http_response *r, const char *what, char *code,
                      size_t codelen)
{
    s_error e;
    s_error_read(r->body, r->len, &e);
    if (code != NULL && codelen > 0)
        snprintf(code, codelen, "%s", e.code);
    const char *rid = r->request_id != NULL ? r->request_id : e.request_id;
    snprintf(a->request_id, sizeof(a->request_id), "%s", rid);
    kp_status st = e.code[0] != '\0' ? s_code_status(e.code) : 0;
    if (st == 0)
        st = kpk_http_status(r->status);
    char tail[96] = "";
    if (rid[0] != '\0')
        snprintf(tail, sizeof(tail), " (request id %.60s)", rid);
    if (e.code[0] == '\0')
        return kp_aws_err(a, st, "%s: HTTP %ld%s", what, r->status, tail);
    return kp_aws_err(a, st, "%s: %s: %s%s", what, e.code,
                      e.message[0] != '\0' ? e.message : "(no message)", tail);
}
