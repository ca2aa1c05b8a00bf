/*
 * Whole-process timing for the benchmarks: fork, exec, wait4 (for the child's CPU time).
 */
#include "bench_proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <keyplane/kit/clock.h>
#include <keyplane/kit/codec.h>

static double s_tv_ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

int kpb_spawn(char *const argv[], kpb_time *t)
{
    double t0 = kpk_clock_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            if (getenv("KP_BENCH_STDERR") == NULL)
                dup2(null, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("wait4");
        return -1;
    }
    t->wall_ms = kpk_clock_ms() - t0;
    t->cpu_ms = s_tv_ms(ru.ru_utime) + s_tv_ms(ru.ru_stime);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench: %s %s: %s %d\n", argv[0], argv[1] != NULL ? argv[1] : "",
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return -1;
    }
    return 0;
}

int kpb_shell(const char *cmd, kpb_time *t)
{
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)cmd, NULL};
    return kpb_spawn(argv, t);
}

static int s_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double kpb_median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), s_cmp);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

double kpb_self_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return s_tv_ms(ru.ru_utime) + s_tv_ms(ru.ru_stime);
}

int kpb_store_key(const char *dir, const char *pass, char sk[65])
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/keyplane-store.json", dir);
    json_t *h = json_load_file(path, 0, NULL);
    const char *b64 = json_string_value(json_object_get(h, "store_key"));
    json_int_t iter = json_integer_value(json_object_get(h, "iterations"));
    uint8_t *sealed = NULL, kiv[48], pt[96];
    size_t len = 0;
    int n1 = 0, n2 = 0, ok = 0;
    if (b64 != NULL && kpk_b64_decode_alloc(b64, strlen(b64), &sealed, &len) == KP_OK &&
        len == 96 && memcmp(sealed, "Salted__", 8) == 0 &&
        PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), sealed + 8, 8, (int)iter, EVP_sha256(), 48,
                          kiv) == 1) {
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        ok = c != NULL && EVP_DecryptInit_ex2(c, EVP_aes_256_cbc(), kiv, kiv + 32, NULL) == 1 &&
             EVP_DecryptUpdate(c, pt, &n1, sealed + 16, 80) == 1 &&
             EVP_DecryptFinal_ex(c, pt + n1, &n2) == 1 && n1 + n2 == 64;
        EVP_CIPHER_CTX_free(c);
    }
    if (ok) {
        memcpy(sk, pt, 64);
        sk[64] = '\0';
    }
    OPENSSL_cleanse(pt, sizeof(pt));
    OPENSSL_cleanse(kiv, sizeof(kiv));
    free(sealed);
    json_decref(h);
    return ok ? 0 : -1;
}

EVP_PKEY *kpb_store_p8(const char *path, const char *sk)
{
    BIO *b = BIO_new_file(path, "rb");
    EVP_PKEY *pkey = b != NULL ? d2i_PKCS8PrivateKey_bio(b, NULL, NULL, (void *)sk) : NULL;
    BIO_free(b);
    return pkey;
}
