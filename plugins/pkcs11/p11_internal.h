/*
 * Internal declarations of the `pkcs11` plugin: a keystore on a PKCS#11 token (an HSM, or
 * SoftHSM2 in tests), reached through p11-kit. Nothing here crosses the plugin boundary; only
 * kp_plugin_init is exported.
 *
 * Every key version is a token object labelled "<label_prefix><name>/v<version>" and tagged
 * with its key's name (kp_p11_tag): an RSA private key plus its public key, or an AES secret
 * key. A writer makes it under a pending label first and publishes it once it wins against
 * other writers of the version (p11_version.c). An RSA version may also keep an X.509
 * certificate object under the same label and CKA_ID (p11_cert.c). Private halves never leave
 * the token in plaintext; export wraps them inside the token first.
 *
 * The files call downwards only; from the top, each using only files of the lines below it:
 *   p11_plugin.c                                         entry point, params, instances
 *   p11_check.c p11_export.c p11_import.c p11_cert.c     INSTANCE_CHECK, exports, imports,
 *                                                        certificates kept with versions
 *   p11_keygen.c p11_keystore.c p11_probe.c p11_wrap.c   create, get/list, caps, wrap/unwrap
 *   p11_version.c                                        new versions against other writers
 *   p11_kwp.c p11_lookup.c p11_state.c                   RFC 5649 probe, key versions, state
 *   p11_snap.c                                           one listing of the token for many reads
 *   p11_info.c p11_object.c                              key info, token objects
 *   p11_label.c p11_session.c                            names and labels, the session pool
 *   p11_crypto.c p11_module.c                            OpenSSL side, p11-kit modules
 *   p11_cache.c p11_error.c                              resolved keys, error text
 */
#ifndef KP_P11_INTERNAL_H
#define KP_P11_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <keyplane/kit/ossl.h>
#include <keyplane/provider.h>

/* RFC 5649 under the PKCS#11 v3.1 name; p11-kit 0.24 headers lack it. SoftHSM 2.6.1 offers
 * RFC 5649 as CKM_AES_KEY_WRAP_PAD (0x210A) instead. */
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x210BUL
#endif

#define KP_P11_LABEL_MAX 32     /* CK_TOKEN_INFO.label */
#define KP_P11_PREFIX_MAX 64    /* label_prefix */
#define KP_P11_OBJLABEL_MAX 256 /* longest CKA_LABEL we read; ours stay below 210 */
#define KP_P11_ID_MAX 64        /* longest CKA_ID we keep */
#define KP_P11_SHA256_LEN 32
#define KP_P11_AES_ID_LEN 16
#define KP_P11_TAG_MAX 256     /* DER of a key's CKA_SUBJECT tag; ours stay below 220 */
#define KP_P11_WRAP_KEY_LEN 32 /* transport AES-256 key of import, export and BYOK */
#define KP_P11_DEFAULT_PREFIX "kp:"
#define KP_P11_WHY_MAX 384 /* one line saying why the token has no wrapped export */

/** The core's upcalls, looked up once at init. */
typedef kp_upcalls kp_p11_up;

/** A loaded and initialised PKCS#11 module, shared by the instances that name it. */
typedef struct kp_p11_module {
    struct kp_p11_module *next;
    char *ref;              /* the `module` param: absolute path or p11-kit name */
    CK_FUNCTION_LIST *f;    /* the module's function list (p11-kit managed) */
    CK_FUNCTION_LIST **all; /* by name: every registered module, released at the end */
    unsigned refs;
    _Atomic uint64_t writes; /* token writes through any instance of the module (p11_snap.c) */
} kp_p11_module;

/** A PIN a token refused, remembered for the plugin's lifetime (the process, for the CLI), so
 *  that many instances of one token (one per chain) cost one failed C_Login, not one each: an
 *  HSM locks its user PIN after a few. The PIN is kept only as its SHA-256. */
typedef struct kp_p11_refusal {
    char module[256];
    char token[KP_P11_LABEL_MAX + 1];
    unsigned char pin_sha256[KP_P11_SHA256_LEN];
    CK_RV rv; /* CKR_PIN_LOCKED refuses every PIN of that token */
    struct kp_p11_refusal *next;
} kp_p11_refusal;

/** The plugin context handed back by kp_plugin_init. */
typedef struct kp_p11_plugin {
    kp_p11_up up;
    kp_core_handle *h;
    pthread_mutex_t lock; /* guards modules and refusals */
    pthread_rwlock_t io; /* token writes exclusive, every other token call shared (p11_session.c) */
    kp_p11_module *modules;
    kp_p11_refusal *refusals;
} kp_p11_plugin;

/** One open instance: a token, a user PIN and a pool of sessions. */
/** Resolved key versions, so a wrap or unwrap costs one token call, not a search and attribute
 *  reads. Token object handles stay valid across sessions (PKCS#11 v2.40 2.4); a stale one
 *  answers CKR_OBJECT_HANDLE_INVALID or CKR_KEY_HANDLE_INVALID, which flushes the cache and
 *  retries (kp_p11_run). */
#define KP_P11_CACHE 32
typedef struct kp_p11_cached {
    bool used;
    struct kp_p11_key *key; /* malloc'd copy */
    CK_OBJECT_HANDLE pub;   /* RSA public key object already checked against CKA_ID, or 0 */
} kp_p11_cached;

struct kp_p11_snap;

typedef struct kp_p11_inst {
    const kp_p11_up *up;
    kp_core_handle *h;
    kp_p11_plugin *pl;
    char *module_ref;
    char token[KP_P11_LABEL_MAX + 1];
    char prefix[KP_P11_PREFIX_MAX + 1];
    kp_secret *pin;       /* our own copy of the user PIN */
    pthread_mutex_t lock; /* guards the members below */
    kp_p11_module *mod;   /* NULL until first use */
    CK_SLOT_ID slot;
    bool have_slot;
    bool logged_in;
    CK_RV login_rv;          /* a PIN error, kept so a wrong PIN is never retried */
    CK_SESSION_HANDLE *idle; /* idle sessions, reused last-in first-out */
    size_t nidle, idle_cap;
    bool mechs_probed;
    CK_MECHANISM_TYPE kwp_mech;        /* RFC 5649 mechanism of this token; 0 when none */
    bool have_kw;                      /* CKM_AES_KEY_WRAP listed */
    int oaep_sha256;                   /* -1 unknown, 0 refused by the token, 1 worked */
    int kwp_exact;                     /* -1 unknown, 0 RFC 5649 wrap pads keys to 8, 1 exact */
    bool caps_done;                    /* caps below were decided (p11_probe.c) */
    kp_instance_info caps;             /* what INSTANCE_INFO reports, decided once */
    char no_keyx[KP_P11_WHY_MAX];      /* why caps has no export_keyx though the token has
                                          RSA-OAEP and KWP (p11_kwp.c); "" otherwise */
    bool no_copy;                      /* the token refused C_CopyObject onto it (p11_keygen.c) */
    kp_p11_cached cache[KP_P11_CACHE]; /* guarded by lock */
    size_t cache_next;
    struct kp_p11_snap *snap;     /* the live listing of the token, or NULL; guarded by lock */
    char first_read[KP_NAME_MAX]; /* the first key listed or state read of the instance (lock) */
    bool many_read;               /* another key was read after it (lock) */
    pthread_mutex_t snap_take;    /* one thread lists the token at a time */
} kp_p11_inst;

/** One operation's session, borrowed from the pool by kp_p11_run. */
typedef struct kp_p11_op {
    kp_p11_inst *pi;
    CK_FUNCTION_LIST *f;
    CK_SESSION_HANDLE s;
    CK_SLOT_ID slot;
    CK_RV rv; /* the CK_RV that failed the operation, which decides a retry */
} kp_p11_op;

/** A key version found on the token. */
typedef struct kp_p11_key {
    char name[KP_NAME_MAX];
    uint32_t version;
    uint32_t type;        /* kp_key_type */
    CK_OBJECT_HANDLE obj; /* the private (RSA) or secret (AES) key */
    uint8_t id[KP_P11_ID_MAX];
    size_t idlen;
    uint32_t bits;
    bool extractable;
    int64_t created; /* CKA_START_DATE as Unix time, 0 when unset */
} kp_p11_key;

/* Key cache (p11_cache.c). get copies the entry out; pub may be NULL. */
bool kp_p11_cache_get(kp_p11_inst *pi, const char *name, uint32_t version, kp_p11_key *key,
                      CK_OBJECT_HANDLE *pub);
void kp_p11_cache_put(kp_p11_inst *pi, const kp_p11_key *key, CK_OBJECT_HANDLE pub);
void kp_p11_cache_flush(kp_p11_inst *pi);
/** The same, for a caller already holding pi->lock. */
void kp_p11_cache_flush_locked(kp_p11_inst *pi);
/** Frees the entries at instance close. */
void kp_p11_cache_free(kp_p11_inst *pi);
bool kp_p11_stale_handle(CK_RV rv);

/** One listing of every token object of ours (p11_snap.c), immutable once made and shared by
 *  reference: the key objects of every version (as kp_p11_vobjs finds them), the published RSA
 *  public keys and the state documents. */
typedef struct kp_p11_snap {
    unsigned refs;            /* guarded by the instance's lock */
    uint64_t writes;          /* the module's write count when it was taken */
    uint64_t taken_ms;        /* monotonic time it was taken */
    struct kp_p11_vobj *keys; /* sorted by name, then version */
    size_t nkeys;
    struct kp_p11_snap_obj *pubs; /* published public keys, sorted by name, then version */
    size_t npubs;
    struct kp_p11_snap_obj *docs; /* state documents, sorted by name */
    size_t ndocs;
} kp_p11_snap;
/** The instance's listing with a reference, when it is still live (no token write through the
 *  module since, younger than KP_P11_SNAP_MS); NULL otherwise. Release it with snap_put. */
kp_p11_snap *kp_p11_snap_hold(kp_p11_inst *pi);
/** Makes s the instance's listing (the instance takes over the caller's reference). */
void kp_p11_snap_install(kp_p11_inst *pi, kp_p11_snap *s);
void kp_p11_snap_put(kp_p11_inst *pi, kp_p11_snap *s);
/** Records a listing or state read of key name (NULL: of every key) asked of the instance;
 *  true once it reads every key or a second key (it is reading many: one listing of the token
 *  serves them). */
bool kp_p11_snap_wanted(kp_p11_inst *pi, const char *name);
/** Records a write to the token through pi: every listing of the module's tokens is dropped.
 *  kp_p11_write_run calls it. */
void kp_p11_wrote(kp_p11_inst *pi);

/* Entry points, declared through the ABI typedefs so the compiler checks them. */
kp_ks_create_fn kp_p11_ks_create;
kp_ks_import_fn kp_p11_ks_import;
kp_ks_get_public_fn kp_p11_ks_get_public;
kp_ks_list_fn kp_p11_ks_list;
kp_ks_get_fn kp_p11_ks_get;
kp_ks_wrap_fn kp_p11_ks_wrap;
kp_ks_unwrap_fn kp_p11_ks_unwrap;
kp_ks_export_fn kp_p11_ks_export;
kp_ks_export_wrapped_fn kp_p11_ks_export_wrapped;
kp_ks_state_get_fn kp_p11_ks_state_get;
kp_ks_state_put_fn kp_p11_ks_state_put;
kp_ks_cert_put_fn kp_p11_ks_cert_put;
kp_ks_cert_get_fn kp_p11_ks_cert_get;
kp_instance_check_fn kp_p11_instance_check;
kp_instance_info_fn kp_p11_instance_info;

/* What the token can do (p11_probe.c) ---------------------------------------------------- */

/** The instance's kp_instance_info, decided once: mechanism list and info, a trial of RSA-OAEP
 *  with SHA-1 and SHA-256 and the RFC 5649 probe (kp_p11_kwp_probe), on session objects (no
 *  login). Never fails: a token that cannot be reached gets the baseline every usable token has
 *  (see p11_probe.c). Copies it into out. */
void kp_p11_caps(kp_p11_inst *pi, kp_instance_info *out);
/** Whether the token's AES key wrap with padding (m) holds a private key as RFC 5649 says: a
 *  throw-away RSA key (min_bits or more) wrapped under a readable AES key, both session objects
 *  destroyed after, must unwrap in software to exactly its PKCS#8. False: why (size bytes) says
 *  what the token did or what kept the probe from running, in one line. */
bool kp_p11_kwp_probe(kp_p11_op *op, CK_MECHANISM_TYPE m, CK_ULONG min_bits, char *why,
                      size_t size);
/** Copies pi->no_keyx (decided with the caps) into buf; "" when there is no such reason. */
void kp_p11_no_keyx(kp_p11_inst *pi, char *buf, size_t size);

/* Errors (p11_error.c) -------------------------------------------------------------------- */

/** "CKR_PIN_INCORRECT", or "CKR_0x%lx" (in buf) for a code without a name. */
const char *kp_p11_rv_name(CK_RV rv, char *buf, size_t size);
/** The status for rv. mech: the call used a mechanism, so a refused argument means the token
 *  does not offer what we asked for. */
kp_status kp_p11_rv_status(CK_RV rv, bool mech);
/** Formats a one-line reason, hands it to SET_ERROR and returns st. Never pass secrets. The
 *  text is read back with pi->up->get_error(pi->h). The value is st itself, not kp_errorf's
 *  (the same status): the static analyzer does not follow a variadic call, so this lets it see
 *  that an error path never continues as success (st: a constant or a plain variable). */
#define kp_p11_err(pi, st, ...) KP_ERRORF((pi)->up, (pi)->h, st, __VA_ARGS__)
/** Sets "<fn>: <CKR name> (<reason>)" with the status of rv; records rv in op (may be NULL). */
kp_status kp_p11_ck(kp_p11_inst *pi, kp_p11_op *op, CK_RV rv, bool mech, const char *fn,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/** kp_p11_ck with an explicit status. */
kp_status kp_p11_ck_as(kp_p11_inst *pi, kp_p11_op *op, CK_RV rv, kp_status st, const char *fn,
                       const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/** Like kp_p11_err, appending ": <OpenSSL's last reason>" and clearing its error queue (the
 *  kit's kpk_ossl_errorf with the instance's handle). */
#define kp_p11_ossl_err(pi, st, ...) kpk_ossl_errorf((pi)->up, (pi)->h, (st), __VA_ARGS__)
/** Copies a blank-padded PKCS#11 text field into buf without the padding. */
void kp_p11_text(const unsigned char *field, size_t len, char *buf, size_t size);

/* Modules (p11_module.c) ------------------------------------------------------------------ */

/** Loads and initialises the module ref names, or shares the one already loaded. */
kp_status kp_p11_module_get(kp_p11_inst *pi, kp_p11_module **out);
/** Drops a reference; the last one finalises and releases the module. */
void kp_p11_module_put(kp_p11_plugin *pl, kp_p11_module *mod);
/** Releases every module still loaded (teardown after a leak). */
void kp_p11_module_put_all(kp_p11_plugin *pl);

/* Sessions (p11_session.c) ---------------------------------------------------------------- */

typedef kp_status (*kp_p11_op_fn)(kp_p11_op *op, void *arg);
/** Runs fn on a logged-in session from the pool. A session that died (closed, invalid) or a
 *  lost login gets one retry on a fresh session after a new login. */
kp_status kp_p11_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg);
/** kp_p11_run for a writer (create, import, state put): its token calls run alone in the
 *  process, with no other thread's token call (kp_p11_run) at the same time, and every listing
 *  of the module is dropped after it. SoftHSM 2.6.1's file store is not safe for a
 *  write beside reads in other sessions of the process: a reader re-reading an object file its
 *  writer is filling can fail the write (C_CreateObject: CKR_GENERAL_ERROR). Writers are rare
 *  (apply, rotate); reads (wrap, unwrap, listings) still run side by side. fn must not call
 *  kp_p11_run. */
kp_status kp_p11_write_run(kp_p11_inst *pi, kp_p11_op_fn fn, void *arg);
/** Loads the module (not finding the token); for check. */
kp_status kp_p11_loaded(kp_p11_inst *pi, CK_FUNCTION_LIST **f);
/** Loads the module and finds the token (not logging in); for check. */
kp_status kp_p11_token(kp_p11_inst *pi, CK_FUNCTION_LIST **f, CK_SLOT_ID *slot);
/** The mechanisms of the token in slot, in a malloc'ed list of *n; op (may be NULL) records a
 *  failing CK_RV. */
kp_status kp_p11_mechanisms(kp_p11_inst *pi, kp_p11_op *op, CK_FUNCTION_LIST *f, CK_SLOT_ID slot,
                            CK_MECHANISM_TYPE **list, CK_ULONG *n);
/** Lists the token's mechanisms once and caches what wrap and import need. Call from an op. */
kp_status kp_p11_probe_mechs(kp_p11_op *op);
/** Closes the idle sessions and drops the module reference (instance close). */
void kp_p11_sessions_close(kp_p11_inst *pi);

/* Names and labels (p11_label.c) ---------------------------------------------------------- */

/** kpk_key_name_valid, setting error text when not. */
kp_status kp_p11_check_name(kp_p11_inst *pi, const char *name);
/** Writes "<prefix><name>/v<version>"; KP_ERR_INVALID_ARG when it does not fit. */
kp_status kp_p11_label(kp_p11_inst *pi, const char *name, uint32_t version, char *buf, size_t size);
/** Random bytes in a pending label: they keep two writers' labels apart and order the pending
 *  AES keys of one version (p11_version.c). */
#define KP_P11_PENDING_RND 8
/** Writes the pending label "<prefix><name>/v<version>~<since>~<16 random hex>" of a version a
 *  writer has made and not yet published (since: Unix time of its making). No lookup takes it
 *  for the version itself; p11_lookup.c lists it beside the version's objects. */
kp_status kp_p11_pending_label(kp_p11_inst *pi, const char *name, uint32_t version, int64_t since,
                               char *buf, size_t size);
/** What a label of this instance says: the key version it names, published or pending. */
typedef struct kp_p11_label_info {
    char name[KP_NAME_MAX];
    uint32_t version;
    bool pending;
    int64_t since;                   /* pending: when its writer made it */
    uint8_t rnd[KP_P11_PENDING_RND]; /* pending: its random part */
} kp_p11_label_info;
/** Parses "<prefix><name>/v<N>" or its pending form; false for anything else (another
 *  prefix, "v01", a name kpk_key_name_valid refuses, a placeholder of older builds). */
bool kp_p11_label_parse(const kp_p11_inst *pi, const char *label, kp_p11_label_info *out);
/** The tag every key object of name carries, so that the versions of one key are found
 *  without reading unrelated objects (p11_lookup.c): an RSA private key's CKA_SUBJECT is the
 *  DER Name CN=<prefix><name> (subject, KP_P11_TAG_MAX bytes); an AES key's CKA_ID is the first
 *  16 bytes of that DER's SHA-256 (aes_id, may be NULL). */
kp_status kp_p11_tag(kp_p11_inst *pi, const char *name, uint8_t *subject, size_t *len,
                     uint8_t aes_id[KP_P11_AES_ID_LEN]);

/* Token objects (p11_object.c) ------------------------------------------------------------ */

/** Every object matching tmpl (token or session objects, as tmpl says). free() *objs. */
kp_status kp_p11_find_all(kp_p11_op *op, CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl,
                          CK_OBJECT_HANDLE **objs, size_t *n);
/** The one token object of cls labelled label; KP_ERR_NOT_FOUND without text when none. */
kp_status kp_p11_find_one(kp_p11_op *op, CK_OBJECT_CLASS cls, const char *label,
                          CK_OBJECT_HANDLE *obj);
/** The one public key object labelled label with CKA_ID id: the public half of an RSA key
 *  object of that label and ID. KP_ERR_NOT_FOUND without text when none. */
kp_status kp_p11_find_pub(kp_p11_op *op, const char *label, const uint8_t *id, size_t idlen,
                          CK_OBJECT_HANDLE *obj);
/** Reads a variable-length attribute into a malloc'ed buffer. */
kp_status kp_p11_attr(kp_p11_op *op, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, uint8_t **val,
                      size_t *len);
/** Reads CKA_VALUE of a session key into a new secret. */
kp_status kp_p11_attr_secret(kp_p11_op *op, CK_OBJECT_HANDLE obj, kp_secret **out);
/** A session secret key holding value: transport (unwrap only, sensitive, not extractable) or
 *  a DEK copy (extractable, not sensitive) that the token may wrap. */
kp_status kp_p11_session_secret(kp_p11_op *op, CK_KEY_TYPE kt, const kp_secret *value,
                                bool transport, const char *what, CK_OBJECT_HANDLE *obj);
/** C_GenerateKey of a one-time AES-256 session key that may wrap (KP_P11_WRAP_KEY_LEN bytes,
 *  extractable): readable (not sensitive) when its value is to be read back, private when the
 *  session is logged in. The CK_RV is the caller's to report. */
CK_RV kp_p11_session_aes(kp_p11_op *op, bool readable, bool private_obj, CK_OBJECT_HANDLE *obj);
/** SubjectPublicKeyInfo DER (malloc'ed) of an RSA public or private key object, from its
 *  CKA_MODULUS and CKA_PUBLIC_EXPONENT. */
kp_status kp_p11_obj_spki(kp_p11_op *op, CK_OBJECT_HANDLE obj, uint8_t **der, size_t *len);
/** Sets CKA_LABEL (and CKA_ID when id is not NULL) of an object. */
kp_status kp_p11_relabel(kp_p11_op *op, CK_OBJECT_HANDLE obj, const uint8_t *id, size_t idlen,
                         const char *label);
/** Best-effort C_DestroyObject for cleanup paths; CK_INVALID_HANDLE is a no-op. */
void kp_p11_destroy(kp_p11_op *op, CK_OBJECT_HANDLE obj);

/* Key versions on the token (p11_lookup.c) ------------------------------------------------ */

/** A pending object older than this many seconds (by its label's time) is a dead writer's:
 *  readers ignore it and writers destroy it. */
#define KP_P11_STALE_S 60

/** One key object of a version as a listing finds it: published or pending. */
typedef struct kp_p11_vobj {
    kp_p11_label_info at; /* name, version, pending and since, from its label */
    CK_OBJECT_CLASS cls;  /* CKO_PRIVATE_KEY (RSA) or CKO_SECRET_KEY (AES) */
    CK_OBJECT_HANDLE obj;
    char label[KP_P11_OBJLABEL_MAX + 1];
    uint8_t id[KP_P11_ID_MAX]; /* CKA_ID: an RSA key's fingerprint, an AES key's tag */
    size_t idlen;
    bool full; /* a listing of the token (p11_snap.c) read the rest of what a reader needs: */
    bool extractable;
    uint32_t bits;
    int64_t created;
} kp_p11_vobj;

/** The key objects of name (of every key when NULL) and version (every version when 0),
 *  published and pending, found by the name's tag; objects without the tag are not ours.
 *  free() *objs. */
kp_status kp_p11_vobjs(kp_p11_op *op, const char *name, uint32_t version, kp_p11_vobj **objs,
                       size_t *n);
/** The order every reader and writer gives the objects of one version (<0: a first): RSA keys
 *  by CKA_ID, AES keys published first, then by the pending label's random part. */
int kp_p11_vobj_order(const kp_p11_vobj *a, const kp_p11_vobj *b);
/** Whether o is pending and older than KP_P11_STALE_S at now (Unix time). */
bool kp_p11_vobj_stale(const kp_p11_vobj *o, int64_t now);
/** Which of objs (objects of one version) readers use: the first live one in the order above
 *  (*win). KP_ERR_NOT_FOUND when none is live; KP_ERR_UNAVAILABLE when the first is pending
 *  (the version is being created); KP_ERR_INTEGRITY for two published AES keys. No text. */
kp_status kp_p11_vobj_resolve(const kp_p11_vobj *objs, size_t n, int64_t now, size_t *win);
/** Every key version on the token (name NULL: all private and secret keys read) or of name
 *  (found by its tag only), each as its readers resolve it, sorted by name then version.
 *  Versions being created are left out. free() the array. */
kp_status kp_p11_scan(kp_p11_op *op, const char *name, kp_p11_key **keys, size_t *n);
/** Finds name/version (the latest version of name for version 0) by its tag, as readers
 *  resolve it; KP_ERR_NOT_FOUND or KP_ERR_UNAVAILABLE (being created) with text. Never reads
 *  objects of other keys. */
kp_status kp_p11_key_find(kp_p11_op *op, const char *name, uint32_t version, kp_p11_key *key);
/** The public key object of an RSA key version (from the instance's listing
 *  of the token when it has one), checked against the key's CKA_ID; der (may be
 *  NULL) receives its SubjectPublicKeyInfo DER (malloc'ed). */
kp_status kp_p11_key_public(kp_p11_op *op, const kp_p11_key *key, CK_OBJECT_HANDLE *obj,
                            uint8_t **der, size_t *len);

/* One listing of the token for many reads (p11_snap.c) ------------------------------------ */

/** A listing lives this long at most, so that a long-lived instance (an engine embedding
 *  libkeyplane) sees what other processes wrote since; writes through the same module drop it
 *  at once. */
#define KP_P11_SNAP_MS 2000

/** A public key or state document in a listing. */
typedef struct kp_p11_snap_obj {
    char name[KP_NAME_MAX];
    uint32_t version; /* public keys */
    CK_OBJECT_HANDLE obj;
    uint8_t id[KP_P11_ID_MAX]; /* public keys: CKA_ID */
    size_t idlen;
    int64_t created; /* public keys: CKA_START_DATE as Unix time, 0 when unset */
} kp_p11_snap_obj;

/** The bit length of a big-endian modulus. */
uint32_t kp_p11_bits(const uint8_t *n, size_t len);
/** Whether a key object of name, of class cls, carries that name's tag (kp_p11_tag): an RSA
 *  private key's CKA_SUBJECT (subject, as read), an AES key's CKA_ID. */
bool kp_p11_tagged(kp_p11_inst *pi, const char *name, CK_OBJECT_CLASS cls, const uint8_t *id,
                   size_t idlen, const CK_ATTRIBUTE *subject);
/** Judges the attributes read of a token key object of class cls (a: CKA_LABEL into o->label,
 *  CKA_ID into o->id, CKA_KEY_TYPE, CKA_SUBJECT): 1 when it is an object (published or pending)
 *  of a version of ours (of name and version, when not NULL and 0), filled into o; 0 when not.
 *  An unavailable CKA_ID is asked again on op's session: too long for ours (not ours), or none
 *  yet (a key a writer is still making: ours, unordered). */
int kp_p11_vjudge(kp_p11_op *op, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE obj, const CK_ATTRIBUTE *a,
                  const char *name, uint32_t version, kp_p11_vobj *o);
/** Whether the CKA_ID of obj, unavailable in a read with room for ours, is one at all: true when
 *  the token reports a length for it (longer than any keyplane makes), false when it has none. */
bool kp_p11_id_too_long(kp_p11_op *op, CK_OBJECT_HANDLE obj);
/** The instance's live listing, or a new one when one is wanted for reading name (take: a
 *  listing or state read; kp_p11_snap_wanted), with a reference; NULL when there is none
 *  (callers then search the token). A listing that fails is not an error: the caller's own
 *  search reports what the token says. */
kp_p11_snap *kp_p11_snap_get(kp_p11_op *op, bool take, const char *name);
/** The key objects of name (every key when NULL) and version (every version when 0) in s, as
 *  kp_p11_vobjs would find them. free() *objs. */
kp_status kp_p11_snap_vobjs(kp_p11_inst *pi, const kp_p11_snap *s, const char *name,
                            uint32_t version, kp_p11_vobj **objs, size_t *n);
/** The one published public key of name/version with CKA_ID id in s; false when there is not
 *  exactly one. */
bool kp_p11_snap_pub(const kp_p11_snap *s, const char *name, uint32_t version, const uint8_t *id,
                     size_t idlen, CK_OBJECT_HANDLE *obj);
/** The state documents of name in s: the first of *n entries (0 when none). */
const kp_p11_snap_obj *kp_p11_snap_docs(const kp_p11_snap *s, const char *name, size_t *n);

/* A key version described to the core (p11_info.c) --------------------------------------- */

/** Fills a full kp_key_info (struct_size = sizeof) for key; callers hand it on with
 *  kp_key_info_put or, for LIST visitors, as it is. */
void kp_p11_key_info(kp_p11_inst *pi, const kp_p11_key *key, kp_key_info *info);
/** Today as a CK_DATE and as the Unix time of its midnight UTC. */
void kp_p11_today(CK_DATE *date, int64_t *unix_time);
/** Unix time of a CK_DATE; 0 when malformed. */
int64_t kp_p11_date_time(const CK_DATE *date);

/* Crypto in software (p11_crypto.c) ------------------------------------------------------- */

kp_status kp_p11_random(kp_p11_inst *pi, uint8_t *buf, size_t len);
/** The fingerprint of an SPKI DER (kpk_fpr_spki) and the CKA_ID made of it (its 32 bytes). */
kp_status kp_p11_spki_id(kp_p11_inst *pi, const uint8_t *spki, size_t len, char fpr[KPK_FPR_HEX],
                         uint8_t id[KP_P11_SHA256_LEN]);
/** SubjectPublicKeyInfo DER (OPENSSL_malloc'ed) of an RSA public key given as big-endian
 *  modulus and exponent. */
kp_status kp_p11_spki_build(kp_p11_inst *pi, const uint8_t *n, size_t nlen, const uint8_t *e,
                            size_t elen, uint8_t **der, size_t *len);
/** Modulus and exponent (malloc'ed, big-endian) of an RSA SubjectPublicKeyInfo DER of at least
 *  2048 bits (a wrapping key); KP_ERR_INVALID_ARG when it is not one. */
kp_status kp_p11_spki_parse(kp_p11_inst *pi, const uint8_t *der, size_t len, uint8_t **n,
                            size_t *nlen, uint8_t **e, size_t *elen);
/** Vets a PKCS#8 PrivateKeyInfo DER for import (RSA 2048/3072/4096, consistent, bits as
 *  asked when not 0) and returns its public half as SPKI DER (OPENSSL_malloc'ed). */
kp_status kp_p11_p8_check(kp_p11_inst *pi, const char *name, uint32_t bits, const uint8_t *der,
                          size_t len, uint8_t **spki, size_t *spkilen);
/** One RFC 5649 pass with AES-256 (enc: wrap, else unwrap) of in into out; *outlen is the bytes
 *  written. false leaves OpenSSL's reason queued, for the caller to report or clear. */
bool kp_p11_kwp_raw(const uint8_t *key, bool enc, const uint8_t *in, size_t inlen, uint8_t *out,
                    size_t *outlen);
/** RFC 5649 with AES-256: out needs kp_p11_kwp_len(inlen) bytes. */
kp_status kp_p11_kwp_wrap(kp_p11_inst *pi, const uint8_t *key, const uint8_t *in, size_t inlen,
                          uint8_t *out, size_t *outlen);
/** RFC 5649 unwrap with AES-256 into a new secret; KP_ERR_CRYPTO on a bad blob. */
kp_status kp_p11_kwp_unwrap(kp_p11_inst *pi, const uint8_t *key, const uint8_t *in, size_t inlen,
                            kp_secret **out);
size_t kp_p11_kwp_len(size_t inlen);

/* New key versions (p11_version.c, p11_keygen.c) ----------------------------------------- */

/** A writer decides whether its pending objects win their version no sooner than this many
 *  milliseconds after it made them (see p11_version.c). */
#define KP_P11_DECIDE_MS 100
/** How long a writer waits for other writers' pending objects of its version to resolve. */
#define KP_P11_SETTLE_MS 10000

/** A new version one writer is making. */
typedef struct kp_p11_draft {
    char name[KP_NAME_MAX];
    uint32_t version;
    char label[KP_P11_OBJLABEL_MAX];   /* the version's label, once it wins */
    char pending[KP_P11_OBJLABEL_MAX]; /* its objects' label until then */
    int64_t since;                     /* the pending label's time */
    CK_OBJECT_HANDLE key, pub;         /* private or secret key; RSA public key */
    uint64_t made_ms;                  /* monotonic time the key objects were made */
} kp_p11_draft;

/** Picks the version (want when free, else KP_ERR_EXISTS; the next after every published and
 *  live pending one when want is 0) and the pending label the objects are made under. Run
 *  under kp_p11_write_run. Every object of the version is then made right after kp_p11_refresh. */
kp_status kp_p11_draft_open(kp_p11_op *op, const char *name, uint32_t want, kp_p11_draft *d);
/** Records the key objects made under d->pending (pub CK_INVALID_HANDLE for AES), and when. */
void kp_p11_draft_made(kp_p11_draft *d, CK_OBJECT_HANDLE key, CK_OBJECT_HANDLE pub);
/** Decides whether d's objects become the version and publishes them (KP_OK), against every
 *  other writer of the version. On failure they are destroyed: KP_ERR_EXISTS when another
 *  writer's object is the version (published, the caller may adopt it), KP_ERR_UNAVAILABLE
 *  when the version is still being decided after KP_P11_SETTLE_MS. */
kp_status kp_p11_draft_settle(kp_p11_op *op, kp_p11_draft *d);
/** Destroys d's objects (failure paths). */
void kp_p11_draft_drop(kp_p11_op *op, kp_p11_draft *d);
/** A search matching nothing: a token whose object list lags behind other processes re-reads
 *  it here (p11_version.c). */
void kp_p11_refresh(kp_p11_op *op);
/** A nudge (p11_version.c): makes the throw-away data object *obj after a search, or destroys it
 *  when *obj is already made, so that every process whose view of the token lags re-reads its
 *  list of objects at its next search. Failures only cost that. */
void kp_p11_nudge(kp_p11_op *op, CK_OBJECT_HANDLE *obj);
/** Copies the caller's spec (kp_key_spec_read) and checks its name. */
kp_status kp_p11_spec(kp_p11_inst *pi, const kp_key_spec *in, kp_key_spec *out);

#endif /* KP_P11_INTERNAL_H */
