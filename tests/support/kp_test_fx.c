/* The fixture most tests start from (kp_test.h): a fresh directory, a context, a policy written
 * there and loaded with its stores initialised, the instances opened from it, and optionally the
 * audit lines in memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"

void kp_test_fx_init(kp_test_fx *f, const char *plugin_dir, unsigned flags)
{
    *f = (kp_test_fx){.dir = kp_test_tmpdir(), .flags = flags};
    if (f->dir == NULL)
        kp_test_fail("no temporary directory");
    f->ctx = kp_test_ctx(plugin_dir);
    if (f->ctx == NULL)
        kp_test_fail("no context on %s", plugin_dir != NULL ? plugin_dir : KP_TEST_PLUGIN_DIR);
    if (flags & KP_TEST_FX_AUDIT) {
        f->audit = open_memstream(&f->audit_buf, &f->audit_len);
        if (f->audit == NULL)
            kp_test_fail("no audit stream");
        kp_ctx_set_audit(f->ctx, f->audit);
    }
}

/* The stores of the policy's instances with INSTANCE_INIT, initialised as 'keyplane init' would. */
static void s_init_stores(kp_test_fx *f)
{
    for (size_t i = 0; i < kp_policy_instance_count(f->pol); i++) {
        const char *name = kp_policy_instance_name(f->pol, i);
        kp_instance *inst = NULL;
        if (!kp_instance_can_init(f->pol, name) ||
            kp_instance_open(f->ctx, f->pol, name, &inst) != KP_OK)
            continue;
        kp_status st = kp_instance_init(inst);
        if (st != KP_OK && st != KP_ERR_EXISTS)
            kp_test_fail("init %s: %s: %s", name, kp_status_name(st), kp_ctx_last_error(f->ctx));
        kp_instance_close(inst);
    }
}

static void s_load_path(kp_test_fx *f)
{
    kp_diag_list *diags = NULL;
    kp_status st = kp_policy_load(f->ctx, f->policy_path, &f->pol, &diags);
    if (st != KP_OK) {
        char first[512] = "";
        if (kp_diag_count(diags) > 0)
            snprintf(first, sizeof first, " (%s)", kp_diag_get0(diags, 0)->message);
        kp_diag_list_free(diags);
        kp_test_fail("policy %s: %s: %s%s", f->policy_path, kp_status_name(st),
                     kp_ctx_last_error(f->ctx), first);
    }
    kp_diag_list_free(diags);
    if ((f->flags & KP_TEST_FX_NO_INIT) == 0)
        s_init_stores(f);
}

void kp_test_fx_load(kp_test_fx *f, const char *policy)
{
    f->policy_path = kp_test_write(f->dir, "policy.yaml", policy);
    if (f->policy_path == NULL)
        kp_test_fail("cannot write a policy in %s", f->dir);
    s_load_path(f);
}

void kp_test_fx_load_two_region(kp_test_fx *f)
{
    f->policy_path = kp_test_two_region_policy(f->dir);
    if (f->policy_path == NULL)
        kp_test_fail("cannot write a policy in %s", f->dir);
    s_load_path(f);
}

kp_instance *kp_test_fx_open(kp_test_fx *f, const char *name)
{
    if (f->nopened == KP_TEST_FX_MAX_OPEN)
        kp_test_fail("more than %d instances in one fixture", KP_TEST_FX_MAX_OPEN);
    kp_instance *inst = NULL;
    kp_status st = kp_instance_open(f->ctx, f->pol, name, &inst);
    if (st != KP_OK)
        kp_test_fail("open %s: %s: %s", name, kp_status_name(st), kp_ctx_last_error(f->ctx));
    f->opened[f->nopened++] = inst;
    return inst;
}

void kp_test_fx_fini(kp_test_fx *f)
{
    while (f->nopened > 0)
        kp_instance_close(f->opened[--f->nopened]);
    kp_policy_free(f->pol);
    kp_ctx_free(f->ctx);
    if (f->audit != NULL)
        fclose(f->audit);
    free(f->audit_buf);
    kp_test_rmtree(f->dir);
    free(f->dir);
    free(f->policy_path);
    *f = (kp_test_fx){.dir = NULL};
}

void *kp_test_fx_new(size_t size, const char *plugin_dir, unsigned flags)
{
    kp_test_fx *f = size >= sizeof(*f) ? calloc(1, size) : NULL;
    if (f == NULL)
        kp_test_fail("kp_test_fx_new: out of memory or size %zu too small", size);
    kp_test_fx_init(f, plugin_dir, flags);
    return f;
}

void kp_test_fx_free(kp_test_fx *f)
{
    if (f == NULL)
        return;
    kp_test_fx_fini(f);
    free(f);
}

int kp_test_fx_teardown(void **state)
{
    kp_test_fx_free(*state);
    *state = NULL;
    return 0;
}
