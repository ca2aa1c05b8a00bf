/*
 * tests/bench/cli helper: what a PKCS#11 module costs a process before any key is read. Loads
 * the module (p11-kit), C_Initialize, finds the token by label, opens a session, logs in with
 * the PIN from the environment, and finalises: the floor under any command that opens that
 * token. run_status.sh runs it after `keyplane status` of the policy without the escrow, as the
 * baseline that holds everything but keyplane's own reading of the token.
 *
 * Usage: bench_p11_open MODULE TOKEN PIN_ENV. Exit 1 when any step fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

static int s_fail(const char *what, CK_RV rv)
{
    fprintf(stderr, "bench_p11_open: %s failed (CK_RV 0x%lx)\n", what, (unsigned long)rv);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench_p11_open MODULE TOKEN PIN_ENV\n");
        return 2;
    }
    const char *pin = getenv(argv[3]);
    CK_FUNCTION_LIST *f = p11_kit_module_load(argv[1], 0);
    if (pin == NULL || f == NULL)
        return s_fail(pin == NULL ? "reading the PIN" : "loading the module", 0);
    CK_RV rv = p11_kit_module_initialize(f);
    if (rv != CKR_OK)
        return s_fail("C_Initialize", rv);
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)
        return s_fail("C_GetSlotList", rv);
    char want[32];
    memset(want, ' ', sizeof(want));
    memcpy(want, argv[2], strlen(argv[2]) < sizeof(want) ? strlen(argv[2]) : sizeof(want));
    int rc = 1;
    for (CK_ULONG i = 0; i < n && rc != 0; i++) {
        CK_TOKEN_INFO ti;
        CK_SESSION_HANDLE s;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || memcmp(ti.label, want, sizeof(want)) != 0)
            continue;
        if ((rv = f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s)) != CKR_OK)
            return s_fail("C_OpenSession", rv);
        if ((rv = f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin))) != CKR_OK)
            return s_fail("C_Login", rv);
        f->C_CloseSession(s);
        rc = 0;
    }
    p11_kit_module_finalize(f);
    p11_kit_module_release(f);
    if (rc != 0)
        fprintf(stderr, "bench_p11_open: no token labelled %s\n", argv[2]);
    return rc;
}
