/*
 * `keyplane check` for a vault: reachable over verified TLS, a token for its scope, and each
 * permission the instance's role needs (the `role` param): `manage` (apply: get, list, create,
 * import, update, wrapKey, unwrapKey) or `dek` (get, wrapKey, unwrapKey: Azure SQL's documented
 * minimum for a TDE protector, and all a wrap or an unwrap needs, akv_keys.c). Each permission is
 * probed with one request on a key name that does not exist, which changes nothing: Key Vault
 * checks the access policy before it looks the key up or reads the body, so 403 means the
 * permission is missing and the service's own text names it; 404 (no such key) or 400 (the probe's
 * deliberately malformed body) means it is granted. Checked too: the purge protection Azure SQL
 * requires of a vault holding a TDE protector, read from the recoveryLevel of the chain keys'
 * versions (akv_keys.c reports a version that lacks it).
 */
#include <stdio.h>
#include <string.h>

#include "akv_internal.h"

#define S_PROBE_KEY "kp-permission-probe"
#define S_NO_VERSION "00000000000000000000000000000000"

/* One permission and the request that exercises it. */
typedef struct s_probe {
    const char *perm; /* as access policies name it */
    const char *method;
    const char *path; /* after /keys/<prefix>kp-permission-probe */
    const char *body; /* NULL: none */
    bool dek;         /* needed by role dek too */
} s_probe;

static const s_probe s_probes[] = {
    {"get", "GET", "", NULL, true},
    {"list", "GET", "/versions?maxresults=1", NULL, false},
    {"create", "POST", "/create", "{\"kty\":\"kp-permission-probe\"}", false},
    {"import", "PUT", "", "{\"key\":{\"kty\":\"kp-permission-probe\"}}", false},
    {"update", "PATCH", "/" S_NO_VERSION, "{\"tags\":{}}", false},
    {"wrapKey", "POST", "/" S_NO_VERSION "/wrapkey", "{\"alg\":\"RSA-OAEP\",\"value\":\"AAAA\"}",
     true},
    {"unwrapKey", "POST", "/" S_NO_VERSION "/unwrapkey",
     "{\"alg\":\"RSA-OAEP\",\"value\":\"AAAA\"}", true},
};

/* Probes p: KP_OK when granted, else the status with the service's words in the error text. */
static kp_status s_probe_one(kp_akv_inst *a, const s_probe *p)
{
    char path[KP_AKV_URL_MAX], what[64];
    kp_akv_resp r;
    snprintf(path, sizeof(path), "/keys/%s%s%s", a->place.key_prefix, S_PROBE_KEY, p->path);
    snprintf(what, sizeof(what), "probe keys/%s", p->perm);
    size_t len = p->body != NULL ? strlen(p->body) : 0;
    kp_status st = kp_akv_call(a, p->method, path, (const uint8_t *)p->body, len, 0, what, &r);
    if (st == KP_OK)
        kp_akv_resp_free(&r);
    /* a 404, a 400 or a 409 (the probe name soft-deleted) came from past the permission check */
    if (st == KP_ERR_NOT_FOUND || st == KP_ERR_EXISTS || (st == KP_ERR_BACKEND && r.status == 400))
        st = KP_OK;
    return st;
}

/* The reachability and token items; *st is the status of the first request (a get probe). */
static bool s_reach(kp_akv_inst *a, kp_check_report_fn report, void *arg, kp_status *st)
{
    char detail[KP_AKV_URL_MAX + 128];
    /* any answer over verified TLS; the first call also learns the challenge */
    *st = s_probe_one(a, &s_probes[0]);
    kp_status reach = *st == KP_OK || *st == KP_ERR_PERMISSION || *st == KP_ERR_AUTH ? KP_OK : *st;
    snprintf(detail, sizeof(detail), "%s (api-version %s)", a->place.vault_url, a->api_version);
    /* the failure's text is what kp_akv_call set on this thread */
    report(arg, "vault", reach, reach == KP_OK ? detail : a->up->get_error(a->h));
    if (reach != KP_OK)
        return false;
    kp_status tst = a->token != NULL ? KP_OK : *st;
    snprintf(detail, sizeof(detail), "%s, scope %s",
             a->auth == KP_AKV_AUTH_CLIENT_SECRET ? "client secret" : "managed identity", a->scope);
    report(arg, "token", tst, tst == KP_OK ? detail : a->up->get_error(a->h));
    if (tst != KP_OK)
        *st = tst;
    return tst == KP_OK;
}

static kp_status s_first_level(void *arg, const kp_akv_bundle *b)
{
    char *level = arg;
    if (level[0] == '\0')
        snprintf(level, 48, "%s", b->recovery);
    return KP_OK;
}

/* The vault's purge protection, read from the recoveryLevel of the first key of the listing (every
 * key of a vault has the vault's level): a vault with none yet cannot say; keyplane's own keys
 * are checked again by verify and by check's chain items. */
static kp_status s_purge_protection(kp_akv_inst *a, kp_check_report_fn report, void *arg)
{
    char level[48] = "", next[2 * KP_AKV_URL_MAX], err[KP_AKV_ERR], gap[KP_GAP_MAX];
    kp_akv_resp r;
    kp_status st = kp_akv_call(a, "GET", "/keys?maxresults=1", NULL, 0, 0, "list keys", &r);
    if (st == KP_OK) {
        st = kp_akv_parse_page(r.http.body, r.http.len, s_first_level, level, next, sizeof(next),
                               err, sizeof(err));
        kp_akv_resp_free(&r);
    }
    if (st != KP_OK) /* the permission items said why */
        return KP_OK;
    kp_akv_rule_recovery(a->place.vault_name, level, gap, sizeof(gap));
    if (gap[0] != '\0') {
        report(arg, "purge protection", KP_ERR_UNSUPPORTED, gap);
        return KP_ERR_UNSUPPORTED;
    }
    report(arg, "purge protection", KP_OK,
           level[0] != '\0' ? level : "not known yet: the vault holds no key (verify checks it)");
    return KP_OK;
}

kp_status kp_akv_instance_check(void *inst, kp_check_report_fn report, void *arg)
{
    kp_akv_inst *a = inst;
    KP_ENSURE(a != NULL && report != NULL, KP_ERR_INVALID_ARG);
    char item[32], detail[96];
    kp_status first = KP_OK, st = KP_OK;
    kp_akv_begin(a, false);
    bool go = s_reach(a, report, arg, &st);
    if (!go)
        first = st;
    for (size_t i = 0; go && i < sizeof(s_probes) / sizeof(s_probes[0]); i++) {
        const s_probe *p = &s_probes[i];
        if (a->role_dek && !p->dek)
            continue;
        if (i > 0)
            st = s_probe_one(a, p);
        snprintf(item, sizeof(item), "keys/%s", p->perm);
        snprintf(detail, sizeof(detail), "permitted (needed by role %s)",
                 a->role_dek ? "dek" : "manage");
        report(arg, item, st, st == KP_OK ? detail : a->up->get_error(a->h));
        if (st != KP_OK && first == KP_OK)
            first = st;
        go = st == KP_OK || st == KP_ERR_PERMISSION; /* else the vault itself is failing */
    }
    if (go && !a->role_dek) {
        st = s_purge_protection(a, report, arg);
        if (st != KP_OK && first == KP_OK)
            first = st;
    }
    pthread_mutex_unlock(&a->lock);
    return first;
}
