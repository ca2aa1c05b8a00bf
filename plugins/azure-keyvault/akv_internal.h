/*
 * Internal declarations of the `azure-keyvault` plugin: a keystore in Azure Key Vault or a
 * Managed HSM, reached over its REST data plane (the Key Vault REST reference) with libcurl through
 * the provider kit and JSON through jansson. Nothing here crosses the plugin boundary; the pure
 * layer the fuzz target links is declared apart, in akv_codec.h.
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
 *
 * Files, each calling only the ones before it (link.cycles checks it): akv_jwk, akv_json (pure,
 * akv_codec.h); akv_params (the params), akv_rules (the domain rules); akv_http (the transport),
 * akv_pace (pacing under the vault's limits), akv_auth (tokens), akv_rest (one keys-API call);
 * akv_keys (versions and their cache); akv_create (how a version is made), akv_import; akv_wrap,
 * akv_backup, akv_check; and at the top akv_plugin, the entry point, which nothing calls.
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

#include "akv_codec.h"

#define KP_AKV_DEFAULT_API "2025-07-01" /* newest stable (the Key Vault REST reference) */
#define KP_AKV_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define KP_AKV_DEFAULT_IMDS "http://169.254.169.254/metadata/identity/oauth2/token"
#define KP_AKV_NAME_SUM_MAX                                                                        \
    94 /* vault name + key name, Azure SQL TDE (Azure SQL customer-managed TDE) */
#define KP_AKV_MAX_BODY (1024 * 1024)
/* One lookup, listing, wrap or unwrap (the `deadline_ms` param): time enough for a healthy
 * vault's probe, token and call, short enough that a region answering 503 with an hour's
 * Retry-After, or not answering at all, costs seconds before the core fails over. */
#define KP_AKV_DEFAULT_DEADLINE_MS 10000L

/* Errors. */

/** Where error text goes: the core's upcalls and the handle of the call being answered. What
 *  runs for the plugin as well as for an instance (reading params, the domain rules) takes one. */
typedef struct kp_akv_sink {
    const kp_upcalls *up;
    kp_core_handle *h;
} kp_akv_sink;
/** The sink of an instance. */
#define KP_AKV_SINK(a) ((kp_akv_sink){.up = (a)->up, .h = (a)->h})
/** The one way this plugin sets error text: on x (an instance, or a kp_akv_sink *), printf-style,
 *  one line, no secret; returns st. Read it back with x->up->get_error(x->h). */
#define kp_akv_err(x, st, ...) KP_ERRORF((x)->up, (x)->h, st, __VA_ARGS__)

/* Types. */

/** How the instance gets its bearer tokens. */
typedef enum kp_akv_auth_mode {
    KP_AKV_AUTH_CLIENT_SECRET = 1,
    KP_AKV_AUTH_MANAGED_IDENTITY = 2
} kp_akv_auth_mode;

/** One keyplane version of a vault key, as far as it is known. */
typedef struct kp_akv_version {
    uint32_t version;                      /* keyplane version (kp-version tag) */
    char azver[KP_AKV_VERSION_LEN + 1];    /* the vault's version id */
    char prev[KP_AKV_VERSION_LEN + 1];     /* its kp-prev tag ("" none) */
    char dup[KP_AKV_VERSION_LEN + 1];      /* a newer vault version claiming the same number with
                                              another key ("" none): a lost race, rejected by the
                                              next write (akv_create.c) */
    char dup_prev[KP_AKV_VERSION_LEN + 1]; /* that version's kp-prev */
    char recovery[48];                     /* attributes.recoveryLevel ("" not known) */
    bool enabled;
    int64_t created, exp; /* exp 0 = none */
    uint32_t bits;
    char tag_fpr[KPK_FPR_HEX]; /* the kp-fpr tag */
    char fpr[KPK_FPR_HEX];     /* computed from n, e; "" until fetched */
    uint8_t *spki;             /* SubjectPublicKeyInfo DER, or NULL until fetched */
    size_t spki_len;
} kp_akv_version;

/** The known versions of one key, ascending by version. */
typedef struct kp_akv_key {
    char name[KP_NAME_MAX]; /* keyplane name (without the prefix) */
    kp_akv_version *v;
    size_t n;
    time_t loaded; /* when the listing was read */
    bool walk_cut; /* walked (list_denied) and a version without kp-prev ended the walk */
} kp_akv_key;

/** The plugin context. */
typedef struct kp_akv_plugin {
    kp_upcalls up;
    kp_core_handle *h; /* plugin-level handle: errors of DESCRIBE and CHECK_KEY */
} kp_akv_plugin;

/** Where keys live, from the params: what the domain rules need (no secret, no I/O). */
typedef struct kp_akv_place {
    char vault_url[KP_AKV_URL_MAX]; /* https://host[:port], no trailing slash */
    char vault_host[256];           /* host of vault_url (no port) */
    char vault_name[64];            /* first label of the host */
    char key_prefix[64];
} kp_akv_place;

/** One open instance: a vault URL, credentials, a transport, a token and a version cache. */
typedef struct kp_akv_inst {
    const kp_upcalls *up;
    kp_core_handle *h;
    kp_akv_place place;
    char api_version[32];
    kp_akv_auth_mode auth;
    char tenant[128];
    char client_id[128];
    kp_secret *client_secret;
    char authority[KP_AKV_URL_MAX];
    char imds[KP_AKV_URL_MAX];
    char mi_client_id[128];
    char scope_param[KP_AKV_URL_MAX]; /* the `scope` param, or "" to learn it from the challenge */
    bool hsm;                         /* create keys as RSA-HSM */
    bool role_dek; /* the `role` param is dek: the identity only wraps and unwraps (check) */
    bool pace;     /* the `pace` param: creates start at the documented budget (akv_pace.c) */
    bool verify_challenge_resource;
    char ca_bundle[1024];
    kpk_http_config http_cfg;
    long deadline_ms; /* the `deadline_ms` param: budget of one bounded operation */

    pthread_mutex_t lock; /* guards everything below: one request at a time per instance */
    int64_t deadline;     /* kpk_http_clock_ms() by which the operation must end; 0 = none */
    kpk_http *http;
    char scope[KP_AKV_URL_MAX]; /* learnt from the challenge (or the param) */
    kp_secret *token;           /* "Bearer ..." header value ready to send, or NULL */
    time_t token_exp;
    kp_akv_key *keys;
    size_t nkeys;
    bool list_denied;    /* the vault refused this identity keys/list: versions are walked */
    char client_rid[40]; /* x-ms-client-request-id of the last keys-API request (errors name it) */
    int64_t paced_ms;    /* time spent waiting for the vault's budget (akv_pace.c) */
} kp_akv_inst;

/* akv_params.c: the parameters (PLUGIN_PARAMS) and how they are read. */

/** The parameter descriptions, ending with a NULL name. */
extern const kp_param_desc kp_akv_param_list[];
/** Reads vault_url and key_prefix from params into out. KP_ERR_CONFIG with a reason. */
kp_status kp_akv_place_read(kp_akv_sink to, const kp_param *params, kp_akv_place *out);
/** Reads how tokens are had (auth, and whether client_id and client_secret are given).
 *  KP_ERR_CONFIG when they contradict each other. */
kp_status kp_akv_auth_read(kp_akv_sink to, const kp_param *params, kp_akv_auth_mode *mode);
/** Checks and copies every param into a new instance (a->up and a->h set, the rest zero). */
kp_status kp_akv_params_take(kp_akv_inst *a, const kp_param *params);

/* akv_rules.c: the store's domain rules, one function per rule, used both from params alone
 * (PLUGIN_CHECK_KEY, PLUGIN_DESCRIBE) and by the operations of an open instance. */

/** The key spec rule: RSA of 2048 or 3072 bits (bits 0: not known yet, accepted).
 *  KP_ERR_UNSUPPORTED naming the rule. */
kp_status kp_akv_rule_key(kp_akv_sink to, const char *vault_name, uint32_t type, uint32_t bits);
/** The vault key name of keyplane name (prefix + name) of an instance, checking the name rule. */
kp_status kp_akv_vault_name(kp_akv_inst *a, const char *name, char out[KP_NAME_MAX]);
/** Both rules for a key of an instance: the vault key name of name into vname, and the key rule
 *  for type and bits. */
kp_status kp_akv_rule_spec(kp_akv_inst *a, const char *name, uint32_t type, uint32_t bits,
                           char vname[KP_NAME_MAX]);
/** The purge-protection rule: Azure SQL refuses a customer-managed TDE protector from a vault
 *  without soft delete and purge protection, which a key's attributes.recoveryLevel shows
 *  (Recoverable or CustomizedRecoverable, alone or +ProtectedSubscription). Writes into gap the
 *  one-line finding with its fix for a level without them, "" otherwise (also for an unknown,
 *  empty one). */
void kp_akv_rule_recovery(const char *vault_name, const char *level, char *gap, size_t gaplen);
kp_instance_info_fn kp_akv_instance_info;
kp_plugin_describe_fn kp_akv_plugin_describe;
kp_plugin_check_key_fn kp_akv_plugin_check_key;

/* akv_http.c */
/** Takes the instance's lock for one operation of the dispatch table. A bounded one (a key
 *  lookup, a listing, a wrap, an unwrap: what failover waits on) gets a->deadline_ms for all
 *  its requests; the others (create, import, backup, restore, check) only the transport's
 *  per-request deadline. Release with pthread_mutex_unlock(&a->lock). */
void kp_akv_begin(kp_akv_inst *a, bool bounded);
/** Sends one request over the instance's transport (made on first use), within the current
 *  operation's deadline; a failure to get an answer sets the error text. Any HTTP status is
 *  KP_OK: the caller reads it. */
kp_status kp_akv_send(kp_akv_inst *a, const kpk_http_request *req, kpk_http_response *resp);

/* akv_pace.c: client-side pacing per vault under Key Vault's throttling limits. */
#define KP_AKV_PACE_WINDOW_MS 10000 /* Key Vault counts each vault's requests per 10 s */
/** The classes Key Vault limits apart. */
typedef enum kp_akv_class { KP_AKV_CLASS_CREATE = 0, KP_AKV_CLASS_OTHER = 1 } kp_akv_class;
/** One send as the pacer saw it. */
typedef struct kp_akv_pace {
    kp_akv_class cls;
    bool paced;   /* recorded (false: the vault table was full) */
    size_t slot;  /* where its time is */
    size_t prior; /* sends of the class in the window before it */
} kp_akv_pace;
/** Waits until a request of class cls keeps within the vault's budget (not past the operation's
 *  deadline), then records it in ticket. */
void kp_akv_pace_wait(kp_akv_inst *a, kp_akv_class cls, kp_akv_pace *ticket);
/** After the answer: throttled 429s (the transport's count) lower the budget to what the vault
 *  took. */
void kp_akv_pace_done(kp_akv_inst *a, const kp_akv_pace *ticket, unsigned throttled);

/* akv_auth.c */
/** Makes sure a->token is valid for a->scope; forced drops the cached one first. */
kp_status kp_akv_token(kp_akv_inst *a, bool forced);
/** Learns scope and tenant from a challenge header. */
kp_status kp_akv_take_challenge(kp_akv_inst *a, const char *header);

/* akv_rest.c */
typedef struct kp_akv_resp {
    long status;
    kpk_http_response http;
} kp_akv_resp;
/**
 * One call to the keys API: path is "/keys/..." (no query; api-version is added) or an absolute
 * nextLink of this vault. body may be NULL; flags are the kit's (KPK_HTTP_UNSAFE for a request
 * that creates). On a 2xx answer returns KP_OK with resp filled; any other answer is mapped to a
 * status with the service's code and message in the error text (what names the operation, e.g.
 * "wrap tde v2"). 404 returns KP_ERR_NOT_FOUND quietly (the caller words it). resp needs
 * kp_akv_resp_free only after KP_OK; after a failure it holds only the HTTP status (0 when no
 * answer came).
 */
kp_status kp_akv_call(kp_akv_inst *a, const char *method, const char *path, const uint8_t *body,
                      size_t body_len, unsigned flags, const char *what, kp_akv_resp *resp);
void kp_akv_resp_free(kp_akv_resp *r);
/** kp_akv_call for a KeyBundle answer, parsed into b (cleared by the caller either way). A 404
 *  stays KP_ERR_NOT_FOUND without text (the caller words it). */
kp_status kp_akv_call_bundle(kp_akv_inst *a, const char *method, const char *path,
                             const uint8_t *body, size_t body_len, unsigned flags, const char *what,
                             kp_akv_bundle *b);
/** A request that makes something (KPK_HTTP_UNSAFE: the transport never repeats one the service
 *  may have acted on) and answers with a KeyBundle, parsed into b (cleared by the caller either
 *  way); a 404 is a failure like any other. */
kp_status kp_akv_make_bundle(kp_akv_inst *a, const char *method, const char *path,
                             const uint8_t *body, size_t body_len, const char *what,
                             kp_akv_bundle *b);
/** Serialises j into a new secret, the body of a request (one that may hold key material is
 *  wiped when the secret is freed). */
kp_status kp_akv_json_body(kp_akv_inst *a, const json_t *j, kp_secret **out);
/** Decodes the "value" of a 2xx answer (wrap, unwrap, backup) into a new secret of at most max
 *  bytes, parsing the JSON once; frees (and so wipes) the answer either way. */
kp_status kp_akv_resp_value(kp_akv_inst *a, kp_akv_resp *r, size_t max, const char *what,
                            kp_secret **out);

/* akv_keys.c */
/** Calls item for every version of the vault key vname (list items: tags and attributes, no
 *  key material), following nextLink. KP_OK without a call when the key does not exist. */
kp_status kp_akv_versions_each(kp_akv_inst *a, const char *vname, kp_akv_item_fn *item, void *arg);
/** Looks up name/version (0 = the latest), from the cache unless refresh, listing again once
 *  when it is not cached. */
kp_status kp_akv_version_get(kp_akv_inst *a, const char *name, uint32_t version, bool refresh,
                             kp_akv_version **out);
void kp_akv_keys_free(kp_akv_inst *a);
/** Forgets the cached listing of name (after a create or import). */
void kp_akv_key_forget(kp_akv_inst *a, const char *name);
/** Picks the number of a new version of spec->name: spec->version (KP_ERR_EXISTS when a visible
 *  version has it), or the next free one. */
kp_status kp_akv_new_version(kp_akv_inst *a, const kp_key_spec *spec, uint32_t *version);
/** Records a labelled bundle as version v of name (refreshes the cache); info (may be NULL)
 *  receives it through kp_key_info_put. KP_ERR_EXISTS when another vault version holds the
 *  number (an earlier one: a concurrent run won), its id then in winner. */
kp_status kp_akv_take_bundle(kp_akv_inst *a, const char *name, uint32_t version,
                             const kp_akv_bundle *b, kp_key_info *info,
                             char winner[KP_AKV_VERSION_LEN + 1]);
/** The vault id of the newest visible version of name by creation time (of two created in one
 *  second, the higher number), from the listing kp_akv_new_version loaded; "" when none. */
void kp_akv_newest_visible(kp_akv_inst *a, const char *name, char out[KP_AKV_VERSION_LEN + 1]);
/** The visible versions of name (as loaded) that a newer vault version claims with another key:
 *  fn(arg, winner) for each, stopping at a failure. */
kp_status kp_akv_dups_each(kp_akv_inst *a, const char *name,
                           kp_status (*fn)(void *arg, const kp_akv_version *winner), void *arg);
kp_ks_list_fn kp_akv_ks_list;
kp_ks_get_public_fn kp_akv_ks_get_public;
kp_ks_get_fn kp_akv_ks_get;

/* akv_create.c: how a new version comes to be (made pending, checked, labelled). */
/** The key_ops of a keyplane key: ["wrapKey", "unwrapKey"]. */
json_t *kp_akv_key_ops(void);
/** The attributes of a new version: {"enabled": true}, no expiry (TDE refuses expiring keys). */
json_t *kp_akv_new_attributes(void);
/**
 * Sends body j (create: POST .../create; import: PUT; the tags are added here) for version
 * `version` of name, then checks what the vault made: its fingerprint must be fpr (NULL for a
 * create) and its size pass the key rule, else the version is disabled and tagged kp-rejected
 * (KP_ERR_INTEGRITY, KP_ERR_UNSUPPORTED). Only then is it labelled and so visible. After a
 * failure in transit a pending version of that number (and fpr) is adopted. info (caller
 * storage) receives the version.
 */
kp_status kp_akv_version_make(kp_akv_inst *a, const char *name, uint32_t version, bool create,
                              json_t *j, const char *fpr, kp_key_info *info);
kp_ks_create_fn kp_akv_ks_create;

/* The other keystore functions of the dispatch table. */
kp_ks_import_fn kp_akv_ks_import;                 /* akv_import.c */
kp_ks_import_offer_fn kp_akv_ks_import_offer;     /* akv_import.c */
kp_ks_import_wrapped_fn kp_akv_ks_import_wrapped; /* akv_import.c */
kp_ks_wrap_fn kp_akv_ks_wrap;                     /* akv_wrap.c */
kp_ks_unwrap_fn kp_akv_ks_unwrap;                 /* akv_wrap.c */
kp_ks_backup_fn kp_akv_ks_backup;                 /* akv_backup.c */
kp_ks_restore_fn kp_akv_ks_restore;               /* akv_backup.c */
kp_instance_check_fn kp_akv_instance_check;       /* akv_check.c */

#endif
