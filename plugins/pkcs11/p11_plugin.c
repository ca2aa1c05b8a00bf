/*
 * The `pkcs11` plugin: entry point, description, parameters and instance lifecycle.
 *
 * Opening an instance only copies its parameters; the module is loaded, the token found and
 * the user logged in on first use, so a policy naming an HSM that is down still loads and
 * `keyplane check` can say what is wrong.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_plugin_describe_fn s_describe;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0, /* needs nothing newer than ABI 1.0 */
    .name = "pkcs11",
    .version = "0.1.0",
    .description = "keys on a PKCS#11 token (HSM, SoftHSM2) through p11-kit",
    .capabilities = KP_CAP_KEYSTORE,
};

static const kp_param_desc s_param_list[] = {
    {"module", KP_PARAM_STRING, KP_PARAM_REQUIRED, 0, 0,
     "absolute path of the PKCS#11 module, or a p11-kit module name such as softhsm2"},
    {"token", KP_PARAM_STRING, KP_PARAM_REQUIRED, 0, 0,
     "label of the token (slots are chosen by token label, never by number)"},
    {"pin", KP_PARAM_SECRET, KP_PARAM_REQUIRED, 0, 0, "user PIN of the token"},
    {"label_prefix", KP_PARAM_STRING, 0, 0, 0,
     "prefix of the CKA_LABEL of keyplane's objects (default \"kp:\")"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_PLUGIN_DESCRIBE, (kp_fn)s_describe},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)kp_p11_instance_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)kp_p11_instance_info},
    {KP_FN_KS_CREATE, (kp_fn)kp_p11_ks_create},
    {KP_FN_KS_IMPORT, (kp_fn)kp_p11_ks_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)kp_p11_ks_get_public},
    {KP_FN_KS_LIST, (kp_fn)kp_p11_ks_list},
    {KP_FN_KS_GET, (kp_fn)kp_p11_ks_get},
    {KP_FN_KS_WRAP, (kp_fn)kp_p11_ks_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)kp_p11_ks_unwrap},
    {KP_FN_KS_EXPORT, (kp_fn)kp_p11_ks_export},
    {KP_FN_KS_EXPORT_WRAPPED, (kp_fn)kp_p11_ks_export_wrapped},
    {KP_FN_KS_STATE_GET, (kp_fn)kp_p11_ks_state_get},
    {KP_FN_KS_STATE_PUT, (kp_fn)kp_p11_ks_state_put},
    {KP_FN_KS_CERT_PUT, (kp_fn)kp_p11_ks_cert_put},
    {KP_FN_KS_CERT_GET, (kp_fn)kp_p11_ks_cert_get},
    {0, NULL},
};

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static void s_teardown(void *plugin_ctx)
{
    kp_p11_plugin *pl = plugin_ctx;

    if (pl == NULL)
        return;
    kp_p11_module_put_all(pl); /* none left unless an instance was never closed */
    for (kp_p11_refusal *r = pl->refusals, *next; r != NULL; r = next) {
        next = r->next;
        free(r);
    }
    pthread_mutex_destroy(&pl->lock);
    pthread_rwlock_destroy(&pl->io);
    free(pl);
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_param_list;
}

static void s_close(void *inst)
{
    kp_p11_inst *pi = inst;

    if (pi == NULL)
        return;
    kp_p11_sessions_close(pi);
    kp_p11_cache_free(pi);
    pi->up->secret_free(pi->pin);
    free(pi->module_ref);
    pthread_mutex_destroy(&pi->lock);
    pthread_mutex_destroy(&pi->snap_take);
    free(pi);
}

/* The instance's mutexes; false, with none of them left made, when one cannot be. */
static bool s_locks_init(kp_p11_inst *pi)
{
    pthread_mutex_t *m[] = {&pi->lock, &pi->snap_take};
    size_t n = 0, all = sizeof(m) / sizeof(m[0]);

    while (n < all && pthread_mutex_init(m[n], NULL) == 0)
        n++;
    for (size_t i = n; n < all && i > 0; i--)
        pthread_mutex_destroy(m[i - 1]);
    return n == all;
}

/* Printable ASCII without '/' (the prefix must not change how labels split), ending with a
 * character no key name contains, so that no instance's prefix plus a name can read as another
 * prefix plus another name ("t1" + "-secretdb" = "t1-secret" + "db"). */
static bool s_prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || isalnum((unsigned char)p[n - 1]) || strchr("._-", p[n - 1]) != NULL)
        return false;
    for (; *p != '\0'; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '/')
            return false;
    return true;
}

static bool s_module_name_ok(const char *m)
{
    if (*m == '\0' || *m == '.')
        return false;
    for (; *m != '\0'; m++)
        if (!((*m >= 'A' && *m <= 'Z') || (*m >= 'a' && *m <= 'z') || (*m >= '0' && *m <= '9') ||
              *m == '.' || *m == '_' || *m == '-'))
            return false;
    return true;
}

/* What is wrong with the params the core checked by name and type, or NULL. The PIN is not
 * looked at: PLUGIN_DESCRIBE has no secrets. */
static const char *s_params_wrong(const kp_param *params)
{
    const kp_param *module = kp_param_find(params, "module");
    const kp_param *token = kp_param_find(params, "token");
    const kp_param *prefix = kp_param_find(params, "label_prefix");

    if (module == NULL || module->str == NULL || module->str[0] == '\0')
        return "module is required";
    if (module->str[0] != '/' && !s_module_name_ok(module->str))
        return "module must be an absolute path or a p11-kit module name";
    if (token == NULL || token->str == NULL || token->str[0] == '\0')
        return "token is required";
    if (strlen(token->str) > KP_P11_LABEL_MAX)
        return "token label is longer than 32 bytes";
    if (prefix != NULL && prefix->str != NULL &&
        (strlen(prefix->str) > KP_P11_PREFIX_MAX || !s_prefix_ok(prefix->str)))
        return "label_prefix must be 1 to 64 printable characters without '/', ending in one no "
               "key name has (like the default 'kp:')";
    return NULL;
}

/* Checks the meaning of the params and copies them. */
static kp_status s_take_params(kp_p11_inst *pi, const kp_param *params)
{
    const kp_param *pin = kp_param_find(params, "pin");
    const kp_param *prefix = kp_param_find(params, "label_prefix");
    const char *wrong = s_params_wrong(params);

    if (wrong != NULL)
        return kp_p11_err(pi, KP_ERR_CONFIG, "%s", wrong);
    if ((pi->module_ref = strdup(kp_param_find(params, "module")->str)) == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    snprintf(pi->token, sizeof(pi->token), "%s", kp_param_find(params, "token")->str);
    if (pin == NULL || pin->secret == NULL || pi->up->secret_len(pin->secret) == 0)
        return kp_p11_err(pi, KP_ERR_CONFIG, "pin for token '%s' is empty", pi->token);
    pi->pin =
        kp_secret_dup(pi->up, pi->up->secret_cdata(pin->secret), pi->up->secret_len(pin->secret));
    if (pi->pin == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    snprintf(pi->prefix, sizeof(pi->prefix), "%s",
             prefix != NULL && prefix->str != NULL ? prefix->str : KP_P11_DEFAULT_PREFIX);
    return KP_OK;
}

/* A keystore, whatever the params. Its algorithms are the token's: wrap_algs, unwrap_algs,
 * key_bits and export_keyx stay 0 here, meaning "decided at open" (INSTANCE_INFO asks the
 * token), never "none". */
static kp_status s_describe(void *plugin_ctx, const kp_param *params, kp_instance_info *info)
{
    kp_p11_plugin *pl = plugin_ctx;
    const char *wrong;

    if (pl == NULL || info == NULL)
        return KP_ERR_INVALID_ARG;
    if ((wrong = s_params_wrong(params)) != NULL)
        return kp_errorf(&pl->up, pl->h, KP_ERR_CONFIG, "%s", wrong);
    if (KP_HAS_MEMBER(info, kp_instance_info, capabilities))
        info->capabilities = KP_CAP_KEYSTORE;
    return KP_OK;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    kp_p11_plugin *pl = plugin_ctx;
    kp_p11_inst *pi;

    if (pl == NULL || inst == NULL)
        return KP_ERR_INVALID_ARG;
    *inst = NULL;
    if ((pi = calloc(1, sizeof(*pi))) == NULL)
        return pl->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    pi->up = &pl->up;
    pi->h = h;
    pi->pl = pl;
    pi->oaep_sha256 = -1;
    pi->kwp_exact = -1;
    bool locks = s_locks_init(pi);
    kp_status st = locks ? KP_OK : pl->up.set_error(h, KP_ERR_INTERNAL, "cannot create mutex");
    if (st == KP_OK)
        st = s_take_params(pi, params);
    if (st == KP_OK)
        *inst = pi;
    else if (locks)
        s_close(pi);
    else
        free(pi);
    return st;
}

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx)
{
    kp_p11_plugin *pl;
    kp_p11_up up;

    KP_GUARD(
        kp_plugin_accept(core, out, plugin_ctx, &up, "pkcs11 plugin: the core lacks an upcall"));
    KP_ENSURE((pl = calloc(1, sizeof(*pl))) != NULL, KP_ERR_NOMEM);
    kp_status st = pthread_mutex_init(&pl->lock, NULL) == 0 ? KP_OK : KP_ERR_INTERNAL;
    if (st == KP_OK && pthread_rwlock_init(&pl->io, NULL) != 0) {
        pthread_mutex_destroy(&pl->lock);
        st = KP_ERR_INTERNAL;
    }
    if (st == KP_OK) {
        pl->up = up;
        pl->h = core->handle;
        *out = s_dispatch;
        *plugin_ctx = pl;
        pl = NULL;
    }
    free(pl);
    return st;
}
