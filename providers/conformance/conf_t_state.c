/*
 * state. The chain-state document is how several runners agree on a chain, so its
 * compare-and-swap must hold: replaced only when the stored document is exactly the expected one
 * (none stored, for expect_len 0), else KP_ERR_CONFLICT with nothing changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_tests.h"

static kp_status s_put(conf_run *r, const char *name, const char *doc, size_t len,
                       const char *expect, size_t elen)
{
    conf_err_clear();
    return CONF_FN(r->kit, ks_state_put, KP_FN_KS_STATE_PUT)(r->inst, name, (const uint8_t *)doc,
                                                             len, (const uint8_t *)expect, elen);
}

/* The stored document must be want (NULL: none). */
static void s_is(conf_run *r, const char *name, const char *want, size_t wlen, const char *when)
{
    size_t cap = KP_STATE_MAX + 1, len = cap;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_state_get, KP_FN_KS_STATE_GET)(r->inst, name, buf, &len);
    if (want == NULL && st != KP_ERR_NOT_FOUND)
        conf_fail(r, "KS_STATE_GET %s: %s, want KP_ERR_NOT_FOUND", when, conf_status_name(st));
    else if (want != NULL && st != KP_OK)
        conf_fail(r, "KS_STATE_GET %s: %s: %s", when, conf_status_name(st), conf_reason());
    else if (want != NULL && (len != wlen || memcmp(buf, want, wlen) != 0))
        conf_fail(r, "KS_STATE_GET %s: a %zu-byte document other than the %zu bytes expected", when,
                  len, wlen);
    free(buf);
}

static void s_want(conf_run *r, kp_status st, kp_status want, const char *what)
{
    if (st != want)
        conf_fail(r, "KS_STATE_PUT %s: %s, want %s%s%s", what, conf_status_name(st),
                  conf_status_name(want), st != KP_OK ? ": " : "",
                  st != KP_OK ? conf_reason() : "");
}

void conf_t_state(conf_run *r)
{
    conf_key key;
    if (!conf_key_make(r, "state", 0, false, &key))
        return;
    const char *n = key.name;
    static const char d1[] = "{\"chain\":\"kit\",\"serial\":1}";
    static const char d2[] = "{\"chain\":\"kit\",\"serial\":2}";
    static const char d3[] = "{\"chain\":\"kit\",\"serial\":3}";
    s_is(r, n, NULL, 0, "before any put");
    s_want(r, s_put(r, n, d1, sizeof(d1) - 1, "", 0), KP_OK,
           "with expect_len 0 (only if none is stored) when none is");
    s_is(r, n, d1, sizeof(d1) - 1, "after the first put");
    s_want(r, s_put(r, n, d2, sizeof(d2) - 1, "", 0), KP_ERR_CONFLICT,
           "with expect_len 0 when a document is stored");
    s_is(r, n, d1, sizeof(d1) - 1, "after a refused put");
    s_want(r, s_put(r, n, d2, sizeof(d2) - 1, d1, sizeof(d1) - 1), KP_OK,
           "expecting the stored document");
    s_is(r, n, d2, sizeof(d2) - 1, "after a compare-and-swap");
    s_want(r, s_put(r, n, d3, sizeof(d3) - 1, d1, sizeof(d1) - 1), KP_ERR_CONFLICT,
           "expecting a document no longer stored");
    s_want(r, s_put(r, n, d3, sizeof(d3) - 1, d2, sizeof(d2) - 2), KP_ERR_CONFLICT,
           "expecting a prefix of the stored document");
    s_is(r, n, d2, sizeof(d2) - 1, "after a lost compare-and-swap");
    s_want(r, s_put(r, n, d3, sizeof(d3) - 1, NULL, 0), KP_OK, "unconditionally");
    s_is(r, n, d3, sizeof(d3) - 1, "after an unconditional put");
    /* the largest document the core writes */
    char *big = malloc(KP_STATE_MAX);
    if (big != NULL) {
        memset(big, 'a', KP_STATE_MAX);
        /* a JSON document of exactly KP_STATE_MAX bytes, not a C string: */
        memcpy(big, "{\"pad\":\"", 8);            // NOLINT(bugprone-not-null-terminated-result)
        memcpy(big + KP_STATE_MAX - 2, "\"}", 2); // NOLINT(bugprone-not-null-terminated-result)
        s_want(r, s_put(r, n, big, KP_STATE_MAX, NULL, 0), KP_OK, "of KP_STATE_MAX bytes");
        s_is(r, n, big, KP_STATE_MAX, "of KP_STATE_MAX bytes");
        free(big);
    }
    conf_key_free(&key);
}
