/*
 * handshake and mandatory-ids: what the loader checks, checked once more with names: the init
 * symbol's version node, refusal of another major, acceptance of a newer minor, a plugin info
 * that says the truth about itself, and a dispatch table with every id its capabilities need.
 */
#include <stdio.h>
#include <string.h>

#include <keyplane/kit/codec.h>

#include "conf_tests.h"

/* The file name without directory and ".so". */
static void s_file_stem(const char *path, char *out, size_t len)
{
    const char *b = strrchr(path, '/');
    b = b != NULL ? b + 1 : path;
    snprintf(out, len, "%s", b);
    size_t n = strlen(out);
    if (n > 3 && strcmp(out + n - 3, ".so") == 0)
        out[n - 3] = '\0';
}

static void s_text(conf_run *r, const char *field, const char *v)
{
    if (v == NULL || v[0] == '\0')
        conf_fail(r, "kp_plugin_info.%s is empty", field);
    else if (!conf_one_line(v))
        conf_fail(r, "kp_plugin_info.%s is not one line", field);
}

void conf_t_handshake(conf_run *r)
{
    conf_kit *k = r->kit;
    if (!k->loaded)
        conf_fail(r, "%s", k->load_error);
    for (size_t i = 0; i < k->nhs; i++)
        conf_fail(r, "%s", k->hs_faults[i]);
    if (!k->loaded)
        return;
    const kp_plugin_info *in = k->info;
    if (in->abi_major != KP_ABI_MAJOR)
        conf_fail(r, "kp_plugin_info.abi_major is %u, want %u", in->abi_major, KP_ABI_MAJOR);
    if (in->abi_minor > KP_ABI_MINOR)
        conf_fail(r,
                  "kp_plugin_info.abi_minor is %u: the plugin needs ABI 1.%u, newer than this "
                  "kit's 1.%u (a core of 1.%u refuses it)",
                  in->abi_minor, in->abi_minor, KP_ABI_MINOR, KP_ABI_MINOR);
    char stem[256];
    s_file_stem(k->path, stem, sizeof(stem));
    /* the loader's rule (kpk_plugin_name_valid), so what passes here loads there */
    if (!kpk_plugin_name_valid(in->name))
        conf_fail(r, "kp_plugin_info.name \"%.64s\" is not 1 to %d of [a-z0-9_-]",
                  in->name != NULL ? in->name : "(null)", KPK_PLUGIN_NAME_MAX);
    else if (strcmp(in->name, stem) != 0)
        conf_fail(r, "kp_plugin_info.name \"%s\" differs from the file name \"%s.so\"", in->name,
                  stem);
    s_text(r, "version", in->version);
    s_text(r, "description", in->description);
    if (in->capabilities == 0 || (in->capabilities & ~KP_CAP_ALL_) != 0)
        conf_fail(r, "kp_plugin_info.capabilities 0x%x: not a non-empty set of KP_CAP_* bits",
                  in->capabilities);
    kp_plugin_info_fn *info = CONF_FN(k, plugin_info, KP_FN_PLUGIN_INFO);
    if (info(k->plugin_ctx) != in)
        conf_fail(r, "KP_FN_PLUGIN_INFO returned another pointer the second time (it must be "
                     "static storage)");
}

typedef struct need {
    uint32_t id;
    const char *name;
} need;

static const need s_base[] = {{KP_FN_PLUGIN_INFO, "KP_FN_PLUGIN_INFO"},
                              {KP_FN_PLUGIN_PARAMS, "KP_FN_PLUGIN_PARAMS"},
                              {KP_FN_INSTANCE_OPEN, "KP_FN_INSTANCE_OPEN"},
                              {KP_FN_INSTANCE_CLOSE, "KP_FN_INSTANCE_CLOSE"},
                              {KP_FN_INSTANCE_CHECK, "KP_FN_INSTANCE_CHECK"},
                              {KP_FN_INSTANCE_INFO, "KP_FN_INSTANCE_INFO"},
                              {0, NULL}};
static const need s_ks[] = {{KP_FN_KS_GET_PUBLIC, "KP_FN_KS_GET_PUBLIC"},
                            {KP_FN_KS_LIST, "KP_FN_KS_LIST"},
                            {KP_FN_KS_WRAP, "KP_FN_KS_WRAP"},
                            {KP_FN_KS_UNWRAP, "KP_FN_KS_UNWRAP"},
                            {KP_FN_KS_GET, "KP_FN_KS_GET"},
                            {0, NULL}};
static const need s_ss[] = {{KP_FN_SS_PUT, "KP_FN_SS_PUT"},
                            {KP_FN_SS_GET, "KP_FN_SS_GET"},
                            {KP_FN_SS_LIST, "KP_FN_SS_LIST"},
                            {0, NULL}};
static const need s_dk[] = {
    {KP_FN_DK_GENERATE, "KP_FN_DK_GENERATE"}, {KP_FN_DK_DECRYPT, "KP_FN_DK_DECRYPT"}, {0, NULL}};

static void s_need(conf_run *r, const need *n, const char *why)
{
    for (; n->name != NULL; n++)
        if (conf_fn(r->kit, n->id) == NULL)
            conf_fail(r, "%s (%u) is missing: mandatory for %s", n->name, n->id, why);
}

static void s_pair(conf_run *r, uint32_t a, const char *an, uint32_t b, const char *bn)
{
    bool ha = conf_fn(r->kit, a) != NULL, hb = conf_fn(r->kit, b) != NULL;
    if (ha != hb)
        conf_fail(r, "%s (%u) without %s (%u): they come together", ha ? an : bn, ha ? a : b,
                  ha ? bn : an, ha ? b : a);
}

void conf_t_mandatory(conf_run *r)
{
    conf_kit *k = r->kit;
    size_t n = 0;
    for (const kp_dispatch *d = k->table; d->id != 0; d++, n++) {
        if (n > 4096) {
            conf_fail(r, "the dispatch table has more than 4096 entries (no {0, NULL} end?)");
            return;
        }
        for (const kp_dispatch *e = k->table; e < d; e++)
            if (e->id == d->id) {
                conf_fail(r, "id %u appears twice in the dispatch table", d->id);
                break;
            }
    }
    s_need(r, s_base, "every plugin");
    uint32_t caps = k->info->capabilities;
    if (caps & KP_CAP_KEYSTORE)
        s_need(r, s_ks, "KP_CAP_KEYSTORE");
    if (caps & KP_CAP_SECRETSTORE)
        s_need(r, s_ss, "KP_CAP_SECRETSTORE");
    if (caps & KP_CAP_DATAKEY)
        s_need(r, s_dk, "KP_CAP_DATAKEY");
    s_pair(r, KP_FN_KS_IMPORT_OFFER, "KP_FN_KS_IMPORT_OFFER", KP_FN_KS_IMPORT_WRAPPED,
           "KP_FN_KS_IMPORT_WRAPPED");
    s_pair(r, KP_FN_KS_STATE_GET, "KP_FN_KS_STATE_GET", KP_FN_KS_STATE_PUT, "KP_FN_KS_STATE_PUT");
}
