/*
 * template: what the plugin's files share. The template is the plugin a keyplane plugin author
 * starts from (docs/plugin-guide.md): a keystore of software RSA keys held in memory, with an
 * in-memory secret store beside it. Copy the directory, rename, and replace the in-memory lists
 * with calls to your backend; the ABI handling around them stays as it is.
 *
 *   template.c          the plugin: handshake, params, instance open/close/check/info
 *   template_keys.c     keystore: create, import, get, list, public key, wrap, unwrap; and the
 *                       two helpers every file uses (the sorted list, OpenSSL's error text)
 *   template_keyx.c     negotiated import and export of wrapped keys (RSA-AES key wrap)
 *   template_store.c    secret store and the chain-state document (compare-and-swap)
 *
 * The files call downwards only: template.c (the entry point) uses the others, template_keyx.c
 * and template_store.c use template_keys.c, and template_keys.c uses none of them.
 */
#ifndef TEMPLATE_H
#define TEMPLATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/provider.h>

/* The plugin's name: equal to the file name without .so (the loader refuses a plugin whose name
 * differs, so PLUGIN in the Makefile and in CMakeLists.txt must say the same), and the prefix of
 * every error text (TPL_NAME ": key %s not found"). Renaming the plugin is these three edits. */
#define TPL_NAME "template"

/* The plugin context (one per kp_plugin_init): the core's upcalls live here rather than in a
 * global, so two cores in one process (or two contexts of one core) never share state. */
typedef struct tpl_plugin {
    kp_upcalls up;
    kp_core_handle *h; /* for errors of the functions that have no instance */
} tpl_plugin;

/* One key version. Immutable once it is in the instance's list and freed only at close, so a
 * function may use it after dropping the lock. */
typedef struct tpl_key {
    kp_key_info info; /* what KS_GET and KS_LIST report (struct_size = ours) */
    EVP_PKEY *pkey;
} tpl_key;

/* One secret version, immutable once listed, like tpl_key. */
typedef struct tpl_secret {
    kp_secret_info info;
    kp_secret *value; /* the bytes live only in core-allocated, wiped-on-free memory */
    kp_meta *meta;    /* copies, owned */
    size_t nmeta;
} tpl_secret;

/* The chain-state document of one key name. Not secret, and replaced whole under the lock. */
typedef struct tpl_state {
    char name[KP_NAME_MAX];
    uint8_t *doc;
    size_t len;
} tpl_state;

#define TPL_TOKEN_LEN 16
#define TPL_OFFERS 16             /* offers remembered; an older one has lapsed */
#define TPL_OFFER_TTL (24 * 3600) /* seconds an offer stays valid, as a KMS import token */

typedef struct tpl_offer {
    uint8_t token[TPL_TOKEN_LEN];
    char name[KP_NAME_MAX];
    int64_t expires; /* 0: the slot is free */
} tpl_offer;

/* A growable array of pointers, kept sorted by (name, version) by its users. */
typedef struct tpl_vec {
    void **v;
    size_t n, cap;
} tpl_vec;

typedef struct tpl_inst {
    const kp_upcalls *up;
    kp_core_handle *h;

    /* Params, copied at open: the kp_param array is borrowed only for the call. */
    char *label;
    uint32_t max_versions; /* 0: no limit */
    bool secret_store;

    /* The ABI lets the core call any function from several threads at once, on one instance.
     * One mutex guards everything below; it is never held while calling back into the core
     * (a visitor may call this plugin again) nor during slow work such as key generation. */
    pthread_mutex_t lock;
    tpl_vec keys;    /* tpl_key * */
    tpl_vec secrets; /* tpl_secret * */
    tpl_vec states;  /* tpl_state * */
    EVP_PKEY *kek;   /* wrapping key of import offers, made by the first offer */
    tpl_offer offers[TPL_OFFERS];
    size_t next_offer;
} tpl_inst;

/* What this instance can do (INSTANCE_INFO, PLUGIN_DESCRIBE). */
#define TPL_WRAP_ALGS (KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256))
#define TPL_KEYX (KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256))
#define TPL_KEY_BITS (KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096)
#define TPL_SECRET_MAX (64 * 1024)

/* Every error of an instance: one line for the core (kp_errorf), prefixed with the plugin's
 * name; the format must be a string literal. Never pass key material or a secret. Both macros
 * are st (KP_ERRORF, kp_error_is of provider.h), which the static analyzer sees, as it does not
 * follow the variadic calls that return the same status. */
#define tpl_err(t, st, ...) KP_ERRORF((t)->up, (t)->h, st, TPL_NAME ": " __VA_ARGS__)

/* An OpenSSL failure: tpl_err's line with ": <OpenSSL's reason>" appended, the thread's OpenSSL
 * error queue left empty (the kit's kpk_ossl_errorf), so a stale error never shows up in the
 * core's next message. */
#define tpl_ossl_err(t, st, ...)                                                                   \
    kp_error_is(kpk_ossl_errorf((t)->up, (t)->h, (st), TPL_NAME ": " __VA_ARGS__), (st))

/* template_keys.c: what every file shares */
kp_status tpl_vec_insert(tpl_vec *vec, size_t at, void *item);

/* template_keys.c: the keystore */
void tpl_key_free(tpl_key *k);
kp_status tpl_key_add(tpl_inst *t, const kp_key_spec *spec, EVP_PKEY *pkey, kp_key_info *out);
kp_status tpl_key_find(tpl_inst *t, const char *name, uint32_t version, const tpl_key **k);
kp_status tpl_spec_rules(const kp_key_spec *spec, char *why, size_t len);
kp_status tpl_spec_check(tpl_inst *t, const kp_key_spec *in, kp_key_spec *spec);
kp_status tpl_pkey_from_pkcs8(tpl_inst *t, const kp_key_spec *spec, const kp_secret *der,
                              EVP_PKEY **pkey);
EVP_PKEY_CTX *tpl_oaep_ctx(EVP_PKEY *pkey, const EVP_MD *md, bool encrypt);
kp_ks_create_fn tpl_ks_create;
kp_ks_import_fn tpl_ks_import;
kp_ks_get_fn tpl_ks_get;
kp_ks_get_public_fn tpl_ks_get_public;
kp_ks_list_fn tpl_ks_list;
kp_ks_wrap_fn tpl_ks_wrap;
kp_ks_unwrap_fn tpl_ks_unwrap;

/* template_keyx.c */
kp_ks_import_offer_fn tpl_ks_import_offer;
kp_ks_import_wrapped_fn tpl_ks_import_wrapped;
kp_ks_export_wrapped_fn tpl_ks_export_wrapped;

/* template_store.c */
void tpl_secret_free(const kp_upcalls *up, tpl_secret *s);
void tpl_state_free(tpl_state *s);
kp_ks_state_get_fn tpl_ks_state_get;
kp_ks_state_put_fn tpl_ks_state_put;
kp_ss_put_fn tpl_ss_put;
kp_ss_get_fn tpl_ss_get;
kp_ss_list_fn tpl_ss_list;

#endif /* TEMPLATE_H */
