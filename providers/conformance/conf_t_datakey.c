/*
 * datakey. Data keys must decrypt only under the encryption context they were made with. With
 * DK_REENCRYPT (ABI 1.5), a key re-encrypted to another context opens under that context only,
 * as the same key, and the source's context is checked.
 */
#include <string.h>

#include "conf_tests.h"

static kp_status s_decrypt(conf_run *r, const uint8_t *ct, size_t len, const kp_meta *ctx,
                           size_t nctx, kp_secret **plain)
{
    *plain = NULL;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, dk_decrypt, KP_FN_DK_DECRYPT)(
        r->inst, r->kit->params.datakey_key, ct, len, ctx, nctx, plain);
    if (st == KP_OK && !conf_secret_adopt(r, *plain, "DK_DECRYPT"))
        *plain = NULL;
    return st;
}

static void s_refused(conf_run *r, const uint8_t *ct, size_t len, const kp_meta *ctx, size_t nctx,
                      const char *what)
{
    kp_secret *p = NULL;
    kp_status st = s_decrypt(r, ct, len, ctx, nctx, &p);
    if (st == KP_OK)
        conf_fail(r, "DK_DECRYPT %s returned KP_OK", what);
    conf_secret_free(p);
}

/* DK_DECRYPT of ct with ctx must give plain back. */
static void s_opens(conf_run *r, const kp_secret *plain, const uint8_t *ct, size_t len,
                    const kp_meta *ctx, size_t nctx, const char *what)
{
    kp_secret *back = NULL;
    kp_status st = s_decrypt(r, ct, len, ctx, nctx, &back);
    if (st != KP_OK)
        conf_fail(r, "DK_DECRYPT %s: %s: %s", what, conf_status_name(st), conf_reason());
    else if (back != NULL && (conf_secret_size(back) != conf_secret_size(plain) ||
                              memcmp(conf_secret_bytes(back), conf_secret_bytes(plain),
                                     conf_secret_size(plain)) != 0))
        conf_fail(r, "DK_DECRYPT %s returned another data key than DK_GENERATE made", what);
    conf_secret_free(back);
}

static const kp_meta s_ctx[] = {{"purpose", "conformance"}, {"tenant", "a"}};
static const kp_meta s_other[] = {{"purpose", "conformance"}, {"tenant", "b"}};

static kp_status s_reencrypt(conf_run *r, const uint8_t *ct, size_t len, const kp_meta *from,
                             const kp_meta *to, uint8_t *out, size_t *outlen)
{
    const char *id = r->kit->params.datakey_key;
    conf_err_clear();
    return CONF_FN(r->kit, dk_reencrypt, KP_FN_DK_REENCRYPT)(r->inst, id, ct, len, from, 2, id, to,
                                                             2, out, outlen);
}

/* DK_REENCRYPT of the data key plain, ct/len under s_ctx, to the same key id with s_other. */
static void s_reencrypts(conf_run *r, const kp_secret *plain, const uint8_t *ct, size_t len)
{
    conf_buf b;
    if (!conf_buf_new(&b, 4096))
        return;
    size_t n = 0;
    kp_status st = s_reencrypt(r, ct, len, s_ctx, s_other, NULL, &n);
    if (st != KP_ERR_BUFFER_TOO_SMALL || n == 0)
        conf_fail(r,
                  "DK_REENCRYPT with no room for the ciphertext: %s, want "
                  "KP_ERR_BUFFER_TOO_SMALL and the size",
                  conf_status_name(st));
    n = b.cap;
    st = s_reencrypt(r, ct, len, s_ctx, s_other, b.p, &n);
    if (st != KP_OK || n == 0 || n > b.cap || !conf_buf_untouched(&b, b.cap)) {
        conf_fail(r, "DK_REENCRYPT to another context: %s (%zu bytes in %zu): %s",
                  conf_status_name(st), n, b.cap, conf_reason());
    } else {
        s_opens(r, plain, b.p, n, s_other, 2, "of the re-encrypted key with the new context");
        s_refused(r, b.p, n, s_ctx, 2, "of the re-encrypted key with the old context");
        b.p[n / 2] ^= 1;
        s_refused(r, b.p, n, s_other, 2, "of a re-encrypted key with one bit flipped");
    }
    n = b.cap;
    st = s_reencrypt(r, ct, len, s_other, s_ctx, b.p, &n);
    if (st != KP_ERR_CRYPTO)
        conf_fail(r, "DK_REENCRYPT with another source context: %s, want KP_ERR_CRYPTO",
                  conf_status_name(st));
    conf_buf_free(&b);
}

/* What a data key DK_GENERATE made (plain, kit-owned now) and its ciphertext ct/len (in a
 * guarded buffer, flipped here) must do under DK_DECRYPT and, when present, DK_REENCRYPT. */
static void s_datakey_decrypts(conf_run *r, const kp_secret *plain, uint8_t *ct, size_t len)
{
    if (conf_secret_size(plain) != 32)
        conf_fail(r, "DK_GENERATE made %zu bytes, 32 were asked for", conf_secret_size(plain));
    s_opens(r, plain, ct, len, s_ctx, 2, "with the same context");
    s_refused(r, ct, len, s_other, 2, "with another encryption context");
    s_refused(r, ct, len, NULL, 0, "with no encryption context");
    if (conf_fn(r->kit, KP_FN_DK_REENCRYPT) != NULL)
        s_reencrypts(r, plain, ct, len);
    ct[len / 2] ^= 1;
    s_refused(r, ct, len, s_ctx, 2, "of a ciphertext with one bit flipped");
}

void conf_t_datakey(conf_run *r)
{
    const char *id = r->kit->params.datakey_key;
    conf_buf b;
    if (!conf_buf_new(&b, 4096))
        return;
    size_t len = 0;
    kp_secret *plain = NULL;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, dk_generate, KP_FN_DK_GENERATE)(r->inst, id, 32, s_ctx, 2,
                                                                   &plain, NULL, &len);
    if (st != KP_ERR_BUFFER_TOO_SMALL || len == 0)
        conf_fail(r,
                  "DK_GENERATE with no room for the ciphertext: %s, want "
                  "KP_ERR_BUFFER_TOO_SMALL and the size",
                  conf_status_name(st));
    if (st != KP_OK && plain != NULL)
        conf_fail(r, "DK_GENERATE returned %s and a data key", conf_status_name(st));
    else if (st == KP_OK && conf_secret_adopt(r, plain, "DK_GENERATE"))
        conf_secret_free(plain);
    plain = NULL;
    len = b.cap;
    conf_err_clear();
    st = CONF_FN(r->kit, dk_generate, KP_FN_DK_GENERATE)(r->inst, id, 32, s_ctx, 2, &plain, b.p,
                                                         &len);
    if (st != KP_OK || len > b.cap || !conf_buf_untouched(&b, b.cap))
        conf_fail(r, "DK_GENERATE(%s, 32 bytes): %s (%zu bytes in %zu): %s", id,
                  conf_status_name(st), len, b.cap, conf_reason());
    else if (!conf_secret_adopt(r, plain, "DK_GENERATE"))
        plain = NULL; /* not the kit's to free */
    else
        s_datakey_decrypts(r, plain, b.p, len);
    conf_secret_free(plain);
    conf_buf_free(&b);
}
