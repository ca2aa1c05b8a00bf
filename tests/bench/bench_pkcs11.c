/*
 * tests/bench/pkcs11: RSA-OAEP wrap+unwrap operations per second on a PKCS#11 token, through
 * keyplane (kp_key_wrap/kp_key_unwrap on a pkcs11 instance) and through direct PKCS#11 calls
 * (C_Encrypt/C_Decrypt on the same key objects, one session per thread), in the same run, with
 * 1 and 2 threads. Prints the ratio; it is a measurement, not a test, so it never fails on speed.
 *
 * Usage: bench_pkcs11 PLUGIN_DIR MODULE TOKEN PIN_ENV [PAIRS_PER_THREAD] [ROUNDS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <keyplane/keyplane.h>

#include "kp_test.h"

static int s_pairs = 200;

/* ---- direct PKCS#11 ---------------------------------------------------------------------- */

typedef struct direct {
    CK_FUNCTION_LIST *fl;
    CK_SLOT_ID slot;
    const char *pin;
    const char *label;
} direct;

static CK_OBJECT_HANDLE s_find(CK_FUNCTION_LIST *fl, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                               const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (fl->C_FindObjectsInit(s, t, 2) == CKR_OK) {
        fl->C_FindObjects(s, &h, 1, &n);
        fl->C_FindObjectsFinal(s);
    }
    return n == 1 ? h : CK_INVALID_HANDLE;
}

static void *s_direct_worker(void *arg)
{
    direct *d = arg;
    CK_SESSION_HANDLE s;
    if (d->fl->C_OpenSession(d->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) !=
        CKR_OK)
        return (void *)1;
    CK_RV rv = d->fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)d->pin, strlen(d->pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return (void *)1;
    CK_OBJECT_HANDLE pub = s_find(d->fl, s, CKO_PUBLIC_KEY, d->label);
    CK_OBJECT_HANDLE priv = s_find(d->fl, s, CKO_PRIVATE_KEY, d->label);
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM mech = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
    unsigned char dek[32] = {1, 2, 3}, wrapped[512], back[512];
    intptr_t bad = pub == CK_INVALID_HANDLE || priv == CK_INVALID_HANDLE;
    for (int i = 0; i < s_pairs && !bad; i++) {
        CK_ULONG wl = sizeof(wrapped), bl = sizeof(back);
        bad = d->fl->C_EncryptInit(s, &mech, pub) != CKR_OK ||
              d->fl->C_Encrypt(s, dek, sizeof(dek), wrapped, &wl) != CKR_OK ||
              d->fl->C_DecryptInit(s, &mech, priv) != CKR_OK ||
              d->fl->C_Decrypt(s, wrapped, wl, back, &bl) != CKR_OK || bl != sizeof(dek) ||
              memcmp(back, dek, bl) != 0;
    }
    d->fl->C_CloseSession(s);
    return (void *)bad;
}

/* ---- keyplane ---------------------------------------------------------------------------- */

typedef struct kpw {
    kp_instance *inst;
    const char *name;
} kpw;

static void *s_kp_worker(void *arg)
{
    kpw *w = arg;
    unsigned char raw[32] = {1, 2, 3};
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    intptr_t bad = 0;
    for (int i = 0; i < s_pairs && !bad; i++) {
        uint8_t *wr = NULL;
        size_t wl = 0;
        kp_secret *back = NULL;
        bad = kp_key_wrap(w->inst, w->name, 1, KP_WRAP_RSA_OAEP_SHA1, dek, &wr, &wl) != KP_OK ||
              kp_key_unwrap(w->inst, w->name, 1, KP_WRAP_RSA_OAEP_SHA1, wr, wl, &back) != KP_OK ||
              !kp_secret_equal(dek, back);
        kp_secret_free(back);
        free(wr);
    }
    kp_secret_free(dek);
    return (void *)bad;
}

/* Runs nthreads workers and returns pairs per second (negative on any failure). */
static double s_run(void *(*fn)(void *), void *args, size_t argsize, int nthreads)
{
    pthread_t t[8];
    double start = kpk_clock_ms();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, fn, (char *)args + (size_t)i * argsize);
    int bad = 0;
    for (int i = 0; i < nthreads; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    double secs = (kpk_clock_ms() - start) / 1e3;
    return bad ? -1.0 : (double)(s_pairs * nthreads) / secs;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s PLUGIN_DIR MODULE TOKEN PIN_ENV [PAIRS] [ROUNDS]\n", argv[0]);
        return 2;
    }
    const char *plugin_dir = argv[1], *module = argv[2], *token = argv[3], *pin_env = argv[4];
    if (argc > 5)
        s_pairs = atoi(argv[5]);
    int rounds = argc > 6 ? atoi(argv[6]) : 3;
    const char *pin = getenv(pin_env);
    if (pin == NULL || s_pairs <= 0 || rounds <= 0) {
        fprintf(stderr, "bench_pkcs11: %s is not set, or bad counts\n", pin_env);
        return 2;
    }

    /* keyplane side: a policy with the token, a fresh RSA-2048 protector. */
    char policy_path[] = "/tmp/kp-bench-XXXXXX";
    int fd = mkstemp(policy_path);
    FILE *pf = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (pf == NULL)
        return 1;
    fprintf(pf,
            "version: 1\nproviders:\n  hsm: {plugin: pkcs11, module: %s, token: %s, pin: env:%s}\n",
            module, token, pin_env);
    fclose(pf);
    kp_ctx *ctx = NULL;
    kp_policy *pol = NULL;
    kp_instance *inst = NULL;
    kp_key_info info;
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = "bench",
                        .type = KP_KEY_RSA,
                        .bits = 2048,
                        .version = 1};
    kp_status st = kp_test_open_instance(plugin_dir, policy_path, "hsm", &ctx, &pol, &inst);
    if (st == KP_OK)
        st = kp_key_create(inst, &spec, &info);
    unlink(policy_path);
    if (st != KP_OK) {
        fprintf(stderr, "bench_pkcs11: setup: %s\n", kp_ctx_last_error(ctx));
        return 1;
    }

    /* direct side: the same module through p11-kit, the same objects by label. */
    CK_FUNCTION_LIST *fl = p11_kit_module_load(module, 0);
    if (fl == NULL || p11_kit_module_initialize(fl) != CKR_OK) {
        fprintf(stderr, "bench_pkcs11: cannot load %s\n", module);
        return 1;
    }
    CK_SLOT_ID slots[16], slot = (CK_SLOT_ID)-1;
    CK_ULONG nslots = 16;
    fl->C_GetSlotList(CK_TRUE, slots, &nslots);
    for (CK_ULONG i = 0; i < nslots; i++) {
        CK_TOKEN_INFO ti;
        char label[33];
        if (fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        memcpy(label, ti.label, 32);
        label[32] = '\0';
        for (int k = 31; k >= 0 && label[k] == ' '; k--)
            label[k] = '\0';
        if (strcmp(label, token) == 0)
            slot = slots[i];
    }
    char objlabel[256];
    snprintf(objlabel, sizeof(objlabel), "kp:bench/v1");

    printf("pkcs11 bench: RSA-2048 OAEP-SHA1 wrap+unwrap pairs/s, %d pairs per thread, best of "
           "%d rounds\n",
           s_pairs, rounds);
    printf("%-8s %14s %14s %10s %10s\n", "threads", "direct", "keyplane", "ratio", "overhead");
    int failed = 0;
    for (int nthreads = 1; nthreads <= 2; nthreads++) {
        direct d[2] = {{fl, slot, pin, objlabel}, {fl, slot, pin, objlabel}};
        kpw k[2] = {{inst, "bench"}, {inst, "bench"}};
        double best_d = 0, best_k = 0;
        for (int r = 0; r < rounds; r++) { /* interleaved, so drift hits both alike */
            double vd = s_run(s_direct_worker, d, sizeof(d[0]), nthreads);
            double vk = s_run(s_kp_worker, k, sizeof(k[0]), nthreads);
            if (vd < 0 || vk < 0)
                failed = 1;
            best_d = vd > best_d ? vd : best_d;
            best_k = vk > best_k ? vk : best_k;
        }
        double ratio = best_d > 0 ? best_k / best_d : 0;
        printf("%-8d %14.1f %14.1f %10.3f %9.1f%%\n", nthreads, best_d, best_k, ratio,
               (1.0 - ratio) * 100.0);
    }
    p11_kit_module_finalize(fl);
    p11_kit_module_release(fl);
    kp_instance_close(inst);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    if (failed)
        fprintf(stderr, "bench_pkcs11: an operation failed\n");
    return failed;
}
