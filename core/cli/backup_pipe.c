/*
 * The streaming cipher of `keyplane backup`: AES-CBC with PKCS#5 padding (what RDS and the S3
 * encryption clients use for backups) both ways, and AES-GCM decryption (the SDKs' v2 objects).
 *
 * A ring of S_SLOTS buffers of KP_BK_SLOT bytes moves through three stages: a reader thread fills
 * them from the source, the calling thread ciphers them in place, a writer thread hands them to
 * the sink. Memory is the ring (8 MiB), whatever the size of the stream. CBC encryption is serial
 * (each block needs the one before), so one core ciphers while the other reads and writes. CBC
 * decryption is not: a block needs only the ciphertext block before it, so each buffer is cut in
 * two and its halves decrypted at once by the calling thread and a helper thread that lives as
 * long as the stream, each from its own IV (the ciphertext block before its half, kept before
 * the first half is decrypted over it).
 *
 * Decryption never trusts the input: a CBC stream that is no whole number of blocks, a padding
 * that is not PKCS#5's, a GCM tag that does not verify are KP_ERR_INTEGRITY, and the caller's
 * sink (a temporary file) is then dropped. GCM's plaintext reaches the sink before the tag is
 * checked at the end, which is why the sink must be one the caller can drop.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "backup.h"

#define S_SLOTS 4
#define S_TAG 16

enum { S_EMPTY, S_READ, S_DONE };

volatile sig_atomic_t kp_cli_bk_signal = 0;

typedef struct s_slot {
    uint8_t *buf; /* KP_BK_SLOT + 16: room for the padding block */
    size_t len;
    bool last;
    int state;
} s_slot;

typedef struct s_pipe {
    kp_cli_bk_job *job;
    EVP_CIPHER_CTX *mac; /* GMAC of the ciphertext, fed by the I/O thread that sees it */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_slot slot[S_SLOTS];
    bool stop; /* a stage failed: the others end */
    kp_status st;
    char err[KP_BK_ERR];
} s_pipe;

/* The first failure of any stage stops them all; its text is the job's. */
static kp_status s_fail(s_pipe *p, kp_status st, const char *fmt, ...)
{
    pthread_mutex_lock(&p->mu);
    if (p->st == KP_OK) {
        p->st = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof(p->err), fmt, ap);
        va_end(ap);
    }
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return st;
}

/* KP_OK, or the pipe stopped for the signal that interrupted the command. */
static kp_status s_interrupted(s_pipe *p)
{
    int sig = kp_cli_bk_signal;
    if (sig == 0)
        return KP_OK;
    return s_fail(p, KP_ERR_IO, "interrupted by signal %d (%s): nothing was written", sig,
                  sig == SIGINT    ? "SIGINT"
                  : sig == SIGTERM ? "SIGTERM"
                                   : "SIGHUP");
}

/* Waits until slot i is in state want; false when the pipe stopped. */
static bool s_wait(s_pipe *p, size_t i, int want)
{
    pthread_mutex_lock(&p->mu);
    while (!p->stop && p->slot[i].state != want)
        pthread_cond_wait(&p->cv, &p->mu);
    bool ok = !p->stop;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

static void s_set(s_pipe *p, size_t i, int state)
{
    pthread_mutex_lock(&p->mu);
    p->slot[i].state = state;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Feeds ciphertext to the GMAC (AES-GCM with the bytes as additional data only). */
static kp_status s_mac(s_pipe *p, const uint8_t *buf, size_t len)
{
    int n = 0;
    if (p->mac != NULL && len > 0 && EVP_EncryptUpdate(p->mac, NULL, &n, buf, (int)len) != 1)
        return s_fail(p, KP_ERR_CRYPTO, "the backup's GMAC failed");
    return KP_OK;
}

static void *s_reader(void *arg)
{
    s_pipe *p = arg;
    kp_cli_bk_src *src = &p->job->src;
    uint64_t left = src->size;
    char err[KP_BK_ERR] = "";
    for (size_t seq = 0;; seq++) {
        size_t i = seq % S_SLOTS;
        if (!s_wait(p, i, S_EMPTY))
            return NULL;
        s_slot *s = &p->slot[i];
        size_t want = left < KP_BK_SLOT ? (size_t)left : KP_BK_SLOT;
        s->len = 0;
        while (s->len < want) {
            if (s_interrupted(p) != KP_OK)
                return NULL;
            size_t got = 0;
            kp_status st =
                src->read(src->ctx, s->buf + s->len, want - s->len, &got, err, sizeof(err));
            if (st != KP_OK) {
                s_fail(p, st, "%s", err);
                return NULL;
            }
            if (got == 0) {
                uint64_t at = src->size - left + s->len;
                s_fail(p, KP_ERR_INTEGRITY,
                       "the input ended after %llu of its %llu bytes (it shrank while read)",
                       (unsigned long long)at, (unsigned long long)src->size);
                return NULL;
            }
            s->len += got;
        }
        left -= want;
        s->last = left == 0;
        /* decryption: the MAC is of the ciphertext, as read */
        if (p->job->mode != KP_BK_CBC_ENCRYPT && s_mac(p, s->buf, s->len) != KP_OK)
            return NULL;
        s_set(p, i, S_READ);
        if (s->last)
            return NULL;
    }
}

static void *s_writer(void *arg)
{
    s_pipe *p = arg;
    kp_cli_bk_sink *sink = &p->job->sink;
    char err[KP_BK_ERR] = "";
    for (size_t seq = 0;; seq++) {
        size_t i = seq % S_SLOTS;
        if (!s_wait(p, i, S_DONE))
            return NULL;
        s_slot *s = &p->slot[i];
        bool last = s->last;
        /* encryption: the MAC is of the ciphertext, as written */
        if (p->job->mode == KP_BK_CBC_ENCRYPT && s_mac(p, s->buf, s->len) != KP_OK)
            return NULL;
        if (s->len > 0) {
            kp_status st = sink->write(sink->ctx, s->buf, s->len, err, sizeof(err));
            if (st != KP_OK) {
                s_fail(p, st, "%s", err);
                return NULL;
            }
            p->job->out_bytes += s->len;
        }
        s_set(p, i, S_EMPTY);
        if (last)
            return NULL;
    }
}

static const EVP_CIPHER *s_cbc(size_t keylen)
{
    return keylen == 16 ? EVP_aes_128_cbc() : keylen == 24 ? EVP_aes_192_cbc() : EVP_aes_256_cbc();
}

static const EVP_CIPHER *s_gcm(size_t keylen)
{
    return keylen == 16 ? EVP_aes_128_gcm() : keylen == 24 ? EVP_aes_192_gcm() : EVP_aes_256_gcm();
}

/* ---- the ciphers, one slot at a time, in place -------------------------------------------- */

typedef struct s_half {
    EVP_CIPHER_CTX *ctx;
    const uint8_t *iv;
    uint8_t *buf;
    size_t len;
    bool ok;
} s_half;

static void s_decrypt_half(s_half *h)
{
    int n = 0;
    h->ok = EVP_DecryptInit_ex(h->ctx, NULL, NULL, NULL, h->iv) == 1 &&
            EVP_DecryptUpdate(h->ctx, h->buf, &n, h->buf, (int)h->len) == 1 && (size_t)n == h->len;
}

/* CBC decryption's second thread, started once for the stream: it waits for a half, decrypts it
 * and hands it back (a thread started per slot cost 5 to 10 % of the decryption's time). */
typedef struct s_helper {
    pthread_t t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_half *work; /* posted, not yet done */
    bool quit;
    bool up; /* the thread runs */
} s_helper;

static void *s_helper_main(void *arg)
{
    s_helper *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->work == NULL && !h->quit)
            pthread_cond_wait(&h->cv, &h->mu);
        if (h->work == NULL)
            break;
        pthread_mutex_unlock(&h->mu);
        s_decrypt_half(h->work);
        pthread_mutex_lock(&h->mu);
        h->work = NULL;
        pthread_cond_broadcast(&h->cv);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static bool s_helper_start(s_helper *h)
{
    if (pthread_mutex_init(&h->mu, NULL) != 0)
        return false;
    if (pthread_cond_init(&h->cv, NULL) != 0) {
        pthread_mutex_destroy(&h->mu);
        return false;
    }
    h->up = pthread_create(&h->t, NULL, s_helper_main, h) == 0;
    if (!h->up) {
        pthread_cond_destroy(&h->cv);
        pthread_mutex_destroy(&h->mu);
    }
    return h->up;
}

static void s_helper_stop(s_helper *h)
{
    if (!h->up)
        return;
    pthread_mutex_lock(&h->mu);
    h->quit = true;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->t, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    h->up = false;
}

/* Runs a on this thread and b on the helper (or here too when there is none), both done on
 * return. */
static void s_decrypt_pair(s_helper *h, s_half *a, s_half *b)
{
    if (!h->up) {
        s_decrypt_half(a);
        s_decrypt_half(b);
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->work = b;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    s_decrypt_half(a);
    pthread_mutex_lock(&h->mu);
    while (h->work != NULL)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

typedef struct s_cipher {
    EVP_CIPHER_CTX *c[2]; /* c[1]: the second half of a CBC decryption */
    s_helper helper;      /* CBC decryption: decrypts c[1]'s halves */
    uint8_t iv[16];       /* CBC decryption: the ciphertext block before the next slot */
    uint8_t tag[S_TAG];   /* GCM: the tag, gathered from the stream's end */
    uint64_t pos;         /* bytes of the stream ciphered so far */
} s_cipher;

static kp_status s_encrypt(s_pipe *p, s_cipher *c, s_slot *s)
{
    int n = 0, fin = 0;
    if (EVP_EncryptUpdate(c->c[0], s->buf, &n, s->buf, (int)s->len) != 1 ||
        (s->last && EVP_EncryptFinal_ex(c->c[0], s->buf + n, &fin) != 1))
        return s_fail(p, KP_ERR_CRYPTO, "AES-CBC encryption failed");
    s->len = (size_t)n + (size_t)fin;
    return KP_OK;
}

/* PKCS#5: the last byte says how many bytes of padding (1 to 16), each of that value. */
static kp_status s_unpad(s_pipe *p, s_slot *s)
{
    if (s->len == 0)
        return s_fail(p, KP_ERR_INTEGRITY,
                      "the input holds no block: AES-CBC with PKCS#5 "
                      "padding is never empty");
    uint8_t pad = s->buf[s->len - 1];
    bool ok = pad >= 1 && pad <= 16 && pad <= s->len;
    for (size_t i = 0; ok && i < pad; i++)
        ok = s->buf[s->len - 1 - i] == pad;
    if (!ok)
        return s_fail(p, KP_ERR_INTEGRITY,
                      "the last block's padding is not PKCS#5's: a wrong key, or the input was "
                      "cut or changed");
    s->len -= pad;
    return KP_OK;
}

static kp_status s_cbc_decrypt(s_pipe *p, s_cipher *c, s_slot *s)
{
    uint8_t iv2[16] = {0}, next[16] = {0};
    size_t half = s->len >= 64 * 1024 ? (s->len / 32) * 16 : 0; /* small: one thread */
    if (s->len > 0)
        memcpy(next, s->buf + s->len - 16, 16);
    if (half > 0)
        memcpy(iv2, s->buf + half - 16, 16);
    s_half a = {c->c[0], c->iv, s->buf, half > 0 ? half : s->len, false};
    s_half b = {c->c[1], iv2, s->buf + half, s->len - half, false};
    if (half > 0)
        s_decrypt_pair(&c->helper, &a, &b);
    else
        s_decrypt_half(&a);
    if (!a.ok || (half > 0 && !b.ok))
        return s_fail(p, KP_ERR_CRYPTO, "AES-CBC decryption failed");
    if (s->len > 0)
        memcpy(c->iv, next, 16);
    return s->last ? s_unpad(p, s) : KP_OK;
}

static kp_status s_gcm_decrypt(s_pipe *p, s_cipher *c, s_slot *s)
{
    uint64_t body = p->job->src.size - S_TAG; /* bytes before the tag */
    size_t n = c->pos >= body ? 0 : (size_t)(body - c->pos < s->len ? body - c->pos : s->len);
    int out = 0;
    if (n > 0 &&
        (EVP_DecryptUpdate(c->c[0], s->buf, &out, s->buf, (int)n) != 1 || (size_t)out != n))
        return s_fail(p, KP_ERR_CRYPTO, "AES-GCM decryption failed");
    for (size_t i = n; i < s->len; i++) /* the tag's bytes, maybe across two slots */
        c->tag[c->pos + i - body] = s->buf[i];
    c->pos += s->len;
    s->len = n;
    if (!s->last)
        return KP_OK;
    int fin = 0;
    if (EVP_CIPHER_CTX_ctrl(c->c[0], EVP_CTRL_GCM_SET_TAG, S_TAG, c->tag) != 1 ||
        EVP_DecryptFinal_ex(c->c[0], s->buf + n, &fin) != 1)
        return s_fail(p, KP_ERR_INTEGRITY,
                      "the AES-GCM tag does not verify: a wrong key, or the object was cut or "
                      "changed");
    return KP_OK;
}

static kp_status s_cipher_init(kp_cli_bk_job *job, s_cipher *c, char *err, size_t errlen)
{
    size_t kl = kp_secret_len(job->key);
    const uint8_t *k = kp_secret_cdata(job->key);
    bool gcm = job->mode == KP_BK_GCM_DECRYPT;
    if (kl != 16 && kl != 24 && kl != 32) {
        snprintf(err, errlen, "a data key of %zu bytes: AES takes 16, 24 or 32", kl);
        return KP_ERR_INTEGRITY;
    }
    if ((gcm && job->ivlen < 12) || (!gcm && job->ivlen != 16)) {
        snprintf(err, errlen, "an IV of %zu bytes: AES-%s takes %s", job->ivlen,
                 gcm ? "GCM" : "CBC", gcm ? "12 or more" : "16");
        return KP_ERR_INTEGRITY;
    }
    if (job->mode == KP_BK_CBC_DECRYPT && job->src.size % 16 != 0) {
        snprintf(err, errlen,
                 "%llu bytes are no whole number of AES blocks: the input was cut or is not "
                 "AES-CBC",
                 (unsigned long long)job->src.size);
        return KP_ERR_INTEGRITY;
    }
    if (gcm && job->src.size < S_TAG) {
        snprintf(err, errlen, "%llu bytes cannot hold an AES-GCM tag: the input was cut",
                 (unsigned long long)job->src.size);
        return KP_ERR_INTEGRITY;
    }
    bool ok = true;
    for (int i = 0; i < (job->mode == KP_BK_CBC_DECRYPT ? 2 : 1); i++) {
        ok = ok && (c->c[i] = EVP_CIPHER_CTX_new()) != NULL;
        if (ok && job->mode == KP_BK_CBC_ENCRYPT)
            ok = EVP_EncryptInit_ex(c->c[i], s_cbc(kl), NULL, k, job->iv) == 1;
        else if (ok && job->mode == KP_BK_CBC_DECRYPT)
            ok = EVP_DecryptInit_ex(c->c[i], s_cbc(kl), NULL, k, job->iv) == 1 &&
                 EVP_CIPHER_CTX_set_padding(c->c[i], 0) == 1;
        else if (ok)
            ok = EVP_DecryptInit_ex(c->c[i], s_gcm(kl), NULL, NULL, NULL) == 1 &&
                 EVP_CIPHER_CTX_ctrl(c->c[i], EVP_CTRL_GCM_SET_IVLEN, (int)job->ivlen, NULL) == 1 &&
                 EVP_DecryptInit_ex(c->c[i], NULL, NULL, k, job->iv) == 1;
    }
    memcpy(c->iv, job->iv, 16);
    /* no helper thread: both halves are decrypted here, slower but the same */
    if (ok && job->mode == KP_BK_CBC_DECRYPT)
        (void)s_helper_start(&c->helper);
    if (!ok) {
        snprintf(err, errlen, "OpenSSL could not set up AES");
        return KP_ERR_CRYPTO;
    }
    return KP_OK;
}

kp_status kp_cli_bk_run(kp_cli_bk_job *job)
{
    s_pipe p;
    memset(&p, 0, sizeof(p));
    p.job = job;
    job->out_bytes = 0;
    job->err[0] = '\0';
    s_cipher c;
    memset(&c, 0, sizeof(c));
    kp_status st = s_cipher_init(job, &c, job->err, sizeof(job->err));
    static const uint8_t zero_iv[12];
    int ivn = 0;
    /* the IV first: CBC's first plaintext block is the IV XOR a decryption, so an IV changed in
     * both the metadata and the record would change the backup's first 16 bytes under a GMAC
     * of the ciphertext alone */
    if (st == KP_OK && job->mac_key != NULL &&
        ((p.mac = EVP_CIPHER_CTX_new()) == NULL ||
         EVP_EncryptInit_ex(p.mac, EVP_aes_256_gcm(), NULL, job->mac_key, zero_iv) != 1 ||
         EVP_EncryptUpdate(p.mac, NULL, &ivn, job->iv, (int)job->ivlen) != 1)) {
        snprintf(job->err, sizeof(job->err), "OpenSSL could not set up AES-GMAC");
        st = KP_ERR_CRYPTO;
    }
    for (size_t i = 0; st == KP_OK && i < S_SLOTS; i++)
        if ((p.slot[i].buf = malloc(KP_BK_SLOT + 16)) == NULL) {
            snprintf(job->err, sizeof(job->err), "out of memory");
            st = KP_ERR_NOMEM;
        }
    pthread_t rt, wt;
    bool mu = false, reader = false, writer = false;
    if (st == KP_OK) {
        mu = pthread_mutex_init(&p.mu, NULL) == 0 && pthread_cond_init(&p.cv, NULL) == 0;
        reader = mu && pthread_create(&rt, NULL, s_reader, &p) == 0;
        writer = reader && pthread_create(&wt, NULL, s_writer, &p) == 0;
        if (!writer) {
            snprintf(job->err, sizeof(job->err), "cannot start the I/O threads");
            st = KP_ERR_INTERNAL;
            if (reader)
                s_fail(&p, st, "%s", job->err);
        }
    }
    uint64_t done = 0;
    for (size_t seq = 0; st == KP_OK; seq++) {
        size_t i = seq % S_SLOTS;
        if (!s_wait(&p, i, S_READ))
            break;
        s_slot *s = &p.slot[i];
        size_t in = s->len;
        kp_status cs = job->mode == KP_BK_CBC_ENCRYPT   ? s_encrypt(&p, &c, s)
                       : job->mode == KP_BK_CBC_DECRYPT ? s_cbc_decrypt(&p, &c, s)
                                                        : s_gcm_decrypt(&p, &c, s);
        if (cs != KP_OK)
            break;
        done += in;
        bool last = s->last;
        s_set(&p, i, S_DONE);
        if (job->progress != NULL)
            job->progress(job->progress_arg, done, job->src.size);
        if (last)
            break;
    }
    if (reader)
        pthread_join(rt, NULL);
    if (writer)
        pthread_join(wt, NULL);
    if (st == KP_OK && p.st != KP_OK) {
        st = p.st;
        snprintf(job->err, sizeof(job->err), "%s", p.err);
    }
    int fin = 0;
    if (st == KP_OK && p.mac != NULL &&
        (EVP_EncryptFinal_ex(p.mac, NULL, &fin) != 1 ||
         EVP_CIPHER_CTX_ctrl(p.mac, EVP_CTRL_GCM_GET_TAG, KP_BK_MAC, job->mac) != 1)) {
        snprintf(job->err, sizeof(job->err), "the backup's GMAC failed");
        st = KP_ERR_CRYPTO;
    }
    EVP_CIPHER_CTX_free(p.mac);
    if (mu) {
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
    }
    for (size_t i = 0; i < S_SLOTS; i++)
        if (p.slot[i].buf != NULL) {
            /* plaintext passed through: wiped before it goes back */
            OPENSSL_cleanse(p.slot[i].buf, KP_BK_SLOT + 16);
            free(p.slot[i].buf);
        }
    s_helper_stop(&c.helper);
    EVP_CIPHER_CTX_free(c.c[0]);
    EVP_CIPHER_CTX_free(c.c[1]);
    OPENSSL_cleanse(&c, sizeof(c));
    return st;
}
