/*
 * Fuzz target of the envelope decoder (core/src/format/envelope.c, kp_envelope_decode): the
 * JSON line `keyplane wrap` writes and `unwrap` reads back, which may come from anywhere. Besides
 * memory errors it checks what envelope.h promises: a decoded envelope names a valid chain and
 * holds 1 to 16 wraps, each with a 64-hex fingerprint, a version, a known algorithm and at most
 * 2048 bytes; it encodes again, and that text decodes to the same envelope; a refusal is
 * KP_ERR_INTEGRITY with one printable line that does not quote the input.
 *
 * Built as a libFuzzer target (fuzz_envelope, Clang) and as a replay program over its corpus
 * (fuzz_envelope_replay; ctest fuzz.envelope.replay). See README.md.
 */
#include <stdlib.h>
#include <string.h>

#include <keyplane/envelope.h>
#include <keyplane/keyplane.h>

#include "fuzz_check.h"

#define T "fuzz_envelope"
/* The most wrapped bytes one wrap holds (envelope.c, docs/envelope.md). */
#define S_WRAPPED_MAX 2048

static void s_check(const kp_envelope *env)
{
    const char *chain = kp_envelope_chain(env);
    size_t n = kp_envelope_count(env);
    if (chain == NULL || chain[0] == '\0' || strlen(chain) > 63)
        kp_test_fuzz_die(T, "kp_envelope_decode", "decoded without a valid chain name");
    if (n < 1 || n > 16)
        kp_test_fuzz_die(T, "kp_envelope_decode", "decoded with a wrap count outside 1..16");
    for (size_t i = 0; i < n; i++) {
        const kp_envelope_wrap *w = kp_envelope_get0(env, i);
        if (w == NULL || w->fingerprint == NULL || strlen(w->fingerprint) != 64)
            kp_test_fuzz_die(T, "kp_envelope_decode", "a wrap without a 64-hex fingerprint");
        if (w->version == 0 || kp_wrap_alg_name(w->alg) == NULL)
            kp_test_fuzz_die(T, "kp_envelope_decode", "a wrap without version or known alg");
        if (w->wrapped_len > S_WRAPPED_MAX || (w->wrapped_len > 0 && w->wrapped == NULL))
            kp_test_fuzz_die(T, "kp_envelope_decode", "wrapped bytes out of range");
    }
}

static void s_same(const kp_envelope *a, const kp_envelope *b)
{
    if (strcmp(kp_envelope_chain(a), kp_envelope_chain(b)) != 0 ||
        kp_envelope_count(a) != kp_envelope_count(b))
        kp_test_fuzz_die(T, "re-decode", "the encoded envelope decodes to another chain or count");
    for (size_t i = 0; i < kp_envelope_count(a); i++) {
        const kp_envelope_wrap *x = kp_envelope_get0(a, i), *y = kp_envelope_get0(b, i);
        if (strcmp(x->fingerprint, y->fingerprint) != 0 || x->version != y->version ||
            x->alg != y->alg || x->wrapped_len != y->wrapped_len ||
            (x->wrapped_len > 0 && memcmp(x->wrapped, y->wrapped, x->wrapped_len) != 0))
            kp_test_fuzz_die(T, "re-decode", "the encoded envelope decodes to other wraps");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    kp_envelope *env = NULL;
    memset(err, 0, sizeof(err));
    kp_status st = kp_envelope_decode((const char *)data, size, &env, err, sizeof(err));
    if (st != KP_OK) {
        if (env != NULL)
            kp_test_fuzz_die(T, "kp_envelope_decode", "failed but handed out an envelope");
        if (st != KP_ERR_INTEGRITY && st != KP_ERR_NOMEM)
            kp_test_fuzz_die(T, "kp_envelope_decode", "a status neither INTEGRITY nor NOMEM");
        if (st == KP_ERR_INTEGRITY)
            kp_test_fuzz_error_text(T, "kp_envelope_decode", err);
        return 0;
    }
    s_check(env);
    char *text = NULL;
    if (kp_envelope_encode(env, &text) != KP_OK || text == NULL)
        kp_test_fuzz_die(T, "kp_envelope_encode", "a decoded envelope does not encode");
    kp_envelope *again = NULL;
    memset(err, 0, sizeof(err));
    if (kp_envelope_decode(text, strlen(text), &again, err, sizeof(err)) != KP_OK)
        kp_test_fuzz_die(T, "re-decode", "the encoded envelope does not decode");
    s_same(env, again);
    kp_envelope_free(again);
    kp_free(text);
    kp_envelope_free(env);
    return 0;
}
