/*
 * The conformance kit's mock plugin: a correct in-memory software-RSA keystore and secret store
 * (OpenSSL), built once per fault. MOCK_FAULT_* picks the one thing it gets wrong, so each .so
 * proves the kit catches that fault and names the test; "good" has none and must pass.
 *   MOCK_FAULT_BAD_UNWRAP   unwrap returns other bytes than were wrapped
 *   MOCK_FAULT_LEAK_SECRET  unwrap allocates a secret it never frees
 *   MOCK_FAULT_RACE         the next version is read, then written after a pause, unlocked
 *   MOCK_FAULT_LIST_ORDER   versions are listed newest first
 *   MOCK_FAULT_FPR_CASE     fingerprints are reported in upper case
 *   MOCK_FAULT_LIE_LENGTH   GET_PUBLIC says KP_OK with *len beyond the capacity
 *   MOCK_FAULT_DOUBLE_FREE  SS_PUT frees a scratch secret twice
 *   MOCK_FAULT_WRITE_AFTER_FREE  unwrap writes into a scratch secret after freeing it
 *   MOCK_FAULT_UNINIT       INSTANCE_CHECK branches on uninitialised memory (only valgrind sees it)
 */
#ifndef KP_CONF_MOCK_H
#define KP_CONF_MOCK_H

#include <pthread.h>
#include <stdbool.h>

#include <openssl/evp.h>

#include <keyplane/provider.h>

#ifndef MOCK_NAME
#error "MOCK_NAME must be defined"
#endif

#define MOCK_SECRET_MAX 65536

typedef struct mock_version {
    uint32_t version, flags;
    EVP_PKEY *pkey;
    uint8_t *spki;
    size_t spki_len;
    char fpr[KPK_FPR_HEX];
    int64_t created;
} mock_version;

typedef struct mock_key {
    char name[KP_NAME_MAX];
    mock_version *v; /* ascending */
    size_t n, cap;
    uint8_t *state;
    size_t state_len;
    struct mock_key *next;
} mock_key;

typedef struct mock_sver {
    uint32_t version;
    uint8_t *value; /* plain memory of the plugin's, wiped when freed */
    size_t len;
    kp_meta *meta;
    size_t nmeta;
    int64_t created;
} mock_sver;

typedef struct mock_sec {
    char name[KP_NAME_MAX];
    mock_sver *v;
    size_t n, cap;
    struct mock_sec *next;
} mock_sec;

/* One per kp_plugin_init: the store every instance of it shares. */
typedef struct mock_ctx {
    kp_upcalls up;
    kp_core_handle *h;
    pthread_mutex_t lock;
    mock_key *keys;
    mock_sec *secrets;
    EVP_PKEY *kek; /* the wrapping key of KS_IMPORT_OFFER, made on first use */
} mock_ctx;

typedef struct mock_inst {
    mock_ctx *ctx;
    kp_core_handle *h;
    kp_secret *passphrase; /* an optional SECRET param, kept for the instance's life */
} mock_inst;

#define MOCK_WRAP_ALGS (KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256))
#define MOCK_UNWRAP_ALGS (MOCK_WRAP_ALGS | KP_ALG_BIT(KP_WRAP_RSA_PKCS1))
#define MOCK_KEYX (KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1) | KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256))
#define MOCK_KEY_BITS (KP_RSA_2048 | KP_RSA_3072 | KP_RSA_4096)

/* mock_keys.c */
bool mock_name_ok(const char *name);
mock_key *mock_key_find(mock_ctx *c, const char *name);         /* lock held */
mock_version *mock_version_find(mock_key *k, uint32_t version); /* 0 = latest */
void mock_info(const mock_key *k, const mock_version *v, kp_key_info *out);
/** Adds pkey (taken) as a version of spec->name; lock taken inside. raced != 0: the version
 *  MOCK_FAULT_RACE read before generating the key, written without a second look. */
kp_status mock_add(mock_inst *in, const kp_key_spec *spec, EVP_PKEY *pkey, kp_key_info *info,
                   uint32_t raced);
void mock_keys_free(mock_ctx *c);
kp_ks_create_fn mock_ks_create;
kp_ks_import_fn mock_ks_import;
kp_ks_get_public_fn mock_ks_get_public;
kp_ks_list_fn mock_ks_list;
kp_ks_get_fn mock_ks_get;
kp_ks_state_get_fn mock_ks_state_get;
kp_ks_state_put_fn mock_ks_state_put;
/* mock_wrap.c */
kp_ks_wrap_fn mock_ks_wrap;
kp_ks_unwrap_fn mock_ks_unwrap;
kp_ks_export_fn mock_ks_export;
kp_ks_export_wrapped_fn mock_ks_export_wrapped;
kp_ks_import_offer_fn mock_ks_import_offer;
kp_ks_import_wrapped_fn mock_ks_import_wrapped;
/* mock_ss.c */
kp_ss_put_fn mock_ss_put;
kp_ss_get_fn mock_ss_get;
kp_ss_list_fn mock_ss_list;
void mock_secrets_free(mock_ctx *c);

#endif
