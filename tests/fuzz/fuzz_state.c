/*
 * Fuzz target of the chain-state document's parser (core/src/chain/state.c, kp__state_parse):
 * the JSON each keystore of a chain keeps (KS_STATE_GET), which a damaged or hostile store can
 * make anything. Besides memory errors it checks what state.h promises of an accepted document:
 * at most KP_STATE_VERSIONS versions, each numbered from 1 with a known state, a serial in
 * 1..2^53; and that kp__state_encode writes it back as a document that parses to the same state.
 * The document must name chain "c1" (the parser refuses another chain's).
 *
 * Built as a libFuzzer target (fuzz_state, Clang) and as a replay program over its corpus
 * (fuzz_state_replay; ctest fuzz.state.replay). See README.md.
 */
#include <stdlib.h>
#include <string.h>

#include "chain/state.h"
#include "fuzz_check.h"

#define T "fuzz_state"

static kp__chain_state s_a, s_b; /* about 40 KiB each: not on the stack */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!kp__state_parse(data, size, "c1", &s_a))
        return 0;
    if (s_a.n > KP_STATE_VERSIONS)
        kp_test_fuzz_die(T, "kp__state_parse", "more versions than KP_STATE_VERSIONS");
    if (s_a.serial < 1 || s_a.serial > ((uint64_t)1 << 53))
        kp_test_fuzz_die(T, "kp__state_parse", "a serial outside 1..2^53");
    for (size_t i = 0; i < s_a.n; i++) {
        const char *name = kp_version_state_name(s_a.v[i].state);
        if (s_a.v[i].version == 0 || s_a.v[i].state == 0 || strcmp(name, "unknown") == 0)
            kp_test_fuzz_die(T, "kp__state_parse", "a version 0 or without a known state");
    }
    char *doc = kp__state_encode("c1", &s_a);
    if (doc == NULL)
        kp_test_fuzz_die(T, "kp__state_encode", "an accepted state does not encode");
    if (!kp__state_parse((const uint8_t *)doc, strlen(doc), "c1", &s_b))
        kp_test_fuzz_die(T, "kp__state_encode", "the encoded document does not parse");
    if (s_b.serial != s_a.serial || s_b.updated != s_a.updated || s_b.n != s_a.n ||
        memcmp(s_b.v, s_a.v, s_a.n * sizeof(s_a.v[0])) != 0)
        kp_test_fuzz_die(T, "kp__state_encode", "the encoded document parses to another state");
    free(doc);
    return 0;
}
