/* The file plugin through libkeyplane: keystore, secret store, at-rest protection, the ABI 1.0
 * functions (instance info, direct lookup, checked import, wrapped export, state
 * compare-and-swap), and INSTANCE_INIT (ABI 1.1): a store that is not initialised answers
 * KP_ERR_UNAVAILABLE to every call, never "holds nothing", and only INIT creates one. A few checks
 * call the plugin's table directly (core/src/instance/call.h) where the library has no call of its
 * own or where the plugin's side of a convention is the point. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "instance/call.h"
#include "kp_test.h"

/* The two-region fixture (t first: kp_test_fx_new) with its instances a and b open. */
typedef struct fx {
    kp_test_fx t;
    kp_instance *a, *b;
} fx;

static int s_setup(void **state, unsigned flags)
{
    fx *f = kp_test_fx_new(sizeof(*f), NULL, flags);
    kp_test_fx_load_two_region(&f->t);
    f->a = kp_test_fx_open(&f->t, "a");
    f->b = kp_test_fx_open(&f->t, "b");
    *state = f;
    return 0;
}

/* a and b initialised, as after 'keyplane init' */
static int setup(void **state)
{
    return s_setup(state, 0);
}

/* a and b opened but never initialised: their directories do not exist */
static int setup_uninit(void **state)
{
    return s_setup(state, KP_TEST_FX_NO_INIT);
}

static kp_key_spec s_spec(const char *name, uint32_t bits, uint32_t flags, uint32_t version)
{
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = KP_KEY_RSA,
                        .bits = bits,
                        .flags = flags,
                        .version = version};
    return spec;
}

/* The plugin's own function id of inst (the table the loader accepted). */
static kp_fn s_fn(kp_instance *inst, uint32_t id)
{
    const kp_dispatch *d = kp_dispatch_find(inst->plugin->table, id);
    assert_non_null(d);
    return d->fn;
}

static kp_key_info s_create(kp_instance *inst, const char *name, uint32_t flags, uint32_t version)
{
    kp_key_spec spec = s_spec(name, 2048, flags, version);
    kp_key_info info = {.struct_size = sizeof(info)};
    kp_status st = kp_key_create(inst, &spec, &info);
    assert_int_equal(st, KP_OK);
    return info;
}

static void test_create_versions_and_public(void **state)
{
    fx *f = *state;
    kp_key_info v1 = s_create(f->a, "k", 0, 0);
    kp_key_info v2 = s_create(f->a, "k", 0, 0);
    assert_int_equal(v1.version, 1);
    assert_int_equal(v2.version, 2);
    assert_string_not_equal(v1.fingerprint, v2.fingerprint);
    kp_key_spec dup = s_spec("k", 2048, 0, 2);
    kp_key_info info = {.struct_size = sizeof(info)};
    assert_int_equal(kp_key_create(f->a, &dup, &info), KP_ERR_EXISTS);
    kp_key_info v7 = s_create(f->a, "k", 0, 7); /* replicas keep the origin's numbering */
    assert_int_equal(v7.version, 7);

    uint8_t *spki = NULL;
    size_t len = 0;
    assert_int_equal(kp_key_get_public(f->a, "k", 2, &spki, &len), KP_OK);
    char fpr[KPK_FPR_HEX];
    assert_int_equal(kp_fingerprint_spki(spki, len, fpr), KP_OK);
    assert_string_equal(fpr, v2.fingerprint);
    const unsigned char *p = spki;
    EVP_PKEY *pub = d2i_PUBKEY(NULL, &p, (long)len);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_get_bits(pub), 2048);
    EVP_PKEY_free(pub);
    kp_free(spki);

    assert_int_equal(kp_key_info_get(f->a, "k", 0, &info), KP_OK);
    assert_int_equal(info.version, 7); /* latest */
    assert_int_equal(kp_key_info_get(f->a, "k", 3, &info), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_key_info_get(f->b, "k", 0, &info), KP_ERR_NOT_FOUND); /* other region */
    assert_int_equal(kp_key_get_public(f->a, "k", 4, &spki, &len), KP_ERR_NOT_FOUND);

    kp_key_spec bad = s_spec("../escape", 2048, 0, 0);
    assert_int_equal(kp_key_create(f->a, &bad, &info), KP_ERR_INVALID_ARG);
    bad.name = "ok";
    bad.bits = 1024;
    assert_int_equal(kp_key_create(f->a, &bad, &info), KP_ERR_INVALID_ARG);
}

static void test_wrap_unwrap(void **state)
{
    fx *f = *state;
    s_create(f->a, "w", 0, 0);
    unsigned char raw[32];
    RAND_bytes(raw, sizeof(raw));
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    uint32_t algs[] = {KP_WRAP_RSA_OAEP_SHA1, KP_WRAP_RSA_OAEP_SHA256};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *w = NULL;
        size_t wlen = 0;
        assert_int_equal(kp_key_wrap(f->a, "w", 1, algs[i], dek, &w, &wlen), KP_OK);
        assert_int_equal(wlen, 256);
        kp_secret *back = NULL;
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[i], w, wlen, &back), KP_OK);
        assert_true(kp_secret_equal(dek, back));
        kp_secret_free(back);
        /* The other OAEP hash, or a flipped byte, does not unwrap. */
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[1 - i], w, wlen, &back), KP_ERR_CRYPTO);
        w[10] ^= 1;
        assert_int_equal(kp_key_unwrap(f->a, "w", 1, algs[i], w, wlen, &back), KP_ERR_CRYPTO);
        assert_null(back);
        kp_free(w);
    }
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(f->a, "w", 1, KP_WRAP_RSA_PKCS1, dek, &w, &wlen),
                     KP_ERR_UNSUPPORTED);
    assert_int_equal(kp_key_wrap(f->a, "w", 9, KP_WRAP_RSA_OAEP_SHA1, dek, &w, &wlen),
                     KP_ERR_NOT_FOUND);
    kp_secret *huge = kp_secret_new(300); /* more than OAEP fits in RSA-2048 */
    assert_int_equal(kp_key_wrap(f->a, "w", 1, KP_WRAP_RSA_OAEP_SHA1, huge, &w, &wlen),
                     KP_ERR_INVALID_ARG);
    kp_secret_free(huge);
    kp_secret_free(dek);
}

static kp_secret *s_pkcs8(int bits, EVP_PKEY **keep)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(pkey);
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    unsigned char *der = NULL;
    int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    kp_secret *s = kp_secret_new_copy(der, (size_t)len);
    OPENSSL_clear_free(der, (size_t)len);
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (keep != NULL)
        *keep = pkey;
    else
        EVP_PKEY_free(pkey);
    return s;
}

static void test_import_export(void **state)
{
    fx *f = *state;
    EVP_PKEY *pkey = NULL;
    kp_secret *p8 = s_pkcs8(3072, &pkey);
    kp_key_spec spec = s_spec("imp", 0, KP_KEY_EXPORTABLE, 0);
    kp_key_info ia = {.struct_size = sizeof(ia)}, ib = {.struct_size = sizeof(ib)};
    assert_int_equal(kp_key_import(f->a, &spec, p8, &ia), KP_OK);
    assert_int_equal(ia.bits, 3072);
    assert_int_equal(kp_key_import(f->b, &spec, p8, &ib), KP_OK);
    assert_string_equal(ia.fingerprint, ib.fingerprint);
    unsigned char *spki = NULL;
    int slen = i2d_PUBKEY(pkey, &spki);
    char fpr[KPK_FPR_HEX];
    assert_int_equal(kp_fingerprint_spki(spki, (size_t)slen, fpr), KP_OK);
    assert_string_equal(fpr, ia.fingerprint);
    OPENSSL_free(spki);

    kp_secret *out = NULL;
    assert_int_equal(kp_key_export(f->a, "imp", 1, &out), KP_OK);
    const unsigned char *p = kp_secret_cdata(out);
    PKCS8_PRIV_KEY_INFO *back = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)kp_secret_len(out));
    assert_non_null(back);
    EVP_PKEY *bk = EVP_PKCS82PKEY(back);
    assert_int_equal(EVP_PKEY_eq(bk, pkey), 1);
    EVP_PKEY_free(bk);
    PKCS8_PRIV_KEY_INFO_free(back);
    kp_secret_free(out);

    /* Mismatched bits, garbage, weak keys are refused. */
    spec.bits = 2048;
    assert_int_equal(kp_key_import(f->a, &spec, p8, &ia), KP_ERR_INVALID_ARG);
    kp_secret *junk = kp_secret_new_copy("not a key at all", 16);
    spec.bits = 0;
    assert_int_equal(kp_key_import(f->a, &spec, junk, &ia), KP_ERR_INVALID_ARG);
    kp_secret_free(junk);
    kp_secret *weak = s_pkcs8(1024, NULL);
    assert_int_equal(kp_key_import(f->a, &spec, weak, &ia), KP_ERR_INVALID_ARG);
    kp_secret_free(weak);

    /* A key created without the exportable flag never leaves. */
    s_create(f->a, "locked", 0, 0);
    assert_int_equal(kp_key_export(f->a, "locked", 1, &out), KP_ERR_DENIED);
    assert_null(out);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "not exportable"));
    kp_secret_free(p8);
    EVP_PKEY_free(pkey);
}

typedef struct {
    int calls;
    uint32_t last_version;
    char owner[64];
} s_meta_seen;

static kp_status s_meta_visit(void *arg, const kp_secret_info *info, const kp_meta *meta,
                              size_t nmeta)
{
    s_meta_seen *m = arg;
    m->calls++;
    m->last_version = info->version;
    for (size_t i = 0; i < nmeta; i++)
        if (strcmp(meta[i].key, "owner") == 0)
            snprintf(m->owner, sizeof(m->owner), "%s", meta[i].value);
    return KP_OK;
}

static void test_secret_store(void **state)
{
    fx *f = *state;
    kp_secret *v1 = kp_secret_new_copy("pvk password one", 16);
    kp_secret *v2 = kp_secret_new_copy("pvk password two!", 17);
    kp_meta meta[] = {{"owner", "dba"}, {"chain", "tde"}};
    uint32_t ver = 0;
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v1, meta, 2, &ver), KP_OK);
    assert_int_equal(ver, 1);
    meta[0].value = "sec";
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v2, meta, 2, &ver), KP_OK);
    assert_int_equal(ver, 2);
    kp_secret *got = NULL;
    s_meta_seen seen = {0};
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 0, &got, s_meta_visit, &seen), KP_OK);
    assert_true(kp_secret_equal(got, v2));
    assert_int_equal(seen.calls, 1);
    assert_string_equal(seen.owner, "sec");
    kp_secret_free(got);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 1, &got, s_meta_visit, &seen), KP_OK);
    assert_true(kp_secret_equal(got, v1));
    assert_string_equal(seen.owner, "dba");
    kp_secret_free(got);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_list(f->a, "tde-pvk", s_meta_visit, &seen), KP_OK);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.last_version, 2); /* ascending */
    uint32_t other_ver = 0;
    assert_int_equal(kp_store_put(f->a, "other", v1, NULL, 0, &other_ver), KP_OK);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kp_store_list(f->a, NULL, s_meta_visit, &seen), KP_OK); /* every secret */
    assert_int_equal(seen.calls, 3);
    assert_int_equal(kp_store_get(f->a, "tde-pvk", 3, &got, NULL, NULL), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_store_get(f->b, "tde-pvk", 0, &got, NULL, NULL), KP_ERR_NOT_FOUND);
    kp_meta bad[] = {{"Bad Key", "x"}};
    assert_int_equal(kp_store_put(f->a, "tde-pvk", v1, bad, 1, &ver), KP_ERR_INVALID_ARG);
    kp_secret_free(v1);
    kp_secret_free(v2);
}

static int s_perm_bad;
static int s_tmp_left;

static int s_perm_visit(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (strstr(path, ".tmp") != NULL)
        s_tmp_left++;
    if (strstr(path, "policy.yaml") != NULL || ftw->level == 0)
        return 0;
    mode_t mode = sb->st_mode & 07777;
    if ((flag == FTW_D && mode != 0700) || (flag == FTW_F && mode != 0600)) {
        print_message("loose permissions %o on %s\n", mode, path);
        s_perm_bad++;
    }
    return 0;
}

static void test_at_rest(void **state)
{
    fx *f = *state;
    s_create(f->a, "rest", 0, 0);
    kp_secret *v = kp_secret_new_copy("plaintext-marker-value", 22);
    uint32_t ver;
    assert_int_equal(kp_store_put(f->a, "s", v, NULL, 0, &ver), KP_OK);
    kp_secret_free(v);
    s_perm_bad = s_tmp_left = 0;
    assert_int_equal(nftw(f->t.dir, s_perm_visit, 16, FTW_PHYS), 0);
    assert_int_equal(s_perm_bad, 0);
    assert_int_equal(s_tmp_left, 0);
    /* The secret value is not on disk in the clear. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "grep -r -q plaintext-marker-value %s", f->t.dir);
    assert_int_not_equal(system(cmd), 0);
}

static void test_wrong_passphrase(void **state)
{
    fx *f = *state;
    s_create(f->a, "pp", 0, 0);
    unsigned char raw[16] = {1, 2, 3};
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw));
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(f->a, "pp", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &w, &wlen), KP_OK);

    setenv("KP_TEST_PASSPHRASE", "the wrong one", 1);
    kp_instance *wrong = NULL;
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &wrong), KP_OK);
    kp_secret *back = NULL;
    assert_int_equal(kp_key_unwrap(wrong, "pp", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_AUTH);
    assert_null(strstr(kp_ctx_last_error(f->t.ctx), "the wrong one"));
    kp_instance_close(wrong);

    unsetenv("KP_TEST_PASSPHRASE");
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &wrong), KP_ERR_AUTH);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "KP_TEST_PASSPHRASE"));
    setenv("KP_TEST_PASSPHRASE", "correct horse battery staple", 1);
    kp_free(w);
    kp_secret_free(dek);
}

/* Format 2: a key file the store key does not open (copied from another store with the same
 * passphrase) is refused as not this store's, never taken; a damaged sealed store key is damage,
 * not a wrong passphrase; a store key sealed under another passphrase is a wrong passphrase. */
static void test_store_key(void **state)
{
    fx *f = *state;
    s_create(f->a, "k", 0, 1);
    s_create(f->b, "k", 0, 1);
    unsigned char raw[32] = {7};
    kp_secret *dek = kp_secret_new_copy(raw, sizeof(raw)), *back = NULL;
    uint8_t *w = NULL;
    size_t wlen = 0;
    assert_int_equal(kp_key_wrap(f->b, "k", 1, KP_WRAP_RSA_OAEP_SHA256, dek, &w, &wlen), KP_OK);
    char from[1024], to[1024], cmd[2200];
    snprintf(from, sizeof(from), "%s/a/keys/k/1/private.p8", f->t.dir);
    snprintf(to, sizeof(to), "%s/b/keys/k/1/private.p8", f->t.dir);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
    kp_instance *b2 = NULL;
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "b", &b2), KP_OK);
    assert_int_equal(kp_key_unwrap(b2, "k", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_INTEGRITY);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "was not written under the store key"));
    assert_null(back);
    kp_instance_close(b2);

    /* The header: one byte of the sealed store key changed, then another passphrase. */
    char hpath[1024], *text = NULL;
    snprintf(hpath, sizeof(hpath), "%s/a/keyplane-store.json", f->t.dir);
    FILE *fp = fopen(hpath, "r");
    char good[2048] = {0};
    assert_true(fread(good, 1, sizeof(good) - 1, fp) > 0);
    fclose(fp);
    char *sk = strstr(good, "\"store_key\": \"U2FsdGVkX1");
    assert_non_null(sk);
    text = strdup(good);
    text[(sk - good) + 40] = text[(sk - good) + 40] == 'A' ? 'B' : 'A'; /* in the salt or CBC */
    char adir[1024];
    snprintf(adir, sizeof(adir), "%s/a", f->t.dir);
    free(kp_test_write(adir, "keyplane-store.json", text));
    kp_instance *a2 = NULL;
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &a2), KP_OK);
    assert_int_equal(kp_key_unwrap(a2, "k", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_AUTH); /* CBC cannot tell a changed byte from another passphrase */
    kp_instance_close(a2);
    snprintf(text + (sk - good), strlen(good) - (size_t)(sk - good) + 1,
             "\"store_key\": \"U2FsdGVkX1AAAA\",\n  \"check\": \"AAAA\"\n}");
    free(kp_test_write(adir, "keyplane-store.json", text));
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &a2), KP_OK);
    assert_int_equal(kp_key_unwrap(a2, "k", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_INTEGRITY);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "bad store key or check value"));
    kp_instance_close(a2);
    free(kp_test_write(adir, "keyplane-store.json", good));
    setenv("KP_TEST_PASSPHRASE", "the wrong one", 1);
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &a2), KP_OK);
    assert_int_equal(kp_key_unwrap(a2, "k", 1, KP_WRAP_RSA_OAEP_SHA256, w, wlen, &back),
                     KP_ERR_AUTH);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "wrong passphrase for file store"));
    kp_instance_close(a2);
    setenv("KP_TEST_PASSPHRASE", "correct horse battery staple", 1);
    free(text);
    kp_free(w);
    kp_secret_free(dek);
}

/* ---- ABI 1.0 --------------------------------------------------------------------------- */

static void test_instance_info(void **state)
{
    fx *f = *state;
    const kp_instance_info *ii = kp_instance_get0_info(f->a);
    assert_non_null(ii);
    assert_int_equal(ii->capabilities, KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE);
    assert_int_equal(kp_instance_capabilities(f->a), KP_CAP_KEYSTORE | KP_CAP_SECRETSTORE);
    uint32_t oaep = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    assert_int_equal(ii->wrap_algs, oaep);
    assert_int_equal(ii->unwrap_algs, oaep | KP_ALG_BIT(KP_WRAP_RSA_PKCS1));
    assert_int_equal(ii->key_bits, KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096);
    assert_int_equal(ii->export_keyx, KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) |
                                          KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256));
    assert_int_equal(ii->import_keyx, 0);
    assert_int_equal(ii->flags, KP_INST_STATE_CAS | KP_INST_CERTS);
    assert_int_equal(ii->secret_max, 1024 * 1024);
    /* The plugin needs ABI 1.1 (its stores are made by INSTANCE_INIT only), whatever minor its
     * headers had. */
    assert_int_equal(kp_plugin_get0_info(kp_instance_plugin(f->a))->abi_minor, 1);

    /* PLUGIN_DESCRIBE gives the same from the params alone (secrets not read). */
    const kp_param params[] = {
        {.name = "path", .type = KP_PARAM_PATH, .str = "/nonexistent/never/created"},
        {.name = "passphrase", .type = KP_PARAM_SECRET, .str = "env:UNSET", .secret = NULL},
        {.name = NULL},
    };
    kp_instance_info d;
    memset(&d, 0, sizeof(d));
    d.struct_size = sizeof(d);
    kp_plugin_describe_fn *describe = (kp_plugin_describe_fn *)s_fn(f->a, KP_FN_PLUGIN_DESCRIBE);
    assert_int_equal(describe(f->a->plugin->plugin_ctx, params, &d), KP_OK);
    assert_memory_equal(&d, ii, sizeof(d));
    struct stat sb;
    assert_int_not_equal(stat("/nonexistent/never/created", &sb), 0); /* no I/O made it */

    /* An older core's shorter struct: nothing past its struct_size is written. */
    memset(&d, 0xAA, sizeof(d));
    d.struct_size = (uint32_t)offsetof(kp_instance_info, key_bits);
    kp_instance_info_fn *info = (kp_instance_info_fn *)s_fn(f->a, KP_FN_INSTANCE_INFO);
    assert_int_equal(info(f->a->inst, &d), KP_OK);
    assert_int_equal(d.struct_size, offsetof(kp_instance_info, key_bits));
    assert_int_equal(d.unwrap_algs, ii->unwrap_algs);
    assert_int_equal(d.key_bits, 0xAAAAAAAAu);
    assert_int_equal(d.secret_max, 0xAAAAAAAAAAAAAAAAull);
}

/* Replaces the meta.json of name/version with text that is not JSON. */
static void s_break_meta(fx *f, const char *region, const char *name, uint32_t version)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/keys/%s/%u/meta.json", f->t.dir, region, name, version);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{ not json", fp);
    fclose(fp);
}

static kp_status s_count_visit(void *arg, const kp_key_info *info)
{
    assert_int_equal(info->struct_size, sizeof(kp_key_info));
    (*(int *)arg)++;
    return KP_OK;
}

static void test_get_direct(void **state)
{
    fx *f = *state;
    kp_key_info v1 = s_create(f->a, "k", 0, 0);
    kp_key_info v2 = s_create(f->a, "k", 0, 0);
    kp_key_info v5 = s_create(f->a, "k", 0, 5);
    s_create(f->a, "other", 0, 0);
    int n = 0;
    assert_int_equal(kp_key_list(f->a, NULL, s_count_visit, &n), KP_OK);
    assert_int_equal(n, 4);

    kp_key_info got = {.struct_size = sizeof(got)};
    assert_int_equal(kp_key_info_get(f->a, "k", 0, &got), KP_OK); /* latest */
    assert_int_equal(got.version, 5);
    assert_string_equal(got.fingerprint, v5.fingerprint);
    assert_int_equal(kp_key_info_get(f->a, "k", 2, &got), KP_OK);
    assert_int_equal(got.version, 2);
    assert_string_equal(got.name, "k");
    assert_string_equal(got.fingerprint, v2.fingerprint);
    assert_int_equal(got.bits, 2048);
    assert_int_equal(got.state, KP_KEY_ENABLED);
    assert_true(got.created >= v1.created && got.created > 0);
    assert_int_equal(got.expires, 0);
    char want_id[1024];
    snprintf(want_id, sizeof(want_id), "%s/a/keys/k/2", f->t.dir);
    assert_string_equal(got.backend_id, want_id);
    assert_int_equal(kp_key_info_get(f->a, "k", 3, &got), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_key_info_get(f->a, "nope", 0, &got), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_key_info_get(f->a, "nope", 1, &got), KP_ERR_NOT_FOUND);

    /* Direct: a damaged other key, or another version of this one, does not get in the way of
     * a lookup; a listing passes over the broken versions (a warning names each) and lists the
     * others, and fails only when it could read none, with the reason. */
    s_break_meta(f, "a", "other", 1);
    s_break_meta(f, "a", "k", 1);
    n = 0;
    assert_int_equal(kp_key_list(f->a, NULL, s_count_visit, &n), KP_OK);
    assert_int_equal(n, 2); /* k v2 and v5 */
    n = 0;
    assert_int_equal(kp_key_list(f->a, "k", s_count_visit, &n), KP_OK);
    assert_int_equal(n, 2);
    assert_int_equal(kp_key_list(f->a, "other", s_count_visit, &n), KP_ERR_INTEGRITY);
    char want[1200];
    snprintf(want, sizeof(want), "%s/a/keys/other/1/meta.json: not valid JSON (line 1, column ",
             f->t.dir);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), want));
    assert_int_equal(kp_key_info_get(f->a, "k", 2, &got), KP_OK);
    assert_int_equal(kp_key_info_get(f->a, "k", 0, &got), KP_OK);
    assert_int_equal(got.version, 5);
    assert_int_equal(kp_key_info_get(f->a, "k", 1, &got), KP_ERR_INTEGRITY);

    /* The plugin writes only as much as the caller's struct_size says. */
    kp_key_info small;
    memset(&small, 0x5A, sizeof(small));
    small.struct_size = (uint32_t)offsetof(kp_key_info, expires);
    kp_ks_get_fn *get = (kp_ks_get_fn *)s_fn(f->a, KP_FN_KS_GET);
    assert_int_equal(get(f->a->inst, "k", 2, &small), KP_OK);
    assert_int_equal(small.struct_size, offsetof(kp_key_info, expires));
    assert_int_equal(small.created, v2.created);
    assert_int_equal(small.version, 2);
    assert_int_equal(small.expires, 0x5A5A5A5A5A5A5A5All);
    assert_int_equal((unsigned char)small.fingerprint[0], 0x5A);
}

/* Writes text to path (created 0600). */
static void s_write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* The context's last error is "a: " want + anything, and quotes nothing of the planted file. */
static void s_expect_error(fx *f, const char *want)
{
    const char *err = kp_ctx_last_error(f->t.ctx);
    if (strncmp(err, "a: ", 3) != 0 || strncmp(err + 3, want, strlen(want)) != 0)
        fail_msg("error '%s', want it to start with '%s'", err, want);
    assert_null(strstr(err, "TopSecret"));
}

/* Store files are read beneath the store: a symbolic link in the place of any file or directory
 * below it is refused with a line that names it, never followed; a file that is not JSON is
 * reported by line and column, never quoted; the other versions stay usable. */
static void test_links_and_content(void **state)
{
    fx *f = *state;
    char store[512], out[600], path[700], to[1400];
    kp_key_info got = {.struct_size = sizeof(got)};
    int n = 0;

    s_create(f->a, "k", 0, 0);
    s_create(f->a, "k", 0, 0);
    s_create(f->a, "other", 0, 0);
    snprintf(store, sizeof(store), "%s/a", f->t.dir);
    snprintf(out, sizeof(out), "%s/outside", f->t.dir);
    assert_int_equal(mkdir(out, 0700), 0);
    snprintf(path, sizeof(path), "%s/secret.txt", out);
    s_write_text(path, "{\"pass\": TopSecretPassphrase}\n");

    /* Content: a regular meta.json that is not JSON. */
    snprintf(path, sizeof(path), "%s/keys/k/1/meta.json", store);
    snprintf(to, sizeof(to), "%s/meta.keep", out);
    assert_int_equal(rename(path, to), 0);
    s_write_text(path, "{\"pass\": TopSecretPassphrase}\n");
    assert_int_equal(kp_key_info_get(f->a, "k", 1, &got), KP_ERR_INTEGRITY);
    snprintf(to, sizeof(to), "%s: not valid JSON (line 1, column 28)", path);
    s_expect_error(f, to);

    /* The last component a link (to a file holding a secret). */
    assert_int_equal(unlink(path), 0);
    snprintf(to, sizeof(to), "%s/secret.txt", out);
    assert_int_equal(symlink(to, path), 0);
    assert_int_equal(kp_key_info_get(f->a, "k", 1, &got), KP_ERR_INTEGRITY);
    snprintf(to, sizeof(to), "%s is a symbolic link, not a regular file", path);
    s_expect_error(f, to);
    n = 0;
    assert_int_equal(kp_key_list(f->a, "k", s_count_visit, &n), KP_OK);
    assert_int_equal(n, 1); /* v2, usable */
    assert_int_equal(kp_key_info_get(f->a, "k", 2, &got), KP_OK);

    /* A version directory a link to a directory whose meta.json holds the secret. */
    snprintf(path, sizeof(path), "%s/keys/k/1", store);
    snprintf(to, sizeof(to), "%s/v1", out);
    assert_int_equal(rename(path, to), 0);
    snprintf(to, sizeof(to), "%s/v1/meta.json", out);
    assert_int_equal(unlink(to), 0);
    s_write_text(to, "{\"pass\": TopSecretPassphrase}\n");
    snprintf(to, sizeof(to), "%s/v1", out);
    assert_int_equal(symlink(to, path), 0);
    assert_int_equal(kp_key_info_get(f->a, "k", 1, &got), KP_ERR_INTEGRITY);
    snprintf(to, sizeof(to), "%s is a symbolic link, not a directory: files of store %s", path,
             store);
    s_expect_error(f, to);
    n = 0;
    assert_int_equal(kp_key_list(f->a, "k", s_count_visit, &n), KP_OK);
    assert_int_equal(n, 1);

    /* A key's directory a link (to the same): the lookup of its latest version is refused, and a
     * listing of every key passes over it. */
    snprintf(path, sizeof(path), "%s/keys/other", store);
    snprintf(to, sizeof(to), "%s/other", out);
    assert_int_equal(rename(path, to), 0);
    assert_int_equal(symlink(to, path), 0);
    assert_int_equal(kp_key_info_get(f->a, "other", 0, &got), KP_ERR_INTEGRITY);
    snprintf(to, sizeof(to), "%s is a symbolic link, not a directory: files of store %s", path,
             store);
    s_expect_error(f, to);
    assert_int_equal(kp_key_info_get(f->a, "other", 1, &got), KP_ERR_INTEGRITY);
    s_expect_error(f, to);
    n = 0;
    assert_int_equal(kp_key_list(f->a, NULL, s_count_visit, &n), KP_OK);
    assert_int_equal(n, 1); /* k v2 */

    /* The header a link: the store is refused before anything is read. */
    snprintf(path, sizeof(path), "%s/keyplane-store.json", store);
    snprintf(to, sizeof(to), "%s/header.keep", out);
    assert_int_equal(rename(path, to), 0);
    snprintf(to, sizeof(to), "%s/secret.txt", out);
    assert_int_equal(symlink(to, path), 0);
    assert_int_equal(kp_key_list(f->a, NULL, s_count_visit, &n), KP_ERR_INTEGRITY);
    snprintf(to, sizeof(to), "%s is a symbolic link, not a regular file", path);
    s_expect_error(f, to);
}

static void s_fpr_of(EVP_PKEY *pkey, char fpr[KPK_FPR_HEX])
{
    unsigned char *spki = NULL;
    int len = i2d_PUBKEY(pkey, &spki);
    assert_true(len > 0);
    assert_int_equal(kp_fingerprint_spki(spki, (size_t)len, fpr), KP_OK);
    OPENSSL_free(spki);
}

static int s_leftovers;

static int s_leftover_visit(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    if (strstr(path, "/keys/imp") != NULL || strstr(path, ".tmp") != NULL) {
        print_message("left behind: %s\n", path);
        s_leftovers++;
    }
    return 0;
}

static void test_import_fingerprint_checked(void **state)
{
    fx *f = *state;
    EVP_PKEY *pkey = NULL, *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    kp_secret *p8 = s_pkcs8(2048, &pkey);
    char right[KPK_FPR_HEX], wrong[KPK_FPR_HEX];
    s_fpr_of(pkey, right);
    s_fpr_of(other, wrong);
    kp_key_spec spec = s_spec("imp", 0, 0, 3);
    kp_key_info info = {.struct_size = sizeof(info)};
    char store[1024], keys[1100];
    snprintf(store, sizeof(store), "%s/a", f->t.dir);
    snprintf(keys, sizeof(keys), "%s/keys", store);
    struct stat sb;

    /* Into an empty store: refused before anything is written, not even keys/. */
    spec.fingerprint = wrong;
    assert_int_equal(kp_key_import(f->a, &spec, p8, &info), KP_ERR_INTEGRITY);
    const char *err = kp_ctx_last_error(f->t.ctx);
    assert_non_null(strstr(err, "fingerprint"));
    assert_non_null(strstr(err, right));
    assert_null(strchr(err, '\n'));
    assert_int_not_equal(stat(keys, &sb), 0);

    /* Into a store that exists: no version is listed and no file or directory stays. */
    s_create(f->a, "present", 0, 0);
    assert_int_equal(kp_key_import(f->a, &spec, p8, &info), KP_ERR_INTEGRITY);
    char upper[KPK_FPR_HEX];
    for (size_t i = 0; i < KPK_FPR_HEX; i++)
        upper[i] = (char)(right[i] >= 'a' && right[i] <= 'f' ? right[i] - 'a' + 'A' : right[i]);
    /* The right digits, but not the one form a fingerprint has: the plugin itself refuses it
     * (the library may refuse it first, so this asks the plugin directly). */
    spec.fingerprint = upper;
    kp_ks_import_fn *import = (kp_ks_import_fn *)s_fn(f->a, KP_FN_KS_IMPORT);
    assert_int_equal(import(f->a->inst, &spec, p8, &info), KP_ERR_INTEGRITY);
    int n = 0;
    assert_int_equal(kp_key_list(f->a, "imp", s_count_visit, &n), KP_ERR_NOT_FOUND);
    assert_int_equal(n, 0);
    assert_int_equal(kp_key_info_get(f->a, "imp", 3, &info), KP_ERR_NOT_FOUND);
    s_leftovers = 0;
    assert_int_equal(nftw(store, s_leftover_visit, 16, FTW_PHYS), 0);
    assert_int_equal(s_leftovers, 0);

    /* The right fingerprint imports, under the requested version. */
    spec.fingerprint = right;
    assert_int_equal(kp_key_import(f->a, &spec, p8, &info), KP_OK);
    assert_int_equal(info.version, 3);
    assert_string_equal(info.fingerprint, right);
    kp_secret_free(p8);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other);
}

/* Undoes KP_KEYX_RSA_AES_KWP_*: RSA-OAEP(md) of the first modulus-length bytes with priv, then
 * RFC 5649 unwrap of the rest. Returns the PKCS#8 (malloc'd) and its length. */
static uint8_t *s_unwrap_blob(EVP_PKEY *priv, const EVP_MD *md, const uint8_t *blob, size_t bloblen,
                              size_t *outlen)
{
    size_t k = (size_t)EVP_PKEY_get_size(priv);
    assert_true(bloblen > k + 16);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    unsigned char aes[512]; /* OpenSSL wants room for a whole modulus */
    size_t aeslen = sizeof(aes);
    assert_int_equal(EVP_PKEY_decrypt_init(pctx), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md), 1);
    assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md), 1);
    assert_int_equal(EVP_PKEY_decrypt(pctx, aes, &aeslen, blob, k), 1);
    EVP_PKEY_CTX_free(pctx);
    assert_int_equal(aeslen, 32);

    EVP_CIPHER *kwp = EVP_CIPHER_fetch(NULL, "AES-256-WRAP-PAD", NULL);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    uint8_t *out = malloc(bloblen);
    int n1 = 0, n2 = 0;
    assert_non_null(kwp);
    assert_int_equal(EVP_DecryptInit_ex2(c, kwp, aes, NULL, NULL), 1);
    assert_int_equal(EVP_DecryptUpdate(c, out, &n1, blob + k, (int)(bloblen - k)), 1);
    assert_int_equal(EVP_DecryptFinal_ex(c, out + n1, &n2), 1);
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(kwp);
    OPENSSL_cleanse(aes, sizeof(aes));
    *outlen = (size_t)(n1 + n2);
    return out;
}

static void test_export_wrapped(void **state)
{
    fx *f = *state;
    s_create(f->a, "x", KP_KEY_EXPORTABLE, 0);
    s_create(f->a, "locked", 0, 0);
    kp_secret *p8 = NULL;
    assert_int_equal(kp_key_export(f->a, "x", 0, &p8), KP_OK);
    EVP_PKEY *wrapping = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
    unsigned char *spki = NULL;
    int spki_len = i2d_PUBKEY(wrapping, &spki);
    assert_true(spki_len > 0);

    const struct {
        uint32_t method;
        const EVP_MD *md;
    } cases[] = {{KP_KEYX_RSA_AES_KWP_SHA1, EVP_sha1()},
                 {KP_KEYX_RSA_AES_KWP_SHA256, EVP_sha256()}};
    uint8_t *first = NULL;
    size_t first_len = 0;
    for (size_t i = 0; i < 2; i++) {
        uint8_t *blob = NULL;
        size_t bloblen = 0, len = 0;
        assert_int_equal(kp_key_export_wrapped(f->a, "x", 1, cases[i].method, spki,
                                               (size_t)spki_len, &blob, &bloblen),
                         KP_OK);
        /* RSA-3072 part, then RFC 5649 of the PKCS#8 padded to 8 bytes plus the 8-byte IV */
        assert_int_equal(bloblen, 384 + (kp_secret_len(p8) + 7) / 8 * 8 + 8);
        uint8_t *back = s_unwrap_blob(wrapping, cases[i].md, blob, bloblen, &len);
        assert_int_equal(len, kp_secret_len(p8));
        assert_memory_equal(back, kp_secret_cdata(p8), len);
        free(back);
        if (i == 0) {
            first = blob;
            first_len = bloblen;
        } else {
            /* a fresh AES key each time */
            assert_memory_not_equal(blob + 384, first + 384, 16);
            kp_free(blob);
        }
    }

    /* The plugin's side of the buffer convention. */
    kp_ks_export_wrapped_fn *ew = (kp_ks_export_wrapped_fn *)s_fn(f->a, KP_FN_KS_EXPORT_WRAPPED);
    size_t len = 0;
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA256, spki, (size_t)spki_len, NULL, &len),
        KP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, first_len);
    uint8_t *buf = malloc(first_len);
    memset(buf, 0xAA, first_len);
    len = first_len - 1;
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA256, spki, (size_t)spki_len, buf, &len),
        KP_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(len, first_len);
    for (size_t i = 0; i < first_len; i++)
        assert_int_equal(buf[i], 0xAA); /* nothing written */
    len = first_len;
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA256, spki, (size_t)spki_len, buf, &len),
        KP_OK);
    assert_int_equal(len, first_len);
    free(buf);

    /* Refusals. */
    uint8_t *blob = NULL;
    size_t bloblen = 0;
    assert_int_equal(kp_key_export_wrapped(f->a, "locked", 0, KP_KEYX_RSA_AES_KWP_SHA256, spki,
                                           (size_t)spki_len, &blob, &bloblen),
                     KP_ERR_DENIED);
    assert_int_equal(kp_key_export_wrapped(f->a, "x", 0, KP_KEYX_RSA_OAEP_SHA256, spki,
                                           (size_t)spki_len, &blob, &bloblen),
                     KP_ERR_UNSUPPORTED);
    assert_int_equal(ew(f->a->inst, "x", 0, 77, spki, (size_t)spki_len, NULL, &len),
                     KP_ERR_UNSUPPORTED);
    const uint8_t junk[] = "not a public key";
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA1, junk, sizeof(junk), NULL, &len),
        KP_ERR_INVALID_ARG);
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    unsigned char *wspki = NULL;
    int wlen = i2d_PUBKEY(weak, &wspki);
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA1, wspki, (size_t)wlen, NULL, &len),
        KP_ERR_INVALID_ARG);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    unsigned char *espki = NULL;
    int elen = i2d_PUBKEY(ec, &espki);
    assert_int_equal(
        ew(f->a->inst, "x", 0, KP_KEYX_RSA_AES_KWP_SHA1, espki, (size_t)elen, NULL, &len),
        KP_ERR_INVALID_ARG);
    assert_int_equal(
        ew(f->a->inst, "x", 9, KP_KEYX_RSA_AES_KWP_SHA1, spki, (size_t)spki_len, NULL, &len),
        KP_ERR_NOT_FOUND);
    OPENSSL_free(espki);
    EVP_PKEY_free(ec);
    OPENSSL_free(wspki);
    EVP_PKEY_free(weak);
    kp_free(first);
    OPENSSL_free(spki);
    EVP_PKEY_free(wrapping);
    kp_secret_free(p8);
}

static kp_status s_state_put(kp_instance *inst, const char *name, const char *doc,
                             const char *expect, size_t expect_len)
{
    kp_ks_state_put_fn *put = (kp_ks_state_put_fn *)s_fn(inst, KP_FN_KS_STATE_PUT);
    return put(inst->inst, name, (const uint8_t *)doc, strlen(doc), (const uint8_t *)expect,
               expect_len);
}

/* The stored document of name as a string ("" when none). */
static void s_state_get(kp_instance *inst, const char *name, char *buf, size_t size)
{
    kp_ks_state_get_fn *get = (kp_ks_state_get_fn *)s_fn(inst, KP_FN_KS_STATE_GET);
    size_t len = size - 1;
    kp_status st = get(inst->inst, name, (uint8_t *)buf, &len);
    if (st == KP_ERR_NOT_FOUND)
        len = 0;
    else
        assert_int_equal(st, KP_OK);
    buf[len] = '\0';
}

/* One process of the race below: adds 1 to the counter document `rounds` times, retrying
 * each time it loses. Returns the exit code. */
static int s_cas_worker(kp_instance *inst, int rounds)
{
    char cur[64], next[64];
    for (int done = 0; done < rounds;) {
        s_state_get(inst, "race", cur, sizeof(cur));
        snprintf(next, sizeof(next), "%d", atoi(cur) + 1);
        kp_status st = s_state_put(inst, "race", next, cur, strlen(cur));
        if (st == KP_OK)
            done++;
        else if (st != KP_ERR_CONFLICT)
            return 1;
    }
    return 0;
}

static void test_state_cas(void **state)
{
    fx *f = *state;
    char buf[256];
    assert_true((kp_instance_get0_info(f->a)->flags & KP_INST_STATE_CAS) != 0);
    s_state_get(f->a, "chain", buf, sizeof(buf));
    assert_string_equal(buf, "");

    assert_int_equal(s_state_put(f->a, "chain", "A", NULL, 0), KP_OK);
    assert_int_equal(s_state_put(f->a, "chain", "B", "A", 1), KP_OK);
    s_state_get(f->a, "chain", buf, sizeof(buf));
    assert_string_equal(buf, "B");
    assert_int_equal(s_state_put(f->a, "chain", "C", "A", 1), KP_ERR_CONFLICT);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "changed since"));
    assert_int_equal(s_state_put(f->a, "chain", "C", "", 0), KP_ERR_CONFLICT);   /* expects none */
    assert_int_equal(s_state_put(f->a, "chain", "C", "BB", 2), KP_ERR_CONFLICT); /* longer */
    s_state_get(f->a, "chain", buf, sizeof(buf));
    assert_string_equal(buf, "B");                                     /* nothing changed */
    assert_int_equal(s_state_put(f->a, "chain", "D", NULL, 0), KP_OK); /* unconditional */

    /* expect_len 0: only when none is stored. */
    assert_int_equal(s_state_put(f->a, "fresh", "X", "Y", 1), KP_ERR_CONFLICT);
    assert_int_equal(s_state_put(f->a, "fresh", "X", "", 0), KP_OK);
    assert_int_equal(s_state_put(f->a, "fresh", "Z", "", 0), KP_ERR_CONFLICT);
    s_state_get(f->a, "fresh", buf, sizeof(buf));
    assert_string_equal(buf, "X");

    /* Across processes: 4 writers x 25 increments, no update lost. */
    assert_int_equal(s_state_put(f->a, "race", "0", "", 0), KP_OK);
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(s_cas_worker(f->a, 25));
    }
    for (int i = 0; i < 4; i++) {
        int ws = 0;
        assert_int_equal(waitpid(pids[i], &ws, 0), pids[i]);
        assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    }
    s_state_get(f->a, "race", buf, sizeof(buf));
    assert_string_equal(buf, "100");
}

/* Standard padded base64, as the file plugin wrote its store file before the codec kit. */
static char *s_old_b64(const uint8_t *in, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

static void test_old_store_file_reads(void **state)
{
    fx *f = *state;
    const char *pass = "correct horse battery staple";
    /* Bytes whose base64 has '+', '/' and padding: the standard alphabet, nothing url-safe. */
    uint8_t salt[16] = {0xfb, 0xef, 0xbe, 0xff, 0xff, 0xff, 0x3e, 0x3f, 1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t key[32], check[12 + 25 + 16];
    assert_int_equal(PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, sizeof(salt), 10000,
                                       EVP_sha256(), sizeof(key), key),
                     1);
    RAND_bytes(check, 12);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    assert_int_equal(EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, check, NULL), 1);
    assert_int_equal(EVP_EncryptUpdate(c, check + 12, &n,
                                       (const unsigned char *)"keyplane-file-store-check", 25),
                     1);
    assert_int_equal(EVP_EncryptFinal_ex(c, check + 12 + n, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, check + 37), 1);
    EVP_CIPHER_CTX_free(c);
    char *salt64 = s_old_b64(salt, sizeof(salt)), *check64 = s_old_b64(check, sizeof(check));
    assert_non_null(strchr(salt64, '+'));
    assert_non_null(strchr(salt64, '/'));
    assert_non_null(strstr(salt64, "=="));
    char dir[1024], *text = NULL;
    snprintf(dir, sizeof(dir), "%s/a", f->t.dir);
    assert_int_equal(mkdir(dir, 0700), 0); /* a store an older build made (setup_uninit) */
    assert_true(asprintf(&text,
                         "{\n  \"format\": \"keyplane-file-store\",\n  \"version\": 1,\n"
                         "  \"salt\": \"%s\",\n  \"kdf\": \"pbkdf2-sha256\",\n"
                         "  \"iterations\": 10000,\n  \"check\": \"%s\"\n}",
                         salt64, check64) > 0);
    char *path = kp_test_write(dir, "keyplane-store.json", text);
    assert_non_null(path);

    kp_secret *v = kp_secret_new_copy("value", 5), *got = NULL;
    uint32_t ver = 0;
    assert_int_equal(kp_store_put(f->a, "s", v, NULL, 0, &ver), KP_OK);
    assert_int_equal(kp_store_get(f->a, "s", ver, &got, NULL, NULL), KP_OK);
    assert_true(kp_secret_equal(v, got));
    kp_secret_free(got);
    FILE *fp = fopen(path, "r");
    char back[1024] = {0};
    assert_true(fread(back, 1, sizeof(back) - 1, fp) > 0);
    fclose(fp);
    assert_string_equal(back, text); /* never rewritten */

    /* What the plugin writes now an older build reads: padded standard base64. */
    assert_int_equal(kp_instance_init(f->b), KP_OK);
    assert_int_equal(kp_store_put(f->b, "s", v, NULL, 0, &ver), KP_OK);
    char bpath[1024];
    snprintf(bpath, sizeof(bpath), "%s/b/keyplane-store.json", f->t.dir);
    fp = fopen(bpath, "r");
    memset(back, 0, sizeof(back));
    assert_true(fread(back, 1, sizeof(back) - 1, fp) > 0);
    fclose(fp);
    assert_non_null(strstr(back, "\"version\": 2,"));
    const char *s64 = strstr(back, "\"check\": \"");
    assert_non_null(s64);
    s64 += strlen("\"check\": \"");
    assert_int_equal(strcspn(s64, "\""), 44); /* 32 bytes: 43 characters and "=" */
    assert_memory_equal(s64 + 43, "=\"", 2);
    assert_int_equal(
        strspn(s64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), 43);

    /* The salt and check value read from the file are what decide: another passphrase fails. */
    setenv("KP_TEST_PASSPHRASE", "another passphrase", 1);
    kp_instance *wrong = NULL;
    assert_int_equal(kp_instance_open(f->t.ctx, f->t.pol, "a", &wrong), KP_OK);
    assert_int_equal(kp_store_get(wrong, "s", 0, &got, NULL, NULL), KP_ERR_AUTH);
    kp_instance_close(wrong);
    setenv("KP_TEST_PASSPHRASE", "correct horse battery staple", 1);

    kp_secret_free(v);
    free(path);
    free(text);
    free(salt64);
    free(check64);
    OPENSSL_cleanse(key, sizeof(key));
}

/* ---- INSTANCE_INIT (ABI 1.1) ------------------------------------------------------------- */

static int s_visits;

static kp_status s_count_key(void *arg, const kp_key_info *info)
{
    (void)arg;
    (void)info;
    s_visits++;
    return KP_OK;
}

static kp_status s_count_secret(void *arg, const kp_secret_info *info, const kp_meta *meta,
                                size_t nmeta)
{
    (void)arg;
    (void)info;
    (void)meta;
    (void)nmeta;
    s_visits++;
    return KP_OK;
}

/* Every call that reads or writes a store answers KP_ERR_UNAVAILABLE with the line naming the
 * directory and the way out; none of them creates anything. */
static void s_expect_unavailable(fx *f, kp_instance *inst, const char *dir)
{
    char want[1200];
    snprintf(want, sizeof(want),
             "file store %s is not initialised (no keyplane-store.json): if it was moved or its "
             "disk is not mounted, bring it back; to create a new, empty store there, run "
             "'keyplane init' for this instance",
             dir);
    kp_key_info info = {.struct_size = sizeof(info)};
    kp_key_spec spec = s_spec("k", 2048, KP_KEY_EXPORTABLE, 0);
    kp_secret *v = kp_secret_new_copy("value", 5), *got = NULL;
    uint8_t *spki = NULL;
    size_t len = 0;
    uint32_t ver = 0;
    s_visits = 0;
#define S_UNAVAILABLE(call)                                                                        \
    do {                                                                                           \
        assert_int_equal((call), KP_ERR_UNAVAILABLE);                                              \
        if (strstr(kp_ctx_last_error(f->t.ctx), want) == NULL)                                     \
            fail_msg("%s: %s", #call, kp_ctx_last_error(f->t.ctx));                                \
    } while (0)
    S_UNAVAILABLE(kp_key_list(inst, NULL, s_count_key, NULL));
    S_UNAVAILABLE(kp_key_list(inst, "k", s_count_key, NULL));
    S_UNAVAILABLE(kp_key_info_get(inst, "k", 0, &info));
    S_UNAVAILABLE(kp_key_get_public(inst, "k", 1, &spki, &len));
    S_UNAVAILABLE(kp_key_create(inst, &spec, &info));
    S_UNAVAILABLE(kp_store_list(inst, NULL, s_count_secret, NULL));
    S_UNAVAILABLE(kp_store_list(inst, "s", s_count_secret, NULL));
    S_UNAVAILABLE(kp_store_get(inst, "s", 0, &got, NULL, NULL));
    S_UNAVAILABLE(kp_store_put(inst, "s", v, NULL, 0, &ver));
    kp__clear_error(f->t.ctx);
    assert_int_equal(s_state_put(inst, "k", "{}", NULL, 0), KP_ERR_UNAVAILABLE);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), want));
#undef S_UNAVAILABLE
    assert_int_equal(s_visits, 0);
    assert_null(got);
    assert_null(spki);
    kp_secret_free(v);
}

static void s_check_item(void *arg, const char *item, kp_status status, const char *detail)
{
    if (strcmp(item, "directory") == 0 && status == KP_ERR_UNAVAILABLE &&
        strstr(detail, "is not initialised (no keyplane-store.json)") != NULL)
        (*(int *)arg)++;
}

static void test_uninitialised(void **state)
{
    fx *f = *state;
    char a[1024], b[1024], keys[1100];
    struct stat sb;
    snprintf(a, sizeof(a), "%s/a", f->t.dir);
    snprintf(b, sizeof(b), "%s/b", f->t.dir);
    assert_true(kp_instance_can_init(f->t.pol, "a"));
    assert_false(kp_instance_can_init(f->t.pol, "nosuch"));

    /* Never initialised (no directory), then an empty directory (a mount point): unreachable. */
    s_expect_unavailable(f, f->a, a);
    assert_int_not_equal(stat(a, &sb), 0); /* nothing made it */
    assert_int_equal(mkdir(b, 0700), 0);
    s_expect_unavailable(f, f->b, b);
    int failed = 0;
    assert_int_equal(kp_instance_check(f->a, s_check_item, &failed), KP_ERR_UNAVAILABLE);
    assert_int_equal(failed, 1);

    /* INIT makes an empty store: the directory (0700) and its header; a second INIT is
     * KP_ERR_EXISTS and changes nothing. */
    assert_int_equal(kp_instance_init(f->a), KP_OK);
    assert_int_equal(stat(a, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(keys, sizeof(keys), "%s/keyplane-store.json", a);
    assert_int_equal(stat(keys, &sb), 0);
    s_visits = 0;
    assert_int_equal(kp_key_list(f->a, NULL, s_count_key, NULL), KP_OK);
    assert_int_equal(kp_key_list(f->a, "k", s_count_key, NULL), KP_ERR_NOT_FOUND);
    assert_int_equal(kp_store_list(f->a, NULL, s_count_secret, NULL), KP_OK);
    assert_int_equal(s_visits, 0);
    failed = 0;
    assert_int_equal(kp_instance_check(f->a, s_check_item, &failed), KP_OK);
    assert_int_equal(kp_instance_init(f->a), KP_ERR_EXISTS);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "is already initialised"));
    assert_int_equal(kp_instance_init(f->b), KP_OK); /* the empty directory */

    /* An initialised store moved away (its disk not mounted) is unreachable, not empty; back,
     * it holds what it held. */
    s_create(f->a, "k", KP_KEY_EXPORTABLE, 0);
    char away[1100];
    snprintf(away, sizeof(away), "%s.away", a);
    assert_int_equal(rename(a, away), 0);
    s_expect_unavailable(f, f->a, a);
    assert_int_not_equal(stat(a, &sb), 0);
    assert_int_equal(rename(away, a), 0);
    s_visits = 0;
    assert_int_equal(kp_key_list(f->a, "k", s_count_key, NULL), KP_OK);
    assert_int_equal(s_visits, 1);

    /* A directory that holds keys/ but lost its header is not initialised over: a new salt would
     * make its secret values unreadable. */
    snprintf(keys, sizeof(keys), "%s/keyplane-store.json", a);
    assert_int_equal(rename(keys, away), 0);
    s_expect_unavailable(f, f->a, a);
    assert_int_equal(kp_instance_init(f->a), KP_ERR_INTEGRITY);
    assert_non_null(strstr(kp_ctx_last_error(f->t.ctx), "holds keys/ but no keyplane-store.json"));
    assert_int_equal(rename(away, keys), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        KP_TEST_FX(test_create_versions_and_public, setup),
        KP_TEST_FX(test_wrap_unwrap, setup),
        KP_TEST_FX(test_import_export, setup),
        KP_TEST_FX(test_secret_store, setup),
        KP_TEST_FX(test_at_rest, setup),
        KP_TEST_FX(test_wrong_passphrase, setup),
        KP_TEST_FX(test_store_key, setup),
        KP_TEST_FX(test_instance_info, setup),
        KP_TEST_FX(test_get_direct, setup),
        KP_TEST_FX(test_links_and_content, setup),
        KP_TEST_FX(test_import_fingerprint_checked, setup),
        KP_TEST_FX(test_export_wrapped, setup),
        KP_TEST_FX(test_state_cas, setup),
        KP_TEST_FX(test_old_store_file_reads, setup_uninit),
        KP_TEST_FX(test_uninitialised, setup_uninit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
