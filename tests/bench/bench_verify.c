/*
 * tests/bench/verify: `keyplane verify` of a policy whose chains are replicated to file stores,
 * against the RSA private operations that verify performs, done with OpenSSL directly on the
 * same keys in the same run (issue 13, target 1: at most 3x).
 *
 * verify proves every copy: per version and store, one RSA-OAEP-256 decryption of a fresh
 * challenge. The baseline is exactly those decryptions: one per private.p8 below the stores,
 * on keys loaded beforehand (untimed) the way docs/file-plugin.md recovers them without
 * keyplane: the store key out of the header (PBKDF2 + AES-256-CBC, `openssl enc -pbkdf2`), then
 * each private.p8 with it. What keyplane adds on top (process start, policy, plugin loading, one
 * PBKDF2 per store, reading and checking each key's files, decrypting each private.p8) is the
 * overhead the ratio shows. Rounds alternate the two sides, so drift hits both alike.
 *
 * Two baselines: warm keys (each key object decrypted with in every round, so from the second
 * round on its Montgomery contexts and blinding are cached), and first use (a fresh copy of
 * each key per round, EVP_PKEY_dup untimed, so its one decryption pays that set-up, as verify's
 * does: verify uses each key once per process). The target is judged against the first.
 *
 * Usage: bench_verify KEYPLANE POLICY ROUNDS STORE_DIR... (the stores' passphrase in
 * KP_BENCH_PASS). Exit 0 with the figures; 1 when a side fails (verify not ok, a key that does
 * not load, a decryption that does not give the challenge back).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/clock.h>
#include <keyplane/kit/codec.h>

#include "bench_proc.h"

#define S_CHALLENGE 32

typedef struct s_key {
    EVP_PKEY *pkey;
    uint8_t ct[1024];
    size_t ctlen;
    uint8_t pt[S_CHALLENGE];
} s_key;

static s_key *s_keys;
static size_t s_nkeys, s_capkeys;

static int s_die(const char *what, const char *path)
{
    fprintf(stderr, "bench_verify: %s: %s\n", what, path);
    return -1;
}

static int s_add_key(const char *path, const char *sk)
{
    EVP_PKEY *pkey = kpb_store_p8(path, sk);
    if (pkey == NULL)
        return s_die("cannot decrypt", path);
    if (s_nkeys == s_capkeys) {
        s_capkeys = s_capkeys > 0 ? 2 * s_capkeys : 256;
        s_keys = realloc(s_keys, s_capkeys * sizeof(*s_keys));
        if (s_keys == NULL)
            return s_die("out of memory", path);
    }
    s_key *k = &s_keys[s_nkeys++];
    k->pkey = pkey;
    RAND_bytes(k->pt, S_CHALLENGE);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    k->ctlen = sizeof(k->ct);
    if (c == NULL || EVP_PKEY_encrypt_init(c) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) != 1 ||
        EVP_PKEY_encrypt(c, k->ct, &k->ctlen, k->pt, S_CHALLENGE) != 1) {
        EVP_PKEY_CTX_free(c);
        return s_die("cannot encrypt a challenge under", path);
    }
    EVP_PKEY_CTX_free(c);
    return 0;
}

/* Every keys/<name>/<N>/private.p8 of the store at dir. */
static int s_load_store(const char *dir, const char *pass)
{
    char sk[65], path[4096];
    if (kpb_store_key(dir, pass, sk) != 0)
        return s_die("cannot open the store key (format 2 store, right passphrase?)", dir);
    snprintf(path, sizeof(path), "%s/keys", dir);
    DIR *names = opendir(path);
    struct dirent *n, *v;
    int rc = names != NULL ? 0 : s_die("cannot list", path);
    while (rc == 0 && names != NULL && (n = readdir(names)) != NULL) {
        if (n->d_name[0] == '.')
            continue;
        char kdir[2048];
        snprintf(kdir, sizeof(kdir), "%.1500s/keys/%.255s", dir, n->d_name);
        DIR *vers = opendir(kdir);
        while (rc == 0 && vers != NULL && (v = readdir(vers)) != NULL) {
            if (v->d_name[0] < '1' || v->d_name[0] > '9')
                continue;
            snprintf(path, sizeof(path), "%s/%.255s/private.p8", kdir, v->d_name);
            rc = s_add_key(path, sk);
        }
        if (vers != NULL)
            closedir(vers);
    }
    if (names != NULL)
        closedir(names);
    OPENSSL_cleanse(sk, sizeof(sk));
    return rc;
}

/* One baseline round: every key decrypts its challenge, as verify's unwrap does (a context per
 * operation, OAEP with SHA-256). first_use: each on a fresh copy of its key, made untimed (see
 * the top). Wall and CPU ms into t. */
static int s_raw_round(kpb_time *t, bool first_use)
{
    EVP_PKEY **use = calloc(s_nkeys + 1, sizeof(*use));
    if (use == NULL)
        return s_die("out of memory", "baseline");
    for (size_t i = 0; i < s_nkeys; i++)
        if ((use[i] = first_use ? EVP_PKEY_dup(s_keys[i].pkey) : s_keys[i].pkey) == NULL)
            return s_die("cannot copy a key", "baseline");
    double w0 = kpk_clock_ms(), c0 = kpb_self_cpu_ms();
    int rc = 0;
    for (size_t i = 0; i < s_nkeys && rc == 0; i++) {
        s_key *k = &s_keys[i];
        uint8_t out[1024];
        size_t outlen = sizeof(out);
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, use[i], NULL);
        int ok = c != NULL && EVP_PKEY_decrypt_init(c) == 1 &&
                 EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256()) == 1 &&
                 EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1 &&
                 EVP_PKEY_decrypt(c, out, &outlen, k->ct, k->ctlen) == 1 && outlen == S_CHALLENGE &&
                 memcmp(out, k->pt, S_CHALLENGE) == 0;
        EVP_PKEY_CTX_free(c);
        if (!ok)
            rc = s_die("a raw decryption failed", "baseline");
    }
    t->wall_ms = kpk_clock_ms() - w0;
    t->cpu_ms = kpb_self_cpu_ms() - c0;
    for (size_t i = 0; first_use && i < s_nkeys; i++)
        EVP_PKEY_free(use[i]);
    free(use);
    return rc;
}

int main(int argc, char **argv)
{
    const char *pass = getenv("KP_BENCH_PASS");
    if (argc < 5 || pass == NULL) {
        fprintf(stderr,
                "usage: KP_BENCH_PASS=... bench_verify KEYPLANE POLICY ROUNDS STORE_DIR...\n");
        return 2;
    }
    int rounds = atoi(argv[3]);
    if (rounds < 1)
        rounds = 1;
    for (int i = 4; i < argc; i++)
        if (s_load_store(argv[i], pass) != 0)
            return 1;
    char *verify[] = {argv[1], (char *)"--policy", argv[2], (char *)"verify", NULL};
    double *kw = calloc((size_t)rounds, sizeof(double)),
           *kc = calloc((size_t)rounds, sizeof(double));
    double *rw = calloc((size_t)rounds, sizeof(double)),
           *rc = calloc((size_t)rounds, sizeof(double));
    double *fw = calloc((size_t)rounds, sizeof(double)),
           *fc = calloc((size_t)rounds, sizeof(double));
    if (kw == NULL || kc == NULL || rw == NULL || rc == NULL || fw == NULL || fc == NULL)
        return s_die("out of memory", "rounds");
    printf("verify: %zu private keys below %d stores, %d rounds\n", s_nkeys, argc - 4, rounds);
    for (int r = 0; r < rounds; r++) {
        kpb_time k, raw, first;
        /* Alternate which side goes first. */
        if (r % 2 == 0 ? s_raw_round(&raw, false) != 0 || s_raw_round(&first, true) != 0 ||
                             kpb_spawn(verify, &k) != 0
                       : kpb_spawn(verify, &k) != 0 || s_raw_round(&first, true) != 0 ||
                             s_raw_round(&raw, false) != 0)
            return 1;
        kw[r] = k.wall_ms, kc[r] = k.cpu_ms, rw[r] = raw.wall_ms, rc[r] = raw.cpu_ms;
        fw[r] = first.wall_ms, fc[r] = first.cpu_ms;
        printf("  round %d: keyplane verify %.0f ms wall %.0f ms CPU | raw RSA, first use %.0f ms "
               "wall %.0f ms CPU, warm %.0f ms wall %.0f ms CPU | %.2fx wall %.2fx CPU of first "
               "use\n",
               r + 1, k.wall_ms, k.cpu_ms, first.wall_ms, first.cpu_ms, raw.wall_ms, raw.cpu_ms,
               k.wall_ms / first.wall_ms, k.cpu_ms / first.cpu_ms);
    }
    double mkw = kpb_median(kw, (size_t)rounds), mkc = kpb_median(kc, (size_t)rounds);
    double mrw = kpb_median(rw, (size_t)rounds), mrc = kpb_median(rc, (size_t)rounds);
    double mfw = kpb_median(fw, (size_t)rounds), mfc = kpb_median(fc, (size_t)rounds);
    printf("verify of %zu copies: keyplane %.0f ms (%.0f ms CPU) | raw RSA-OAEP-256 decryptions, "
           "each key's first use %.0f ms (%.0f ms CPU) | ratio %.2fx wall, %.2fx CPU (target: at "
           "most 3x)\n",
           s_nkeys, mkw, mkc, mfw, mfc, mkw / mfw, mkc / mfc);
    printf("verify of %zu copies against warm keys (Montgomery contexts and blinding cached from "
           "earlier rounds): %.0f ms (%.0f ms CPU) | ratio %.2fx wall, %.2fx CPU\n",
           s_nkeys, mrw, mrc, mkw / mrw, mkc / mrc);
    for (size_t i = 0; i < s_nkeys; i++)
        EVP_PKEY_free(s_keys[i].pkey);
    free(s_keys);
    free(kw), free(kc), free(rw), free(rc), free(fw), free(fc);
    return 0;
}
