/*
 * Fuzz target of the azure-keyvault plugin's parsers (plugins/azure-keyvault/akv_json.c): every
 * input goes to each of them, as a Key Vault answer, a token answer, an AAD error body and a
 * WWW-Authenticate challenge. Besides memory errors (the sanitizers) it checks what
 * akv_codec.h promises: outputs stay NUL-terminated within their buffers, decoded lengths
 * within what was offered, a parsed bundle carries a usable public key, and an error text is one
 * printable line that does not quote the input (the input may be a token or a DEK).
 *
 * Built as a libFuzzer target (fuzz_akv, Clang) and as a replay program over a corpus
 * (fuzz_akv_replay, any compiler; ctest fuzz.akv.replay). See README.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "akv_codec.h"
#include "fuzz_check.h"

static void s_die(const char *parser, const char *what)
{
    kp_test_fuzz_die("fuzz_akv", parser, what);
}

/* s is NUL-terminated within n bytes, and printable when it must be one line. */
static void s_text(const char *parser, const char *s, size_t n, int one_line)
{
    size_t len = strnlen(s, n);
    if (len == n)
        s_die(parser, "output not NUL-terminated within its buffer");
    for (size_t i = 0; one_line && i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s_die(parser, "output holds a control character");
}

/* An error text (fuzz_check.c's rule: one printable line, not empty, not quoting the input as
 * jansson does "near" a syntax error), NUL-terminated within its buffer. */
static void s_err(const char *parser, const char *err, size_t n)
{
    s_text(parser, err, n, 1);
    kp_test_fuzz_error_text("fuzz_akv", parser, err);
}

static void s_bundle_check(const char *parser, const kp_akv_bundle *b, int keyed)
{
    s_text(parser, b->name, sizeof(b->name), 1);
    s_text(parser, b->azver, sizeof(b->azver), 1);
    s_text(parser, b->kid, sizeof(b->kid), 0);
    s_text(parser, b->tag_chain, sizeof(b->tag_chain), 0);
    s_text(parser, b->tag_fpr, sizeof(b->tag_fpr), 0);
    if (b->name[0] == '\0')
        s_die(parser, "a bundle without a name");
    if (!keyed) {
        if (b->spki != NULL)
            s_die(parser, "a list item with key material");
        return;
    }
    if (strlen(b->azver) != KP_AKV_VERSION_LEN)
        s_die(parser, "a bundle without a 32-hex version");
    if (b->spki == NULL || b->spki_len == 0 || b->bits < 1024 || strlen(b->fpr) != 64)
        s_die(parser, "a bundle without a usable public key");
}

typedef struct s_page {
    size_t items;
    size_t stop_at; /* the callback's error stops the listing here */
} s_page;

static kp_status s_item(void *arg, const kp_akv_bundle *b)
{
    s_page *p = arg;
    s_bundle_check("kp_akv_parse_page", b, 0);
    if (++p->items == p->stop_at)
        return KP_ERR_NOMEM;
    return KP_OK;
}

static void s_value(const uint8_t *data, size_t size, size_t cap)
{
    char err[KP_AKV_ERR];
    uint8_t *out = malloc(cap > 0 ? cap : 1);
    size_t n = cap;
    if (out == NULL)
        return;
    memset(err, 0, sizeof(err));
    kp_status st = kp_akv_parse_value(data, size, out, &n, err, sizeof(err));
    if (st == KP_OK && (n > cap || n == 0))
        s_die("kp_akv_parse_value", "decoded length outside what was offered");
    if (st != KP_OK)
        s_err("kp_akv_parse_value", err, sizeof(err));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[KP_AKV_ERR];
    kp_status st;

    kp_akv_error_body eb;
    kp_akv_parse_error(data, size, &eb);
    s_text("kp_akv_parse_error", eb.code, sizeof(eb.code), 1);
    s_text("kp_akv_parse_error", eb.inner, sizeof(eb.inner), 1);
    s_text("kp_akv_parse_error", eb.message, sizeof(eb.message), 1);

    kp_akv_bundle b;
    memset(err, 0, sizeof(err));
    st = kp_akv_parse_bundle(data, size, &b, err, sizeof(err));
    if (st == KP_OK)
        s_bundle_check("kp_akv_parse_bundle", &b, 1);
    else if (b.spki != NULL)
        s_die("kp_akv_parse_bundle", "failed but kept key material");
    else
        s_err("kp_akv_parse_bundle", err, sizeof(err));
    kp_akv_bundle_clear(&b);

    for (size_t stop = 0; stop < 3; stop += 2) { /* the whole page, then a stop at item 2 */
        char next[2 * KP_AKV_URL_MAX];
        s_page p = {0, stop};
        memset(err, 0, sizeof(err));
        st = kp_akv_parse_page(data, size, s_item, &p, next, sizeof(next), err, sizeof(err));
        s_text("kp_akv_parse_page", next, sizeof(next), 0);
        if (st == KP_ERR_BACKEND)
            s_err("kp_akv_parse_page", err, sizeof(err));
        else if (st != KP_OK && !(st == KP_ERR_NOMEM && p.items == stop))
            s_die("kp_akv_parse_page", "a status neither OK, BACKEND nor the callback's");
    }

    s_value(data, size, 16);
    s_value(data, size, kpk_b64_decoded_max(size)); /* sized as kp_akv_resp_value sizes it */

    char tok[512];
    int64_t life = 0;
    memset(err, 0, sizeof(err));
    st = kp_akv_parse_token(data, size, (time_t)1700000000, tok, sizeof(tok), &life, err,
                            sizeof(err));
    if (st == KP_OK) {
        s_text("kp_akv_parse_token", tok, sizeof(tok), 1);
        if (tok[0] == '\0' || life <= 0)
            s_die("kp_akv_parse_token", "an empty token or no lifetime");
        if (life > 24 * 3600) /* akv_auth.c adds it to now: it must stay small */
            s_die("kp_akv_parse_token", "a lifetime of more than a day");
    } else {
        s_err("kp_akv_parse_token", err, sizeof(err));
    }

    char why[300];
    kp_akv_parse_token_error(data, size, why, sizeof(why));
    s_text("kp_akv_parse_token_error", why, sizeof(why), 1);

    char *header = malloc(size + 1);
    if (header != NULL) {
        memcpy(header, data, size);
        header[size] = '\0';
        kp_akv_challenge ch;
        memset(err, 0, sizeof(err));
        st = kp_akv_parse_challenge(header, &ch, err, sizeof(err));
        if (st == KP_OK) {
            s_text("kp_akv_parse_challenge", ch.authorization, sizeof(ch.authorization), 0);
            s_text("kp_akv_parse_challenge", ch.resource, sizeof(ch.resource), 0);
            s_text("kp_akv_parse_challenge", ch.scope, sizeof(ch.scope), 0);
            s_text("kp_akv_parse_challenge", ch.tenant, sizeof(ch.tenant), 0);
            if (ch.scope[0] == '\0' || strncmp(ch.resource, "https://", 8) != 0)
                s_die("kp_akv_parse_challenge", "accepted without a scope or https resource");
        } else {
            s_err("kp_akv_parse_challenge", err, sizeof(err));
        }
        free(header);
    }
    return 0;
}
