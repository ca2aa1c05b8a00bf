/*
 * One call of an AWS JSON 1.1 service (Secrets Manager, KMS): POST / with the operation in
 * X-Amz-Target, a JSON body, a JSON answer (botocore's service models: targetPrefix
 * "secretsmanager", API 2017-10-17; "TrentService", API 2014-11-01). A body that may hold a
 * secret is serialised into memory that is wiped when done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "aws_internal.h"

kp_status kp_aws_json_call(kp_aws_inst *a, const kp_aws_target *t, const char *op, const json_t *j,
                           bool unsafe, json_t **out, char *code, size_t codelen)
{
    *out = NULL;
    size_t len = json_dumpb(j, NULL, 0, JSON_COMPACT);
    char *body = len > 0 ? malloc(len) : NULL;
    if (body == NULL || json_dumpb(j, body, len, JSON_COMPACT) != len) {
        free(body);
        return kp_aws_err(a, KP_ERR_NOMEM, "out of memory");
    }
    kp_status st =
        kp_aws_json_raw(a, t, op, (const uint8_t *)body, len, unsafe, out, code, codelen);
    OPENSSL_cleanse(body, len);
    free(body);
    return st;
}

kp_status kp_aws_json_raw(kp_aws_inst *a, const kp_aws_target *t, const char *op,
                          const uint8_t *body, size_t len, bool unsafe, json_t **out, char *code,
                          size_t codelen)
{
    if (code != NULL && codelen > 0)
        code[0] = '\0';
    *out = NULL;
    char target[128];
    snprintf(target, sizeof(target), "X-Amz-Target: %s.%s", t->prefix, op);
    const char *headers[] = {"Content-Type: application/x-amz-json-1.1", target, NULL};
    kp_aws_req req = {.service = t->service,
                      .region = t->region,
                      .endpoint = t->endpoint,
                      .method = "POST",
                      .path = "/",
                      .headers = headers,
                      .body = body,
                      .body_len = len,
                      .flags = unsafe ? KPK_HTTP_UNSAFE : 0};
    kpk_http_response r;
    memset(&r, 0, sizeof(r));
    kp_status st = kp_aws_send(a, &req, &r);
    KP_GUARD(st);
    char what[160];
    snprintf(what, sizeof(what), "%s %s (%s)", t->service, op, t->region);
    if (r.status / 100 != 2) {
        char c[128];
        st = kp_aws_fail(a, &r, what, c, sizeof(c));
        if (code != NULL && codelen > 0)
            snprintf(code, codelen, "%s", c);
        if (strcmp(c, "ResourceNotFoundException") == 0 || strcmp(c, "NotFoundException") == 0)
            st = KP_ERR_NOT_FOUND;
    } else {
        json_error_t je;
        /* operations without output (CreateAlias, TagResource) answer an empty body */
        *out = r.len == 0 ? json_object() : json_loadb((const char *)r.body, r.len, 0, &je);
        if (*out == NULL || !json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            st = kp_aws_err(a, KP_ERR_BACKEND, "%s: the answer is not a JSON object", what);
        }
    }
    kpk_http_response_free(&r);
    return st;
}
