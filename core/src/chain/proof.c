/*
 * The challenge behind every proof that a store holds a version's key (proof.h).
 */
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <keyplane/kit/codec.h>
#include <keyplane/kit/ossl.h>

#include "base/error.h"
#include "chain/proof.h"

kp_status kp__challenge_make(kp_ctx *ctx, kp__challenge *c, const uint8_t *spki, size_t spkilen,
                             uint32_t alg)
{
    const char *what = NULL;
    const EVP_MD *md = alg == KP_WRAP_RSA_OAEP_SHA256 ? EVP_sha256() : EVP_sha1();
    EVP_PKEY_CTX *pc = NULL;
    EVP_PKEY *pkey = kpk_pkey_spki(spki, spkilen);
    c->ctlen = sizeof(c->ct);
    if (pkey == NULL) {
        what = "the version's public key does not parse";
        goto out;
    }
    if (RAND_bytes(c->plain, sizeof(c->plain)) != 1) {
        what = "no randomness for a challenge";
        goto out;
    }
    what = alg == KP_WRAP_RSA_OAEP_SHA256 ? "cannot encrypt a challenge with RSA-OAEP-256"
                                          : "cannot encrypt a challenge with RSA-OAEP";
    pc = EVP_PKEY_CTX_new(pkey, NULL);
    if (pc == NULL)
        goto out;
    if (EVP_PKEY_encrypt_init(pc) != 1)
        goto out;
    if (EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1)
        goto out;
    if (EVP_PKEY_CTX_set_rsa_oaep_md(pc, md) != 1)
        goto out;
    if (EVP_PKEY_CTX_set_rsa_mgf1_md(pc, md) != 1)
        goto out;
    if (EVP_PKEY_encrypt(pc, c->ct, &c->ctlen, c->plain, sizeof(c->plain)) == 1)
        what = NULL;
out:
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(pkey);
    if (what == NULL)
        return KP_OK;
    char why[KPK_OSSL_REASON_MAX];
    kpk_ossl_reason(why, sizeof(why));
    return kp__set_error(ctx, KP_ERR_CRYPTO, "%s%s%s", what, why[0] != '\0' ? ": " : "", why);
}

bool kp__challenge_met(const kp__challenge *c, const uint8_t *back, size_t len)
{
    return back != NULL && len == sizeof(c->plain) &&
           CRYPTO_memcmp(back, c->plain, sizeof(c->plain)) == 0;
}
