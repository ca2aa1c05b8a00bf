/*
 * errors: a name that does not exist is KP_ERR_NOT_FOUND from every function that takes one, with
 * one line of error text set through SET_ERROR with the status returned; names that try to leave
 * a store's namespace ("../x", "a/b", "") are refused, never served.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_tests.h"

/* A failure the plugin reports: text set, with the same status. */
static void s_text(conf_run *r, const char *call, kp_status st)
{
    if (!conf_err_was_set() || conf_err_text()[0] == '\0')
        conf_fail(r, "%s returned %s without error text", call, conf_status_name(st));
    else if (conf_err_status() != st)
        conf_fail(r, "%s returned %s but set error text with %s", call, conf_status_name(st),
                  conf_status_name(conf_err_status()));
}

static void s_want(conf_run *r, const char *call, kp_status st, kp_status want)
{
    if (st != want)
        conf_fail(r, "%s: %s, want %s", call, conf_status_name(st), conf_status_name(want));
    else
        s_text(r, call, st);
}

static kp_status s_noop_key(void *arg, const kp_key_info *info)
{
    (void)info;
    (*(size_t *)arg)++;
    return KP_OK;
}

static kp_status s_noop_secret(void *arg, const kp_secret_info *info, const kp_meta *m, size_t n)
{
    (void)info, (void)m, (void)n;
    (*(size_t *)arg)++;
    return KP_OK;
}

static void s_keystore(conf_run *r, const char *name)
{
    conf_kit *k = r->kit;
    kp_key_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    uint8_t buf[4096];
    size_t len = sizeof(buf), seen = 0;
    conf_err_clear();
    s_want(r, "KS_GET of an absent name", CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, name, 0, &info),
           KP_ERR_NOT_FOUND);
    conf_err_clear();
    s_want(r, "KS_GET_PUBLIC of an absent name",
           CONF_FN(k, ks_get_public, KP_FN_KS_GET_PUBLIC)(r->inst, name, 0, buf, &len),
           KP_ERR_NOT_FOUND);
    conf_err_clear();
    s_want(r, "KS_LIST of an absent name",
           CONF_FN(k, ks_list, KP_FN_KS_LIST)(r->inst, name, s_noop_key, &seen), KP_ERR_NOT_FOUND);
    if (seen > 0)
        conf_fail(r, "KS_LIST of an absent name visited %zu versions", seen);
    uint32_t alg = 0;
    for (uint32_t a = 1; a <= 5 && alg == 0; a++)
        alg = (k->iinfo.wrap_algs & KP_ALG_BIT(a)) ? a : 0;
    if (alg != 0) {
        uint8_t d[32];
        conf_random(d, sizeof(d));
        kp_secret *dek = conf_secret_new(d, sizeof(d)), *back = NULL;
        len = sizeof(buf);
        conf_err_clear();
        s_want(r, "KS_WRAP under an absent name",
               CONF_FN(k, ks_wrap, KP_FN_KS_WRAP)(r->inst, name, 0, alg, dek, buf, &len),
               KP_ERR_NOT_FOUND);
        conf_err_clear();
        memset(buf, 0x42, 256);
        kp_status st =
            CONF_FN(k, ks_unwrap, KP_FN_KS_UNWRAP)(r->inst, name, 0, alg, buf, 256, &back);
        s_want(r, "KS_UNWRAP under an absent name", st, KP_ERR_NOT_FOUND);
        if (st == KP_OK && conf_secret_adopt(r, back, "KS_UNWRAP"))
            conf_secret_free(back);
        conf_secret_free(dek);
    }
    kp_ks_export_fn *exp = CONF_FN(k, ks_export, KP_FN_KS_EXPORT);
    if (exp != NULL) {
        kp_secret *p8 = NULL;
        conf_err_clear();
        kp_status st = exp(r->inst, name, 0, &p8);
        s_want(r, "KS_EXPORT of an absent name", st, KP_ERR_NOT_FOUND);
        if (st == KP_OK && conf_secret_adopt(r, p8, "KS_EXPORT"))
            conf_secret_free(p8);
    }
    kp_ks_state_get_fn *sg = CONF_FN(k, ks_state_get, KP_FN_KS_STATE_GET);
    if (sg != NULL) {
        len = sizeof(buf);
        conf_err_clear();
        s_want(r, "KS_STATE_GET of an absent name", sg(r->inst, name, buf, &len), KP_ERR_NOT_FOUND);
    }
    /* names that try to leave the store's namespace: refused, whatever the status */
    static const char *odd[] = {"../../../../etc/passwd", "a/b", "", ".."};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        memset(&info, 0, sizeof(info));
        info.struct_size = sizeof(info);
        conf_err_clear();
        kp_status st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, odd[i], 0, &info);
        if (st == KP_OK)
            conf_fail(r, "KS_GET of the name \"%s\" returned KP_OK", odd[i]);
        len = sizeof(buf);
        conf_err_clear();
        st = CONF_FN(k, ks_get_public, KP_FN_KS_GET_PUBLIC)(r->inst, odd[i], 0, buf, &len);
        if (st == KP_OK)
            conf_fail(r, "KS_GET_PUBLIC of the name \"%s\" returned KP_OK", odd[i]);
    }
}

static void s_secretstore(conf_run *r, const char *name)
{
    conf_kit *k = r->kit;
    kp_secret *v = NULL;
    size_t seen = 0;
    conf_err_clear();
    kp_status st = CONF_FN(k, ss_get, KP_FN_SS_GET)(r->inst, name, 0, &v, NULL, NULL);
    s_want(r, "SS_GET of an absent name", st, KP_ERR_NOT_FOUND);
    if (st == KP_OK && conf_secret_adopt(r, v, "SS_GET"))
        conf_secret_free(v);
    conf_err_clear();
    st = CONF_FN(k, ss_list, KP_FN_SS_LIST)(r->inst, name, s_noop_secret, &seen);
    if (st != KP_OK)
        s_want(r, "SS_LIST of an absent name", st, KP_ERR_NOT_FOUND);
    if (seen > 0)
        conf_fail(r, "SS_LIST of an absent name visited %zu versions", seen);
}

void conf_t_errors(conf_run *r)
{
    char name[CONF_NAME_LEN];
    conf_name(r->kit, "absent", name);
    if (r->kit->iinfo.capabilities & KP_CAP_KEYSTORE)
        s_keystore(r, name);
    if (r->kit->iinfo.capabilities & KP_CAP_SECRETSTORE)
        s_secretstore(r, name);
}
