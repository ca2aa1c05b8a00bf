/*
 * Single-fault mock plugins (p11-kit's mock-module-ep*.c idea): each build is a plugin that is
 * correct in every way but one, so the loader's or the core's defence against that one fault is
 * tested alone. The good build (no MOCK_FAULT_*) is a working in-memory RSA keystore.
 *
 * Faults, one per build (see CMakeLists.txt):
 *   MOCK_ABI_MAJOR=N              plugin info claims ABI major N
 *   MOCK_FAULT_NEWER_MINOR        plugin info needs KP_ABI_MINOR + 1
 *   MOCK_FAULT_MISSING_WRAP       no KS_WRAP (204) although it declares a keystore
 *   MOCK_FAULT_MISSING_INST_INFO  no INSTANCE_INFO (113)
 *   MOCK_FAULT_INIT_FAILS         kp_plugin_init sets an error and fails
 *   MOCK_FAULT_NO_INIT            exports no kp_plugin_init
 *   MOCK_FAULT_LYING_LENGTH       KS_WRAP and KS_GET_PUBLIC return KP_OK with *len larger than
 *                                 the capacity offered (they never write past it)
 *   MOCK_FAULT_EMPTY_UNWRAP       KS_UNWRAP returns KP_OK with a zero-length secret
 *   MOCK_FAULT_BAD_FPR            KS_LIST and KS_GET report the fingerprint in upper case
 *   MOCK_FAULT_OTHER_NAME         KS_LIST and KS_GET report every key under another name
 *   MOCK_FAULT_OTHER_VERSION      KS_CREATE reports another version than it made
 *   MOCK_FAULT_LONG_UNWRAP        KS_UNWRAP returns a key longer than the wrapped bytes
 *   MOCK_FAULT_WIDE_CAPS          INSTANCE_INFO claims a capability the plugin does not declare
 *   MOCK_FAULT_HALF_PAIR          offers KS_STATE_GET without KS_STATE_PUT
 * The no-version-node build is the good source linked without the KEYPLANE_PROVIDER_1 node.
 *
 * Keys live in the plugin context (shared by its instances, gone when the process ends): key
 * "mock" v1, an RSA-2048 key generated when the first instance opens, plus what KS_CREATE adds.
 */
#ifndef KP_MOCK_COMMON_H
#define KP_MOCK_COMMON_H

#include <pthread.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <keyplane/provider.h>

#ifndef MOCK_NAME
#error "MOCK_NAME must be defined"
#endif

#define MOCK_KEYS_MAX 64   /* versions the mock holds in all */
#define MOCK_LIE_EXTRA 720 /* bytes a lying length claims beyond the capacity */

typedef struct mock_key {
    char name[KP_NAME_MAX];
    uint32_t version;
    int64_t created;
    EVP_PKEY *pkey;
    uint8_t *spki;
    size_t spki_len;
    char fpr[KPK_FPR_HEX];
} mock_key;

/* The plugin context: the core's upcalls and the keys. */
typedef struct mock_plugin {
    kp_upcalls up;
    kp_core_handle *h;
    pthread_mutex_t lock; /* guards keys and n */
    mock_key keys[MOCK_KEYS_MAX];
    size_t n;
} mock_plugin;

typedef struct mock_inst {
    mock_plugin *pl;
    kp_core_handle *h;
} mock_inst;

/* mock_keystore.c: the keystore functions, with the selected fault. */
kp_ks_create_fn kp_mock_create;
kp_ks_get_fn kp_mock_get;
kp_ks_get_public_fn kp_mock_get_public;
kp_ks_list_fn kp_mock_list;
kp_ks_wrap_fn kp_mock_wrap;
kp_ks_unwrap_fn kp_mock_unwrap;

/* Adds an RSA-2048 key as name/version (0 = next); caller holds pl->lock. */
kp_status kp_mock_add_key(mock_plugin *pl, kp_core_handle *h, const char *name, uint32_t version,
                          mock_key **out);
/* Frees every key (teardown). */
void kp_mock_keys_free(mock_plugin *pl);

#endif
