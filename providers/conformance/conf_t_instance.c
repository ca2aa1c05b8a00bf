/*
 * instance-info, check and init: what an instance says about itself must hold together
 * (capabilities within the plugin's, unwrap algorithms a superset of wrap algorithms, only known
 * bits, the functions behind every declared method, the same answer twice, DESCRIBE's static
 * guess no narrower than the open instance), INSTANCE_CHECK must pass and report what it returns,
 * and INSTANCE_INIT (ABI 1.1) must leave a store that is initialised as it is.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_tests.h"

#define S_ALG_BITS 0x3eu  /* KP_ALG_BIT(1..5) */
#define S_KEYX_BITS 0x1eu /* KP_KEYX_BIT(1..4) */
#define S_RSA_ALGS                                                                                 \
    (KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256) |                     \
     KP_ALG_BIT(KP_WRAP_RSA_PKCS1))

static void s_subset(conf_run *r, const char *what, uint32_t sub, uint32_t super, const char *of)
{
    if ((sub & ~super) != 0)
        conf_fail(r, "%s 0x%x is not within %s 0x%x", what, sub, of, super);
}

static void s_info(conf_run *r, const kp_instance_info *ii)
{
    conf_kit *k = r->kit;
    if (ii->capabilities == 0)
        conf_fail(r, "the instance declares no capability");
    s_subset(r, "capabilities", ii->capabilities, k->info->capabilities,
             "the plugin's capabilities");
    s_subset(r, "wrap_algs", ii->wrap_algs, ii->unwrap_algs, "unwrap_algs");
    s_subset(r, "unwrap_algs", ii->unwrap_algs, S_ALG_BITS, "the known algs");
    s_subset(r, "key_bits", ii->key_bits, KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096,
             "the known sizes");
    s_subset(r, "export_keyx", ii->export_keyx, S_KEYX_BITS, "the known methods");
    s_subset(r, "import_keyx", ii->import_keyx, S_KEYX_BITS, "the known methods");
    s_subset(r, "flags", ii->flags,
             KP_INST_STATE_CAS | KP_INST_NO_EXPORT | KP_INST_CERTS | KP_INST_OBJECTS,
             "the known flags");
    if (ii->capabilities & KP_CAP_KEYSTORE) {
        if (ii->wrap_algs == 0)
            conf_fail(r, "a keystore instance declares no wrap alg");
        if ((ii->unwrap_algs & S_RSA_ALGS) && ii->key_bits == 0)
            conf_fail(r, "a keystore with RSA algs declares no key_bits");
    }
    if (ii->export_keyx && conf_fn(k, KP_FN_KS_EXPORT_WRAPPED) == NULL)
        conf_fail(r, "export_keyx declared without KS_EXPORT_WRAPPED");
    if (ii->import_keyx &&
        (conf_fn(k, KP_FN_KS_IMPORT_OFFER) == NULL || conf_fn(k, KP_FN_KS_IMPORT_WRAPPED) == NULL))
        conf_fail(r, "import_keyx declared without KS_IMPORT_OFFER and KS_IMPORT_WRAPPED");
    if ((ii->flags & KP_INST_STATE_CAS) && conf_fn(k, KP_FN_KS_STATE_PUT) == NULL)
        conf_fail(r, "KP_INST_STATE_CAS declared without KS_STATE_PUT");
}

/* A copy of the kit's params (calloc'ed, NULL-terminated) with SECRET params unread (secret
 * NULL), as the core hands them to PLUGIN_DESCRIBE and PLUGIN_CHECK_KEY. */
static kp_param *s_params_unread(const conf_kit *k)
{
    kp_param *p = calloc(k->params.n + 1, sizeof(*p));
    for (size_t i = 0; p != NULL && i < k->params.n; i++) {
        p[i] = k->params.list[i];
        p[i].secret = NULL;
    }
    return p;
}

/* DESCRIBE decides from params alone, with SECRET params unread (secret NULL). */
static void s_describe(conf_run *r, const kp_instance_info *ii)
{
    conf_kit *k = r->kit;
    kp_plugin_describe_fn *fn = CONF_FN(k, plugin_describe, KP_FN_PLUGIN_DESCRIBE);
    if (fn == NULL)
        return;
    kp_param *p = s_params_unread(k);
    if (p == NULL)
        return;
    kp_instance_info d;
    memset(&d, 0, sizeof(d));
    d.struct_size = sizeof(d);
    conf_err_clear();
    kp_status st = fn(k->plugin_ctx, p, &d);
    free(p);
    if (st != KP_OK) {
        conf_fail(r, "PLUGIN_DESCRIBE failed for params an instance opens with: %s: %s",
                  conf_status_name(st), conf_reason());
        return;
    }
    /* INSTANCE_INFO may narrow what DESCRIBE guessed, never widen it; 0 is "not known" */
    struct {
        const char *name;
        uint32_t open, guess;
    } f[] = {{"capabilities", ii->capabilities, d.capabilities},
             {"wrap_algs", ii->wrap_algs, d.wrap_algs},
             {"unwrap_algs", ii->unwrap_algs, d.unwrap_algs},
             {"key_bits", ii->key_bits, d.key_bits},
             {"export_keyx", ii->export_keyx, d.export_keyx},
             {"import_keyx", ii->import_keyx, d.import_keyx}};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
        if (f[i].guess != 0 && (f[i].open & ~f[i].guess) != 0)
            conf_fail(r, "INSTANCE_INFO %s 0x%x is wider than PLUGIN_DESCRIBE's 0x%x", f[i].name,
                      f[i].open, f[i].guess);
}

/* CHECK_KEY: a key the instance holds is fine; RSA-1024 it cannot hold. */
static void s_check_key(conf_run *r, const kp_instance_info *ii)
{
    conf_kit *k = r->kit;
    kp_plugin_check_key_fn *fn = CONF_FN(k, plugin_check_key, KP_FN_PLUGIN_CHECK_KEY);
    if (fn == NULL || !(ii->capabilities & KP_CAP_KEYSTORE))
        return;
    kp_param *p = s_params_unread(k);
    if (p == NULL)
        return;
    char name[CONF_NAME_LEN];
    conf_name(k, "chk", name);
    kp_key_spec spec = {.struct_size = sizeof(spec),
                        .name = name,
                        .type = KP_KEY_RSA,
                        .bits = conf_key_bits(k),
                        .flags = KP_KEY_EXPORTABLE};
    conf_err_clear();
    kp_status st = fn(k->plugin_ctx, p, &spec);
    if (st != KP_OK)
        conf_fail(r, "PLUGIN_CHECK_KEY refused RSA-%u \"%s\", a key the instance holds: %s: %s",
                  spec.bits, name, conf_status_name(st), conf_reason());
    spec.bits = 1024;
    conf_err_clear();
    st = fn(k->plugin_ctx, p, &spec);
    if (st != KP_ERR_UNSUPPORTED)
        conf_fail(r,
                  "PLUGIN_CHECK_KEY on RSA-1024 (outside key_bits) returned %s, want "
                  "KP_ERR_UNSUPPORTED",
                  conf_status_name(st));
    else if (!conf_err_was_set())
        conf_fail(r, "PLUGIN_CHECK_KEY refused RSA-1024 without naming the rule");
    free(p);
}

void conf_t_instance_info(conf_run *r)
{
    kp_instance_info a, b;
    if (!conf_instance_info(r, r->inst, &a))
        return;
    s_info(r, &a);
    if (conf_instance_info(r, r->inst, &b) && memcmp(&a, &b, sizeof(a)) != 0)
        conf_fail(r, "INSTANCE_INFO answered differently the second time");
    if (memcmp(&a, &r->kit->iinfo, sizeof(a)) != 0)
        conf_fail(r, "INSTANCE_INFO differs between two instances opened with the same params");
    s_describe(r, &a);
    s_check_key(r, &a);
}

typedef struct items {
    conf_run *r;
    size_t n;
    kp_status first_bad;
    char detail[256];
} items;

static void s_report(void *arg, const char *item, kp_status st, const char *detail)
{
    items *it = arg;
    it->n++;
    if (item == NULL || item[0] == '\0' || !conf_one_line(item))
        conf_fail(it->r, "INSTANCE_CHECK reported an item without a one-line name");
    if (detail != NULL && !conf_one_line(detail))
        conf_fail(it->r, "INSTANCE_CHECK item %.40s: the detail is not one line",
                  item != NULL ? item : "?");
    if (st != KP_OK && it->first_bad == KP_OK) {
        it->first_bad = st;
        snprintf(it->detail, sizeof(it->detail), "%s: %s", item != NULL ? item : "?",
                 detail != NULL ? detail : "");
    }
}

void conf_t_check(conf_run *r)
{
    kp_instance_check_fn *fn = CONF_FN(r->kit, instance_check, KP_FN_INSTANCE_CHECK);
    if (fn == NULL) {
        conf_fail(r, "no KP_FN_INSTANCE_CHECK");
        return;
    }
    items it = {.r = r};
    conf_err_clear();
    kp_status st = fn(r->inst, s_report, &it);
    if (it.n == 0)
        conf_fail(r, "INSTANCE_CHECK reported no item");
    if (st != it.first_bad)
        conf_fail(r, "INSTANCE_CHECK returned %s, but its first failing item was %s",
                  conf_status_name(st), conf_status_name(it.first_bad));
    if (it.first_bad != KP_OK)
        conf_fail(r, "INSTANCE_CHECK fails on the instance under test: %s", it.detail);
}

/* The probe initialised the store the params name (conf_main.c): INIT again is KP_ERR_EXISTS
 * with error text, twice alike; the store still checks, and a key made before is still there. */
void conf_t_init(conf_run *r)
{
    conf_kit *k = r->kit;
    kp_instance_init_fn *init = CONF_FN(k, instance_init, KP_FN_INSTANCE_INIT);
    kp_ks_get_fn *get = CONF_FN(k, ks_get, KP_FN_KS_GET);
    bool keys = (k->iinfo.capabilities & KP_CAP_KEYSTORE) && get != NULL &&
                (conf_fn(k, KP_FN_KS_CREATE) != NULL || conf_fn(k, KP_FN_KS_IMPORT) != NULL);
    conf_key key;
    if (keys && !conf_key_make(r, "init", 0, false, &key))
        return;
    for (int round = 0; round < 2; round++) {
        conf_err_clear();
        kp_status st = init(r->inst);
        if (st != KP_ERR_EXISTS)
            conf_fail(r, "INSTANCE_INIT of an initialised store returned %s, want KP_ERR_EXISTS",
                      conf_status_name(st));
        else if (!conf_err_was_set())
            conf_fail(r, "INSTANCE_INIT answered KP_ERR_EXISTS without error text");
    }
    conf_t_check(r);
    if (!keys)
        return;
    kp_key_info info = {.struct_size = sizeof(info)};
    conf_err_clear();
    kp_status st = get(r->inst, key.name, key.info.version, &info);
    if (st != KP_OK || strcmp(info.fingerprint, key.info.fingerprint) != 0)
        conf_fail(r, "after INSTANCE_INIT of an initialised store, KS_GET(%s, %u) gives %s (%s)",
                  key.name, key.info.version, conf_status_name(st),
                  st == KP_OK ? "another key" : conf_reason());
    conf_key_free(&key);
}
