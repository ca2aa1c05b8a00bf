/* Writers of one key version on one SoftHSM2 token, through the pkcs11 plugin (issue 11,
 * finding 2): two processes that create the same version at the same moment end with one key
 * under it, the loser's objects gone and the loser told KP_ERR_EXISTS (RSA and AES keys, many
 * rounds; the processes are this program run again as "child"); a pending object older than the
 * bound is ignored by readers and destroyed by the next writer; a pending object ordered before
 * the published one makes the version unavailable instead of switching readers to it, and a
 * writer does not publish past it; one ordered after it changes nothing. The pending objects
 * are planted as another writer would leave them ("<prefix><name>/v<N>~<time>~<random>", the
 * key's tag, its CKA_ID the order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include "kp_test.h"
#include "pkcs11_token.h"

#define PIN "24680"
#define ROUNDS_RSA 10
#define ROUNDS_AES 4

typedef struct fx {
    kp_test_fx t;
} fx;

static int setup(void **state)
{
    fx *f = kp_test_fx_new(sizeof(*f), NULL, 0);
    kp_test_p11_token(&f->t, "race", "86420", PIN);
    *state = f;
    return 0;
}

/* ---- the token behind the plugin's back --------------------------------------------------- */

/* How many objects of class cls are labelled label. */
static size_t s_labelled(CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    return kp_test_p11_count(t, 2);
}

/* The tag the plugin gives key name (default prefix): DER of the Name CN=kp:<name>. */
static size_t s_tag(const char *name, unsigned char *out, size_t cap)
{
    char cn[160];
    snprintf(cn, sizeof(cn), "kp:%s", name);
    X509_NAME *nm = X509_NAME_new();
    unsigned char *der = NULL;
    assert_non_null(nm);
    assert_int_equal(X509_NAME_add_entry_by_NID(nm, NID_commonName, V_ASN1_UTF8STRING,
                                                (const unsigned char *)cn, (int)strlen(cn), -1, 0),
                     1);
    int len = i2d_X509_NAME(nm, &der);
    assert_true(len > 0 && (size_t)len <= cap);
    memcpy(out, der, (size_t)len);
    OPENSSL_free(der);
    X509_NAME_free(nm);
    return (size_t)len;
}

/* An RSA pair of key name's version 1 left pending by another writer at time since, its
 * CKA_ID (its place in the order) 32 bytes of fill. Returns its label in label. */
static void s_plant(const char *name, time_t since, unsigned char fill, char *label, size_t size)
{
    CK_FUNCTION_LIST_PTR fl = kp_test_p11_functions();
    CK_SESSION_HANDLE s = kp_test_p11_session(fl);
    CK_MECHANISM mech = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG bits = 2048;
    CK_BYTE f4[] = {1, 0, 1}, id[32];
    unsigned char subject[256];
    size_t sublen = s_tag(name, subject, sizeof(subject));
    memset(id, fill, sizeof(id));
    snprintf(label, size, "kp:%s/v1~%lld~%02x%02x%02x%02x0badc0de", name, (long long)since, fill,
             fill, fill, fill);
    CK_ATTRIBUTE pubt[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_MODULUS_BITS, &bits, sizeof(bits)},
        {CKA_PUBLIC_EXPONENT, f4, sizeof(f4)},
        {CKA_LABEL, label, strlen(label)},
        {CKA_ID, id, sizeof(id)},
    };
    CK_ATTRIBUTE privt[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},     {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)}, {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_LABEL, label, strlen(label)},  {CKA_ID, id, sizeof(id)},
        {CKA_SUBJECT, subject, sublen},
    };
    CK_OBJECT_HANDLE pub, priv;
    assert_int_equal(fl->C_GenerateKeyPair(s, &mech, pubt, sizeof(pubt) / sizeof(pubt[0]), privt,
                                           sizeof(privt) / sizeof(privt[0]), &pub, &priv),
                     CKR_OK);
    fl->C_CloseSession(s);
}

/* ---- through the plugin ------------------------------------------------------------------- */

static kp_status s_create(kp_instance *inst, const char *name, uint32_t type, kp_key_info *info)
{
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = type,
                        .bits = type == KP_KEY_RSA ? 2048 : 256,
                        .version = 1};
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    return kp_key_create(inst, &spec, info);
}

static kp_status s_get(kp_instance *inst, const char *name, kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info);
    return kp_key_info_get(inst, name, 1, info);
}

static kp_status s_count_visit(void *arg, const kp_key_info *info)
{
    (void)info;
    (*(size_t *)arg)++;
    return KP_OK;
}

/* How many versions a listing of name shows. */
static size_t s_listed(kp_instance *inst, const char *name)
{
    size_t n = 0;
    kp_status st = kp_key_list(inst, name, s_count_visit, &n);
    assert_true(st == KP_OK || st == KP_ERR_NOT_FOUND);
    return n;
}

/* The child: logs in (a lookup), says so on ready, waits for the parent to close the
 * barrier's write end, creates name v1 in hsm and exits with the status. The logins are one
 * after the other: SoftHSM 2.6.1 rewrites its token file at each C_Login, and a process that
 * reads it meanwhile may lose the token for good (C_Login CKR_GENERAL_ERROR, then "token not
 * found"), which is not what this test is about. */
static int s_child(const char *policy_path, const char *name, const char *type, int ready,
                   int barrier)
{
    kp_ctx *ctx = kp_test_ctx(NULL);
    kp_policy *pol = NULL;
    kp_diag_list *diags = NULL;
    kp_instance *hsm = NULL;
    kp_key_info info;
    char c = 1;
    if (ctx == NULL || kp_policy_load(ctx, policy_path, &pol, &diags) != KP_OK ||
        kp_instance_open(ctx, pol, "hsm", &hsm) != KP_OK)
        return 100;
    kp_diag_list_free(diags);
    if (s_get(hsm, name, &info) != KP_ERR_NOT_FOUND) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), kp_ctx_last_error(ctx));
        return 102;
    }
    if (write(ready, &c, 1) != 1 || read(barrier, &c, 1) != 0) /* EOF: go */
        return 101;
    kp_status st = s_create(hsm, name, strcmp(type, "aes") == 0 ? KP_KEY_AES : KP_KEY_RSA, &info);
    if (st != KP_OK && st != KP_ERR_EXISTS)
        fprintf(stderr, "child %d: %s: %s\n", (int)getpid(), kp_status_name(st),
                kp_ctx_last_error(ctx));
    kp_instance_close(hsm);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    return (int)st;
}

/* Starts a child and waits until it has logged in. */
static pid_t s_spawn(const char *policy, const char *name, const char *type, int barrier[2])
{
    int ready[2];
    char c;
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char rfd[16], bfd[16];
        snprintf(rfd, sizeof(rfd), "%d", ready[1]);
        snprintf(bfd, sizeof(bfd), "%d", barrier[0]);
        close(ready[0]);
        close(barrier[1]);
        execl("/proc/self/exe", "test_pkcs11_race", "child", policy, name, type, rfd, bfd,
              (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1)
        fail_msg("%s: a child did not start (see its error above)", name);
    close(ready[0]);
    return pid;
}

/* Two processes create name v1 at once: one creates it, the other is told it exists and
 * leaves nothing behind; the token holds one key under v1 and readers find it. */
static void s_race(fx *f, kp_instance **hsm, const char *name, const char *type)
{
    int barrier[2];
    assert_int_equal(pipe(barrier), 0);
    pid_t a = s_spawn(f->t.policy_path, name, type, barrier);
    pid_t b = s_spawn(f->t.policy_path, name, type, barrier);
    close(barrier[0]);
    close(barrier[1]); /* both go */
    int sa = 0, sb = 0;
    assert_int_equal(waitpid(a, &sa, 0), a);
    assert_int_equal(waitpid(b, &sb, 0), b);
    assert_true(WIFEXITED(sa) && WIFEXITED(sb));
    int ra = WEXITSTATUS(sa), rb = WEXITSTATUS(sb);
    if (!((ra == KP_OK && rb == KP_ERR_EXISTS) || (ra == KP_ERR_EXISTS && rb == KP_OK)))
        fail_msg("%s: the two writers ended %d and %d, want one KP_OK and one KP_ERR_EXISTS", name,
                 ra, rb);

    if (*hsm == NULL)
        *hsm = kp_test_fx_open(&f->t, "hsm");
    char label[160];
    snprintf(label, sizeof(label), "kp:%s/v1", name);
    if (strcmp(type, "aes") == 0) {
        assert_int_equal(s_labelled(CKO_SECRET_KEY, label), 1);
    } else {
        assert_int_equal(s_labelled(CKO_PRIVATE_KEY, label), 1);
        assert_int_equal(s_labelled(CKO_PUBLIC_KEY, label), 1);
    }
    kp_key_info info;
    assert_int_equal(s_get(*hsm, name, &info), KP_OK);
    assert_int_equal(info.version, 1);
}

static void test_two_processes(void **state)
{
    fx *f = *state;
    kp_instance *hsm = NULL;
    char name[32];
    for (int i = 0; i < ROUNDS_RSA; i++) {
        snprintf(name, sizeof(name), "rsa%d", i);
        s_race(f, &hsm, name, "rsa");
    }
    for (int i = 0; i < ROUNDS_AES; i++) {
        snprintf(name, sizeof(name), "aes%d", i);
        s_race(f, &hsm, name, "aes");
    }
    /* Nothing else stays: no loser's pending pair, no nudge object. */
    assert_int_equal(kp_test_p11_count(NULL, 0), 2 * ROUNDS_RSA + ROUNDS_AES);
}

/* A dead writer's pending object (older than the bound) counts for nothing: readers do not see
 * a version in it, and the next writer of the version destroys it and publishes its own. */
static void test_stale_pending(void **state)
{
    fx *f = *state;
    kp_instance *hsm = kp_test_fx_open(&f->t, "hsm");
    char stale[160];
    s_plant("st", time(NULL) - 120, 0x00, stale, sizeof(stale));
    kp_key_info info;
    assert_int_equal(s_get(hsm, "st", &info), KP_ERR_NOT_FOUND);
    assert_int_equal(s_listed(hsm, "st"), 0);
    assert_int_equal(s_create(hsm, "st", KP_KEY_RSA, &info), KP_OK);
    assert_int_equal(info.version, 1);
    assert_int_equal(s_labelled(CKO_PRIVATE_KEY, stale), 0);
    assert_int_equal(s_labelled(CKO_PUBLIC_KEY, stale), 0);
    assert_int_equal(s_labelled(CKO_PRIVATE_KEY, "kp:st/v1"), 1);
    kp_key_info got;
    assert_int_equal(s_get(hsm, "st", &got), KP_OK);
    assert_string_equal(got.fingerprint, info.fingerprint);
}

/* A pending object ordered before the published one (a writer still deciding): readers answer
 * "being created" (KP_ERR_UNAVAILABLE), never the other object, and see the published one again
 * once it is gone. One ordered after it changes nothing. A writer does not publish past a
 * pending object ordered before its own: it gives up (KP_ERR_UNAVAILABLE) and keeps nothing. */
static void test_pending_order(void **state)
{
    fx *f = *state;
    kp_instance *hsm = kp_test_fx_open(&f->t, "hsm");
    kp_key_info lo, hi, got;
    char before[160], after[160];
    assert_int_equal(s_create(hsm, "lo", KP_KEY_RSA, &lo), KP_OK);
    assert_int_equal(s_create(hsm, "hi", KP_KEY_RSA, &hi), KP_OK);
    s_plant("lo", time(NULL), 0x00, before, sizeof(before)); /* before any fingerprint */
    s_plant("hi", time(NULL), 0xff, after, sizeof(after));   /* after any fingerprint */

    /* A reader that has not used them yet (a new instance: nothing cached). */
    kp_instance *reader = kp_test_fx_open(&f->t, "hsm");
    assert_int_equal(s_get(reader, "lo", &got), KP_ERR_UNAVAILABLE);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "being created"));
    assert_int_equal(s_listed(reader, "lo"), 0);
    assert_int_equal(s_get(reader, "hi", &got), KP_OK);
    assert_string_equal(got.fingerprint, hi.fingerprint);
    assert_int_equal(s_listed(reader, "hi"), 1);

    kp_test_p11_destroy_labelled(before);
    assert_int_equal(s_get(reader, "lo", &got), KP_OK);
    assert_string_equal(got.fingerprint, lo.fingerprint);

    /* A writer against a live pending object ordered first, whose writer never decides. */
    s_plant("w", time(NULL), 0x00, before, sizeof(before));
    size_t objects = kp_test_p11_count(NULL, 0);
    assert_int_equal(s_create(hsm, "w", KP_KEY_RSA, &got), KP_ERR_UNAVAILABLE);
    assert_int_equal(kp_test_p11_count(NULL, 0), objects);
    assert_int_equal(s_labelled(CKO_PRIVATE_KEY, "kp:w/v1"), 0);
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "child") == 0)
        return s_child(argv[2], argv[3], argv[4], atoi(argv[5]), atoi(argv[6]));
    const struct CMUnitTest tests[] = {
        KP_TEST_FX(test_two_processes, setup),
        KP_TEST_FX(test_stale_pending, setup),
        KP_TEST_FX(test_pending_order, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
