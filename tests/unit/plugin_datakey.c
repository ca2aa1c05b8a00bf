/*
 * A software data-key plugin for the tests of the DATAKEY capability (kp_datakey_generate,
 * kp_datakey_decrypt and kp_datakey_reencrypt, ABI ids 400-402), shaped like a KMS: key ids name
 * master keys, a data key comes back in plaintext and encrypted, and the ciphertext is bound to
 * its key id and to the encryption context, so a changed context fails as KMS's
 * InvalidCiphertextException does; re-encryption opens and seals again inside the plugin.
 *
 * Master keys are HMAC-SHA256(plugin secret, key id), the plugin secret random per process: a
 * test plugin, not a store. Ciphertext: 12-byte IV || AES-256-GCM(data key) || 16-byte tag, with
 * the key id and the context (pairs sorted by key, each as key NUL value NUL) as AAD.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <keyplane/provider.h>

/* Built twice: "datakey" with DK_REENCRYPT (ABI 1.5), and "datakey-1-0" without it
 * (DK_NO_REENCRYPT, DK_NAME), a data-key plugin of ABI 1.0 whose re-encryption the core must
 * answer with KP_ERR_UNSUPPORTED. */
#ifndef DK_NAME
#define DK_NAME "datakey"
#endif

typedef struct s_plugin {
    kp_upcalls up;
    kp_core_handle *h;
    unsigned char secret[32];
} s_plugin;

typedef struct s_inst {
    s_plugin *pl;
    kp_core_handle *h;
} s_inst;

static const kp_plugin_info s_info = {
    .struct_size = sizeof(kp_plugin_info),
    .abi_major = KP_ABI_MAJOR,
    .abi_minor = 0,
    .name = DK_NAME,
    .version = "1.0.0",
    .description = "software data keys for tests (AES-256-GCM, context-bound)",
    .capabilities = KP_CAP_DATAKEY,
};

static const kp_param_desc s_params[] = {{.name = NULL}};

static const kp_plugin_info *s_plugin_info(void *ctx)
{
    (void)ctx;
    return &s_info;
}

static const kp_param_desc *s_plugin_params(void *ctx)
{
    (void)ctx;
    return s_params;
}

static void s_teardown(void *ctx)
{
    s_plugin *pl = ctx;
    OPENSSL_cleanse(pl->secret, sizeof(pl->secret));
    free(pl);
}

static kp_status s_open(void *ctx, kp_core_handle *h, const kp_param *params, void **out)
{
    (void)params;
    s_inst *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return KP_ERR_NOMEM;
    in->pl = ctx;
    in->h = h;
    *out = in;
    return KP_OK;
}

static void s_close(void *inst)
{
    free(inst);
}

static kp_status s_check(void *inst, kp_check_report_fn report, void *arg)
{
    (void)inst;
    report(arg, "memory", KP_OK, "in-process master keys");
    return KP_OK;
}

static kp_status s_instance_info(void *inst, kp_instance_info *info)
{
    (void)inst;
    info->capabilities = KP_CAP_DATAKEY;
    return KP_OK;
}

static int s_cmp(const void *a, const void *b)
{
    return strcmp(((const kp_meta *)a)->key, ((const kp_meta *)b)->key);
}

/* Feeds the key id and the sorted context to the cipher as AAD. */
static int s_aad(EVP_CIPHER_CTX *c, const char *key_id, const kp_meta *context, size_t n)
{
    int out = 0;
    kp_meta *sorted = n > 0 ? malloc(n * sizeof(*sorted)) : NULL;
    if (n > 0 && sorted == NULL)
        return 0;
    if (n > 0) {
        memcpy(sorted, context, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), s_cmp);
    }
    int ok = EVP_CipherUpdate(c, NULL, &out, (const unsigned char *)key_id,
                              (int)strlen(key_id) + 1) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_CipherUpdate(c, NULL, &out, (const unsigned char *)sorted[i].key,
                              (int)strlen(sorted[i].key) + 1) == 1 &&
             EVP_CipherUpdate(c, NULL, &out, (const unsigned char *)sorted[i].value,
                              (int)strlen(sorted[i].value) + 1) == 1;
    free(sorted);
    return ok;
}

static int s_master(const s_plugin *pl, const char *key_id, unsigned char key[32])
{
    unsigned int len = 32;
    return HMAC(EVP_sha256(), pl->secret, sizeof(pl->secret), (const unsigned char *)key_id,
                strlen(key_id), key, &len) != NULL;
}

/* Encrypts n bytes of plain under key_id and the context into ct (12 + n + 16 bytes). */
static int s_seal(const s_plugin *pl, const char *key_id, const kp_meta *context, size_t ncontext,
                  const unsigned char *plain, size_t n, uint8_t *ct)
{
    unsigned char key[32];
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0, ok = c != NULL && s_master(pl, key_id, key) && RAND_bytes(ct, 12) == 1 &&
                      EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, ct) == 1 &&
                      s_aad(c, key_id, context, ncontext) &&
                      EVP_EncryptUpdate(c, ct + 12, &out, plain, (int)n) == 1 &&
                      EVP_EncryptFinal_ex(c, ct + 12 + out, &out) == 1 &&
                      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ct + 12 + n) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    EVP_CIPHER_CTX_free(c);
    return ok;
}

/* Decrypts ct made by s_seal under key_id and the context into a new secret. */
static kp_status s_unseal(s_inst *in, const char *key_id, const uint8_t *ct, size_t ctlen,
                          const kp_meta *context, size_t ncontext, kp_secret **plain)
{
    const kp_upcalls *up = &in->pl->up;
    if (key_id == NULL || ct == NULL || ctlen <= 12 + 16 || ctlen > 12 + 1024 + 16)
        return kp_errorf(up, in->h, KP_ERR_CRYPTO, "not a data key of this plugin");
    size_t n = ctlen - 12 - 16;
    unsigned char key[32];
    kp_secret *dek = up->secret_new(n);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int out = 0,
        ok = dek != NULL && c != NULL && s_master(in->pl, key_id, key) &&
             EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, ct) == 1 &&
             s_aad(c, key_id, context, ncontext) &&
             EVP_DecryptUpdate(c, up->secret_data(dek), &out, ct + 12, (int)n) == 1 &&
             EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(ct + 12 + n)) == 1 &&
             EVP_DecryptFinal_ex(c, up->secret_data(dek) + out, &out) == 1;
    OPENSSL_cleanse(key, sizeof(key));
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        up->secret_free(dek);
        return kp_errorf(up, in->h, KP_ERR_CRYPTO,
                         "the data key does not decrypt under key %s with this context", key_id);
    }
    *plain = dek;
    return KP_OK;
}

static kp_status s_generate(void *inst, const char *key_id, size_t nbytes, const kp_meta *context,
                            size_t ncontext, kp_secret **plain, uint8_t *ct, size_t *ctlen)
{
    s_inst *in = inst;
    const kp_upcalls *up = &in->pl->up;
    size_t need = 12 + nbytes + 16;
    if (key_id == NULL || key_id[0] == '\0' || nbytes == 0 || nbytes > 1024)
        return kp_errorf(up, in->h, KP_ERR_INVALID_ARG, "key id and 1..1024 bytes are needed");
    if (ct == NULL || *ctlen < need) {
        *ctlen = need;
        return KP_ERR_BUFFER_TOO_SMALL;
    }
    kp_secret *dek = up->secret_new(nbytes);
    if (dek == NULL || RAND_bytes(up->secret_data(dek), (int)nbytes) != 1 ||
        !s_seal(in->pl, key_id, context, ncontext, up->secret_cdata(dek), nbytes, ct)) {
        up->secret_free(dek);
        return kp_errorf(up, in->h, KP_ERR_CRYPTO, "data key generation failed");
    }
    *plain = dek;
    *ctlen = need;
    return KP_OK;
}

static kp_status s_decrypt(void *inst, const char *key_id, const uint8_t *ct, size_t ctlen,
                           const kp_meta *context, size_t ncontext, kp_secret **plain)
{
    return s_unseal(inst, key_id, ct, ctlen, context, ncontext, plain);
}

#ifndef DK_NO_REENCRYPT
/* The data key opened and sealed again inside the plugin, as KMS's ReEncrypt does. */
static kp_status s_reencrypt(void *inst, const char *src_key_id, const uint8_t *ct, size_t ctlen,
                             const kp_meta *src_context, size_t nsrc, const char *dst_key_id,
                             const kp_meta *dst_context, size_t ndst, uint8_t *out, size_t *outlen)
{
    s_inst *in = inst;
    const kp_upcalls *up = &in->pl->up;
    if (dst_key_id == NULL || dst_key_id[0] == '\0')
        return kp_errorf(up, in->h, KP_ERR_INVALID_ARG, "no destination key id");
    kp_secret *dek = NULL;
    kp_status st = s_unseal(in, src_key_id, ct, ctlen, src_context, nsrc, &dek);
    size_t need = st == KP_OK ? 12 + up->secret_len(dek) + 16 : 0;
    if (st == KP_OK && (out == NULL || *outlen < need)) {
        *outlen = need;
        st = KP_ERR_BUFFER_TOO_SMALL;
    } else if (st == KP_OK && !s_seal(in->pl, dst_key_id, dst_context, ndst, up->secret_cdata(dek),
                                      up->secret_len(dek), out)) {
        st = kp_errorf(up, in->h, KP_ERR_CRYPTO, "data key re-encryption failed");
    } else if (st == KP_OK) {
        *outlen = need;
    }
    up->secret_free(dek);
    return st;
}
#endif

static const kp_dispatch s_table[] = {
    {KP_FN_PLUGIN_INFO, (kp_fn)s_plugin_info},
    {KP_FN_PLUGIN_TEARDOWN, (kp_fn)s_teardown},
    {KP_FN_PLUGIN_PARAMS, (kp_fn)s_plugin_params},
    {KP_FN_INSTANCE_OPEN, (kp_fn)s_open},
    {KP_FN_INSTANCE_CLOSE, (kp_fn)s_close},
    {KP_FN_INSTANCE_CHECK, (kp_fn)s_check},
    {KP_FN_INSTANCE_INFO, (kp_fn)s_instance_info},
    {KP_FN_DK_GENERATE, (kp_fn)s_generate},
    {KP_FN_DK_DECRYPT, (kp_fn)s_decrypt},
#ifndef DK_NO_REENCRYPT
    {KP_FN_DK_REENCRYPT, (kp_fn)s_reencrypt},
#endif
    {0, NULL},
};

KP_PLUGIN_EXPORT kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out,
                                          void **plugin_ctx);

kp_status kp_plugin_init(const kp_core_info *core, const kp_dispatch **out, void **plugin_ctx)
{
    kp_upcalls up;
    kp_status st =
        kp_plugin_accept(core, out, plugin_ctx, &up, "datakey: the core lacks an upcall");
    if (st != KP_OK)
        return st;
    s_plugin *pl = calloc(1, sizeof(*pl));
    if (pl == NULL)
        return KP_ERR_NOMEM;
    pl->up = up;
    pl->h = core->handle;
    if (RAND_bytes(pl->secret, sizeof(pl->secret)) != 1) {
        free(pl);
        return KP_ERR_CRYPTO;
    }
    *plugin_ctx = pl;
    *out = s_table;
    return KP_OK;
}
