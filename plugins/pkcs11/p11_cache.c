/*
 * What an instance keeps of the token between calls: a small cache of resolved key versions
 * (see kp_p11_cached), and the listing of the whole token that many reads share (kp_p11_snap;
 * made in p11_snap.c). Both are dropped when a handle turns out stale or the token goes away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/clock.h>

#include "p11_internal.h"

bool kp_p11_stale_handle(CK_RV rv)
{
    /* An AES key used as the (un)wrapping key reports its stale handle with its own codes. */
    return rv == CKR_OBJECT_HANDLE_INVALID || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_WRAPPING_KEY_HANDLE_INVALID || rv == CKR_UNWRAPPING_KEY_HANDLE_INVALID;
}

static kp_p11_cached *s_slot(kp_p11_inst *pi, const char *name, uint32_t version)
{
    for (size_t i = 0; i < KP_P11_CACHE; i++) {
        kp_p11_cached *c = &pi->cache[i];
        if (c->used && c->key->version == version && strcmp(c->key->name, name) == 0)
            return c;
    }
    return NULL;
}

bool kp_p11_cache_get(kp_p11_inst *pi, const char *name, uint32_t version, kp_p11_key *key,
                      CK_OBJECT_HANDLE *pub)
{
    pthread_mutex_lock(&pi->lock);
    kp_p11_cached *c = s_slot(pi, name, version);
    bool hit = c != NULL && (pub == NULL || c->pub != CK_INVALID_HANDLE);
    if (hit) {
        *key = *c->key;
        if (pub != NULL)
            *pub = c->pub;
    }
    pthread_mutex_unlock(&pi->lock);
    return hit;
}

void kp_p11_cache_put(kp_p11_inst *pi, const kp_p11_key *key, CK_OBJECT_HANDLE pub)
{
    pthread_mutex_lock(&pi->lock);
    kp_p11_cached *c = s_slot(pi, key->name, key->version);
    if (c != NULL && c->key->obj != key->obj) {
        c->pub = CK_INVALID_HANDLE; /* another object now: its public key is unchecked */
    }
    if (c == NULL) {
        c = &pi->cache[pi->cache_next];
        pi->cache_next = (pi->cache_next + 1) % KP_P11_CACHE;
        if (c->key == NULL)
            c->key = malloc(sizeof(*c->key));
        c->pub = CK_INVALID_HANDLE;
    }
    if (c->key != NULL) {
        *c->key = *key;
        c->used = true;
        if (pub != CK_INVALID_HANDLE)
            c->pub = pub;
    } else {
        c->used = false;
    }
    pthread_mutex_unlock(&pi->lock);
}

/* Drops one reference to s. Lock held. */
static void s_snap_unref(kp_p11_snap *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    free(s->keys);
    free(s->pubs);
    free(s->docs);
    free(s);
}

void kp_p11_cache_flush_locked(kp_p11_inst *pi)
{
    for (size_t i = 0; i < KP_P11_CACHE; i++) {
        pi->cache[i].used = false;
        pi->cache[i].pub = CK_INVALID_HANDLE;
    }
    s_snap_unref(pi->snap);
    pi->snap = NULL;
}

kp_p11_snap *kp_p11_snap_hold(kp_p11_inst *pi)
{
    kp_p11_snap *s;

    pthread_mutex_lock(&pi->lock);
    s = pi->snap;
    if (s != NULL && (pi->mod == NULL || s->writes != pi->mod->writes ||
                      kpk_clock_ns() / 1000000u - s->taken_ms >= KP_P11_SNAP_MS)) {
        s_snap_unref(s);
        pi->snap = s = NULL;
    }
    if (s != NULL)
        s->refs++;
    pthread_mutex_unlock(&pi->lock);
    return s;
}

void kp_p11_snap_install(kp_p11_inst *pi, kp_p11_snap *s)
{
    pthread_mutex_lock(&pi->lock);
    s_snap_unref(pi->snap);
    pi->snap = s;
    pthread_mutex_unlock(&pi->lock);
}

void kp_p11_snap_put(kp_p11_inst *pi, kp_p11_snap *s)
{
    pthread_mutex_lock(&pi->lock);
    s_snap_unref(s);
    pthread_mutex_unlock(&pi->lock);
}

bool kp_p11_snap_wanted(kp_p11_inst *pi, const char *name)
{
    bool wanted;

    pthread_mutex_lock(&pi->lock);
    if (name != NULL && pi->first_read[0] == '\0')
        snprintf(pi->first_read, sizeof(pi->first_read), "%s", name);
    else if (name == NULL || strcmp(pi->first_read, name) != 0)
        pi->many_read = true;
    wanted = pi->many_read;
    pthread_mutex_unlock(&pi->lock);
    return wanted;
}

void kp_p11_wrote(kp_p11_inst *pi)
{
    pthread_mutex_lock(&pi->lock);
    if (pi->mod != NULL)
        pi->mod->writes++;
    s_snap_unref(pi->snap);
    pi->snap = NULL;
    pthread_mutex_unlock(&pi->lock);
}

void kp_p11_cache_flush(kp_p11_inst *pi)
{
    pthread_mutex_lock(&pi->lock);
    kp_p11_cache_flush_locked(pi);
    pthread_mutex_unlock(&pi->lock);
}

void kp_p11_cache_free(kp_p11_inst *pi)
{
    s_snap_unref(pi->snap);
    pi->snap = NULL;
    for (size_t i = 0; i < KP_P11_CACHE; i++) {
        free(pi->cache[i].key);
        pi->cache[i].key = NULL;
        pi->cache[i].used = false;
    }
}
