/*
 * The `latency` plugin: a test-only KEYSTORE for tests/bench/replicate. It keeps keys in memory
 * and sleeps latency_ms at the start of every provider call (not open/close), so a benchmark
 * measures how the engine overlaps slow providers, as a remote KMS or HSM would be.
 *
 * A BENCHMARK DEVICE, NEVER A KEYSTORE: to keep the benchmark about latency and not about RSA
 * key generation, ONE RSA-2048 key is generated at plugin init and every KS_CREATE stores that
 * same key material under the requested name and version. Keys live only in process memory.
 *
 * Params: `store` names an in-memory store; instances opened with the same store name (even
 * several times in one process, as the engine does for discovery and again for apply) see the
 * same keys. `latency_ms` (default 20) is the injected delay.
 *
 * Thread-safe: the plugin context keeps a mutex-protected table of stores, each store has its
 * own mutex, and the sleep and every OpenSSL operation run outside any lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/provider.h>

#define S_LATENCY_DEFAULT 20
#define S_LATENCY_MAX 10000
#define S_BUCKETS 1024 /* per store; chains are short, so lookups stay cheap at 1000s of keys */

/* The core's upcalls, looked up once at init. */
typedef kp_upcalls s_up;

/* One key material: the private key, its PKCS#8 (in a core secret) and its SPKI. Shared by
 * the versions that hold it (every KS_CREATE holds the plugin's one key). Versions are never
 * removed, so a material a version holds stays valid until teardown and lookups borrow it. */
typedef struct s_material {
    atomic_uint refs; /* holders: the plugin (shared key), versions, an import in progress */
    EVP_PKEY *pkey;
    kp_secret *pkcs8;
    uint8_t *spki;
    size_t spki_len;
    uint32_t bits;
    char fpr[KPK_FPR_HEX];
} s_material;

typedef struct s_version {
    uint32_t version;
    uint32_t flags;
    int64_t created;
    s_material *m;
} s_version;

/* All versions of one key name, ascending. */
typedef struct s_key {
    struct s_key *next; /* bucket chain */
    char name[KP_NAME_MAX];
    s_version *v;
    size_t n, cap;
} s_key;

/* One named in-memory store. Never freed before teardown, so instances may point at it. */
typedef struct s_store {
    struct s_store *next;
    char *name;
    pthread_mutex_t lock; /* guards the keys and their versions */
    s_key *buckets[S_BUCKETS];
    size_t nkeys;
} s_store;

typedef struct s_plugin {
    s_up up;
    kp_core_handle *h;
    pthread_mutex_t lock; /* guards stores */
    s_store *stores;
    s_material *shared; /* the one key every KS_CREATE stores */
} s_plugin;

typedef struct s_inst {
    s_plugin *pl;
    kp_core_handle *h;
    s_store *store;
    unsigned latency_ms;
} s_inst;

static kp_plugin_info_fn s_info;
static kp_plugin_teardown_fn s_teardown;
static kp_plugin_params_fn s_params;
static kp_instance_open_fn s_open;
static kp_instance_close_fn s_close;
static kp_instance_check_fn s_check;
static kp_instance_info_fn s_instance_info;
static kp_ks_create_fn s_create;
static kp_ks_import_fn s_import;
static kp_ks_get_public_fn s_get_public;
static kp_ks_list_fn s_list;
static kp_ks_wrap_fn s_wrap;
static kp_ks_unwrap_fn s_unwrap;
static kp_ks_export_fn s_export;
static kp_ks_get_fn s_get;

static const kp_plugin_info s_plugin_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0, /* needs nothing newer than ABI 1.0 */
    .name = "latency",
    .version = "0.1.0",
    .description = "test only: in-memory keystore that sleeps latency_ms in every call",
    .capabilities = KP_CAP_KEYSTORE,
};

static const kp_param_desc s_param_list[] = {
    {"store", KP_PARAM_STRING, KP_PARAM_REQUIRED, 0, 0,
     "in-memory store name; instances with the same name share keys within the process"},
    {"latency_ms", KP_PARAM_INT, 0, 0, S_LATENCY_MAX,
     "milliseconds slept at the start of every provider call (default 20)"},
    {NULL, 0, 0, 0, 0, NULL},
};

static const kp_dispatch s_dispatch[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_params},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)s_instance_info},
    {KP_FN_KS_CREATE, (kp_fn)s_create},
    {KP_FN_KS_IMPORT, (kp_fn)s_import},
    {KP_FN_KS_GET_PUBLIC, (kp_fn)s_get_public},
    {KP_FN_KS_LIST, (kp_fn)s_list},
    {KP_FN_KS_WRAP, (kp_fn)s_wrap},
    {KP_FN_KS_UNWRAP, (kp_fn)s_unwrap},
    {KP_FN_KS_EXPORT, (kp_fn)s_export},
    {KP_FN_KS_GET, (kp_fn)s_get},
    {0, NULL},
};

/* ---- helpers ----------------------------------------------------------------------------- */

/* kp_errorf with the instance's upcalls and handle. */
#define s_err(in, st, ...) kp_errorf(&(in)->pl->up, (in)->h, (st), __VA_ARGS__)

/* The injected latency; restarts after a signal so the full delay is always served. */
static void s_sleep(const s_inst *in)
{
    struct timespec ts = {(time_t)(in->latency_ms / 1000),
                          (long)(in->latency_ms % 1000) * 1000000L};

    while (in->latency_ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static size_t s_hash(const char *name)
{
    size_t h = 5381; /* djb2 */

    for (; *name != '\0'; name++)
        h = h * 33u + (unsigned char)*name;
    return h % S_BUCKETS;
}

static void s_material_unref(const s_up *up, s_material *m)
{
    if (m == NULL || atomic_fetch_sub(&m->refs, 1) > 1)
        return;
    EVP_PKEY_free(m->pkey);
    up->secret_free(m->pkcs8);
    free(m->spki);
    free(m);
}

/* Builds a material (refs 1) from pkey, taking ownership of it. pkcs8 may be NULL to encode it
 * from pkey; otherwise the given DER is copied as is. */
static kp_status s_material_new(const s_up *up, EVP_PKEY *pkey, const kp_secret *pkcs8,
                                s_material **out)
{
    s_material *m = calloc(1, sizeof(*m));
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *p;
    int n;

    *out = NULL;
    if (m == NULL) {
        EVP_PKEY_free(pkey);
        return KP_ERR_NOMEM;
    }
    atomic_init(&m->refs, 1);
    m->pkey = pkey;
    m->bits = (uint32_t)EVP_PKEY_get_bits(pkey);
    if ((n = i2d_PUBKEY(pkey, NULL)) <= 0 || (m->spki = malloc((size_t)n)) == NULL)
        goto fail;
    p = m->spki;
    if (i2d_PUBKEY(pkey, &p) != n)
        goto fail;
    m->spki_len = (size_t)n;
    if (kpk_fpr_spki(m->spki, m->spki_len, m->fpr) != KP_OK)
        goto fail;
    if (pkcs8 != NULL) {
        size_t len = up->secret_len(pkcs8);
        if ((m->pkcs8 = up->secret_new(len)) == NULL)
            goto fail;
        memcpy(up->secret_data(m->pkcs8), up->secret_cdata(pkcs8), len);
    } else {
        if ((p8 = EVP_PKEY2PKCS8(pkey)) == NULL || (n = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL)) <= 0 ||
            (m->pkcs8 = up->secret_new((size_t)n)) == NULL)
            goto fail;
        p = up->secret_data(m->pkcs8);
        if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != n)
            goto fail;
        PKCS8_PRIV_KEY_INFO_free(p8); /* its own copy of the private key is cleansed */
    }
    *out = m;
    return KP_OK;
fail:
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    s_material_unref(up, m);
    return KP_ERR_CRYPTO;
}

/* Key of name in store; caller holds store->lock. */
static s_key *s_key_find(s_store *s, const char *name)
{
    for (s_key *k = s->buckets[s_hash(name)]; k != NULL; k = k->next)
        if (strcmp(k->name, name) == 0)
            return k;
    return NULL;
}

/* Version v of k (0 = latest); caller holds the store's lock. */
static s_version *s_version_find(s_key *k, uint32_t v)
{
    if (k == NULL || k->n == 0)
        return NULL;
    if (v == 0)
        return &k->v[k->n - 1];
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].version == v)
            return &k->v[i];
    return NULL;
}

static void s_fill_info(const s_inst *in, const s_key *k, const s_version *v, kp_key_info *info)
{
    memset(info, 0, sizeof(*info));
    info->struct_size = sizeof(*info); /* a full info: the visitor's or kp_key_info_put's source */
    snprintf(info->name, sizeof(info->name), "%s", k->name);
    info->version = v->version;
    info->type = KP_KEY_RSA;
    info->bits = v->m->bits;
    info->flags = v->flags;
    info->state = KP_KEY_ENABLED;
    info->created = v->created;
    memcpy(info->fingerprint, v->m->fpr, KPK_FPR_HEX);
    snprintf(info->backend_id, sizeof(info->backend_id), "latency:%.100s/%s/v%u", in->store->name,
             k->name, v->version);
}

/* Stores m (one more reference taken) as spec->name, version spec->version or the next free
 * one, and fills info. */
static kp_status s_store_put(s_inst *in, const kp_key_spec *spec, s_material *m, kp_key_info *info)
{
    s_store *s = in->store;
    kp_key_info full;
    kp_status st = KP_OK;
    uint32_t ver;
    size_t at;
    s_key *k;

    pthread_mutex_lock(&s->lock);
    if ((k = s_key_find(s, spec->name)) == NULL) {
        size_t b = s_hash(spec->name);
        if ((k = calloc(1, sizeof(*k))) == NULL) {
            st = s_err(in, KP_ERR_NOMEM, "out of memory");
            goto out;
        }
        snprintf(k->name, sizeof(k->name), "%s", spec->name);
        k->next = s->buckets[b];
        s->buckets[b] = k;
        s->nkeys++;
    }
    ver = spec->version != 0 ? spec->version : (k->n > 0 ? k->v[k->n - 1].version + 1 : 1);
    if (s_version_find(k, ver) != NULL) {
        st = s_err(in, KP_ERR_EXISTS, "%s: key %s v%u exists", s->name, spec->name, ver);
        goto out;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap == 0 ? 2 : k->cap * 2;
        s_version *nv = realloc(k->v, cap * sizeof(*nv));
        if (nv == NULL) {
            st = s_err(in, KP_ERR_NOMEM, "out of memory");
            goto out;
        }
        k->v = nv;
        k->cap = cap;
    }
    at = k->n; /* insertion keeps the versions ascending */
    while (at > 0 && k->v[at - 1].version > ver) {
        k->v[at] = k->v[at - 1];
        at--;
    }
    k->v[at] = (s_version){ver, spec->flags & KP_KEY_EXPORTABLE, (int64_t)time(NULL), m};
    k->n++;
    atomic_fetch_add(&m->refs, 1);
    s_fill_info(in, k, &k->v[at], &full);
out:
    pthread_mutex_unlock(&s->lock);
    if (st == KP_OK)
        kp_key_info_put(info, &full);
    return st;
}

/* Copies the caller's spec into spec (kp_key_spec_read) and checks it. */
static kp_status s_check_spec(s_inst *in, const kp_key_spec *caller, kp_key_spec *spec)
{
    if (!kp_key_spec_read(caller, spec))
        return s_err(in, KP_ERR_INVALID_ARG, "key spec missing or too small");
    if (!kpk_key_name_valid(spec->name))
        return s_err(in, KP_ERR_INVALID_ARG, "invalid key name");
    if (spec->type != KP_KEY_RSA)
        return s_err(in, KP_ERR_UNSUPPORTED, "the latency keystore holds RSA keys only");
    return KP_OK;
}

/* Looks name/version up (0 = latest) and borrows its material, so the crypto runs outside the
 * lock (versions are never removed before teardown). */
static kp_status s_material_get(s_inst *in, const char *name, uint32_t version, s_material **m,
                                uint32_t *flags, uint32_t *resolved)
{
    s_store *s = in->store;
    s_version *v;

    *m = NULL;
    if (!kpk_key_name_valid(name))
        return s_err(in, KP_ERR_INVALID_ARG, "invalid key name");
    pthread_mutex_lock(&s->lock);
    v = s_version_find(s_key_find(s, name), version);
    if (v != NULL) {
        *m = v->m;
        if (flags != NULL)
            *flags = v->flags;
        if (resolved != NULL)
            *resolved = v->version;
    }
    pthread_mutex_unlock(&s->lock);
    if (v == NULL)
        return s_err(in, KP_ERR_NOT_FOUND, "%s: no key %s%s%.0u", s->name, name,
                     version != 0 ? " v" : "", version);
    return KP_OK;
}

static const EVP_MD *s_oaep_md(uint32_t alg)
{
    return alg == KP_WRAP_RSA_OAEP_SHA1     ? EVP_sha1()
           : alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256()
                                            : NULL;
}

static EVP_PKEY_CTX *s_oaep_ctx(EVP_PKEY *pkey, const EVP_MD *md, bool encrypt)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (ctx == NULL)
        return NULL;
    if ((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- plugin ------------------------------------------------------------------------------ */

static const kp_plugin_info *s_info(void *plugin_ctx)
{
    (void)plugin_ctx;
    return &s_plugin_info;
}

static const kp_param_desc *s_params(void *plugin_ctx)
{
    (void)plugin_ctx;
    return s_param_list;
}

static void s_teardown(void *plugin_ctx)
{
    s_plugin *pl = plugin_ctx;

    if (pl == NULL)
        return;
    while (pl->stores != NULL) {
        s_store *s = pl->stores;
        pl->stores = s->next;
        for (size_t b = 0; b < S_BUCKETS; b++) {
            while (s->buckets[b] != NULL) {
                s_key *k = s->buckets[b];
                s->buckets[b] = k->next;
                for (size_t i = 0; i < k->n; i++)
                    s_material_unref(&pl->up, k->v[i].m);
                free(k->v);
                free(k);
            }
        }
        pthread_mutex_destroy(&s->lock);
        free(s->name);
        free(s);
    }
    s_material_unref(&pl->up, pl->shared);
    pthread_mutex_destroy(&pl->lock);
    free(pl);
}

/* The store called name, created on first use. */
static s_store *s_store_get(s_plugin *pl, const char *name)
{
    s_store *s;

    pthread_mutex_lock(&pl->lock);
    for (s = pl->stores; s != NULL; s = s->next)
        if (strcmp(s->name, name) == 0)
            break;
    if (s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        if ((s->name = strdup(name)) == NULL || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(s->name);
            free(s);
            s = NULL;
        } else {
            s->next = pl->stores;
            pl->stores = s;
        }
    }
    pthread_mutex_unlock(&pl->lock);
    return s;
}

static kp_status s_open(void *plugin_ctx, kp_core_handle *h, const kp_param *params, void **inst)
{
    s_plugin *pl = plugin_ctx;
    const kp_param *store = kp_param_find(params, "store");
    const kp_param *lat = kp_param_find(params, "latency_ms");
    s_inst *in;

    if (pl == NULL || inst == NULL)
        return KP_ERR_INVALID_ARG;
    *inst = NULL;
    if (store == NULL || store->str == NULL || store->str[0] == '\0')
        return pl->up.set_error(h, KP_ERR_CONFIG, "latency: store is required");
    if (lat != NULL && (lat->num < 0 || lat->num > S_LATENCY_MAX))
        return pl->up.set_error(h, KP_ERR_CONFIG, "latency: latency_ms must be 0 to 10000");
    if ((in = calloc(1, sizeof(*in))) == NULL)
        return pl->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    in->pl = pl;
    in->h = h;
    in->latency_ms = lat != NULL ? (unsigned)lat->num : S_LATENCY_DEFAULT;
    if ((in->store = s_store_get(pl, store->str)) == NULL) {
        free(in);
        return pl->up.set_error(h, KP_ERR_NOMEM, "out of memory");
    }
    *inst = in;
    return KP_OK;
}

static void s_close(void *inst)
{
    free(inst); /* the store outlives its instances, until teardown */
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    s_inst *in = inst;
    char detail[256];
    size_t nkeys;

    s_sleep(in);
    pthread_mutex_lock(&in->store->lock);
    nkeys = in->store->nkeys;
    pthread_mutex_unlock(&in->store->lock);
    snprintf(detail, sizeof(detail), "in-memory store %.100s holds %zu key(s); %u ms per call",
             in->store->name, nkeys, in->latency_ms);
    if (report != NULL)
        report(arg, "store", KP_OK, detail);
    return KP_OK;
}

/* Not delayed: the core asks right after open, and a store answers it without I/O. */
static kp_status s_instance_info(void *inst, kp_instance_info *info)
{
    s_inst *in = inst;

    if (info == NULL || !KP_HAS_MEMBER(info, kp_instance_info, key_bits))
        return s_err(in, KP_ERR_INVALID_ARG, "instance info missing or too small");
    info->capabilities = KP_CAP_KEYSTORE;
    info->wrap_algs = KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA1) | KP_ALG_BIT(KP_WRAP_RSA_OAEP_SHA256);
    info->unwrap_algs = info->wrap_algs;
    info->key_bits = KP_RSA_2048; /* what KS_CREATE makes */
    return KP_OK;
}

/* ---- keystore ---------------------------------------------------------------------------- */

static kp_status s_create(void *inst, const kp_key_spec *caller, kp_key_info *info)
{
    s_inst *in = inst;
    kp_key_spec spec;
    kp_status st;

    s_sleep(in);
    if ((st = s_check_spec(in, caller, &spec)) != KP_OK)
        return st;
    if (info == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "create: info is NULL");
    if (spec.bits != 2048)
        return s_err(in, KP_ERR_UNSUPPORTED,
                     "the latency keystore creates RSA-2048 only (asked for %u bits)", spec.bits);
    return s_store_put(in, &spec, in->pl->shared, info);
}

static kp_status s_import(void *inst, const kp_key_spec *caller, const kp_secret *pkcs8_der,
                          kp_key_info *info)
{
    s_inst *in = inst;
    const s_up *up = &in->pl->up;
    const kp_key_spec *spec;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    EVP_PKEY *pkey = NULL;
    s_material *m = NULL;
    const unsigned char *p;
    kp_key_spec local;
    size_t len;
    kp_status st;

    s_sleep(in);
    if ((st = s_check_spec(in, caller, &local)) != KP_OK)
        return st;
    spec = &local;
    if (pkcs8_der == NULL || info == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "import: key or info is NULL");
    p = up->secret_cdata(pkcs8_der);
    len = up->secret_len(pkcs8_der);
    if (len > 0 && len <= 64 * 1024)
        p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL || p != up->secret_cdata(pkcs8_der) + len ||
        (pkey = EVP_PKCS82PKEY(p8)) == NULL || !EVP_PKEY_is_a(pkey, "RSA")) {
        PKCS8_PRIV_KEY_INFO_free(p8);
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return s_err(in, KP_ERR_INVALID_ARG, "import: not an RSA PKCS#8 PrivateKeyInfo");
    }
    PKCS8_PRIV_KEY_INFO_free(p8);
    if (spec->bits != 0 && (uint32_t)EVP_PKEY_get_bits(pkey) != spec->bits) {
        st = s_err(in, KP_ERR_INVALID_ARG, "import: key has %d bits, spec says %u",
                   EVP_PKEY_get_bits(pkey), spec->bits);
        EVP_PKEY_free(pkey);
        return st;
    }
    if ((st = s_material_new(up, pkey, pkcs8_der, &m)) != KP_OK)
        return s_err(in, st, "import: cannot encode the public key");
    /* The expected fingerprint is checked before the version becomes visible. */
    if (spec->fingerprint != NULL && strcmp(spec->fingerprint, m->fpr) != 0)
        st = s_err(in, KP_ERR_INTEGRITY,
                   "import of %s: the key's fingerprint is not the expected one", spec->name);
    else
        st = s_store_put(in, spec, m, info);
    s_material_unref(up, m); /* the store holds its own reference, or none on failure */
    return st;
}

static kp_status s_get_public(void *inst, const char *name, uint32_t version, uint8_t *spki,
                              size_t *len)
{
    s_inst *in = inst;
    s_material *m;
    kp_status st;

    s_sleep(in);
    if (len == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "get_public: len is NULL");
    if ((st = s_material_get(in, name, version, &m, NULL, NULL)) != KP_OK)
        return st;
    if (spki == NULL || *len < m->spki_len) {
        *len = m->spki_len;
        st = s_err(in, KP_ERR_BUFFER_TOO_SMALL, "public key needs %zu bytes", m->spki_len);
    } else {
        memcpy(spki, m->spki, m->spki_len);
        *len = m->spki_len;
    }
    return st;
}

static kp_status s_get(void *inst, const char *name, uint32_t version, kp_key_info *info)
{
    s_inst *in = inst;
    s_store *s = in->store;
    kp_key_info full;
    s_version *v;
    s_key *k;

    s_sleep(in);
    if (info == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "get: info is NULL");
    if (!kpk_key_name_valid(name))
        return s_err(in, KP_ERR_INVALID_ARG, "invalid key name");
    pthread_mutex_lock(&s->lock);
    k = s_key_find(s, name);
    if ((v = s_version_find(k, version)) != NULL)
        s_fill_info(in, k, v, &full);
    pthread_mutex_unlock(&s->lock);
    if (v == NULL)
        return s_err(in, KP_ERR_NOT_FOUND, "%s: no key %s%s%.0u", s->name, name,
                     version != 0 ? " v" : "", version);
    kp_key_info_put(info, &full);
    return KP_OK;
}

typedef struct s_listing {
    kp_key_info *infos;
    size_t n, cap;
} s_listing;

static bool s_listing_add(s_listing *l, const s_inst *in, const s_key *k)
{
    if (l->n + k->n > l->cap) {
        size_t cap = l->cap == 0 ? 8 : l->cap;
        while (cap < l->n + k->n)
            cap *= 2;
        kp_key_info *ni = realloc(l->infos, cap * sizeof(*ni));
        if (ni == NULL)
            return false;
        l->infos = ni;
        l->cap = cap;
    }
    for (size_t i = 0; i < k->n; i++)
        s_fill_info(in, k, &k->v[i], &l->infos[l->n++]);
    return true;
}

static kp_status s_list(void *inst, const char *name, kp_key_visit_fn visit, void *arg)
{
    s_inst *in = inst;
    s_store *s = in->store;
    s_listing l = {NULL, 0, 0};
    bool ok = true;
    kp_status st = KP_OK;

    s_sleep(in);
    if (visit == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "list: visit is NULL");
    if (name != NULL && !kpk_key_name_valid(name))
        return s_err(in, KP_ERR_INVALID_ARG, "invalid key name");
    /* Copy under the lock, visit outside it: a visitor may call back into the plugin. */
    pthread_mutex_lock(&s->lock);
    if (name != NULL) {
        const s_key *k = s_key_find(s, name);
        if (k != NULL)
            ok = s_listing_add(&l, in, k);
    } else {
        for (size_t b = 0; ok && b < S_BUCKETS; b++)
            for (const s_key *k = s->buckets[b]; ok && k != NULL; k = k->next)
                ok = s_listing_add(&l, in, k);
    }
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        st = s_err(in, KP_ERR_NOMEM, "out of memory listing %s", s->name);
    else if (name != NULL && l.n == 0)
        st = s_err(in, KP_ERR_NOT_FOUND, "%s: no key %s", s->name, name);
    for (size_t i = 0; st == KP_OK && i < l.n; i++)
        st = visit(arg, &l.infos[i]);
    free(l.infos);
    return st;
}

static kp_status s_wrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                        const kp_secret *dek, uint8_t *out, size_t *outlen)
{
    s_inst *in = inst;
    const s_up *up = &in->pl->up;
    const EVP_MD *md = s_oaep_md(alg);
    EVP_PKEY_CTX *ctx = NULL;
    s_material *m;
    size_t k, max, deklen, n;
    kp_status st;

    s_sleep(in);
    if (dek == NULL || outlen == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "wrap: dek or outlen is NULL");
    if (md == NULL)
        return s_err(in, KP_ERR_UNSUPPORTED, "wrap algorithm %u: RSA-OAEP only", alg);
    if ((st = s_material_get(in, name, version, &m, NULL, &version)) != KP_OK)
        return st;
    k = (size_t)EVP_PKEY_get_size(m->pkey);
    max = k - 2 * (size_t)EVP_MD_get_size(md) - 2; /* RFC 8017 7.1.1 */
    deklen = up->secret_len(dek);
    if (deklen == 0 || deklen > max) {
        st = s_err(in, KP_ERR_INVALID_ARG, "wrap: %zu-byte key; %s v%u takes 1 to %zu", deklen,
                   name, version, max);
    } else if (out == NULL || *outlen < k) {
        *outlen = k;
        st = s_err(in, KP_ERR_BUFFER_TOO_SMALL, "wrap needs %zu bytes", k);
    } else {
        n = *outlen;
        if ((ctx = s_oaep_ctx(m->pkey, md, true)) == NULL ||
            EVP_PKEY_encrypt(ctx, out, &n, up->secret_cdata(dek), deklen) != 1) {
            ERR_clear_error();
            st = s_err(in, KP_ERR_CRYPTO, "wrap under %s v%u failed", name, version);
        } else {
            *outlen = n;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    return st;
}

static kp_status s_unwrap(void *inst, const char *name, uint32_t version, uint32_t alg,
                          const uint8_t *in_bytes, size_t inlen, kp_secret **dek)
{
    s_inst *in = inst;
    const s_up *up = &in->pl->up;
    const EVP_MD *md = s_oaep_md(alg);
    EVP_PKEY_CTX *ctx = NULL;
    kp_secret *plain = NULL;
    s_material *m;
    size_t k, n;
    kp_status st;

    s_sleep(in);
    if (dek == NULL || in_bytes == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "unwrap: input or output is NULL");
    *dek = NULL;
    if (md == NULL)
        return s_err(in, KP_ERR_UNSUPPORTED, "unwrap algorithm %u: RSA-OAEP only", alg);
    if ((st = s_material_get(in, name, version, &m, NULL, &version)) != KP_OK)
        return st;
    k = (size_t)EVP_PKEY_get_size(m->pkey);
    n = k;
    if (inlen != k || (plain = up->secret_new(k)) == NULL ||
        (ctx = s_oaep_ctx(m->pkey, md, false)) == NULL ||
        EVP_PKEY_decrypt(ctx, up->secret_data(plain), &n, in_bytes, inlen) != 1 || n == 0 ||
        up->secret_shrink(plain, n) != KP_OK) {
        ERR_clear_error();
        st = s_err(in, KP_ERR_CRYPTO, "unwrap failed under %s v%u: wrong key or corrupted data",
                   name, version);
    } else {
        *dek = plain;
        plain = NULL;
    }
    up->secret_free(plain);
    EVP_PKEY_CTX_free(ctx);
    return st;
}

static kp_status s_export(void *inst, const char *name, uint32_t version, kp_secret **pkcs8_der)
{
    s_inst *in = inst;
    const s_up *up = &in->pl->up;
    uint32_t flags = 0;
    s_material *m;
    kp_status st;

    s_sleep(in);
    if (pkcs8_der == NULL)
        return s_err(in, KP_ERR_INVALID_ARG, "export: output is NULL");
    *pkcs8_der = NULL;
    if ((st = s_material_get(in, name, version, &m, &flags, &version)) != KP_OK)
        return st;
    if ((flags & KP_KEY_EXPORTABLE) == 0) {
        st = s_err(in, KP_ERR_DENIED, "%s v%u was not created exportable", name, version);
    } else {
        size_t len = up->secret_len(m->pkcs8);
        if ((*pkcs8_der = up->secret_new(len)) == NULL)
            st = s_err(in, KP_ERR_NOMEM, "out of memory");
        else
            memcpy(up->secret_data(*pkcs8_der), up->secret_cdata(m->pkcs8), len);
    }
    return st;
}

/* ---- entry point ------------------------------------------------------------------------- */

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx)
{
    EVP_PKEY *pkey = NULL;
    s_plugin *pl;
    s_up up;

    kp_status st =
        kp_plugin_accept(core, out, plugin_ctx, &up, "latency plugin: the core lacks an upcall");
    if (st != KP_OK)
        return st;
    if ((pl = calloc(1, sizeof(*pl))) == NULL)
        return KP_ERR_NOMEM;
    pl->up = up;
    pl->h = core->handle;
    if (pthread_mutex_init(&pl->lock, NULL) != 0) {
        free(pl);
        return KP_ERR_INTERNAL;
    }
    /* The one key every KS_CREATE stores (see the top of this file). */
    if ((pkey = EVP_RSA_gen(2048)) == NULL ||
        s_material_new(&up, pkey, NULL, &pl->shared) != KP_OK) {
        ERR_clear_error();
        s_teardown(pl);
        return up.set_error(core->handle, KP_ERR_CRYPTO, "latency plugin: RSA-2048 keygen failed");
    }
    *out = s_dispatch;
    *plugin_ctx = pl;
    return KP_OK;
}
