/*
 * The session pool of an instance: the module is loaded and the token found on first use,
 * the user logs in once, and sessions are reused across operations and threads. An operation
 * that finds its session dead or the login gone is run once more on a fresh session.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "p11_internal.h"

/* Lists what is in the slots, for the "token not found" message. Lock held. */
static void s_describe_slots(kp_p11_inst *pi, const CK_SLOT_ID *slots, CK_ULONG n, char *buf,
                             size_t size)
{
    CK_FUNCTION_LIST *f = pi->mod->f;
    size_t used;
    int w;

    w = snprintf(buf, size, "%lu slot%s with tokens", (unsigned long)n, n == 1 ? "" : "s");
    used = w > 0 ? (size_t)w : 0;
    for (CK_ULONG i = 0; slots != NULL && i < n && used < size; i++) {
        CK_TOKEN_INFO ti;
        char label[KP_P11_LABEL_MAX + 1];

        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        kp_p11_text(ti.label, sizeof(ti.label), label, sizeof(label));
        if ((ti.flags & CKF_TOKEN_INITIALIZED) == 0)
            w = snprintf(buf + used, size - used, "%s(uninitialised)", i == 0 ? ": " : ", ");
        else
            w = snprintf(buf + used, size - used, "%s'%s'", i == 0 ? ": " : ", ", label);
        if (w > 0)
            used += (size_t)w;
    }
}

/* Finds the slot whose token carries our label. Slot numbers are not stable (SoftHSM
 * renumbers on init and always adds an empty slot), labels are. Lock held. */
static kp_status s_find_slot(kp_p11_inst *pi)
{
    CK_FUNCTION_LIST *f = pi->mod->f;
    CK_SLOT_ID *slots = NULL, found = 0;
    CK_ULONG n = 0, nfound = 0;
    char label[KP_P11_LABEL_MAX + 1], list[200];
    kp_status st = KP_OK;
    CK_RV rv;

    for (int tries = 0; tries < 3; tries++) {
        if ((rv = f->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK)
            break;
        free(slots);
        if ((slots = calloc(n + 1, sizeof(*slots))) == NULL) {
            st = kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
            break;
        }
        if ((rv = f->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_BUFFER_TOO_SMALL)
            break; /* a token arrived between the calls otherwise */
    }
    if (st == KP_OK && rv != CKR_OK)
        st = kp_p11_ck(pi, NULL, rv, false, "C_GetSlotList", "module %s", pi->module_ref);
    for (CK_ULONG i = 0; st == KP_OK && slots != NULL && i < n; i++) {
        CK_TOKEN_INFO ti;

        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK || (ti.flags & CKF_TOKEN_INITIALIZED) == 0)
            continue;
        kp_p11_text(ti.label, sizeof(ti.label), label, sizeof(label));
        if (strcmp(label, pi->token) == 0) {
            if (nfound++ == 0)
                found = slots[i];
        }
    }
    if (st == KP_OK && nfound == 0) {
        s_describe_slots(pi, slots, n, list, sizeof(list));
        st = kp_p11_err(pi, KP_ERR_UNAVAILABLE, "token '%s' not found (%s)", pi->token, list);
    } else if (st == KP_OK && nfound > 1) {
        st = kp_p11_err(pi, KP_ERR_CONFIG, "token label '%s' is on %lu slots; relabel one",
                        pi->token, (unsigned long)nfound);
    }
    free(slots);
    if (st == KP_OK) {
        pi->slot = found;
        pi->have_slot = true;
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s' is in slot %lu", pi->token,
                (unsigned long)found);
    }
    return st;
}

/* Module loaded. Lock held. */
static kp_status s_module(kp_p11_inst *pi)
{
    if (pi->mod != NULL)
        return KP_OK;
    return kp_p11_module_get(pi, &pi->mod);
}

/* Module loaded and token found. Lock held. */
static kp_status s_token(kp_p11_inst *pi)
{
    kp_status st = s_module(pi);

    if (st != KP_OK || pi->have_slot)
        return st;
    return s_find_slot(pi);
}

kp_status kp_p11_loaded(kp_p11_inst *pi, CK_FUNCTION_LIST **f)
{
    kp_status st = KP_OK;

    pthread_mutex_lock(&pi->lock);
    st = s_module(pi);
    if (st == KP_OK)
        *f = pi->mod->f;
    pthread_mutex_unlock(&pi->lock);
    return st;
}

kp_status kp_p11_token(kp_p11_inst *pi, CK_FUNCTION_LIST **f, CK_SLOT_ID *slot)
{
    kp_status st = KP_OK;

    pthread_mutex_lock(&pi->lock);
    st = s_token(pi);
    if (st == KP_OK) {
        *f = pi->mod->f;
        *slot = pi->slot;
    }
    pthread_mutex_unlock(&pi->lock);
    return st;
}

/* Closes every idle session. Lock held. */
static void s_flush(kp_p11_inst *pi)
{
    for (size_t i = 0; i < pi->nidle; i++)
        pi->mod->f->C_CloseSession(pi->idle[i]);
    pi->nidle = 0;
}

/* The token went away: find it again next time (it may come back in another slot). */
static void s_forget_token(kp_p11_inst *pi)
{
    s_flush(pi);
    kp_p11_cache_flush_locked(pi); /* handles die with the token */
    pi->have_slot = false;
    pi->logged_in = false;
    pi->mechs_probed = false;
}

static bool s_token_gone(CK_RV rv)
{
    return rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_SLOT_ID_INVALID;
}

static bool s_session_dead(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED;
}

static bool s_pin_error(CK_RV rv)
{
    return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
           rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED || rv == CKR_USER_PIN_NOT_INITIALIZED;
}

static const char *s_pin_reason(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT:
        return "wrong PIN";
    case CKR_PIN_LOCKED:
        return "PIN locked";
    case CKR_PIN_EXPIRED:
        return "PIN expired";
    case CKR_USER_PIN_NOT_INITIALIZED:
        return "user PIN not initialised";
    default:
        return "PIN rejected";
    }
}

/* The refusal of this instance's token (with this PIN, or of every PIN once locked) that an
 * earlier instance of the plugin met; CKR_OK when none. With rv != CKR_OK, records rv instead. */
static CK_RV s_refusal(kp_p11_inst *pi, CK_RV rv)
{
    unsigned char sum[KP_P11_SHA256_LEN];
    if (EVP_Digest(pi->up->secret_cdata(pi->pin), pi->up->secret_len(pi->pin), sum, NULL,
                   EVP_sha256(), NULL) != 1)
        return rv != CKR_OK ? rv : CKR_OK; /* cannot tell PINs apart: remember nothing */
    const char *module = pi->module_ref != NULL ? pi->module_ref : "";
    CK_RV found = CKR_OK;
    pthread_mutex_lock(&pi->pl->lock);
    kp_p11_refusal *r = pi->pl->refusals;
    for (; r != NULL && found == CKR_OK; r = r->next)
        if (strcmp(r->module, module) == 0 && strcmp(r->token, pi->token) == 0 &&
            (r->rv == CKR_PIN_LOCKED || memcmp(r->pin_sha256, sum, sizeof(sum)) == 0))
            found = r->rv;
    if (rv != CKR_OK && found == CKR_OK && (r = calloc(1, sizeof(*r))) != NULL) {
        snprintf(r->module, sizeof(r->module), "%s", module);
        snprintf(r->token, sizeof(r->token), "%s", pi->token);
        memcpy(r->pin_sha256, sum, sizeof(sum));
        r->rv = rv;
        r->next = pi->pl->refusals;
        pi->pl->refusals = r;
    }
    pthread_mutex_unlock(&pi->pl->lock);
    OPENSSL_cleanse(sum, sizeof(sum));
    return found;
}

/* Logs the user in on session s. A PIN error is remembered and never retried, by this instance
 * nor by any other of this plugin for the same token and PIN (every PIN once the token said
 * CKR_PIN_LOCKED): HSMs lock the PIN after a few wrong tries, and a command over many chains
 * opens the token once per chain. Not CKR_USER_PIN_NOT_INITIALIZED: no PIN to lock. Lock held. */
static kp_status s_login(kp_p11_inst *pi, kp_p11_op *op)
{
    CK_RV rv;

    if (pi->login_rv == CKR_OK)
        pi->login_rv = s_refusal(pi, CKR_OK);
    if (pi->login_rv != CKR_OK)
        return kp_p11_ck(pi, NULL, pi->login_rv, false, "C_Login",
                         "%s for token '%s' earlier in this process; not tried again",
                         s_pin_reason(pi->login_rv), pi->token);
    rv = op->f->C_Login(op->s, CKU_USER, pi->up->secret_data(pi->pin),
                        (CK_ULONG)pi->up->secret_len(pi->pin));
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) {
        pi->logged_in = true;
        return KP_OK;
    }
    if (s_pin_error(rv)) {
        /* A token without a user PIN yet cannot lock one: asked again next time, so a process
         * that outlives the token's set-up (C_InitPIN by its officer) gets in then. */
        if (rv != CKR_USER_PIN_NOT_INITIALIZED) {
            pi->login_rv = rv;
            (void)s_refusal(pi, rv);
        }
        return kp_p11_ck(pi, op, rv, false, "C_Login", "%s for token '%s'", s_pin_reason(rv),
                         pi->token);
    }
    return kp_p11_ck(pi, op, rv, false, "C_Login", "token '%s'", pi->token);
}

static kp_status s_push_idle(kp_p11_inst *pi, CK_SESSION_HANDLE s)
{
    if (pi->nidle == pi->idle_cap) {
        size_t cap = pi->idle_cap == 0 ? 4 : pi->idle_cap * 2;
        CK_SESSION_HANDLE *p = realloc(pi->idle, cap * sizeof(*p));

        if (p == NULL)
            return KP_ERR_NOMEM;
        pi->idle = p;
        pi->idle_cap = cap;
    }
    pi->idle[pi->nidle++] = s;
    return KP_OK;
}

/* Takes an idle session that still works, or opens one. Lock held. */
static kp_status s_session(kp_p11_inst *pi, kp_p11_op *op)
{
    CK_SESSION_INFO si;
    CK_RV rv;

    while (pi->nidle > 0) {
        op->s = pi->idle[--pi->nidle];
        /* One cheap call tells whether the session survived and whether the login did (a
         * C_CloseAllSessions or C_Logout elsewhere in the process ends both). Without it, a
         * search after a lost login just finds no private keys: "not found", not an error. */
        rv = op->f->C_GetSessionInfo(op->s, &si);
        if (rv == CKR_OK) {
            if (si.state != CKS_RW_USER_FUNCTIONS && si.state != CKS_RO_USER_FUNCTIONS &&
                pi->logged_in) {
                kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s': login lost, logging in again",
                        pi->token);
                pi->logged_in = false;
            }
            return KP_OK;
        }
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s': dropping a dead session", pi->token);
        op->f->C_CloseSession(op->s);
        if (s_token_gone(rv)) {
            s_forget_token(pi);
            return kp_p11_ck(pi, NULL, rv, false, "C_GetSessionInfo", "token '%s'", pi->token);
        }
    }
    rv = op->f->C_OpenSession(pi->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &op->s);
    if (rv != CKR_OK) {
        if (s_token_gone(rv))
            s_forget_token(pi);
        return kp_p11_ck(pi, NULL, rv, false, "C_OpenSession", "token '%s'", pi->token);
    }
    /* A new session of a logged-in application is logged in too; if it is not, log in. */
    if (op->f->C_GetSessionInfo(op->s, &si) == CKR_OK && si.state != CKS_RW_USER_FUNCTIONS &&
        si.state != CKS_RO_USER_FUNCTIONS)
        pi->logged_in = false;
    return KP_OK;
}

static kp_status s_acquire(kp_p11_inst *pi, kp_p11_op *op)
{
    kp_status st = KP_OK;

    memset(op, 0, sizeof(*op));
    op->pi = pi;
    pthread_mutex_lock(&pi->lock);
    st = s_token(pi);
    if (st == KP_OK) {
        op->f = pi->mod->f;
        op->slot = pi->slot;
        st = s_session(pi, op);
    }
    if (st == KP_OK && !pi->logged_in) {
        st = s_login(pi, op);
        if (st != KP_OK) {
            /* a live session goes back to the idle list; a dead one, or one that cannot, closes */
            bool keep = !s_session_dead(op->rv) && !s_token_gone(op->rv);
            if (keep)
                keep = s_push_idle(pi, op->s) == KP_OK;
            if (!keep)
                op->f->C_CloseSession(op->s);
            op->s = CK_INVALID_HANDLE;
        }
    }
    pthread_mutex_unlock(&pi->lock);
    return st;
}

static void s_release(kp_p11_inst *pi, kp_p11_op *op)
{
    CK_RV rv = op->rv;

    pthread_mutex_lock(&pi->lock);
    if (rv == CKR_USER_NOT_LOGGED_IN)
        pi->logged_in = false;
    if (s_token_gone(rv)) {
        op->f->C_CloseSession(op->s);
        s_forget_token(pi);
    } else if (s_session_dead(rv)) {
        /* Whatever killed it (a C_CloseAllSessions, a token reset) killed its siblings too. */
        op->f->C_CloseSession(op->s);
        s_flush(pi);
    } else if (s_push_idle(pi, op->s) != KP_OK) {
        op->f->C_CloseSession(op->s);
    }
    pthread_mutex_unlock(&pi->lock);
}

static kp_status s_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg);

kp_status kp_p11_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg)
{
    kp_status st;

    pthread_rwlock_rdlock(&pi->pl->io);
    st = s_run(pi, fn, arg);
    pthread_rwlock_unlock(&pi->pl->io);
    return st;
}

/* No listing can be taken while the write runs (listings are reads), so one kp_p11_wrote
 * after it drops every listing older than the write. No thread-local "writing" flag lets the
 * writer's own calls pass the lock: LeakSanitizer's tracer crashes on the dynamic TLS of a
 * dlopen'ed plugin (glibc 2.36); a writer's op makes no nested kp_p11_run. */
kp_status kp_p11_write_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg)
{
    kp_status st;

    pthread_rwlock_wrlock(&pi->pl->io);
    st = s_run(pi, fn, arg);
    kp_p11_wrote(pi);
    pthread_rwlock_unlock(&pi->pl->io);
    return st;
}

static kp_status s_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg)
{
    char buf[40];
    kp_p11_op op;
    kp_status st = KP_OK;

    for (int attempt = 0;; attempt++) {
        if ((st = s_acquire(pi, &op)) != KP_OK) {
            /* A stale idle session can fail the login too; a fresh one may not. */
            if (attempt == 0 && s_session_dead(op.rv))
                continue;
            return st;
        }
        st = fn(&op, arg);
        s_release(pi, &op);
        if (st != KP_OK && kp_p11_stale_handle(op.rv))
            kp_p11_cache_flush(pi); /* the key was destroyed or replaced: look it up again */
        if (st == KP_OK || attempt > 0 ||
            !(s_session_dead(op.rv) || op.rv == CKR_USER_NOT_LOGGED_IN ||
              kp_p11_stale_handle(op.rv)))
            return st;
        kp_logf(pi->up, pi->h, KP_LOG_DEBUG, "token '%s': %s, retrying on a fresh session",
                pi->token, kp_p11_rv_name(op.rv, buf, sizeof(buf)));
    }
}

kp_status kp_p11_mechanisms(kp_p11_inst *pi, kp_p11_op *op, CK_FUNCTION_LIST *f, CK_SLOT_ID slot,
                            CK_MECHANISM_TYPE **list, CK_ULONG *n)
{
    CK_MECHANISM_TYPE *all = NULL;
    kp_status st = KP_OK;
    CK_RV rv;

    *list = NULL;
    *n = 0;
    rv = f->C_GetMechanismList(slot, NULL, n);
    if (rv == CKR_OK && (all = calloc(*n + 1, sizeof(*all))) == NULL)
        return kp_p11_err(pi, KP_ERR_NOMEM, "out of memory");
    if (rv == CKR_OK)
        rv = f->C_GetMechanismList(slot, all, n);
    if (rv != CKR_OK)
        st = kp_p11_ck(pi, op, rv, false, "C_GetMechanismList", "token '%s'", pi->token);
    if (st == KP_OK) {
        *list = all;
        all = NULL;
    }
    free(all);
    return st;
}

kp_status kp_p11_probe_mechs(kp_p11_op *op)
{
    kp_p11_inst *pi = op->pi;
    CK_MECHANISM_TYPE *mechs = NULL, kwp = 0;
    CK_ULONG n = 0;
    bool pad = false, kwp_std = false, kw = false;

    pthread_mutex_lock(&pi->lock);
    bool probed = pi->mechs_probed;
    pthread_mutex_unlock(&pi->lock);
    if (probed)
        return KP_OK;
    KP_GUARD(kp_p11_mechanisms(pi, op, op->f, op->slot, &mechs, &n));
    for (CK_ULONG i = 0; mechs != NULL && i < n; i++) {
        pad = pad || mechs[i] == CKM_AES_KEY_WRAP_PAD;
        kwp_std = kwp_std || mechs[i] == CKM_AES_KEY_WRAP_KWP;
        kw = kw || mechs[i] == CKM_AES_KEY_WRAP;
    }
    free(mechs);
    /* 0x210A is RFC 5649 in SoftHSM and tokens before PKCS#11 v3.1, but PKCS#7 padding with
     * RFC 3394 in v3.1. A token that lists 0x210B knows the v3.1 numbering, so its 0x210A
     * may be the other algorithm: take 0x210B then, and 0x210A only when it is alone. */
    if (kwp_std)
        kwp = CKM_AES_KEY_WRAP_KWP;
    else if (pad)
        kwp = CKM_AES_KEY_WRAP_PAD;
    pthread_mutex_lock(&pi->lock);
    pi->kwp_mech = kwp;
    pi->have_kw = kw;
    pi->mechs_probed = true;
    pthread_mutex_unlock(&pi->lock);
    return KP_OK;
}

void kp_p11_sessions_close(kp_p11_inst *pi)
{
    /* Closing sessions is a token call like a read: never beside another instance's write
     * (kp_p11_write_run); never called from inside an op. */
    pthread_rwlock_rdlock(&pi->pl->io);
    pthread_mutex_lock(&pi->lock);
    if (pi->mod != NULL)
        s_flush(pi);
    free(pi->idle);
    pi->idle = NULL;
    pi->idle_cap = 0;
    pthread_mutex_unlock(&pi->lock);
    kp_p11_module_put(pi->pl, pi->mod);
    pi->mod = NULL;
    pthread_rwlock_unlock(&pi->pl->io);
}
