/*
 * A chain's 'certificate' block: the protector is a SQL Server TDE certificate, which SQL Server
 * finds by thumbprint, so every version carries one X.509 certificate that travels with its key
 * (docs/sqlserver.md). With 'subject', keyplane makes each version's certificate (self-signed,
 * as SQL Server's own CREATE CERTIFICATE does); without it, certificates come from `keyplane
 * sqlserver import`.
 *
 *   certificate:
 *     subject: "CN=TDE protector,O=Contoso"   # optional
 *     valid: 1y                               # with subject; default 1y
 *     warn_before: 30d                        # status warns ahead of notAfter; default 30d
 */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "format/x509.h"
#include "policy/parser.h"

#define S_YEAR (365 * 86400LL)
#define S_DAY 86400LL

static const char *const s_keys[] = {"subject", "valid", "warn_before"};
#define S_NKEYS (sizeof(s_keys) / sizeof(s_keys[0]))

/* The examples of its durations. */
#define S_LIKE "30d, 52w or 1y"

void kp__policy_check_certificate(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *at)
{
    if (c->pub.certificate == NULL)
        return;
    /* SQL Server restores a certificate from its .cer and .pvk: the private key must be able
     * to leave its store, and keyplane signs a certificate it makes with it. */
    if (!c->pub.exportable)
        kp__pdiag(P, at,
                  "chain '%s': a certificate's private key goes to a .pvk for SQL Server, so the "
                  "protector must be declared 'exportable: true'",
                  c->name);
    if (c->pub.key_type != 0 && c->pub.key_type != KP_KEY_RSA)
        kp__pdiag(P, at, "chain '%s': a certificate's protector is an RSA key (type: rsa)",
                  c->name);
}

void kp__policy_parse_certificate(kp_pol_parser *P, kp_pol_chain *c, yaml_node_t *map)
{
    const char *chain = c->name;
    if (!kp__ymapping_ok(P, map, "'certificate'"))
        return;
    c->cert.valid = S_YEAR;
    c->cert.warn_before = 30 * S_DAY;
    yaml_node_t *valid = NULL;
    bool have_subject = false; /* given, whether or not it reads */
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = kp__ynode(P, p->key), *vn = kp__ynode(P, p->value);
        const char *key = kp__yscalar(kn);
        if (key == NULL || strncmp(key, "x-", 2) == 0)
            continue;
        if (strcmp(key, "subject") == 0) {
            const char *v = kp__yscalar(vn);
            have_subject = true;
            char why[160];
            if (v == NULL || kp__cert_subject_check(v, why, sizeof(why)) != KP_OK)
                kp__pdiag(P, vn, "chain '%s': certificate subject: %s", chain,
                          v == NULL ? "must be text such as \"CN=TDE protector\"" : why);
            else if ((c->cert_subject = kp__strdup(v)) != NULL)
                c->cert.subject = c->cert_subject;
        } else if (strcmp(key, "valid") == 0) {
            valid = vn;
            (void)kp__yduration(P, vn, chain, "certificate 'valid'", true, S_LIKE, &c->cert.valid);
        } else if (strcmp(key, "warn_before") == 0) {
            (void)kp__yduration(P, vn, chain, "certificate 'warn_before'", true, S_LIKE,
                                &c->cert.warn_before);
        } else {
            char hint[96];
            kp__pdiag(P, kn,
                      "chain '%s': unknown key '%.64s' in 'certificate' (expected subject, "
                      "valid, warn_before)%s",
                      chain, key,
                      kp__diag_hint(P->diags, hint, sizeof(hint), key, s_keys, S_NKEYS));
        }
    }
    if (valid != NULL && !have_subject)
        kp__pdiag(P, valid,
                  "chain '%s': certificate 'valid' applies to certificates keyplane makes: give "
                  "'subject' too, or leave 'valid' out for imported certificates",
                  chain);
    c->pub.certificate = &c->cert;
}
