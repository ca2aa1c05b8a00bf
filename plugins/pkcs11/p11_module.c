/*
 * PKCS#11 modules, loaded through p11-kit and shared between the instances that name the same
 * module: C_Initialize may run once per process, so the plugin keeps one reference-counted
 * module per `module` param and finalises it when the last instance using it closes.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

/* p11-kit keeps its last failure per thread; "" when it has none. */
static const char *s_p11kit_message(void)
{
    const char *m = p11_kit_message();
    return m != NULL ? m : "";
}

static kp_status s_load_path(kp_p11_inst *pi, kp_p11_module *mod)
{
    kp_status st = KP_OK;
    CK_RV rv;

    /* Managed (flags 0): p11-kit initialises with CKF_OS_LOCKING_OK and keeps our sessions
     * apart from any other user of the same library in this process. */
    mod->f = p11_kit_module_load(mod->ref, 0);
    if (mod->f == NULL)
        return kp_p11_err(pi, KP_ERR_CONFIG, "cannot load PKCS#11 module %s: %s", mod->ref,
                          s_p11kit_message());
    rv = p11_kit_module_initialize(mod->f);
    if (rv != CKR_OK) {
        st = kp_p11_ck(pi, NULL, rv, false, "C_Initialize", "module %s: %s", mod->ref,
                       s_p11kit_message());
        p11_kit_module_release(mod->f);
        mod->f = NULL;
    }
    return st;
}

/* A module registered with p11-kit (/usr/share/p11-kit/modules/NAME.module). Only the named
 * one is initialised: the others (smart-card readers, the trust store) may be slow to start
 * and are none of our business. */
static kp_status s_load_name(kp_p11_inst *pi, kp_p11_module *mod)
{
    char names[256];
    size_t used = 0;
    kp_status st = KP_OK;
    CK_RV rv;

    mod->all = p11_kit_modules_load(NULL, 0);
    if (mod->all == NULL)
        return kp_p11_err(pi, KP_ERR_CONFIG, "cannot load the p11-kit modules: %s",
                          s_p11kit_message());
    mod->f = p11_kit_module_for_name(mod->all, mod->ref);
    if (mod->f == NULL) {
        names[0] = '\0';
        for (size_t i = 0; mod->all[i] != NULL && used < sizeof(names); i++) {
            char *n = p11_kit_module_get_name(mod->all[i]);
            int w = snprintf(names + used, sizeof(names) - used, "%s%s", used > 0 ? ", " : "",
                             n != NULL ? n : "?");
            free(n);
            if (w > 0)
                used += (size_t)w;
        }
        st = kp_p11_err(pi, KP_ERR_CONFIG, "p11-kit has no module '%s' (registered: %s)", mod->ref,
                        used > 0 ? names : "none");
    }
    if (st == KP_OK && (rv = p11_kit_module_initialize(mod->f)) != CKR_OK)
        st = kp_p11_ck(pi, NULL, rv, false, "C_Initialize", "p11-kit module %s: %s", mod->ref,
                       s_p11kit_message());
    if (st != KP_OK) {
        p11_kit_modules_release(mod->all);
        mod->all = NULL;
        mod->f = NULL;
    }
    return st;
}

/* A new module of pi's reference, loaded and initialised. */
static kp_status s_module_new(kp_p11_inst *pi, kp_p11_module **out)
{
    kp_p11_module *mod = calloc(1, sizeof(*mod));
    kp_status st = KP_OK;

    *out = NULL;
    if (mod == NULL || (mod->ref = strdup(pi->module_ref)) == NULL)
        st = kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    if (st == KP_OK)
        st = mod->ref[0] == '/' ? s_load_path(pi, mod) : s_load_name(pi, mod);
    if (st == KP_OK) {
        *out = mod;
        mod = NULL;
    }
    if (mod != NULL)
        free(mod->ref);
    free(mod);
    return st;
}

/* Keeps the module's library mapped for the life of the process once it has been loaded.
 * p11-kit unmaps it when the last instance closes: loading it again for the next chain costs a
 * load, and a library with thread-local storage unmapped in a live process is what
 * LeakSanitizer's exit scan was seen to trip over (the model test, ASan build: 3 crashes in 400
 * runs, after correct output, reading an unmapped thread's TLS). */
static void s_pin(kp_p11_module *mod)
{
    char *file = p11_kit_module_get_filename(mod->f);
    if (file != NULL)
        /* never closed: the reference kept is the pin */
        /* cppcheck-suppress leakReturnValNotUsed */
        (void)dlopen(file, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    free(file);
}

kp_status kp_p11_module_get(kp_p11_inst *pi, kp_p11_module **out)
{
    kp_p11_plugin *pl = pi->pl;
    kp_p11_module *mod;
    kp_status st = KP_OK;

    *out = NULL;
    pthread_mutex_lock(&pl->lock);
    for (mod = pl->modules; mod != NULL; mod = mod->next)
        if (strcmp(mod->ref, pi->module_ref) == 0)
            break;
    if (mod != NULL) {
        mod->refs++;
    } else {
        st = s_module_new(pi, &mod);
        if (st == KP_OK) {
            s_pin(mod);
            kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "PKCS#11 module %s loaded", mod->ref);
            mod->refs = 1;
            mod->next = pl->modules;
            pl->modules = mod;
        }
    }
    pthread_mutex_unlock(&pl->lock);
    if (st == KP_OK)
        *out = mod;
    return st;
}

static void s_release(kp_p11_module *mod)
{
    p11_kit_module_finalize(mod->f);
    if (mod->all != NULL)
        p11_kit_modules_release(mod->all);
    else
        p11_kit_module_release(mod->f);
    free(mod->ref);
    free(mod);
}

void kp_p11_module_put(kp_p11_plugin *pl, kp_p11_module *mod)
{
    kp_p11_module **pp;

    if (mod == NULL)
        return;
    pthread_mutex_lock(&pl->lock);
    bool last = --mod->refs == 0;
    for (pp = &pl->modules; last && *pp != NULL; pp = &(*pp)->next) {
        if (*pp == mod) {
            *pp = mod->next;
            break;
        }
    }
    pthread_mutex_unlock(&pl->lock);
    if (last)
        s_release(mod);
}

void kp_p11_module_put_all(kp_p11_plugin *pl)
{
    kp_p11_module *mod, *next;

    pthread_mutex_lock(&pl->lock);
    mod = pl->modules;
    pl->modules = NULL;
    pthread_mutex_unlock(&pl->lock);
    for (; mod != NULL; mod = next) {
        next = mod->next;
        s_release(mod);
    }
}
