/*
 * Internal declarations of the `file` plugin: a keystore and secret store kept in a local
 * directory, encrypted at rest under a passphrase. Nothing here crosses the plugin boundary;
 * only kp_plugin_init is exported.
 *
 * Words, one thing each (docs/file-plugin.md uses the same):
 *   the directory   what the `path` param names: everything an instance keeps is below it
 *   the header      keyplane-store.json in the directory: the store key encrypted under the
 *                   passphrase (format 2) or a salt (format 1), iterations, a check value;
 *                   written by INSTANCE_INIT only, it is what makes a directory a store (an
 *                   initialised one); without it every call is KP_ERR_UNAVAILABLE
 *   the store key   format 2: 32 random bytes, kept in the header under the passphrase (one
 *                   PBKDF2 per instance); written as 64 hex digits it is the password of every
 *                   private.p8, and HKDF of it the key of secret values
 *   the master key  format 1: derived from the passphrase and the header's salt; encrypts secret
 *                   values (private.p8 files use the passphrase itself)
 *   keystore        the KS_* functions (keys/), secret store the SS_* functions (secrets/)
 *   a file store    what the params' help and the messages an operator reads call one instance
 *                   (that is, its directory); those texts, like on-disk names, stay as they are
 *
 * The files call downwards only, in this order (each uses only those listed after it):
 *   file_plugin.c   entry point, params, instances, check
 *   file_keystore.c file_secretstore.c file_wrap.c file_export.c file_state.c file_cert.c
 *                   the ABI calls
 *   file_keys.c     one key version on disk
 *   file_cache.c    the key-version cache (meta and private keys, by name and version)
 *   file_header.c   the header, INSTANCE_INIT, and the master key
 *   file_version.c  versioned objects: names, version directories, listings
 *   file_crypto.c   OpenSSL
 *   file_io.c       error text, paths, files
 */
#ifndef KP_FILE_INTERNAL_H
#define KP_FILE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/evp.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>
#include <keyplane/provider.h>

/* The header's file name and the values it holds (on-disk names: they never change). */
#define KP_FILE_HEADER "keyplane-store.json"
#define KP_FILE_HEADER_FORMAT "keyplane-file-store"
#define KP_FILE_CHECK_TEXT "keyplane-file-store-check"

#define KP_FILE_SALT_LEN 16
/* Format 2's store key: KP_FILE_SK_LEN random bytes, written as KP_FILE_SK_HEX lower-case hex
 * digits, sealed in `openssl enc -aes-256-cbc -pbkdf2 -md sha256` form: "Salted__", an 8-byte
 * salt, and the CBC ciphertext of the 64 digits (80 bytes with the padding). */
#define KP_FILE_SK_LEN 32
#define KP_FILE_SK_HEX 64
#define KP_FILE_ENC_MAGIC_LEN 8
#define KP_FILE_ENC_SALT_LEN 8
#define KP_FILE_SK_SEALED (KP_FILE_ENC_MAGIC_LEN + KP_FILE_ENC_SALT_LEN + KP_FILE_SK_HEX + 16)
/* HKDF-SHA256 labels (info) of the keys derived from the store key. */
#define KP_FILE_SK_VALUES "keyplane-file-store values"
#define KP_FILE_SK_CHECK "keyplane-file-store check"
/* PBKDF2 iterations of a format 2 private.p8: its password is the store key, 256 random bits,
 * which no iteration count makes harder to guess. */
#define KP_FILE_P8_ITER_SK 1
#define KP_FILE_KEY_LEN 32 /* AES-256 */
#define KP_FILE_GCM_IV_LEN 12
#define KP_FILE_GCM_TAG_LEN 16
#define KP_FILE_GCM_OVERHEAD (KP_FILE_GCM_IV_LEN + KP_FILE_GCM_TAG_LEN)

#define KP_FILE_SECRET_MAX (1024u * 1024u) /* largest secret value */
#define KP_FILE_JSON_MAX (64u * 1024u)     /* largest meta.json / header we read */
#define KP_FILE_DER_MAX (64u * 1024u)      /* largest key file we read */
#define KP_FILE_PATH_MAX 4096

#define KP_FILE_KDF_MIN 10000
#define KP_FILE_KDF_MAX 10000000
#define KP_FILE_KDF_DEFAULT 100000

/** The core's upcalls, looked up once at init. */
typedef kp_upcalls kp_file_up;

/** The plugin context handed back by kp_plugin_init. */
typedef struct kp_file_plugin {
    kp_file_up up;
    kp_core_handle *h;
} kp_file_plugin;

/** What an lstat says of a file, to tell whether it is still the one read (file_cache.c); all
 *  zero for a file that was not there. */
typedef struct kp_file_stamp {
    uint64_t dev, ino;
    int64_t size, mtime_ns, ctime_ns;
} kp_file_stamp;

/** The files of a version stamped, in this order: keys/, keys/NAME/, the version's directory,
 *  meta.json (the first KP_FILE_INFO_STAMPS: what its info is read from), public.der,
 *  private.p8. */
#define KP_FILE_STAMPS 6
/** At most this many decrypted private keys per instance (file_cache.c), the least recently
 *  used given up first: they live in OpenSSL's secure heap (4 MiB in the keyplane command,
 *  about 0.9 KiB per RSA-2048 key, 1.8 KiB per RSA-4096 key), which a verify of thousands of
 *  keys would otherwise fill. */
#define KP_FILE_PKEYS_MAX 128
#define KP_FILE_INFO_STAMPS 4

/** A key version as the instance last read it (file_cache.c): its checked meta.json and, once
 *  decrypted, its private key, with the stamps of the files they came from. */
typedef struct kp_file_cached_key {
    struct kp_file_cached_key *next; /* in its bucket */
    uint64_t hash;
    char name[KP_NAME_MAX];
    uint32_t version;
    EVP_PKEY *pkey; /* NULL until decrypted */
    /* Entries holding a pkey, most recently used first (kp_file_inst.newest), so that the
     * instance keeps at most KP_FILE_PKEYS_MAX of them. */
    struct kp_file_cached_key *older, *newer;
    bool have_info;
    kp_key_info info;
    kp_file_stamp stamp[KP_FILE_STAMPS]; /* taken before the files were read */
} kp_file_cached_key;

/** What the header opens to (kp_file_unlock), derived once per instance and fixed afterwards. */
typedef struct kp_file_keys {
    int format;        /* the header's version: 1 or 2 */
    kp_secret *values; /* AES-256-GCM key of secret values (format 1: the master key) */
    const char *magic; /* the first 4 bytes of value.enc: "KPS1" (format 1) or "KPS2" */
    kp_secret
        *p8_pass;     /* format 2: the store key's 64 hex digits; format 1: NULL, the passphrase */
    uint32_t p8_iter; /* PBKDF2 iterations of new private.p8 files */
} kp_file_keys;

/** One open directory. */
typedef struct kp_file_inst {
    const kp_file_up *up;
    kp_core_handle *h;
    char *dir;                  /* the directory (the path param), no trailing slash */
    kp_secret *pass;            /* our own copy of the passphrase */
    uint32_t kdf_iter;          /* from the param; used only by INIT, which writes the header */
    pthread_mutex_t lock;       /* guards the members below */
    kp_file_keys *keys;         /* NULL until the header is opened; never changes afterwards */
    kp_file_cached_key **cache; /* cache_nb buckets (a power of two, or 0) */
    size_t cache_nb, cache_n;
    kp_file_cached_key *newest, *oldest; /* the entries holding a private key */
    size_t cache_npkeys;
    kpk_p8_decoder *p8dec; /* made at the first private key read; never changes afterwards */
} kp_file_inst;

/* Entry points (file_keystore.c, file_wrap.c, file_export.c, file_state.c, file_cert.c,
 * file_secretstore.c, and INSTANCE_INIT in file_header.c), for file_plugin.c's dispatch table.
 * Declared through the ABI typedefs so the compiler checks them against provider.h. */
kp_ks_create_fn kp_file_ks_create;
kp_ks_import_fn kp_file_ks_import;
kp_ks_get_public_fn kp_file_ks_get_public;
kp_ks_list_fn kp_file_ks_list;
kp_ks_wrap_fn kp_file_ks_wrap;
kp_ks_unwrap_fn kp_file_ks_unwrap;
kp_ks_export_fn kp_file_ks_export;
kp_ks_export_wrapped_fn kp_file_ks_export_wrapped;
kp_ks_get_fn kp_file_ks_get;
kp_ks_cert_put_fn kp_file_ks_cert_put;
kp_ks_cert_get_fn kp_file_ks_cert_get;
kp_ks_state_get_fn kp_file_ks_state_get;
kp_ks_state_put_fn kp_file_ks_state_put;
kp_ss_put_fn kp_file_ss_put;
kp_ss_get_fn kp_file_ss_get;
kp_ss_list_fn kp_file_ss_list;
kp_instance_init_fn kp_file_init; /* the only place a store is created */

/* Errors and paths (file_io.c) ------------------------------------------------------------ */

/** The plugin's one error-text macro: formats a one-line reason, hands it to SET_ERROR for this
 *  instance and returns st (the ABI's kp_errorf with the instance's handle). Never pass
 *  secrets. */
#define kp_file_err(fi, st, ...) KP_ERRORF((fi)->up, (fi)->h, st, __VA_ARGS__)
/** Maps errno e to a status and sets "<what> <path>: <strerror>". */
kp_status kp_file_errno(kp_file_inst *fi, int e, const char *what, const char *path);
kp_status kp_file_errno_status(int e);
/** Thread-safe strerror into buf. */
const char *kp_file_strerror(int e, char *buf, size_t size);
/** Writes a formatted path into buf; KP_ERR_INVALID_ARG when it does not fit. */
kp_status kp_file_path(kp_file_inst *fi, char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Files (file_io.c) ----------------------------------------------------------------------- */

/** Opens path, a path below the store directory (fi->dir/...), one component at a time from
 *  the directory without following a symbolic link in any of them (O_NOFOLLOW each; O_CLOEXEC
 *  added to flags; mode for O_CREAT). 0 with *fd open, or an errno value: ENOENT or ENOTDIR when
 *  something is missing, ELOOP when a component is a symbolic link (*bad is then the length of
 *  the prefix of path that names it), EINVAL for a path not below the directory. Sets no error
 *  text: kp_file_open_err does. */
int kp_file_openat(const kp_file_inst *fi, const char *path, int flags, mode_t mode, int *fd,
                   size_t *bad);
/** Error text for a failed kp_file_openat of path (dir: meant to be a directory): a symbolic link
 *  is named as one (KP_ERR_INTEGRITY), anything else is kp_file_errno with what. */
kp_status kp_file_open_err(kp_file_inst *fi, int e, size_t bad, bool dir, const char *what,
                           const char *path);
/** lstat() of path below the store directory, through kp_file_openat (a symbolic link on the
 *  way is an error, one as the last component is described by *sb); *missing (KP_OK, *sb
 *  untouched) when it is not there. */
kp_status kp_file_lstat(kp_file_inst *fi, const char *path, struct stat *sb, bool *missing);

kp_status kp_file_mkdirs(kp_file_inst *fi, const char *path);
/** Reads a whole regular file of at most cap bytes into a malloc'ed buffer. */
kp_status kp_file_read(kp_file_inst *fi, const char *path, size_t cap, uint8_t **data, size_t *len);
/** Creates path (must not exist), writes data, fsyncs. Meant for files inside a private temp
 *  directory that is renamed into place afterwards. */
kp_status kp_file_write_new(kp_file_inst *fi, const char *path, const void *data, size_t len);
/** Atomically writes path through a temp file in the same directory. With noreplace an
 *  existing path is left alone and KP_ERR_EXISTS is returned without error text. */
kp_status kp_file_write_atomic(kp_file_inst *fi, const char *path, const void *data, size_t len,
                               bool noreplace);
/** rename() that never replaces to: RENAME_NOREPLACE where the file system has it; else a file
 *  (dir false) goes through link() + unlink(), which fails the same way (EEXIST), and a
 *  directory (dir true) through rename(), which refuses a non-empty target (ENOTEMPTY). 0, or
 *  -1 with errno set. */
int kp_file_rename_noreplace(const char *from, const char *to, bool dir);
kp_status kp_file_fsync_dir(kp_file_inst *fi, const char *path);
/** Removes a flat directory (its files, then itself); best effort, for cleanup paths. */
void kp_file_remove_flat(const char *dir);

kp_status kp_file_json_read(kp_file_inst *fi, const char *path, json_t **out);
kp_status kp_file_json_write_new(kp_file_inst *fi, const char *path, const json_t *j);

/* Versioned objects (file_version.c) ------------------------------------------------------ */

/* kind is "key" or "secret": the word in messages, and with an "s" the subdirectory of the
 * directory that holds the objects of that kind (keys/, secrets/). */

/** kpk_key_name_valid (the ABI's rule, which keeps every name one visible path component),
 *  setting error text when not. */
kp_status kp_file_check_name(kp_file_inst *fi, const char *kind, const char *name);
/** The object's directory <dir>/<kind>s/<name> into buf, after checking name. */
kp_status kp_file_object_dir(kp_file_inst *fi, const char *kind, const char *name, char *buf,
                             size_t size);
/** kp_file_object_dir, then *version resolved: 0 becomes the latest, and a version that is not
 *  there is KP_ERR_NOT_FOUND with text. */
kp_status kp_file_object(kp_file_inst *fi, const char *kind, const char *name, uint32_t *version,
                         char *objdir, size_t size);
/** Called for one version of an object (objdir as kp_file_object_dir gives it). A failure to
 *  read the version sets *broken (it is then passed over); any other failure stops the listing. */
typedef kp_status (*kp_file_version_fn)(kp_file_inst *fi, const char *name, const char *objdir,
                                        uint32_t version, void *arg, bool *broken);
/** Calls fn for every version of name (KP_ERR_NOT_FOUND with text when it has none), or with
 *  name NULL of every object of kind, in name then version order, until one fails other than
 *  by *broken. A version that cannot be read (or, with name NULL, an object whose directory
 *  cannot) is passed over with a warning naming it, so that one broken file does not hide the
 *  others; when none could be read, the first reason is the listing's failure. */
kp_status kp_file_list(kp_file_inst *fi, const char *kind, const char *name, kp_file_version_fn fn,
                       void *arg);

/** Writes the files of one version into a fresh private directory dir. */
typedef kp_status (*kp_file_fill_fn)(kp_file_inst *fi, const char *dir, uint32_t version,
                                     void *arg);
/** Creates parent/<version> atomically: fill a temp dir, then rename it into place. want == 0
 *  takes the next free version (retrying on a race); else exactly want or KP_ERR_EXISTS. */
kp_status kp_file_commit_version(kp_file_inst *fi, const char *parent, uint32_t want,
                                 kp_file_fill_fn fill, void *arg, uint32_t *version);

/* The header and the keys it opens to (file_header.c) ------------------------------------- */

/** KP_OK when the directory is an initialised store (its header is there); else
 *  KP_ERR_UNAVAILABLE with the line that says the store is not initialised, and how to bring it
 *  back or create it. Every ABI call on a store starts with it: a missing store is unreachable,
 *  never empty. */
kp_status kp_file_ready(kp_file_inst *fi);
/** Opens (once per instance: the one PBKDF2 of the store) the header with the passphrase, after
 *  kp_file_ready (every call): KP_ERR_UNAVAILABLE when the store is not initialised, KP_ERR_AUTH
 *  for another passphrase. *keys is borrowed from the instance and valid until close. */
kp_status kp_file_unlock(kp_file_inst *fi, const kp_file_keys **keys);
void kp_file_keys_free(kp_file_inst *fi, kp_file_keys *keys);

/* Crypto (file_crypto.c) ------------------------------------------------------------------ */

/** Like kp_file_err, appending ": <OpenSSL's last reason>" and clearing its error queue (the
 *  kit's kpk_ossl_errorf with the instance's handle). */
#define kp_file_ossl_err(fi, st, ...) kpk_ossl_errorf((fi)->up, (fi)->h, (st), __VA_ARGS__)
kp_status kp_file_pbkdf2(kp_file_inst *fi, const kp_secret *pass, const uint8_t *salt,
                         size_t saltlen, uint32_t iter, kp_secret **key);
kp_status kp_file_random(kp_file_inst *fi, uint8_t *buf, size_t len);
/** out (ptlen + KP_FILE_GCM_OVERHEAD bytes) = IV | ciphertext | tag. */
kp_status kp_file_gcm_seal(kp_file_inst *fi, const kp_secret *key, const void *aad, size_t aadlen,
                           const uint8_t *pt, size_t ptlen, uint8_t *out);
/** Opens IV | ciphertext | tag into pt (inlen - KP_FILE_GCM_OVERHEAD bytes). Returns
 *  KP_ERR_INTEGRITY WITHOUT error text when authentication fails: the caller names the object. */
kp_status kp_file_gcm_open(kp_file_inst *fi, const kp_secret *key, const void *aad, size_t aadlen,
                           const uint8_t *in, size_t inlen, uint8_t *pt);
/** PKCS#8 EncryptedPrivateKeyInfo DER: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC, under keys'
 *  private.p8 password and iterations. */
kp_status kp_file_p8_encrypt(kp_file_inst *fi, const kp_file_keys *keys, EVP_PKEY *pkey,
                             uint8_t **der, size_t *len);
/** Decrypts private.p8 with keys' password: KP_ERR_AUTH (format 1: the passphrase is wrong) or
 *  KP_ERR_INTEGRITY (format 2: the file was not written under this store's key), text naming
 *  what, when it fails. */
kp_status kp_file_p8_decrypt(kp_file_inst *fi, const kp_file_keys *keys, const char *what,
                             const uint8_t *der, size_t len, EVP_PKEY **pkey);
/** Seals the store key's hex text under pass into out (KP_FILE_SK_SEALED bytes), as
 *  `openssl enc -aes-256-cbc -pbkdf2 -md sha256 -iter iter` would. */
kp_status kp_file_sk_seal(kp_file_inst *fi, const kp_secret *pass, uint32_t iter,
                          const kp_secret *text, uint8_t *out);
/** Opens what kp_file_sk_seal wrote; KP_ERR_AUTH without text when pass is not the one (or the
 *  bytes were changed), KP_ERR_INTEGRITY without text when in is not a sealed store key. */
kp_status kp_file_sk_open(kp_file_inst *fi, const kp_secret *pass, uint32_t iter, const uint8_t *in,
                          size_t inlen, kp_secret **text);
/** HKDF-SHA256 of the store key (its hex text decoded), info label, 32 bytes. */
kp_status kp_file_sk_derive(kp_file_inst *fi, const kp_secret *text, const char *label,
                            kp_secret **key);

/* Keys on disk (file_keys.c) -------------------------------------------------------------- */

kp_status kp_file_key_dir(kp_file_inst *fi, const char *name, uint32_t version, char *buf,
                          size_t size);
/** meta.json of name/version, read and checked now (listings), not through the cache. */
kp_status kp_file_key_info_read(kp_file_inst *fi, const char *name, uint32_t version,
                                kp_key_info *info);
/** Reads meta.json of name/version into info, a full kp_key_info of this plugin's size
 *  (struct_size set; backend_id = the version directory), through the key-version cache. */
kp_status kp_file_key_info(kp_file_inst *fi, const char *name, uint32_t version, kp_key_info *info);
kp_status kp_file_key_meta_write(kp_file_inst *fi, const char *dir, const kp_key_info *info);
/** public.der of name/version (malloc'd), checked against the fingerprint in meta.json: a
 *  swapped public key would otherwise capture every DEK wrapped under it. */
kp_status kp_file_key_public_der(kp_file_inst *fi, const char *name, uint32_t version,
                                 uint8_t **der, size_t *len);
kp_status kp_file_key_public(kp_file_inst *fi, const char *name, uint32_t version, EVP_PKEY **pkey);
/** The private key of name/version, from the cache or decrypted from private.p8. The caller
 *  owns one reference (EVP_PKEY_free). */
kp_status kp_file_key_private(kp_file_inst *fi, const char *name, uint32_t version,
                              EVP_PKEY **pkey);

/* file_cache.c: the key-version cache (each call takes fi->lock). */
/** Stamps the first n files of name/version (KP_FILE_STAMPS order): call before reading them. */
void kp_file_cache_stamp(kp_file_inst *fi, const char *name, uint32_t version, size_t n,
                         kp_file_stamp *stamps);
/** The cached private key of name/version (one reference for the caller) while its files are
 *  unchanged, or NULL. */
EVP_PKEY *kp_file_cache_pkey(kp_file_inst *fi, const char *name, uint32_t version);
/** Keeps mine (read from files stamped as stamps, all KP_FILE_STAMPS) as the private key of
 *  name/version, replacing an older copy; returns mine, still the caller's reference. */
EVP_PKEY *kp_file_cache_keep_pkey(kp_file_inst *fi, const char *name, uint32_t version,
                                  EVP_PKEY *mine, const kp_file_stamp *stamps);
/** The cached meta.json of name/version into info while it is unchanged, or false. */
bool kp_file_cache_info(kp_file_inst *fi, const char *name, uint32_t version, kp_key_info *info);
/** Keeps info (read and checked from meta.json; stamps: its first KP_FILE_INFO_STAMPS files). */
void kp_file_cache_keep_info(kp_file_inst *fi, const kp_key_info *info,
                             const kp_file_stamp *stamps);
void kp_file_cache_free(kp_file_inst *fi);
/** Gives up every private key the instance keeps (their meta.json stays); returns how many. */
size_t kp_file_cache_drop_pkeys(kp_file_inst *fi);

#endif /* KP_FILE_INTERNAL_H */
