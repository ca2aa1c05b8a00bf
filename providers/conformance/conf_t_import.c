/*
 * import-fingerprint: an import carries the fingerprint the key must have, and a store must check
 * it before the key becomes visible: a wrong one is KP_ERR_INTEGRITY and leaves nothing that
 * KS_GET, KS_LIST or GET_PUBLIC could find (the same version imports cleanly afterwards; a
 * refused version 2 next to a good version 1 leaves version 1 alone). Both
 * imports: KS_IMPORT of a PKCS#8, and KS_IMPORT_WRAPPED of a blob the kit wraps with OpenSSL under
 * the wrapping key KS_IMPORT_OFFER hands out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_list.h"
#include "conf_tests.h"

static void s_nothing_left(conf_run *r, const char *name, const char *after)
{
    conf_kit *k = r->kit;
    kp_key_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    kp_status st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, name, 0, &info);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "after %s, KS_GET(%s) gives %s, want KP_ERR_NOT_FOUND", after, name,
                  conf_status_name(st));
    uint8_t buf[4096];
    size_t len = sizeof(buf);
    conf_err_clear();
    st = CONF_FN(k, ks_get_public, KP_FN_KS_GET_PUBLIC)(r->inst, name, 0, buf, &len);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "after %s, KS_GET_PUBLIC(%s) gives %s, want KP_ERR_NOT_FOUND", after, name,
                  conf_status_name(st));
    conf_list l;
    st = conf_list_keys(r, name, &l);
    if (st != KP_ERR_NOT_FOUND || l.n > 0)
        conf_fail(r, "after %s, KS_LIST(%s) gives %s with %zu versions, want KP_ERR_NOT_FOUND",
                  after, name, conf_status_name(st), l.n);
    conf_list_free(&l);
    if (conf_list_keys(r, NULL, &l) == KP_OK)
        for (size_t i = 0; i < l.n; i++)
            if (strcmp(l.e[i].name, name) == 0) {
                conf_fail(r, "after %s, KS_LIST(NULL) shows %s version %u", after, name,
                          l.e[i].version);
                break;
            }
    conf_list_free(&l);
}

/* What an import that succeeded reports: version 1 (what the spec asked for) and the fingerprint
 * of the key imported; each mismatch is said on its own. */
static void s_reported(conf_run *r, const char *what, const kp_key_info *info, const char *right)
{
    if (info->version != 1)
        conf_fail(r, "%s of version 1 reports version %u", what, info->version);
    if (strcmp(info->fingerprint, right) != 0)
        conf_fail(r,
                  "%s of version 1 reports the fingerprint \"%.64s\", not the imported key's "
                  "%s",
                  what, info->fingerprint, right);
}

static void s_wrong_fpr(char out[65])
{
    uint8_t rnd[32];
    conf_random(rnd, sizeof(rnd));
    conf_sha256_hex(rnd, sizeof(rnd), out);
}

/* The key of one case: version 1 of a name made for the run, imported first with a wrong
 * fingerprint, then with the right one. */
typedef struct s_case {
    char name[CONF_NAME_LEN], wrong[65], right[65];
    EVP_PKEY *pk;
    kp_secret *der; /* its PKCS#8 */
    kp_key_spec spec;
} s_case;

static void s_case_free(s_case *c)
{
    conf_secret_free(c->der);
    EVP_PKEY_free(c->pk);
    c->der = NULL;
    c->pk = NULL;
}

/* false (with a failure recorded) when the kit could not make the key. */
static bool s_case_make(conf_run *r, const char *tag, s_case *c)
{
    uint32_t bits = conf_key_bits(r->kit);
    memset(c, 0, sizeof(*c));
    conf_name(r->kit, tag, c->name);
    c->pk = conf_rsa_new(bits);
    c->der = c->pk != NULL ? conf_pkcs8_secret(c->pk) : NULL;
    bool ok = c->der != NULL && conf_pkey_fpr(c->pk, c->right);
    if (ok) {
        s_wrong_fpr(c->wrong);
        c->spec = (kp_key_spec){.struct_size = sizeof(c->spec),
                                .name = c->name,
                                .type = KP_KEY_RSA,
                                .bits = bits,
                                .version = 1,
                                .fingerprint = c->wrong};
    } else {
        conf_fail(r, "the kit could not make an RSA-%u key", bits);
        s_case_free(c);
    }
    return ok;
}

/* With version 1 of c's name in the store, a second key imported as version 2 with version 1's
 * fingerprint (a copy whose source exported the wrong key) is KP_ERR_INTEGRITY and leaves the
 * name as it was: KS_GET of version 2 finds nothing, KS_GET of the newest is version 1, KS_LIST
 * shows version 1 alone. */
static void s_next_refused(conf_run *r, const s_case *c)
{
    conf_kit *k = r->kit;
    EVP_PKEY *other = conf_rsa_new(conf_key_bits(k));
    kp_secret *der = other != NULL ? conf_pkcs8_secret(other) : NULL;
    if (der == NULL) {
        conf_fail(r, "the kit could not make a second RSA-%u key", conf_key_bits(k));
        EVP_PKEY_free(other);
        return;
    }
    kp_key_spec spec = c->spec;
    spec.version = 2;
    spec.fingerprint = c->right;
    kp_key_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    kp_status st = CONF_FN(k, ks_import, KP_FN_KS_IMPORT)(r->inst, &spec, der, &info);
    if (st != KP_ERR_INTEGRITY)
        conf_fail(r,
                  "KS_IMPORT of another key as version 2 with version 1's fingerprint: %s, want "
                  "KP_ERR_INTEGRITY",
                  conf_status_name(st));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, c->name, 2, &info);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r,
                  "after a refused import of version 2, KS_GET(%s, 2) gives %s, want "
                  "KP_ERR_NOT_FOUND",
                  c->name, conf_status_name(st));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, c->name, 0, &info);
    if (st != KP_OK || info.version != 1)
        conf_fail(r,
                  "after a refused import of version 2, KS_GET(%s, newest) gives %s version "
                  "%u, want version 1",
                  c->name, conf_status_name(st), info.version);
    conf_list l;
    st = conf_list_keys(r, c->name, &l);
    if (st != KP_OK || l.n != 1 || l.e[0].version != 1)
        conf_fail(r,
                  "after a refused import of version 2, KS_LIST(%s) gives %s with %zu "
                  "versions, want version 1 alone",
                  c->name, conf_status_name(st), l.n);
    conf_list_free(&l);
    conf_secret_free(der);
    EVP_PKEY_free(other);
}

static void s_plain(conf_run *r)
{
    kp_ks_import_fn *imp = CONF_FN(r->kit, ks_import, KP_FN_KS_IMPORT);
    s_case c;
    if (!s_case_make(r, "impfpr", &c))
        return;
    kp_key_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    kp_status st = imp(r->inst, &c.spec, c.der, &info);
    if (st != KP_ERR_INTEGRITY)
        conf_fail(r, "KS_IMPORT with a wrong spec.fingerprint: %s, want KP_ERR_INTEGRITY",
                  conf_status_name(st));
    s_nothing_left(r, c.name, "a KS_IMPORT with a wrong fingerprint");
    c.spec.fingerprint = c.right;
    conf_err_clear();
    st = imp(r->inst, &c.spec, c.der, &info);
    if (st != KP_OK)
        conf_fail(r,
                  "KS_IMPORT of version 1 with the right fingerprint, after the refused one: "
                  "%s: %s",
                  conf_status_name(st), conf_reason());
    else
        s_reported(r, "KS_IMPORT", &info, c.right);
    if (st == KP_OK)
        s_next_refused(r, &c);
    s_case_free(&c);
}

typedef struct offer {
    uint8_t spki[8192], token[8192];
    size_t spki_len, token_len;
    uint32_t methods;
} offer;

static bool s_offer(conf_run *r, const kp_key_spec *spec, offer *o)
{
    kp_import_offer io;
    memset(&io, 0, sizeof(io));
    io.struct_size = sizeof(io);
    io.wrapping_spki = o->spki;
    io.wrapping_spki_len = sizeof(o->spki);
    io.token = o->token;
    io.token_len = sizeof(o->token);
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_import_offer, KP_FN_KS_IMPORT_OFFER)(r->inst, spec, &io);
    if (st != KP_OK || io.wrapping_spki_len > sizeof(o->spki) || io.token_len > sizeof(o->token)) {
        conf_fail(r, "KS_IMPORT_OFFER(%s): %s: %s", spec->name, conf_status_name(st),
                  conf_reason());
        return false;
    }
    o->spki_len = io.wrapping_spki_len;
    o->token_len = io.token_len;
    o->methods = io.methods;
    if (io.methods == 0 || (io.methods & ~r->kit->iinfo.import_keyx) != 0) {
        conf_fail(r,
                  "KS_IMPORT_OFFER offers methods 0x%x, not a non-empty part of import_keyx "
                  "0x%x",
                  io.methods, r->kit->iinfo.import_keyx);
        return false;
    }
    return true;
}

/* One KS_IMPORT_WRAPPED of pkcs8 (or of garbage) under a fresh offer. */
static kp_status s_import_wrapped(conf_run *r, const kp_key_spec *spec, const kp_secret *pkcs8,
                                  bool garbage, kp_key_info *info, uint32_t *method)
{
    offer *o = calloc(1, sizeof(*o));
    *method = 0;
    if (o == NULL || !s_offer(r, spec, o)) {
        free(o); /* nothing else is held yet */
        return KP_ERR_PLUGIN;
    }
    *method = (o->methods & KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA256)) ? KP_KEYX_RSA_AES_KWP_SHA256
              : (o->methods & KP_KEYX_BIT(KP_KEYX_RSA_AES_KWP_SHA1)) ? KP_KEYX_RSA_AES_KWP_SHA1
                                                                     : 0;
    EVP_PKEY *w = *method != 0 ? conf_pkey_from_spki(o->spki, o->spki_len) : NULL;
    size_t bloblen = 0;
    uint8_t *blob = w != NULL ? conf_rsa_aes_wrap(w, *method, conf_secret_bytes(pkcs8),
                                                  conf_secret_size(pkcs8), &bloblen)
                              : NULL;
    EVP_PKEY_free(w);
    kp_status st = KP_ERR_PLUGIN;
    if (*method == 0) {
        st = KP_ERR_UNSUPPORTED; /* only RSA-OAEP methods: for symmetric keys */
    } else if (blob == NULL) {
        conf_fail(r, "KS_IMPORT_OFFER's wrapping key is not an RSA SubjectPublicKeyInfo");
    } else {
        if (garbage)
            conf_random(blob, bloblen);
        memset(info, 0, sizeof(*info));
        info->struct_size = sizeof(*info);
        conf_err_clear();
        st = CONF_FN(r->kit, ks_import_wrapped, KP_FN_KS_IMPORT_WRAPPED)(
            r->inst, spec, *method, o->token, o->token_len, blob, bloblen, info);
    }
    free(blob);
    free(o);
    return st;
}

/* The wrong fingerprint, random bytes, then the right fingerprint: each through a fresh
 * offer. */
static void s_wrapped_case(conf_run *r, s_case *c)
{
    uint32_t method = 0;
    kp_key_info info;
    kp_status st = s_import_wrapped(r, &c->spec, c->der, false, &info, &method);
    if (st == KP_ERR_UNSUPPORTED && method == 0)
        return; /* nothing the kit can wrap an RSA key with */
    if (st != KP_ERR_INTEGRITY && st != KP_ERR_PLUGIN)
        conf_fail(r,
                  "KS_IMPORT_WRAPPED (%s) with a wrong spec.fingerprint: %s, want "
                  "KP_ERR_INTEGRITY",
                  conf_keyx_name(method), conf_status_name(st));
    s_nothing_left(r, c->name, "a KS_IMPORT_WRAPPED with a wrong fingerprint");
    c->spec.fingerprint = c->right;
    st = s_import_wrapped(r, &c->spec, c->der, true, &info, &method);
    if (st == KP_OK)
        conf_fail(r, "KS_IMPORT_WRAPPED of random bytes returned KP_OK");
    s_nothing_left(r, c->name, "a KS_IMPORT_WRAPPED of random bytes");
    st = s_import_wrapped(r, &c->spec, c->der, false, &info, &method);
    if (st != KP_OK && st != KP_ERR_PLUGIN)
        conf_fail(r, "KS_IMPORT_WRAPPED (%s) with the right fingerprint: %s: %s",
                  conf_keyx_name(method), conf_status_name(st), conf_reason());
    else if (st == KP_OK)
        s_reported(r, "KS_IMPORT_WRAPPED", &info, c->right);
}

static void s_wrapped(conf_run *r)
{
    s_case c;
    if (!s_case_make(r, "impwfpr", &c))
        return;
    s_wrapped_case(r, &c);
    s_case_free(&c);
}

void conf_t_import_fpr(conf_run *r)
{
    if (conf_fn(r->kit, KP_FN_KS_IMPORT) != NULL)
        s_plain(r);
    if (r->kit->iinfo.import_keyx != 0 && conf_fn(r->kit, KP_FN_KS_IMPORT_OFFER) != NULL &&
        conf_fn(r->kit, KP_FN_KS_IMPORT_WRAPPED) != NULL)
        s_wrapped(r);
}
