/*
 * Internal declarations of the `azure-keyvault` plugin: a keystore in Azure Key Vault or a
 * Managed HSM, reached over its REST data plane (the Key Vault REST reference) with libcurl through
 * the provider kit and JSON through jansson. Nothing here crosses the plugin boundary.
 *
 * Mapping. A keyplane key `name` is the vault key `<key_prefix><name>`; each keyplane version
 * is one vault version (a 32-hex id) carrying the tags kp-chain, kp-version and kp-fpr.
 *
 * Visibility. A new vault version is made with the tags kp-chain and kp-pending (the number it
 * is meant to get) only; keyplane labels it (kp-version, kp-fpr) once its public key was checked
 * (the expected fingerprint of an import), or disables it and tags it kp-rejected when the check
 * fails. A reader sees a version only when it carries kp-version and a kp-fpr equal to the
 * fingerprint computed from the vault's modulus and exponent: versions made outside keyplane,
 * pending ones and rejected ones are skipped.
 */
#ifndef KP_AKV_INTERNAL_H
#define KP_AKV_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/http.h>
#include <keyplane/provider.h>

#define KP_AKV_DEFAULT_API "2025-07-01" /* newest stable (the Key Vault REST reference) */
#define KP_AKV_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define KP_AKV_DEFAULT_IMDS "http://169.254.169.254/metadata/identity/oauth2/token"
#define KP_AKV_NAME_SUM_MAX                                                                        \
    94 /* vault name + key name, Azure SQL TDE (Azure SQL customer-managed TDE) */
#define KP_AKV_URL_MAX 512
#define KP_AKV_VERSION_LEN 32 /* hex digits of a vault key version */
#define KP_AKV_MAX_BODY (1024 * 1024)
#define KP_AKV_ERR 256

/** How the instance gets its bearer tokens. */
typedef enum akv_auth_mode {
    AKV_AUTH_CLIENT_SECRET = 1,
    AKV_AUTH_MANAGED_IDENTITY = 2
} akv_auth_mode;

/** One keyplane version of a vault key, as far as it is known. */
typedef struct akv_version {
    uint32_t version;                   /* keyplane version (kp-version tag) */
    char azver[KP_AKV_VERSION_LEN + 1]; /* the vault's version id */
    bool enabled;
    int64_t created, exp; /* exp 0 = none */
    uint32_t bits;
    char tag_fpr[KPK_FPR_HEX]; /* the kp-fpr tag */
    char fpr[KPK_FPR_HEX];     /* computed from n, e; "" until fetched */
    uint8_t *spki;             /* SubjectPublicKeyInfo DER, or NULL until fetched */
    size_t spki_len;
} akv_version;

/** The known versions of one key, ascending by version. */
typedef struct akv_key {
    char name[KP_NAME_MAX]; /* keyplane name (without the prefix) */
    akv_version *v;
    size_t n;
    time_t loaded; /* when the listing was read */
} akv_key;

/** The plugin context. */
typedef struct akv_plugin {
    kp_upcalls up;
    kp_core_handle *h; /* plugin-level handle: errors of DESCRIBE and CHECK_KEY */
} akv_plugin;

/** Where keys live, from the params: what the domain rules need (no secret, no I/O). */
typedef struct akv_place {
    char vault_url[KP_AKV_URL_MAX]; /* https://host[:port], no trailing slash */
    char vault_host[256];           /* host of vault_url (no port) */
    char vault_name[64];            /* first label of the host */
    char key_prefix[64];
} akv_place;

/** One open instance: a vault URL, credentials, a transport, a token and a version cache. */
typedef struct akv_inst {
    const kp_upcalls *up;
    kp_core_handle *h;
    char vault_url[KP_AKV_URL_MAX]; /* https://host[:port], no trailing slash */
    char vault_host[256];           /* host of vault_url (no port) */
    char vault_name[64];            /* first label of the host */
    char api_version[32];
    char key_prefix[64];
    akv_auth_mode auth;
    char tenant[128];
    char client_id[128];
    kp_secret *client_secret;
    char authority[KP_AKV_URL_MAX];
    char imds[KP_AKV_URL_MAX];
    char mi_client_id[128];
    char scope_param[KP_AKV_URL_MAX]; /* the `scope` param, or "" to learn it from the challenge */
    bool hsm;                         /* create keys as RSA-HSM */
    bool verify_challenge_resource;
    char ca_bundle[1024];
    kpk_http_config http_cfg;

    pthread_mutex_t lock; /* guards everything below: one request at a time per instance */
    kpk_http *http;
    char scope[KP_AKV_URL_MAX]; /* learnt from the challenge (or the param) */
    kp_secret *token;           /* "Bearer ..." header value ready to send, or NULL */
    time_t token_exp;
    akv_key *keys;
    size_t nkeys;
} akv_inst;

#define KP_AKV_GUARD(x)                                                                            \
    do {                                                                                           \
        kp_status s_guard_ = (x);                                                                  \
        if (s_guard_ != KP_OK)                                                                     \
            return s_guard_;                                                                       \
    } while (0)

/** Sets the instance's error text (printf-style) and returns st; read it back with
 *  a->up->get_error(a->h). */
#define akv_err(a, st, ...) kp_errorf((a)->up, (a)->h, (st), __VA_ARGS__)

/* akv_plugin.c */
/** Reads how tokens are had (auth, and whether client_id and client_secret are given).
 *  KP_ERR_CONFIG when they contradict each other. */
kp_status akv_auth_read(const kp_upcalls *up, kp_core_handle *h, const kp_param *params,
                        akv_auth_mode *mode);

/* akv_rules.c: the store's domain rules, one function per rule, used both from params alone
 * (PLUGIN_CHECK_KEY, PLUGIN_DESCRIBE) and by the operations of an open instance. */

/** Reads vault_url and key_prefix from params into out. KP_ERR_CONFIG with a reason. */
kp_status akv_place_read(const kp_upcalls *up, kp_core_handle *h, const kp_param *params,
                         akv_place *out);
/** The key spec rule: RSA of 2048 or 3072 bits (bits 0: not known yet, accepted).
 *  KP_ERR_UNSUPPORTED naming the rule. */
kp_status akv_rule_key(const kp_upcalls *up, kp_core_handle *h, const char *vault_name,
                       uint32_t type, uint32_t bits);
/** The name rule: letters, digits and '-' only; prefix + name at most 127 characters, and
 *  vault name + vault key name at most KP_AKV_NAME_SUM_MAX. vname (may be NULL) receives the
 *  vault key name. KP_ERR_INVALID_ARG naming the rule. */
kp_status akv_rule_name(const kp_upcalls *up, kp_core_handle *h, const char *vault_name,
                        const char *key_prefix, const char *name, char vname[KP_NAME_MAX]);
/** What every instance is and can do (INSTANCE_INFO, PLUGIN_DESCRIBE), into the caller's
 *  storage as far as its struct_size reaches. */
void akv_instance_info_put(kp_instance_info *info);
kp_instance_info_fn akv_instance_info;
kp_plugin_describe_fn akv_plugin_describe;
kp_plugin_check_key_fn akv_plugin_check_key;

/* akv_json.c: parsers of service answers. Pure functions over bytes (the fuzz target drives
 * them); err receives a one-line reason, never a secret. */

/** The error body {"error":{"code","message","innererror":{"code"}}} (any part may miss). */
typedef struct akv_error_body {
    char code[64];
    char inner[64];
    char message[200];
} akv_error_body;
void akv_parse_error(const uint8_t *body, size_t len, akv_error_body *out);

/** A key bundle's key part and attributes. */
typedef struct akv_bundle {
    char name[KP_NAME_MAX];             /* vault key name from the kid */
    char azver[KP_AKV_VERSION_LEN + 1]; /* version from the kid */
    char kid[KP_BACKEND_ID_MAX];
    bool hsm;
    bool enabled;
    int64_t created, exp;
    uint32_t kp_version; /* 0 when untagged */
    char tag_chain[KP_NAME_MAX];
    char tag_fpr[KPK_FPR_HEX];
    uint32_t kp_pending; /* the kp-pending tag: made, not yet checked and labelled; 0 none */
    uint8_t *spki;       /* malloc'd SubjectPublicKeyInfo DER (NULL for list items) */
    size_t spki_len;
    uint32_t bits;
    char fpr[KPK_FPR_HEX];
    bool import_only; /* key_ops is exactly ["import"] (a BYOK KEK) */
} akv_bundle;
void akv_bundle_clear(akv_bundle *b);

/** Parses a KeyBundle (create, import, get, restore): kid, kty RSA/RSA-HSM, n, e, attributes,
 *  tags. KP_ERR_BACKEND with err set when anything required is missing or malformed. */
kp_status akv_parse_bundle(const uint8_t *body, size_t len, akv_bundle *out, char *err,
                           size_t errlen);

/** Parses one page of a list: calls item for each element of value[] (a list item: no key
 *  material, spki NULL) and copies nextLink (or "" when null/absent). */
kp_status akv_parse_page(const uint8_t *body, size_t len,
                         kp_status (*item)(void *arg, const akv_bundle *b), void *arg, char *next,
                         size_t nextlen, char *err, size_t errlen);

/** Parses {"value": base64url} (wrap, unwrap, backup) into out (at most *outlen bytes). */
kp_status akv_parse_value(const uint8_t *body, size_t len, uint8_t *out, size_t *outlen, char *err,
                          size_t errlen);

/** Parses a token answer (AAD v2, v1 or IMDS): access_token into tok (a NUL-terminated copy of
 *  at most toklen-1 bytes) and the lifetime in seconds from expires_in, or expires_on - now,
 *  each a number or a string of digits. */
kp_status akv_parse_token(const uint8_t *body, size_t len, time_t now, char *tok, size_t toklen,
                          int64_t *lifetime, char *err, size_t errlen);
/** The AAD error body {"error","error_description"} as "error: first line of description". */
void akv_parse_token_error(const uint8_t *body, size_t len, char *out, size_t outlen);

/** A parsed WWW-Authenticate Bearer challenge. */
typedef struct akv_challenge {
    char authorization[KP_AKV_URL_MAX]; /* authorization or authorization_uri */
    char resource[KP_AKV_URL_MAX];      /* resource, or scope without /.default */
    char scope[KP_AKV_URL_MAX];         /* scope, or resource + /.default */
    char tenant[128];                   /* first path segment of authorization */
} akv_challenge;
kp_status akv_parse_challenge(const char *header, akv_challenge *out, char *err, size_t errlen);

/* akv_jwk.c */
/** SubjectPublicKeyInfo DER (malloc'd) and its fingerprint from base64url n and e. */
kp_status akv_spki_from_ne(const char *n, size_t nlen, const char *e, size_t elen, uint8_t **spki,
                           size_t *spki_len, uint32_t *bits, char fpr[KPK_FPR_HEX]);
/** The JWK members n, e, d, p, q, dp, dq, qi of a PKCS#8 RSA key, set into jwk (each string
 *  is wiped by akv_json_wipe before the object is freed). Also returns bits and fingerprint. */
kp_status akv_jwk_from_pkcs8(const uint8_t *der, size_t len, json_t *jwk, uint32_t *bits,
                             char fpr[KPK_FPR_HEX]);
/** Wipes every string value in a JSON tree (key material in jansson's memory), then frees it. */
void akv_json_wipe(json_t *j);
/** Serialises j into a new secret (so the body holding key material is wiped after sending). */
kp_status akv_json_dump_secret(akv_inst *a, const json_t *j, kp_secret **out);

/* akv_auth.c */
/** Makes sure a->token is valid for a->scope; forced drops the cached one first. */
kp_status akv_token(akv_inst *a, bool forced);
/** Learns scope and tenant from a challenge header. */
kp_status akv_take_challenge(akv_inst *a, const char *header);

/* akv_rest.c */
typedef struct akv_resp {
    long status;
    kpk_http_response http;
} akv_resp;
#define AKV_UNSAFE KPK_HTTP_UNSAFE
/**
 * One call to the keys API: path is "/keys/..." (no query; api-version is added) or an absolute
 * nextLink of this vault. body may be NULL. On a 2xx answer returns KP_OK with resp filled;
 * any other answer is mapped to a status with the service's code and message in the error
 * text (what names the operation, e.g. "wrap tde v2"). 404 returns KP_ERR_NOT_FOUND quietly
 * (the caller words it). resp is always released by the caller with akv_resp_free; after a
 * failure it holds only the HTTP status (0 when no answer came).
 */
kp_status akv_call(akv_inst *a, const char *method, const char *path, const uint8_t *body,
                   size_t body_len, unsigned flags, const char *what, akv_resp *resp);
void akv_resp_free(akv_resp *r);
/** Decodes the "value" of a 2xx answer (wrap, unwrap, backup) into a new secret of at most max
 *  bytes, parsing the JSON once; frees (and so wipes) the answer either way. */
kp_status akv_resp_value(akv_inst *a, akv_resp *r, size_t max, const char *what, kp_secret **out);
/** Percent-encodes s into out (RFC 3986 unreserved kept). By hand, not curl_easy_escape: the
 *  client secret goes through it, and out may be kp_secret memory (curl would malloc a copy
 *  it never wipes). */
kp_status akv_urlenc(const char *s, size_t len, char *out, size_t outlen);
kp_status akv_send(akv_inst *a, const kpk_http_request *req, kpk_http_response *resp);

/* akv_keys.c */
/** The vault key name of keyplane name (prefix + name), checking the name rule. */
kp_status akv_vault_name(akv_inst *a, const char *name, char out[KP_NAME_MAX]);
/** Calls item for every version of the vault key vname (list items: tags and attributes, no
 *  key material), following nextLink. KP_OK without a call when the key does not exist. */
kp_status akv_versions_each(akv_inst *a, const char *vname,
                            kp_status (*item)(void *arg, const akv_bundle *b), void *arg);
/** Lists the visible versions of name (fresh when refresh, else cached), fetching public keys. */
kp_status akv_key_load(akv_inst *a, const char *name, bool refresh, akv_key **out);
/** Finds version (0 = the highest) of a loaded key; NULL when absent. */
akv_version *akv_key_find(akv_key *k, uint32_t version);
/** Looks up name/version (0 = the latest), from the cache unless refresh, listing again once
 *  when it is not cached. */
kp_status akv_version_get(akv_inst *a, const char *name, uint32_t version, bool refresh,
                          akv_version **out);
void akv_keys_free(akv_inst *a);
/** Forgets the cached listing of name (after a create or import). */
void akv_key_forget(akv_inst *a, const char *name);
/** Fills a full kp_key_info (struct_size = sizeof(kp_key_info)). */
void akv_info_fill(const akv_inst *a, const char *name, const akv_version *v, kp_key_info *info);
/** Picks the number of a new version of spec->name: spec->version (KP_ERR_EXISTS when a visible
 *  version has it), or the next free one. */
kp_status akv_new_version(akv_inst *a, const kp_key_spec *spec, uint32_t *version);
/** Records a labelled bundle as version v of name (refreshes the cache); info (may be NULL)
 *  receives it through kp_key_info_put. */
kp_status akv_take_bundle(akv_inst *a, const char *name, uint32_t version, akv_bundle *b,
                          kp_key_info *info);
/** The tags of a visible version (fpr set) or of a pending one (fpr NULL: kp-pending). */
json_t *akv_tags(const char *name, uint32_t version, const char *fpr);

/* akv_create.c: how a new version comes to be (made pending, checked, labelled). */
/** The key_ops of a keyplane key: ["wrapKey", "unwrapKey"]. */
json_t *akv_key_ops(void);
/** The attributes of a new version: {"enabled": true}, no expiry (TDE refuses expiring keys). */
json_t *akv_new_attributes(void);
/**
 * Sends body j (create: POST .../create; import: PUT; the tags are added here) for version
 * `version` of name, then checks what the vault made: its fingerprint must be fpr (NULL for a
 * create) and its size pass the key rule, else the version is disabled and tagged kp-rejected
 * (KP_ERR_INTEGRITY, KP_ERR_UNSUPPORTED). Only then is it labelled and so visible. After a
 * failure in transit a pending version of that number (and fpr) is adopted. info (caller
 * storage) receives the version.
 */
kp_status akv_version_make(akv_inst *a, const char *name, uint32_t version, bool create, json_t *j,
                           const char *fpr, kp_key_info *info);

/* Keystore functions (dispatch table). */
kp_ks_create_fn akv_ks_create;
kp_ks_import_fn akv_ks_import;
kp_ks_get_public_fn akv_ks_get_public;
kp_ks_list_fn akv_ks_list;
kp_ks_get_fn akv_ks_get;
kp_ks_wrap_fn akv_ks_wrap;
kp_ks_unwrap_fn akv_ks_unwrap;
kp_ks_import_offer_fn akv_ks_import_offer;
kp_ks_import_wrapped_fn akv_ks_import_wrapped;
kp_ks_backup_fn akv_ks_backup;
kp_ks_restore_fn akv_ks_restore;
kp_instance_check_fn akv_instance_check;

#endif
