/*
 * The list of tests, in the order they run, and when each applies: a test is skipped (with the
 * reason) when the instance does not declare what it needs. docs/conformance.md describes each.
 */
#include <stddef.h>

#include "conf.h"
#include "conf_tests.h"

static const char *s_keystore(const conf_kit *k)
{
    if (k->have_iinfo && !(k->iinfo.capabilities & KP_CAP_KEYSTORE))
        return "the instance does not declare KP_CAP_KEYSTORE";
    return NULL;
}

static const char *s_makes_keys(const conf_kit *k)
{
    const char *why = s_keystore(k);
    if (why == NULL && conf_fn(k, KP_FN_KS_CREATE) == NULL && conf_fn(k, KP_FN_KS_IMPORT) == NULL)
        why = "the plugin has neither KS_CREATE nor KS_IMPORT";
    return why;
}

static const char *s_import(const conf_kit *k)
{
    const char *why = s_keystore(k);
    bool wrapped = conf_fn(k, KP_FN_KS_IMPORT_OFFER) != NULL && k->iinfo.import_keyx != 0;
    if (why == NULL && conf_fn(k, KP_FN_KS_IMPORT) == NULL && !wrapped)
        why = "the instance offers neither KS_IMPORT nor KS_IMPORT_WRAPPED";
    return why;
}

static const char *s_export_wrapped(const conf_kit *k)
{
    const char *why = s_makes_keys(k);
    if (why == NULL && k->iinfo.export_keyx == 0)
        why = "the instance declares no export_keyx method";
    if (why == NULL && (k->iinfo.flags & KP_INST_NO_EXPORT))
        why = "the instance declares KP_INST_NO_EXPORT";
    return why;
}

static const char *s_export(const conf_kit *k)
{
    const char *why = s_makes_keys(k);
    if (why == NULL && conf_fn(k, KP_FN_KS_EXPORT) == NULL)
        why = "the plugin has no KS_EXPORT";
    return why;
}

static const char *s_secretstore(const conf_kit *k)
{
    if (k->have_iinfo && !(k->iinfo.capabilities & KP_CAP_SECRETSTORE))
        return "the instance does not declare KP_CAP_SECRETSTORE";
    return NULL;
}

static const char *s_state(const conf_kit *k)
{
    const char *why = s_makes_keys(k);
    if (why == NULL &&
        (conf_fn(k, KP_FN_KS_STATE_GET) == NULL || conf_fn(k, KP_FN_KS_STATE_PUT) == NULL))
        why = "the plugin has no KS_STATE_GET/KS_STATE_PUT";
    return why;
}

static const char *s_cert(const conf_kit *k)
{
    const char *why = s_makes_keys(k);
    if (why == NULL && k->have_iinfo && !(k->iinfo.flags & KP_INST_CERTS))
        why = "the instance does not declare KP_INST_CERTS";
    if (why == NULL &&
        (conf_fn(k, KP_FN_KS_CERT_PUT) == NULL || conf_fn(k, KP_FN_KS_CERT_GET) == NULL))
        why = "the plugin has no KS_CERT_PUT/KS_CERT_GET";
    return why;
}

static const char *s_init(const conf_kit *k)
{
    if (conf_fn(k, KP_FN_INSTANCE_INIT) == NULL)
        return "the plugin has no INSTANCE_INIT (its stores exist by themselves)";
    return NULL;
}

static const char *s_datakey(const conf_kit *k)
{
    if (k->have_iinfo && !(k->iinfo.capabilities & KP_CAP_DATAKEY))
        return "the instance does not declare KP_CAP_DATAKEY";
    if (k->params.datakey_key == NULL)
        return "no datakey_key in the params file";
    return NULL;
}

static const char *s_objects(const conf_kit *k)
{
    if (k->have_iinfo && !(k->iinfo.flags & KP_INST_OBJECTS))
        return "the instance does not declare KP_INST_OBJECTS";
    if (k->params.objects_at == NULL)
        return "no objects_at in the params file";
    return NULL;
}

static const char *s_threads(const conf_kit *k)
{
    if (s_makes_keys(k) != NULL && s_secretstore(k) != NULL)
        return "the instance is neither a keystore that makes keys nor a secret store";
    return NULL;
}

const conf_test conf_tests[] = {
    {"handshake", "init with a right core, another major, a newer minor; plugin info", false, NULL,
     conf_t_handshake},
    {"mandatory-ids", "the ids every declared capability requires; no duplicates", false, NULL,
     conf_t_mandatory},
    {"params", "param descriptors; missing required and bad values refused with one line", false,
     NULL, conf_t_params},
    {"instance-info", "INSTANCE_INFO within the plugin's capabilities, consistent with DESCRIBE",
     true, NULL, conf_t_instance_info},
    {"check", "INSTANCE_CHECK passes and reports consistently", true, NULL, conf_t_check},
    {"init", "INSTANCE_INIT of an initialised store: EXISTS with one line, nothing changed", true,
     s_init, conf_t_init},
    {"buffer-convention", "too little space: BUFFER_TOO_SMALL, nothing written, the size needed",
     true, s_makes_keys, conf_t_buffer},
    {"versions", "explicit and next versions, EXISTS, ascending lists, KS_GET, NOT_FOUND", true,
     s_makes_keys, conf_t_versions},
    {"fingerprint-format", "fingerprints are lower-case hex SHA-256 of GET_PUBLIC's SPKI", true,
     s_makes_keys, conf_t_fingerprint},
    {"wrap-unwrap", "round trips with every declared alg, with OpenSSL both ways; others refused",
     true, s_makes_keys, conf_t_wrap},
    {"unwrap-garbage", "random, truncated, bit-flipped wraps: an error, never bytes", true,
     s_makes_keys, conf_t_unwrap_garbage},
    {"import-fingerprint", "imports with a wrong expected fingerprint: INTEGRITY, nothing left",
     true, s_import, conf_t_import_fpr},
    {"export-wrapped", "KS_EXPORT_WRAPPED per method, unwrapped by the kit with OpenSSL", true,
     s_export_wrapped, conf_t_export_wrapped},
    {"export", "KS_EXPORT of exportable keys only", true, s_export, conf_t_export},
    {"errors", "NOT_FOUND for absent names, one line of error text, the same status", true, NULL,
     conf_t_errors},
    {"secretstore", "put/get/list, ascending versions, metadata, repeated puts, secret_max", true,
     s_secretstore, conf_t_secretstore},
    {"state", "state documents: NOT_FOUND first, round trips, compare-and-swap", true, s_state,
     conf_t_state},
    {"certificates", "one certificate per version, the version's key only, never replaced", true,
     s_cert, conf_t_cert},
    {"datakey",
     "data keys bound to their encryption context; re-encrypted to another (DK_REENCRYPT)", true,
     s_datakey, conf_t_datakey},
    {"objects",
     "objects (ABI 1.6): whole or nothing at the commit, never replaced, ranged reads, metadata",
     true, s_objects, conf_t_objects},
    {"threads", "N threads on one instance: right results, unique versions, consistent lists", true,
     s_threads, conf_t_threads},
    {"secrets-wiped", "every secret the plugin allocated freed by teardown (totals)", false, NULL,
     conf_t_secrets_wiped},
    {"valgrind", "the kit again under valgrind (--valgrind)", false, conf_valgrind_applies,
     conf_t_valgrind},
};
const size_t conf_ntests = sizeof(conf_tests) / sizeof(conf_tests[0]);
