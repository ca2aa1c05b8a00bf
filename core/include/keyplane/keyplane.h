/*
 * libkeyplane: the public API.
 *
 * A kp_ctx owns the loaded plugins, the log and audit sinks and the last error text. Several
 * threads may use one context for instance and chain operations once its policy is loaded
 * (error text is kept per thread); loading plugins and policies, and changing the context's
 * settings, must not run concurrently with anything else on it.
 */
#ifndef KEYPLANE_H
#define KEYPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <keyplane/engine.h>
#include <keyplane/envelope.h>
#include <keyplane/error.h>
#include <keyplane/policy.h>
#include <keyplane/provider.h>
#include <keyplane/secret.h>
#include <keyplane/sqlserver.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KEYPLANE_VERSION "0.1.0"

/** The library's version string. */
KP_API const char *kp_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Context                                                                                   */

KP_API KP_WARN_UNUSED kp_status kp_ctx_new(kp_ctx **out);
/** Tears down and unloads every plugin. Close every instance first (kp_instance_close): a
 *  plugin with an instance still open is left loaded and an error is logged. NULL is a no-op. */
KP_API void kp_ctx_free(kp_ctx *ctx);

/** Detail text of the last failure on this context in the calling thread ("" when none).
 *  Borrowed; valid until the thread's next call on ctx. Never contains secrets. */
KP_API const char *kp_ctx_last_error(const kp_ctx *ctx);

/** Appends a plugin directory. It must be absolute (KP_ERR_INVALID_ARG otherwise).
 *  Directories are searched in the order added; see kp_ctx_use_default_plugin_dirs(). */
KP_API KP_WARN_UNUSED kp_status kp_ctx_add_plugin_dir(kp_ctx *ctx, const char *dir);

/** Appends each absolute entry of a colon-separated list (relative entries are ignored with a
 *  warning). NULL is a no-op. */
KP_API KP_WARN_UNUSED kp_status kp_ctx_add_plugin_path(kp_ctx *ctx, const char *list);

/** Appends the default directories: each absolute entry of KEYPLANE_PLUGIN_PATH
 *  (colon-separated, read with secure_getenv), then the install directory. */
KP_API KP_WARN_UNUSED kp_status kp_ctx_use_default_plugin_dirs(kp_ctx *ctx);

/** The directory plugins are installed to (compiled in). */
KP_API const char *kp_install_plugin_dir(void);

/** Number and i-th plugin directory, in search order. */
KP_API size_t kp_ctx_plugin_dir_count(const kp_ctx *ctx);
KP_API const char *kp_ctx_plugin_dir(const kp_ctx *ctx, size_t i);

/** Log lines at or below level go to stream (stderr by default; NULL silences). */
KP_API void kp_ctx_set_log(kp_ctx *ctx, kp_log_level level, FILE *stream);

/** Audit events (one JSON object per line) go to stream; NULL (the default) turns them off.
 *  The stream is borrowed and must outlive the context. */
KP_API void kp_ctx_set_audit(kp_ctx *ctx, FILE *stream);

/** Who and where for the audit events: every event carries a run id (32 hex digits from
 *  OpenSSL's RAND, one per run, so that the events of one command can be grouped), the user
 *  name and uid, the host name and the pid. kp_ctx_set_audit sets them once; this call starts
 *  a new run (a fresh run id, the user and host read again) and adds the program's command
 *  (what it was asked to do, e.g. "apply --workers": never a secret, and no option values)
 *  and the policy path to every following event (NULL or "" leaves either out). Call it
 *  before the operations it describes, not while another thread uses ctx. KP_ERR_INTERNAL
 *  when no random bytes could be drawn (the events then carry no run id). */
KP_API KP_WARN_UNUSED kp_status kp_ctx_set_audit_context(kp_ctx *ctx, const char *command,
                                                         const char *policy);

/* ---------------------------------------------------------------------------------------- */
/* Plugins                                                                                   */

typedef struct kp_plugin kp_plugin;

/** Loads the plugin called name ([a-z0-9_-]+) from the first plugin directory holding
 *  name.so. The context owns it (loading twice returns the same plugin). On refusal the
 *  context's error text is one line naming the file and the reason. */
KP_API KP_WARN_UNUSED kp_status kp_plugin_load(kp_ctx *ctx, const char *name, kp_plugin **out);

/** Loads a plugin from an absolute path to a .so file (the name is the file name). */
KP_API KP_WARN_UNUSED kp_status kp_plugin_load_path(kp_ctx *ctx, const char *path, kp_plugin **out);

/** Visitor for kp_plugin_scan(): plugin is NULL when the file was refused, and reason says
 *  why (one line naming the path). */
typedef void (*kp_plugin_scan_fn)(void *arg, const char *path, const kp_plugin *plugin,
                                  kp_status status, const char *reason);

/** Tries to load every *.so in every plugin directory (a name found in an earlier directory
 *  hides later ones) and reports each. Returns KP_OK even when some were refused. */
KP_API KP_WARN_UNUSED kp_status kp_plugin_scan(kp_ctx *ctx, kp_plugin_scan_fn visit, void *arg);

KP_API const kp_plugin_info *kp_plugin_get0_info(const kp_plugin *plugin);
KP_API const char *kp_plugin_get0_path(const kp_plugin *plugin);
KP_API const kp_param_desc *kp_plugin_get0_params(const kp_plugin *plugin);

/* ---------------------------------------------------------------------------------------- */
/* Provider instances                                                                        */

typedef struct kp_instance kp_instance;

/** Opens the instance called name in policy: resolves its secret params (env:/file:) and
 *  hands the params to its plugin. Caller closes it. */
KP_API KP_WARN_UNUSED kp_status kp_instance_open(kp_ctx *ctx, const kp_policy *policy,
                                                 const char *name, kp_instance **out);
KP_API void kp_instance_close(kp_instance *inst);
KP_API const char *kp_instance_name(const kp_instance *inst);
KP_API const kp_plugin *kp_instance_plugin(const kp_instance *inst);
/** KP_CAP_* bits of this instance (KP_FN_INSTANCE_INFO), a subset of its plugin's. */
KP_API uint32_t kp_instance_capabilities(const kp_instance *inst);
/** What the instance said it is and can do when it was opened (KP_FN_INSTANCE_INFO). */
KP_API const kp_instance_info *kp_instance_get0_info(const kp_instance *inst);

/** KP_OK when the opened instance can hold and use chain's protector as it declared at open
 *  (its key size, and unwrap with the chain's algorithm); else KP_ERR_UNSUPPORTED with a one-line
 *  reason in why (whylen bytes). */
KP_API kp_status kp_instance_fits_chain(const kp_instance *inst, const kp_chain_policy *chain,
                                        char *why, size_t whylen);

/** Runs the plugin's checks; report is called once per item. */
KP_API KP_WARN_UNUSED kp_status kp_instance_check(kp_instance *inst, kp_check_report_fn report,
                                                  void *arg);

/** Initialises a new, empty store for the instance (KP_FN_INSTANCE_INIT): the explicit act that
 *  creates a store, which a plugin with INIT never does implicitly. KP_ERR_EXISTS when it is
 *  initialised already; KP_ERR_UNSUPPORTED when the plugin has no INIT (its stores, a token or a
 *  vault, exist or not by themselves). Audited. */
KP_API KP_WARN_UNUSED kp_status kp_instance_init(kp_instance *inst);
/** 1 when the plugin of the policy's instance name has KP_FN_INSTANCE_INIT (its stores are made
 *  by kp_instance_init and by nothing else), without opening the instance; 0 otherwise or when
 *  the policy has no such instance. */
KP_API int kp_instance_can_init(const kp_policy *policy, const char *name);

/* Keystore operations: every call is audited. KP_ERR_UNSUPPORTED when the instance lacks the
 * keystore capability or the optional function. */
KP_API KP_WARN_UNUSED kp_status kp_key_create(kp_instance *inst, const kp_key_spec *spec,
                                              kp_key_info *info);
KP_API KP_WARN_UNUSED kp_status kp_key_import(kp_instance *inst, const kp_key_spec *spec,
                                              const kp_secret *pkcs8_der, kp_key_info *info);
/** *spki receives an allocated SubjectPublicKeyInfo DER; free it with kp_free(). */
KP_API KP_WARN_UNUSED kp_status kp_key_get_public(kp_instance *inst, const char *name,
                                                  uint32_t version, uint8_t **spki, size_t *len);
KP_API KP_WARN_UNUSED kp_status kp_key_list(kp_instance *inst, const char *name,
                                            kp_key_visit_fn visit, void *arg);
/** Fills info for name/version (0 = latest) through the store's direct lookup (KP_FN_KS_GET).
 *  KP_ERR_NOT_FOUND when absent. */
KP_API KP_WARN_UNUSED kp_status kp_key_info_get(kp_instance *inst, const char *name,
                                                uint32_t version, kp_key_info *info);
/** 1 when the instance keeps certificates with its key versions (KP_INST_CERTS, ABI 1.3). */
KP_API int kp_instance_keeps_certs(const kp_instance *inst);
/** Keeps the DER certificate der/len with name/version (KS_CERT_PUT): KP_OK when it holds these
 *  bytes already, KP_ERR_EXISTS when it holds another, KP_ERR_INTEGRITY when the certificate's
 *  key is not the version's, KP_ERR_UNSUPPORTED when the instance keeps no certificates. */
KP_API KP_WARN_UNUSED kp_status kp_key_cert_put(kp_instance *inst, const char *name,
                                                uint32_t version, const uint8_t *der, size_t len);
/** The certificate kept with name/version (KS_CERT_GET) into *der (free with kp_free()).
 *  KP_ERR_NOT_FOUND when there is none; KP_ERR_INTEGRITY when the store answers with bytes that
 *  are not one certificate, or, when fingerprint is given, a certificate of another key. */
KP_API KP_WARN_UNUSED kp_status kp_key_cert_get(kp_instance *inst, const char *name,
                                                uint32_t version, const char *fingerprint,
                                                uint8_t **der, size_t *len);
/** *out receives allocated wrapped bytes; free them with kp_free(). */
KP_API KP_WARN_UNUSED kp_status kp_key_wrap(kp_instance *inst, const char *name, uint32_t version,
                                            uint32_t alg, const kp_secret *dek, uint8_t **out,
                                            size_t *outlen);
KP_API KP_WARN_UNUSED kp_status kp_key_unwrap(kp_instance *inst, const char *name, uint32_t version,
                                              uint32_t alg, const uint8_t *in, size_t inlen,
                                              kp_secret **dek);
KP_API KP_WARN_UNUSED kp_status kp_key_export(kp_instance *inst, const char *name, uint32_t version,
                                              kp_secret **pkcs8_der);

/**
 * The target side of a wrapped import (KP_FN_KS_IMPORT_OFFER): instance offers a wrapping key
 * for importing spec->name. *methods receives the KP_KEYX_BIT()s it accepts, *expires when the
 * offer lapses (0 never), *spki the wrapping key's SubjectPublicKeyInfo DER and *token the
 * opaque bytes to hand back to kp_key_import_wrapped (both allocated: free with kp_free).
 */
KP_API KP_WARN_UNUSED kp_status kp_key_import_offer(kp_instance *inst, const kp_key_spec *spec,
                                                    uint32_t *methods, int64_t *expires,
                                                    uint8_t **spki, size_t *spki_len,
                                                    uint8_t **token, size_t *token_len);

/** Exports name/version wrapped by method (a kp_keyx_method) under the RSA public key
 *  wrapping_spki (KP_FN_KS_EXPORT_WRAPPED). *blob is allocated (free with kp_free).
 *  KP_ERR_DENIED when the key is not exportable, KP_ERR_UNSUPPORTED for a method the instance
 *  did not declare. */
KP_API KP_WARN_UNUSED kp_status kp_key_export_wrapped(kp_instance *inst, const char *name,
                                                      uint32_t version, uint32_t method,
                                                      const uint8_t *wrapping_spki, size_t spki_len,
                                                      uint8_t **blob, size_t *bloblen);

/** Imports a blob made by kp_key_export_wrapped for the offer whose token is given
 *  (KP_FN_KS_IMPORT_WRAPPED). spec->fingerprint is required: the store checks it before the key
 *  becomes visible. */
KP_API KP_WARN_UNUSED kp_status kp_key_import_wrapped(kp_instance *inst, const kp_key_spec *spec,
                                                      uint32_t method, const uint8_t *token,
                                                      size_t token_len, const uint8_t *blob,
                                                      size_t bloblen, kp_key_info *info);

/** The transfer method a key takes from src to dst: the best KP_KEYX method that src exports
 *  and dst imports (SHA-256 before SHA-1), or 0 when they share none (the copy then goes through
 *  PKCS#8 in this process). */
KP_API uint32_t kp_key_transfer_method(const kp_instance *src, const kp_instance *dst);

/** The provider's own opaque backup of every version of name (KP_FN_KS_BACKUP). */
KP_API KP_WARN_UNUSED kp_status kp_key_backup(kp_instance *inst, const char *name,
                                              kp_secret **blob);
/** Restores a provider backup (KP_FN_KS_RESTORE); name receives the key's name. */
KP_API KP_WARN_UNUSED kp_status kp_key_restore_backup(kp_instance *inst, const kp_secret *blob,
                                                      char name[KP_NAME_MAX]);

/* Secret-store operations (audited; the value never is). */
KP_API KP_WARN_UNUSED kp_status kp_store_put(kp_instance *inst, const char *name,
                                             const kp_secret *value, const kp_meta *meta,
                                             size_t nmeta, uint32_t *version);
KP_API KP_WARN_UNUSED kp_status kp_store_get(kp_instance *inst, const char *name, uint32_t version,
                                             kp_secret **value, kp_secret_visit_fn visit,
                                             void *arg);
KP_API KP_WARN_UNUSED kp_status kp_store_list(kp_instance *inst, const char *name,
                                              kp_secret_visit_fn visit, void *arg);

/* Data keys (KP_CAP_DATAKEY; audited, the plaintext never is). context is the encryption
 * context (ncontext pairs, may be 0), bound to the ciphertext: decrypt needs the same pairs. */
/** *plain receives nbytes of new data key, *ct (allocated: kp_free) its encrypted form. */
KP_API KP_WARN_UNUSED kp_status kp_datakey_generate(kp_instance *inst, const char *key_id,
                                                    size_t nbytes, const kp_meta *context,
                                                    size_t ncontext, kp_secret **plain,
                                                    uint8_t **ct, size_t *ctlen);
/** Decrypts a data key made by kp_datakey_generate; KP_ERR_CRYPTO when ct or context differ. */
KP_API KP_WARN_UNUSED kp_status kp_datakey_decrypt(kp_instance *inst, const char *key_id,
                                                   const uint8_t *ct, size_t ctlen,
                                                   const kp_meta *context, size_t ncontext,
                                                   kp_secret **plain);
/** Re-encrypts a data key made under src_key_id with src_context to dst_key_id with dst_context
 *  inside the store (KMS ReEncrypt): the plaintext never reaches the caller. *out (allocated:
 *  kp_free) receives the new ciphertext, which kp_datakey_decrypt of dst_key_id opens with
 *  dst_context. KP_ERR_CRYPTO when ct or src_context differ; KP_ERR_UNSUPPORTED when the
 *  instance makes no data keys or its plugin has no DK_REENCRYPT (ABI 1.5). Audited as
 *  datakey.reencrypt. */
KP_API KP_WARN_UNUSED kp_status kp_datakey_reencrypt(kp_instance *inst, const char *src_key_id,
                                                     const uint8_t *ct, size_t ctlen,
                                                     const kp_meta *src_context, size_t nsrc,
                                                     const char *dst_key_id,
                                                     const kp_meta *dst_context, size_t ndst,
                                                     uint8_t **out, size_t *outlen);

/* Objects (KP_INST_OBJECTS, ABI 1.6): large byte streams with metadata at a location the
 * instance's plugin names (the aws plugin: "s3://BUCKET/KEY"), written once and read by
 * ranges. Creating, committing, abandoning and opening one are audited; reads are not. The
 * calls on one object are made by one thread at a time (any thread): the context's error text
 * of a failure is that thread's. */

/** An object being written. */
typedef struct kp_object_out kp_object_out;

/** 1 when the instance reads and writes objects (KP_INST_OBJECTS). */
KP_API int kp_instance_has_objects(const kp_instance *inst);
/** Starts a new object at where with nmeta metadata pairs (keys [a-z0-9_.-], values printable
 *  ASCII). Nothing is visible before kp_object_commit. KP_ERR_EXISTS when where holds one. */
KP_API KP_WARN_UNUSED kp_status kp_object_create(kp_instance *inst, const char *where,
                                                 const kp_meta *meta, size_t nmeta,
                                                 kp_object_out **out);
/** Appends len bytes. After a failure, only kp_object_abort. */
KP_API KP_WARN_UNUSED kp_status kp_object_write(kp_object_out *w, const uint8_t *data, size_t len);
/** Makes the object visible whole (KP_ERR_EXISTS when another appeared at its location: nothing
 *  is replaced, and nothing of this one is left) and frees w, whatever the outcome. */
KP_API KP_WARN_UNUSED kp_status kp_object_commit(kp_object_out *w);
/** Abandons the object, leaving nothing at its location, and frees w. NULL is a no-op. */
KP_API void kp_object_abort(kp_object_out *w);
/** Fills info for the object at where; visit, if not NULL, is called once with its metadata.
 *  KP_ERR_NOT_FOUND when there is none. */
KP_API KP_WARN_UNUSED kp_status kp_object_stat(kp_instance *inst, const char *where,
                                               kp_object_info *info, kp_meta_visit_fn visit,
                                               void *arg);
/** Reads up to *len bytes at offset into buf; *len receives the count (short only at the end).
 *  tag (info->tag of kp_object_stat, or NULL): KP_ERR_CONFLICT once the object changed. */
KP_API KP_WARN_UNUSED kp_status kp_object_read(kp_instance *inst, const char *where,
                                               const char *tag, uint64_t offset, uint8_t *buf,
                                               size_t *len);

/** Frees a buffer that a keyplane function allocated for the caller (public keys, wrapped
 *  bytes, PEM text, JSON). NULL is a no-op. Never use free() on them: the library may use
 *  another allocator than the caller. */
KP_API void kp_free(void *p);

/**
 * Converts a private key as users keep it (PEM or DER; PKCS#8, encrypted PKCS#8 or PKCS#1) to
 * PKCS#8 PrivateKeyInfo DER, the form KS_IMPORT takes. passphrase may be NULL. On error err
 * receives a one-line reason (never key material).
 */
KP_API KP_WARN_UNUSED kp_status kp_private_key_to_pkcs8(const kp_secret *input,
                                                        const kp_secret *passphrase,
                                                        kp_secret **pkcs8_der, char *err,
                                                        size_t errlen);

/**
 * Encrypts a PKCS#8 PrivateKeyInfo DER under passphrase as PEM "ENCRYPTED PRIVATE KEY" (PBES2:
 * PBKDF2-HMAC-SHA256, 600,000 iterations, AES-256-CBC), readable by `openssl pkey`. *pem is
 * allocated and NUL-terminated; free it with kp_free().
 */
KP_API KP_WARN_UNUSED kp_status kp_pkcs8_encrypt_pem(const kp_secret *pkcs8_der,
                                                     const kp_secret *passphrase, char **pem,
                                                     size_t *len);

/* ---------------------------------------------------------------------------------------- */
/* Chains                                                                                    */

/** Computes the hex SHA-256 fingerprint of a SubjectPublicKeyInfo DER. */
KP_API KP_WARN_UNUSED kp_status kp_fingerprint_spki(const uint8_t *spki, size_t len,
                                                    char hex[KPK_FPR_HEX]);

/**
 * Creates a new protector version for chain: generated in the chain's origin, then imported
 * with the same version number into every other keystore replica and escrow instance (the
 * origin must be able to export it). info receives the origin's view of the new version.
 * report, if not NULL, is called once per instance with the outcome.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_create_protector(kp_ctx *ctx, const kp_policy *policy,
                                                          const char *chain,
                                                          kp_check_report_fn report, void *arg,
                                                          kp_key_info *info);

/**
 * Copies every version of the chain's protector that the origin holds and a keystore replica
 * or escrow instance lacks into it, with the same version number (the repair after a create
 * that reached only some replicas). A replica holding a different key under a version number
 * is reported (KP_ERR_INTEGRITY) and left alone. report, if not NULL, is called per copy or
 * problem. Returns the first failure; every target is attempted.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_replicate(kp_ctx *ctx, const kp_policy *policy,
                                                   const char *chain, kp_check_report_fn report,
                                                   void *arg);

/**
 * Wraps dek with the newest protector version that every reachable keystore replica of the
 * chain holds (a version that reached only some replicas is not used: losing the origin would
 * lose the DEK). An unreachable replica is skipped with a warning. The wrapping instance is
 * replica (which must be one of the chain's keystores) or, when NULL, the first that holds the
 * version, in failover order. Its public key is checked against the version's fingerprint
 * before use. *out receives a new envelope (caller frees); used (if not NULL, KP_NAME_MAX
 * bytes) receives the instance that wrapped.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_wrap(kp_ctx *ctx, const kp_policy *policy,
                                              const char *chain, const char *replica,
                                              const kp_secret *dek, kp_envelope **out, char *used);

/**
 * The version kp_chain_wrap (replica NULL) would wrap with now, found the same way but without
 * wrapping: the chain's active version once it has rotated, else the newest confirmed version
 * every reachable keystore holding any version holds. *version receives it, fingerprint (if
 * not NULL, KPK_FPR_HEX bytes) its fingerprint. Fails where kp_chain_wrap's choice would:
 * KP_ERR_NOT_FOUND when no version qualifies, KP_ERR_INTEGRITY while the chain-state documents
 * disagree, with the reason as the context's error text.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_wrap_version(kp_ctx *ctx, const kp_policy *policy,
                                                      const char *chain, uint32_t *version,
                                                      char *fingerprint);

/**
 * Unwraps an envelope: tries replica (which must be one of the chain's keystores) or, when
 * NULL, each keystore of the chain in failover order (replicas, escrow, origin), failing over
 * to the next on any error and logging why. A replica whose key fingerprint differs from the
 * envelope's is skipped. Only RSA-OAEP and RSA-OAEP-256 envelopes are accepted (RSA1_5 would
 * hand whoever submits envelopes a padding oracle): others fail with KP_ERR_DENIED. When every
 * replica fails, the most telling failure is returned (integrity before not-found). used (if
 * not NULL, KP_NAME_MAX bytes) receives the instance that unwrapped.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_unwrap(kp_ctx *ctx, const kp_policy *policy,
                                                const kp_envelope *env, const char *replica,
                                                kp_secret **dek, char *used);

/**
 * kp_chain_unwrap, also saying which of the envelope's wraps opened it: wrap (if not NULL)
 * receives its index (kp_envelope_get0(env, *wrap) is the version used), which is not the first
 * wrap when a keystore lacks the first one's version.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_unwrap_used(kp_ctx *ctx, const kp_policy *policy,
                                                     const kp_envelope *env, const char *replica,
                                                     kp_secret **dek, char *used, size_t *wrap);

/**
 * Bounds of a context's DEK cache (kp_ctx_set_dek_cache). Every bound holds at once.
 */
typedef struct kp_dek_cache_limits {
    size_t max_entries; /**< 1..1,048,576 envelopes; beyond, the least recently used goes */
    uint32_t max_age_s; /**< 1..86,400: seconds after its unwrap that an entry stops answering */
    uint64_t max_uses;  /**< answers one entry gives before it is dropped; 0: no bound */
} kp_dek_cache_limits;

/** What a context's DEK cache has done since it was turned on (kp_ctx_dek_cache_stats). */
typedef struct kp_dek_cache_stats {
    uint64_t hits, misses;
    uint64_t
        evicted; /**< dropped for room, age, uses or a retire/abandon (kp_ctx_dek_cache_forget) */
    size_t entries; /**< held now */
} kp_dek_cache_stats;

/**
 * Turns on the context's DEK cache (off by default), for an engine that unwraps the same
 * envelopes again and again (pages of a database, as the AWS Encryption SDK's caching
 * materials manager does for its data keys): kp_chain_unwrap with replica NULL answers an
 * envelope it opened before from memory, without a store. The DEKs are kept in locked,
 * dump-excluded memory and wiped when dropped. An entry answers for at most max_age_s after its
 * unwrap and max_uses times; kp_chain_retire and kp_chain_abandon through this context drop the
 * entries of the version they change, but a retire done elsewhere (another process) is seen
 * only when the entry ages out: choose max_age_s with that in mind. A hit is no key use: it
 * writes no audit event (the unwrap that filled the entry did). Called again, it changes the
 * bounds and empties the cache; limits NULL turns it off and wipes every entry.
 * @return KP_OK, or KP_ERR_INVALID_ARG for a bound out of range, KP_ERR_NOMEM.
 */
KP_API KP_WARN_UNUSED kp_status kp_ctx_set_dek_cache(kp_ctx *ctx,
                                                     const kp_dek_cache_limits *limits);
/** Fills out with the cache's counters (all zero when it is off). */
KP_API void kp_ctx_dek_cache_stats(kp_ctx *ctx, kp_dek_cache_stats *out);
/** Drops, wiping them, the cached DEKs of chain opened with version (every version when 0): for
 *  an engine that learns of a retire made elsewhere. */
KP_API void kp_ctx_dek_cache_forget(kp_ctx *ctx, const char *chain, uint32_t version);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_H */
