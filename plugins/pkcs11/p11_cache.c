/*
 * A small cache of resolved key versions per instance (see kp_p11_cached).
 */
#include <stdlib.h>
#include <string.h>

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

void kp_p11_cache_flush_locked(kp_p11_inst *pi)
{
    for (size_t i = 0; i < KP_P11_CACHE; i++) {
        pi->cache[i].used = false;
        pi->cache[i].pub = CK_INVALID_HANDLE;
    }
}

void kp_p11_cache_flush(kp_p11_inst *pi)
{
    pthread_mutex_lock(&pi->lock);
    kp_p11_cache_flush_locked(pi);
    pthread_mutex_unlock(&pi->lock);
}

void kp_p11_cache_free(kp_p11_inst *pi)
{
    for (size_t i = 0; i < KP_P11_CACHE; i++) {
        free(pi->cache[i].key);
        pi->cache[i].key = NULL;
        pi->cache[i].used = false;
    }
}
