/*
 * INSTANCE_CHECK: module, token, login and mechanisms, each reported on its own line so an
 * operator sees which step of the chain to fix. The mechanisms line also says when the token's
 * RFC 5649 failed the probe at open (p11_kwp.c), so wrapped export (BYOK) is off.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

typedef struct s_need {
    CK_MECHANISM_TYPE m;
    const char *name;
} s_need;

static const s_need s_needed[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"},
    {CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP"},
    {CKM_AES_KEY_GEN, "CKM_AES_KEY_GEN"},
    {CKM_AES_KEY_WRAP, "CKM_AES_KEY_WRAP"},
};

/* A failed item: its detail is the error text just set (read back with GET_ERROR). */
static kp_status s_failed(kp_p11_inst *pi, kp_status st, char *detail, size_t size)
{
    snprintf(detail, size, "%s", pi->up->get_error(pi->h));
    return st;
}

static kp_status s_module(kp_p11_inst *pi, CK_FUNCTION_LIST *f, char *detail, size_t size)
{
    char desc[33], manu[33];
    CK_INFO info;
    CK_RV rv = f->C_GetInfo(&info);

    if (rv != CKR_OK)
        return s_failed(pi,
                        kp_p11_ck(pi, NULL, rv, false, "C_GetInfo", "module %s", pi->module_ref),
                        detail, size);
    kp_p11_text(info.libraryDescription, sizeof(info.libraryDescription), desc, sizeof(desc));
    kp_p11_text(info.manufacturerID, sizeof(info.manufacturerID), manu, sizeof(manu));
    snprintf(detail, size, "%s: %s %u.%u by %s (Cryptoki %u.%u)", pi->module_ref, desc,
             info.libraryVersion.major, info.libraryVersion.minor, manu, info.cryptokiVersion.major,
             info.cryptokiVersion.minor);
    return KP_OK;
}

static kp_status s_token(kp_p11_inst *pi, CK_FUNCTION_LIST *f, CK_SLOT_ID slot, char *detail,
                         size_t size)
{
    char model[17], serial[17], manu[33];
    CK_TOKEN_INFO ti;
    CK_RV rv = f->C_GetTokenInfo(slot, &ti);

    if (rv != CKR_OK)
        return s_failed(pi,
                        kp_p11_ck(pi, NULL, rv, false, "C_GetTokenInfo", "token '%s'", pi->token),
                        detail, size);
    kp_p11_text(ti.model, sizeof(ti.model), model, sizeof(model));
    kp_p11_text(ti.serialNumber, sizeof(ti.serialNumber), serial, sizeof(serial));
    kp_p11_text(ti.manufacturerID, sizeof(ti.manufacturerID), manu, sizeof(manu));
    snprintf(detail, size, "'%s' in slot %lu: %s by %s, serial %s", pi->token, (unsigned long)slot,
             model, manu, serial);
    return KP_OK;
}

static kp_status s_noop(kp_p11_op *op, void *arg)
{
    (void)op;
    (void)arg;
    return KP_OK;
}

static kp_status s_mechs(kp_p11_inst *pi, CK_FUNCTION_LIST *f, CK_SLOT_ID slot, char *detail,
                         size_t size)
{
    CK_MECHANISM_TYPE *list = NULL;
    CK_ULONG n = 0;
    bool pad = false, kwp = false;
    kp_instance_info caps;
    char why[KP_P11_WHY_MAX];
    size_t used = 0;
    kp_status st = kp_p11_mechanisms(pi, NULL, f, slot, &list, &n);

    if (st != KP_OK)
        return s_failed(pi, st, detail, size);
    detail[0] = '\0';
    for (size_t i = 0; i < sizeof(s_needed) / sizeof(s_needed[0]); i++) {
        bool have = false;
        for (CK_ULONG j = 0; j < n && !have; j++)
            have = list[j] == s_needed[i].m;
        if (!have && used < size) {
            int w = snprintf(detail + used, size - used, "%s%s", used > 0 ? ", " : "",
                             s_needed[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    for (CK_ULONG j = 0; j < n; j++) {
        pad = pad || list[j] == CKM_AES_KEY_WRAP_PAD;
        kwp = kwp || list[j] == CKM_AES_KEY_WRAP_KWP;
    }
    free(list);
    if (!pad && !kwp && used < size) {
        int w = snprintf(detail + used, size - used, "%sCKM_AES_KEY_WRAP_PAD or _KWP",
                         used > 0 ? ", " : "");
        used += w > 0 ? (size_t)w : 0;
    }
    if (used > 0) {
        char missing[384];

        snprintf(missing, sizeof(missing), "%s", detail);
        snprintf(detail, size, "token '%s' lacks %s", pi->token, missing);
        return kp_p11_err(pi, KP_ERR_UNSUPPORTED, "%s", detail);
    }
    /* The probe's verdict (decided at open): the token serves every chain, but an operator
     * planning BYOK from it should read here that keys will leave it only as PKCS#8. */
    kp_p11_caps(pi, &caps);
    kp_p11_no_keyx(pi, why, sizeof(why));
    snprintf(detail, size, "RSA key generation and OAEP, AES key generation, KW and %s%s%s",
             kwp ? "KWP (0x210B)" : "KWP as CKM_AES_KEY_WRAP_PAD (0x210A)",
             why[0] != '\0' ? "; but " : "", why);
    return KP_OK;
}

kp_status kp_p11_instance_check(void *inst, kp_check_report_fn report, void *arg)
{
    kp_p11_inst *pi = inst;
    char detail[512];
    CK_FUNCTION_LIST *f = NULL;
    CK_SLOT_ID slot = 0;
    kp_status first, st;

#define S_REPORT(item, status)                                                                     \
    do {                                                                                           \
        if (report != NULL)                                                                        \
            report(arg, item, status, detail);                                                     \
    } while (0)
    first = kp_p11_loaded(pi, &f);
    first = first == KP_OK ? s_module(pi, f, detail, sizeof(detail))
                           : s_failed(pi, first, detail, sizeof(detail));
    S_REPORT("module", first);
    if (first != KP_OK)
        return first;
    first = kp_p11_token(pi, &f, &slot);
    first = first == KP_OK ? s_token(pi, f, slot, detail, sizeof(detail))
                           : s_failed(pi, first, detail, sizeof(detail));
    S_REPORT("token", first);
    if (first != KP_OK)
        return first;
    if ((first = kp_p11_run(pi, s_noop, NULL)) == KP_OK)
        snprintf(detail, sizeof(detail), "user logged in to token '%s'", pi->token);
    else
        s_failed(pi, first, detail, sizeof(detail));
    S_REPORT("login", first);
    st = s_mechs(pi, f, slot, detail, sizeof(detail));
    S_REPORT("mechanisms", st);
#undef S_REPORT
    return first != KP_OK ? first : st;
}
