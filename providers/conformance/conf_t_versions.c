/*
 * versions and fingerprint-format: keyplane numbers key versions itself (replicas keep one
 * numbering), so a keystore must create exactly the version asked for or the next free one,
 * refuse a taken one with KP_ERR_EXISTS, list versions in ascending order and find one by number
 * (0 = the latest). Every fingerprint it reports must be the lower-case hex SHA-256 of the SPKI
 * it hands out, or `verify` would blame a healthy store for a mismatch.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_crypto.h"
#include "conf_list.h"
#include "conf_tests.h"

static void s_expect_absent(conf_run *r, const char *name, uint32_t v)
{
    conf_kit *k = r->kit;
    kp_key_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    kp_status st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, name, v, &info);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "KS_GET(%s, %u) of an absent %s: %s, want KP_ERR_NOT_FOUND", name, v,
                  v == 0 ? "key" : "version", conf_status_name(st));
    uint8_t buf[4096];
    size_t len = sizeof(buf);
    conf_err_clear();
    st = CONF_FN(k, ks_get_public, KP_FN_KS_GET_PUBLIC)(r->inst, name, v, buf, &len);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "KS_GET_PUBLIC(%s, %u) of an absent %s: %s, want KP_ERR_NOT_FOUND", name, v,
                  v == 0 ? "key" : "version", conf_status_name(st));
}

/* KS_GET into an info whose struct_size ends before fingerprint: nothing past it written. */
static void s_short_info(conf_run *r, const char *name)
{
    size_t keep = offsetof(kp_key_info, fingerprint);
    union {
        kp_key_info i;
        unsigned char b[sizeof(kp_key_info) + CONF_GUARD];
    } u;
    memset(&u, 0x5a, sizeof(u));
    u.i.struct_size = (uint32_t)keep;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_get, KP_FN_KS_GET)(r->inst, name, 1, &u.i);
    if (st != KP_OK) {
        conf_fail(r, "KS_GET(%s, 1) into a shorter kp_key_info: %s", name, conf_status_name(st));
        return;
    }
    if (u.i.struct_size != keep)
        conf_fail(r, "KS_GET changed the caller's struct_size (use kp_key_info_put)");
    for (size_t i = keep; i < sizeof(u.b); i++)
        if (u.b[i] != 0x5a) {
            conf_fail(r,
                      "KS_GET wrote past the caller's struct_size %zu (at byte %zu; use "
                      "kp_key_info_put)",
                      keep, i);
            return;
        }
}

static void s_check_info(conf_run *r, const char *call, const kp_key_info *in, const char *name,
                         uint32_t v)
{
    if (in->struct_size != sizeof(*in))
        conf_fail(r, "%s changed the caller's struct_size", call);
    if (memchr(in->name, '\0', sizeof(in->name)) == NULL || strcmp(in->name, name) != 0)
        conf_fail(r, "%s: info.name is \"%.40s\", want \"%s\"", call, in->name, name);
    if (in->version != v)
        conf_fail(r, "%s: info.version is %u, want %u", call, in->version, v);
    if (in->type != KP_KEY_RSA)
        conf_fail(r, "%s: info.type is %u, want KP_KEY_RSA", call, in->type);
    if (in->bits != conf_key_bits(r->kit))
        conf_fail(r, "%s: info.bits is %u, want %u", call, in->bits, conf_key_bits(r->kit));
    if (in->state != KP_KEY_ENABLED)
        conf_fail(r, "%s: info.state is %u, want KP_KEY_ENABLED", call, in->state);
    if (memchr(in->backend_id, '\0', sizeof(in->backend_id)) == NULL)
        conf_fail(r, "%s: info.backend_id is not NUL-terminated", call);
}

/* The listed versions of name, in the order listed. */
static void s_order(conf_run *r, const conf_list *l, const char *name, const uint32_t *want,
                    size_t nwant, const char *call)
{
    size_t j = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->e[i].name, name) != 0)
            continue;
        if (j < nwant && l->e[i].version != want[j]) {
            conf_fail(r,
                      "%s lists version %u of %s where version %u belongs (versions must be "
                      "ascending)",
                      call, l->e[i].version, name, want[j]);
            return;
        }
        j++;
    }
    if (j != nwant)
        conf_fail(r, "%s lists %zu versions of %s, want %zu", call, j, name, nwant);
}

void conf_t_versions(conf_run *r)
{
    conf_kit *k = r->kit;
    char name[CONF_NAME_LEN];
    conf_name(k, "ver", name);
    s_expect_absent(r, name, 0);
    conf_list l = {0};
    kp_status st = conf_list_keys(r, name, &l);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "KS_LIST(%s) of an absent key: %s, want KP_ERR_NOT_FOUND", name,
                  conf_status_name(st));
    conf_list_free(&l);

    kp_key_info v1, v2, again;
    if ((st = conf_make_version(r, name, 1, &v1)) != KP_OK) {
        conf_fail(r, "making version 1 of %s: %s: %s", name, conf_status_name(st), conf_reason());
        return;
    }
    s_check_info(r, "making version 1", &v1, name, 1);
    st = conf_make_version(r, name, 1, &again);
    if (st != KP_ERR_EXISTS)
        conf_fail(r, "making version 1 of %s again: %s, want KP_ERR_EXISTS", name,
                  conf_status_name(st));
    if ((st = conf_make_version(r, name, 0, &v2)) != KP_OK) {
        conf_fail(r, "making the next version of %s: %s: %s", name, conf_status_name(st),
                  conf_reason());
        return;
    }
    s_check_info(r, "making the next version", &v2, name, 2);

    static const uint32_t want[] = {1, 2};
    if ((st = conf_list_keys(r, name, &l)) != KP_OK)
        conf_fail(r, "KS_LIST(%s): %s: %s", name, conf_status_name(st), conf_reason());
    else
        s_order(r, &l, name, want, 2, "KS_LIST(name)");
    for (size_t i = 0; i < l.n; i++)
        if (l.e[i].version == 1 && strcmp(l.e[i].fpr, v1.fingerprint) != 0)
            conf_fail(r, "KS_LIST shows version 1 with another fingerprint after the refused "
                         "second make of version 1");
    conf_list_free(&l);
    if ((st = conf_list_keys(r, NULL, &l)) != KP_OK)
        conf_fail(r, "KS_LIST(NULL): %s: %s", conf_status_name(st), conf_reason());
    else
        s_order(r, &l, name, want, 2, "KS_LIST(NULL)");
    conf_list_check_ascending(r, &l, "KS_LIST(NULL)");
    conf_list_free(&l);

    struct {
        uint32_t ask, is;
        const char *fpr;
    } gets[] = {{0, 2, v2.fingerprint}, {1, 1, v1.fingerprint}, {2, 2, v2.fingerprint}};
    for (size_t i = 0; i < 3; i++) {
        kp_key_info g;
        memset(&g, 0, sizeof(g));
        g.struct_size = sizeof(g);
        conf_err_clear();
        st = CONF_FN(k, ks_get, KP_FN_KS_GET)(r->inst, name, gets[i].ask, &g);
        char call[64];
        snprintf(call, sizeof(call), "KS_GET(name, %u)", gets[i].ask);
        if (st != KP_OK) {
            conf_fail(r, "%s: %s: %s", call, conf_status_name(st), conf_reason());
            continue;
        }
        s_check_info(r, call, &g, name, gets[i].is);
        if (strcmp(g.fingerprint, gets[i].fpr) != 0)
            conf_fail(r, "%s: a fingerprint other than the one making it reported", call);
    }
    s_expect_absent(r, name, 3);
    s_short_info(r, name);
}

void conf_t_fingerprint(conf_run *r)
{
    conf_key key;
    if (!conf_key_make(r, "fpr", 0, false, &key))
        return;
    conf_check_fpr(r, "the make's info", key.name, key.info.version, key.info.fingerprint);
    kp_key_info g;
    memset(&g, 0, sizeof(g));
    g.struct_size = sizeof(g);
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ks_get, KP_FN_KS_GET)(r->inst, key.name, 0, &g);
    if (st == KP_OK)
        conf_check_fpr(r, "KS_GET", key.name, 0, g.fingerprint);
    else
        conf_fail(r, "KS_GET(%s, 0): %s", key.name, conf_status_name(st));
    conf_list l = {0};
    if (conf_list_keys(r, key.name, &l) == KP_OK)
        for (size_t i = 0; i < l.n; i++)
            conf_check_fpr(r, "KS_LIST", key.name, l.e[i].version, l.e[i].fpr);
    conf_list_free(&l);
    /* the SPKI is an RSA key of the size asked for */
    size_t n = 0;
    uint8_t *spki = conf_get_spki(r, key.name, 0, &n);
    EVP_PKEY *pub = spki != NULL ? conf_pkey_from_spki(spki, n) : NULL;
    if (spki != NULL && pub == NULL)
        conf_fail(r, "GET_PUBLIC did not give one DER SubjectPublicKeyInfo");
    else if (pub != NULL && conf_rsa_bits(pub) != conf_key_bits(r->kit))
        conf_fail(r, "GET_PUBLIC gave an RSA-%u key, RSA-%u was made", conf_rsa_bits(pub),
                  conf_key_bits(r->kit));
    EVP_PKEY_free(pub);
    free(spki);
    /* a key the kit imports: the plugin's fingerprint is the kit's own computation */
    conf_key imp;
    if (conf_fn(r->kit, KP_FN_KS_IMPORT) != NULL && conf_key_make(r, "fprimp", 0, true, &imp)) {
        char want[65];
        if (conf_pkey_fpr(imp.priv, want) && strcmp(want, imp.info.fingerprint) != 0)
            conf_fail(r, "KS_IMPORT reports fingerprint \"%.64s\", the key's is %s",
                      imp.info.fingerprint, want);
        conf_key_free(&imp);
    }
    conf_key_free(&key);
}
