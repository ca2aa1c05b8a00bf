/*
 * The key-chain engine: discover what every instance of a chain holds, plan the difference with
 * the policy, apply the plan (concurrently, idempotently, resumably), and verify that every
 * replica holds the same usable key. State lives in the providers themselves; nothing here
 * ever deletes or disables a key version.
 */
#ifndef KEYPLANE_ENGINE_H
#define KEYPLANE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include <keyplane/error.h>
#include <keyplane/policy.h>
#include <keyplane/provider.h>
#include <keyplane/sqlserver.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kp_ctx kp_ctx;

/* ---- plan ----------------------------------------------------------------------------- */

typedef enum kp_action_kind {
    KP_ACTION_CREATE = 1, /**< generate version `version` in `target` (the chain's origin) */
    KP_ACTION_COPY = 2,   /**< export `version` from `source`, import it into `target` */
    KP_ACTION_SECRET = 3, /**< export `version` from `source`, put it into the secret store
                               `target` as password-protected PKCS#8, the password into the
                               chain's `secrets` store */
    KP_ACTION_STATE = 4,  /**< copy the chain-state document (version lifecycle) from `source`,
                               which has the newest, to `target` (version is 0) */
    KP_ACTION_CERT = 5    /**< certificate chains: give `target` the certificate of `version`
                               kept in `source` (after the COPYs and SECRETs); with an empty
                               source, make it (a chain whose certificates keyplane makes,
                               target its origin) */
} kp_action_kind;

/** One step of a plan. */
typedef struct kp_action {
    uint32_t kind; /**< kp_action_kind */
    char chain[KP_NAME_MAX];
    char source[KP_NAME_MAX]; /**< COPY: where the key material comes from */
    char target[KP_NAME_MAX];
    uint32_t version;
    char fingerprint[KPK_FPR_HEX]; /**< expected fingerprint; "" when made by a CREATE first */
} kp_action;

typedef enum kp_finding_kind {
    KP_FINDING_UNREACHABLE = 1, /**< an instance could not be opened or listed */
    KP_FINDING_CONFLICT = 2,    /**< an instance holds another key under a version number */
    KP_FINDING_INCAPABLE = 3,   /**< an instance cannot do what the chain needs (its wrap
                                     algorithm, its key size), as the instance declared */
    KP_FINDING_UNCONFIRMED = 4, /**< an instance holds a version that neither the origin nor
                                     more than half of the chain's stores hold: not copied,
                                     never used to wrap */
    KP_FINDING_STATE = 5,       /**< the chain-state documents are unreadable or disagree, or
                                     no keystore can vouch for one */
    KP_FINDING_WAITING = 6      /**< the chain waits for what only an operator can give: the
                                     certificate of a chain whose certificates are imported */
} kp_finding_kind;

/** Something the plan cannot fix by itself. */
typedef struct kp_finding {
    uint32_t kind; /**< kp_finding_kind */
    char chain[KP_NAME_MAX];
    char instance[KP_NAME_MAX];
    uint32_t version; /**< 0 when not about one version */
    kp_status status;
    char detail[256];
} kp_finding;

typedef struct kp_plan kp_plan;

/**
 * Discovers every store of chain (every chain when NULL) and plans what apply must do: a
 * CREATE of v1 in the origin when every store answered and none holds any version, a COPY of
 * every confirmed version (held by the origin, or by more than half of the chain's stores)
 * into every store that lacks it, and a STATE copy of the authoritative chain-state document.
 * Unreachable instances, conflicting keys, unconfirmed versions and state documents without
 * an authority are findings (docs/engine.md, "Invariants").
 */
KP_API KP_WARN_UNUSED kp_status kp_plan_make(kp_ctx *ctx, const kp_policy *policy,
                                             const char *chain, kp_plan **out);

/** Options of kp_plan_make_with; zero it, then set struct_size. */
typedef struct kp_plan_opts {
    uint32_t struct_size; /**< sizeof(kp_plan_opts) */
    /** A store of the chain the caller vouches for (restore --from): where the origin cannot
     *  say (it lacks a version, keeps no readable state document, or is unreachable), this
     *  store's versions and state document count as the origin's would. NULL: none. */
    const char *vouch;
    /** Chains discovered at once (1..256; 0: 8). Discovery is mostly waiting on stores, so more
     *  workers than cores pays off with remote ones. Appended: a caller built against an older
     *  struct gets 8. */
    unsigned workers;
} kp_plan_opts;

/** kp_plan_make with options (opts may be NULL). */
KP_API KP_WARN_UNUSED kp_status kp_plan_make_with(kp_ctx *ctx, const kp_policy *policy,
                                                  const char *chain, const kp_plan_opts *opts,
                                                  kp_plan **out);
KP_API void kp_plan_free(kp_plan *plan);

/**
 * Keeps only the actions that rebuild target (a lost vault or region), and findings about it;
 * with from set, copies come from that instance (escrow, another replica) when it holds the
 * same key. KP_ERR_NOT_FOUND when from holds none of what target lacks.
 */
KP_API KP_WARN_UNUSED kp_status kp_plan_restrict(kp_ctx *ctx, const kp_policy *policy,
                                                 kp_plan *plan, const char *target,
                                                 const char *from);
KP_API size_t kp_plan_action_count(const kp_plan *plan);
KP_API const kp_action *kp_plan_action(const kp_plan *plan, size_t i);
KP_API size_t kp_plan_finding_count(const kp_plan *plan);
KP_API const kp_finding *kp_plan_finding(const kp_plan *plan, size_t i);

/* ---- apply ---------------------------------------------------------------------------- */

/** Called after each action, from the worker that ran it (serialised by the engine). */
typedef void (*kp_progress_fn)(void *arg, const kp_action *action, kp_status status,
                               const char *detail, size_t done, size_t total);

typedef struct kp_apply_opts {
    uint32_t struct_size; /**< sizeof(kp_apply_opts) */
    unsigned workers;     /**< concurrent actions; 0 = 8 */
    const char *journal;  /**< JSON-lines journal file, or NULL for none */
    kp_progress_fn progress;
    void *arg;
} kp_apply_opts;

/**
 * Executes a plan: every CREATE first, then every COPY, each phase on a pool of workers. Each
 * action re-checks the target first, so applying a plan twice, or after an interruption, is
 * harmless. *failed receives the number of actions that failed. Returns the first failure's
 * status, KP_OK when every action succeeded.
 */
KP_API KP_WARN_UNUSED kp_status kp_plan_apply(kp_ctx *ctx, const kp_policy *policy,
                                              const kp_plan *plan, const kp_apply_opts *opts,
                                              size_t *failed);

/* ---- rotation ------------------------------------------------------------------------- */

/** Lifecycle of a protector version, kept in the chain-state document of every keystore. */
typedef enum kp_version_state {
    KP_VSTATE_NONE = 0,     /**< no state recorded (a chain that never rotated) */
    KP_VSTATE_STAGED = 1,   /**< replicated and verified, not yet used to wrap */
    KP_VSTATE_ACTIVE = 2,   /**< the version wrap uses */
    KP_VSTATE_PREVIOUS = 3, /**< was active; kept for the envelopes and backups made with it */
    KP_VSTATE_RETIRED = 4,  /**< outside the retention window; still kept, never deleted */
    KP_VSTATE_ABANDONED = 5 /**< never active and never used to wrap, given up
                                 (kp_chain_abandon): no longer copied, proved or counted as a
                                 gap; its keys stay where they are */
} kp_version_state;

KP_API const char *kp_version_state_name(uint32_t state);

/**
 * Stages the chain's next protector version: creates vN+1 in the origin (or continues with a
 * staged version left by an earlier run), replicates it to every keystore, proves it usable in
 * every one, and records it as staged. *version receives it; *verified whether the proof
 * passed everywhere (activation requires that).
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_stage(kp_ctx *ctx, const kp_policy *policy,
                                               const char *chain, const kp_apply_opts *opts,
                                               uint32_t *version, int *verified);

/**
 * Makes an operator's key and certificate (a SQL Server TDE certificate: PKCS#8 DER and DER
 * X.509, `keyplane sqlserver import`) a version of chain, whose policy has a 'certificate'
 * block: its first version when it has none (every store must answer), else its next version,
 * staged as kp_chain_stage stages (*staged 1, *verified as there). A key that is a version
 * already is that version (its certificate kept with the origin's copy if missing; another
 * certificate there is KP_ERR_EXISTS). Then every copy the policy wants is made. *version
 * receives the version.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_import(kp_ctx *ctx, const kp_policy *policy,
                                                const char *chain, const kp_secret *pkcs8,
                                                const uint8_t *cert, size_t certlen,
                                                const kp_apply_opts *opts, uint32_t *version,
                                                int *staged, int *verified);

/**
 * What SQL Server needs to restore a certificate chain's version on a DR instance: its
 * certificate (DER, *cert, free with kp_free) as the stores keep it, and its private key
 * (PKCS#8 DER, *pkcs8) from the first store that hands it out: the origin, another keystore, or
 * a secret replica's copy opened with its password. *version: the version, 0 for the one wrap
 * uses (receives it then). KP_ERR_NOT_FOUND when no store keeps its certificate or hands out
 * its key.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_cert_export(kp_ctx *ctx, const kp_policy *policy,
                                                     const char *chain, uint32_t *version,
                                                     kp_secret **pkcs8, uint8_t **cert,
                                                     size_t *certlen);

/** Options of kp_chain_cert_export_ex; zero members take the defaults. */
typedef struct kp_cert_export_opts {
    uint32_t struct_size; /**< sizeof(kp_cert_export_opts) */
    /** The store the caller vouches for when the origin is unreachable (a DR region's bucket):
     *  its versions count as the origin's would, and the key is read from it first. NULL: none
     *  (the origin, or more than half of the chain's stores, must confirm the version). */
    const char *from;
} kp_cert_export_opts;

/** What kp_chain_cert_export_ex hands out; free with kp_cert_export_clear. */
typedef struct kp_cert_export {
    uint32_t version;
    kp_secret *pkcs8; /**< the private key (PKCS#8 DER) */
    uint8_t *cert;    /**< the certificate (DER), kp_free */
    size_t certlen;
    /** The .pvk a secret replica keeps (NULL when the key came from a keystore), checked to open
     *  with its password to the version's key: what was put before the incident, exported as
     *  is. Its password is version pvk_password_version of <chain>.password in the chain's
     *  secret store. */
    kp_secret *pvk;
    uint32_t pvk_password_version;
    char source[128]; /**< the store the key came from */
} kp_cert_export;

/**
 * kp_chain_cert_export with options (opts may be NULL) and the .pvk of a secret replica: the key
 * is read from opts->from first, then the origin, other keystores and secret replicas. out->version
 * is the version on entry (0: the one wrap uses).
 * @return as kp_chain_cert_export; KP_ERR_CONFIG when from is no store of the chain.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_cert_export_ex(kp_ctx *ctx, const kp_policy *policy,
                                                        const char *chain,
                                                        const kp_cert_export_opts *opts,
                                                        kp_cert_export *out);
/** Frees (and wipes) what out holds. NULL is a no-op. */
KP_API void kp_cert_export_clear(kp_cert_export *out);

/**
 * Makes the staged version the active one, only when it is proved usable in every keystore of
 * the chain right now (KP_ERR_DENIED naming the gap otherwise; KP_ERR_NOT_FOUND when no version
 * is staged, or the staged one has a key in no keystore). The version active before
 * becomes previous, with its activity window closed now. Nothing is deleted.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_activate(kp_ctx *ctx, const kp_policy *policy,
                                                  const char *chain, uint32_t *version);

/**
 * Marks version retired (it stays in every keystore). Refused (KP_ERR_DENIED) for the active,
 * staged or abandoned version, and while the retention window still needs it: its activity
 * ended less than the chain's retention ago.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_retire(kp_ctx *ctx, const kp_policy *policy,
                                                const char *chain, uint32_t version);

/**
 * Marks version abandoned: a version that was never active and that no envelope can have used
 * (a staged version that cannot reach every keystore, one made outside the lifecycle). plan
 * and apply stop copying it, verify and status stop counting its missing copies as gaps, wrap
 * never uses it, and rotate --stage goes on with the next number. Nothing is deleted.
 * Refused (KP_ERR_DENIED) for the active, previous or retired version, a version that was ever
 * active, one older than the active version that the document does not record, and, in a
 * chain that never rotated, the version wrap picks and the ones before it, or any version
 * while a keystore is unreachable. KP_ERR_NOT_FOUND when no keystore holds or records it.
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_abandon(kp_ctx *ctx, const kp_policy *policy,
                                                 const char *chain, uint32_t version);

/* ---- verify and status ---------------------------------------------------------------- */

typedef enum kp_cell_state {
    KP_CELL_OK = 1,          /**< holds the version and proved it can unwrap (verify) or holds it
                                  with the right fingerprint (status) */
    KP_CELL_MISSING = 2,     /**< does not hold the version */
    KP_CELL_MISMATCH = 3,    /**< holds another key under this version number */
    KP_CELL_UNUSABLE = 4,    /**< holds it, but could not unwrap the challenge */
    KP_CELL_UNREACHABLE = 5, /**< could not be asked */
    KP_CELL_RESTORE_ONLY = 6 /**< holds the right key, exportable, but is no disaster unwrapper:
                                  it cannot unwrap with the chain's algorithm (verify proved
                                  the key with the other RSA-OAEP hash; status goes by what the
                                  store declared), or the policy lists it in the chain's
                                  restore_only (wrap and unwrap then pass it over unless it is
                                  named). A restore source only: a gap unless the policy lists
                                  it there (kp_matrix_cell_ok) */
} kp_cell_state;

typedef struct kp_cell {
    uint32_t state; /**< kp_cell_state */
    kp_status status;
    char detail[256];
} kp_cell;

typedef struct kp_matrix kp_matrix;

/**
 * Builds the versions x keystores matrix of chain. With prove set, each held version is proved
 * usable: a random challenge is wrapped with the version's public key (in software), with the
 * chain's algorithm and no other, and unwrapped in the instance. kp_matrix_ok() tells whether
 * every cell is OK (or RESTORE_ONLY where the policy keeps that store restore-only).
 */
KP_API KP_WARN_UNUSED kp_status kp_chain_matrix(kp_ctx *ctx, const kp_policy *policy,
                                                const char *chain, int prove, kp_matrix **out);
KP_API void kp_matrix_free(kp_matrix *m);
KP_API size_t kp_matrix_version_count(const kp_matrix *m);
KP_API uint32_t kp_matrix_version(const kp_matrix *m, size_t row);
KP_API const char *kp_matrix_fingerprint(const kp_matrix *m, size_t row);
KP_API size_t kp_matrix_instance_count(const kp_matrix *m);
KP_API const char *kp_matrix_instance(const kp_matrix *m, size_t col);
/** Whether col's store could be asked: KP_OK, or the status it could not be opened or listed
 *  with, *detail (may be NULL) then receiving why (NULL when reachable). Known with no version
 *  too, where no cell shows it. KP_ERR_INVALID_ARG for a column outside the matrix. */
KP_API kp_status kp_matrix_instance_status(const kp_matrix *m, size_t col, const char **detail);
KP_API const kp_cell *kp_matrix_cell(const kp_matrix *m, size_t row, size_t col);
/** The store's own id of the copy in a cell, as the store reported it when listed (kp_key_info
 *  backend_id: a Key Vault key id (kid) with its version, a PKCS#11 URI, a file store's version
 *  directory); NULL when the store holds no copy there or reports no id. Borrowed from m. */
KP_API const char *kp_matrix_backend_id(const kp_matrix *m, size_t row, size_t col);
KP_API int kp_matrix_ok(const kp_matrix *m);
/** Certificate chains: row's certificate (the origin's, else the one most stores keep), as the
 *  stores that keep certificates hold it; NULL for another chain, or when no store keeps one.
 *  Borrowed from m. */
KP_API const kp_cert_info *kp_matrix_certificate(const kp_matrix *m, size_t row);
/** Whether one cell is no gap: KP_CELL_OK, or KP_CELL_RESTORE_ONLY in a store the chain's
 *  policy lists in restore_only, or any cell of an abandoned version (KP_VSTATE_ABANDONED). 0
 *  for a cell outside the matrix. */
KP_API int kp_matrix_cell_ok(const kp_matrix *m, size_t row, size_t col);
/** What no cell shows, as one line, or NULL: the chain-state documents are unreadable, disagree
 *  or have no authority, or a version is held by too few stores to be confirmed. A matrix with a
 *  problem is not ok. */
KP_API const char *kp_matrix_problem(const kp_matrix *m);
/** The recorded lifecycle of row's version (KP_VSTATE_NONE when none) and its window. */
KP_API uint32_t kp_matrix_state(const kp_matrix *m, size_t row, int64_t *active_from,
                                int64_t *active_until);
/** Unix time the newest version was created (0 when none). Rotation is due by
 *  kp_matrix_rotation_due, which a newer staged or stray version does not move. */
KP_API int64_t kp_matrix_newest_created(const kp_matrix *m);
/** Unix time row's version was created: the earliest any keystore holding it (with the
 *  reference fingerprint) reports; 0 when none does. */
KP_API int64_t kp_matrix_created(const kp_matrix *m, size_t row);
/**
 * Unix time the chain is due to rotate, 0 when its policy has no rotation period or no version
 * wraps: rotation.every after the active version was activated, or after the version wrap uses
 * was created when that is not recorded (a chain that never rotated, or whose first active
 * version predates its document). Staged, abandoned and unrecorded versions do not move it.
 * *version (may be NULL) receives the version it counts from.
 */
KP_API int64_t kp_matrix_rotation_due(const kp_matrix *m, uint32_t *version);

#ifdef __cplusplus
}
#endif

#endif /* KEYPLANE_ENGINE_H */
