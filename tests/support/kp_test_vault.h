/*
 * The one C client of the Key Vault emulator (tests/emulators/azure_keyvault) that the tests
 * use: the vault that tests/integration/run_with_vault.sh --name NAME started (its URL from
 * KV_<NAME>_URL, the test CA from KV_CA, its directory from KP_VAULT_DIR) and the emulator's
 * control endpoints /_emulator/faults, /_emulator/stats and /_emulator/tokens/revoke, reached
 * through the provider kit's transport. A request that fails fails the test (kp_test_fail).
 */
#ifndef KP_TEST_VAULT_H
#define KP_TEST_VAULT_H

#include <jansson.h>

#include "kp_test.h"

typedef struct kp_test_vault kp_test_vault;

/* The emulator's counters (GET /_emulator/stats). They never reset, not even with a new fault
 * configuration: tests compare before and after. */
typedef struct kp_test_vault_stats {
    long requests, r429, r500, r503, drop, ok, corrupt;
} kp_test_vault_stats;

/* The vault name ("vault1", "kit", ...) that run_with_vault.sh --name started; fails the test
 * when it did not. */
kp_test_vault *kp_test_vault_open(const char *name);
void kp_test_vault_close(kp_test_vault *v);

/* Its base URL (https://127.0.0.1:PORT). */
const char *kp_test_vault_url(const kp_test_vault *v);
/* The test CA's certificate file (KV_CA) and the runner's directory (KP_VAULT_DIR, removed
 * after the run: NAME.state/, NAME.log). */
const char *kp_test_vault_ca(void);
const char *kp_test_vault_dir(void);

/* Replaces the emulator's fault configuration with json (PUT /_emulator/faults); "{}" clears
 * it. The control endpoints themselves are never faulted. */
void kp_test_vault_faults(kp_test_vault *v, const char *json);
void kp_test_vault_stats_get(kp_test_vault *v, kp_test_vault_stats *out);
/* Revokes every token the vault issued (POST /_emulator/tokens/revoke). */
void kp_test_vault_revoke_tokens(kp_test_vault *v);

/* A request to the vault's keys API behind keyplane's back, to see or change what keyplane
 * cannot (tags, attributes), with a token from the emulator's managed-identity endpoint. path is
 * "/keys/..." without api-version; body may be NULL. Returns the HTTP status; *out (if not NULL)
 * receives the parsed answer (caller decrefs; NULL when the body is not JSON). */
long kp_test_vault_rest(kp_test_vault *v, const char *method, const char *path, const char *body,
                        json_t **out);

#endif
