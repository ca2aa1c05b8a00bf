/* Helpers of the pkcs11 plugin's tests: see pkcs11_token.h. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pkcs11_token.h"

/* The token the last kp_test_p11_token made: its label as the token reports it (padded with
 * spaces to the 32 bytes of CK_TOKEN_INFO's label) and its user PIN. */
static char s_label[sizeof(((CK_TOKEN_INFO *)NULL)->label)];
static char s_pin[64];

const char *kp_test_p11_module(void)
{
    static const char *paths[] = {"/usr/lib/softhsm/libsofthsm2.so",
                                  "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so", NULL};
    for (size_t i = 0; paths[i] != NULL; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    fail_msg("SoftHSM2's module is not installed");
    return NULL;
}

void kp_test_p11_token(kp_test_fx *t, const char *label, const char *so_pin, const char *pin)
{
    char *conf_text = NULL, *cmd = NULL, *policy = NULL;
    const char *module = kp_test_p11_module();
    assert_true(strlen(label) <= sizeof(s_label) && strlen(pin) < sizeof(s_pin));
    memset(s_label, ' ', sizeof(s_label));
    memcpy(s_label, label, strlen(label));
    snprintf(s_pin, sizeof(s_pin), "%s", pin);
    assert_true(asprintf(&conf_text,
                         "directories.tokendir = %s\nobjectstore.backend = file\n"
                         "log.level = ERROR\n",
                         t->dir) > 0);
    char *conf = kp_test_write(t->dir, "softhsm2.conf", conf_text);
    setenv("SOFTHSM2_CONF", conf, 1);
    assert_true(asprintf(&cmd,
                         "softhsm2-util --init-token --free --label %s --so-pin %s "
                         "--pin %s >/dev/null",
                         label, so_pin, pin) > 0);
    assert_int_equal(system(cmd), 0);
    setenv("KP_TEST_HSM_PIN", pin, 1);
    assert_true(asprintf(&policy,
                         "version: 1\nproviders:\n  hsm: {plugin: pkcs11, module: %s, token: %s,"
                         " pin: env:KP_TEST_HSM_PIN}\n",
                         module, label) > 0);
    kp_test_fx_load(t, policy);
    free(conf_text);
    free(conf);
    free(cmd);
    free(policy);
}

CK_FUNCTION_LIST_PTR kp_test_p11_functions(void)
{
    void *dl = dlopen(kp_test_p11_module(), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(dl);
    CK_C_GetFunctionList get = NULL;
    void *sym = dlsym(dl, "C_GetFunctionList");
    memcpy(&get, &sym, sizeof(get));
    CK_FUNCTION_LIST_PTR fl = NULL;
    assert_int_equal(get(&fl), CKR_OK);
    dlclose(dl);
    return fl;
}

CK_SESSION_HANDLE kp_test_p11_session(CK_FUNCTION_LIST_PTR fl)
{
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    assert_int_equal(fl->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
            memcmp(ti.label, s_label, sizeof(ti.label)) != 0)
            continue;
        CK_SESSION_HANDLE s;
        assert_int_equal(
            fl->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
            CKR_OK);
        CK_RV rv = fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)s_pin, strlen(s_pin));
        assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
        return s;
    }
    fail_msg("token '%.*s' not found", (int)sizeof(s_label), s_label);
    return 0;
}

size_t kp_test_p11_count(CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl)
{
    CK_FUNCTION_LIST_PTR fl = kp_test_p11_functions();
    CK_SESSION_HANDLE s = kp_test_p11_session(fl);
    CK_OBJECT_HANDLE objs[64];
    CK_ULONG got;
    size_t n = 0;
    assert_int_equal(fl->C_FindObjectsInit(s, tmpl, ntmpl), CKR_OK);
    do {
        assert_int_equal(fl->C_FindObjects(s, objs, 64, &got), CKR_OK);
        n += got;
    } while (got > 0);
    assert_int_equal(fl->C_FindObjectsFinal(s), CKR_OK);
    fl->C_CloseSession(s);
    return n;
}

void kp_test_p11_destroy_labelled(const char *label)
{
    CK_FUNCTION_LIST_PTR fl = kp_test_p11_functions();
    CK_SESSION_HANDLE s = kp_test_p11_session(fl);
    CK_ATTRIBUTE t = {CKA_LABEL, (void *)label, strlen(label)};
    CK_OBJECT_HANDLE objs[8];
    CK_ULONG got = 0;
    assert_int_equal(fl->C_FindObjectsInit(s, &t, 1), CKR_OK);
    assert_int_equal(fl->C_FindObjects(s, objs, 8, &got), CKR_OK);
    assert_int_equal(fl->C_FindObjectsFinal(s), CKR_OK);
    assert_true(got > 0);
    for (CK_ULONG i = 0; i < got; i++)
        assert_int_equal(fl->C_DestroyObject(s, objs[i]), CKR_OK);
    fl->C_CloseSession(s);
}
