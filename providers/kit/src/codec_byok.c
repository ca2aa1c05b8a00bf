/*
 * The Azure Key Vault BYOK transfer file (.byok; Microsoft, "Bring your own key specification"):
 * the JSON {schema_version, header{kid, alg "dir", enc "CKM_RSA_AES_KEY_WRAP"}, ciphertext,
 * generator} whose ciphertext is the RSA-AES-wrapped key in base64url. `az keyvault key import
 * --byok-file` sends the file's bytes as key_hsm unchanged, so the CLI's `key export-byok` and the
 * plugin's own BYOK import write it here, one way. Written with snprintf, not jansson: the kit's
 * codec links OpenSSL only, and the document has a fixed shape whose strings are a checked URL
 * and base64url, neither of which JSON needs to escape.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <keyplane/kit/codec.h>

bool kpk_byok_kid_valid(const char *kid)
{
    size_t n = kid != NULL ? strlen(kid) : 0;
    if (n < 9 || n > 1024 || strncmp(kid, "https://", 8) != 0)
        return false;
    for (const char *c = kid; *c != '\0'; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              strchr(":/.-_", *c) != NULL))
            return false;
    /* https://HOST/keys/NAME/VERSION: a key-exchange key is named with its version, 32 hex
     * digits in Key Vault and Managed HSM */
    const char *path = strchr(kid + 8, '/');
    if (path == NULL || path == kid + 8 || strncmp(path, "/keys/", 6) != 0)
        return false;
    const char *name = path + 6, *slash = strchr(name, '/');
    if (slash == NULL || slash == name || strlen(slash + 1) != 32)
        return false;
    for (const char *c = slash + 1; *c != '\0'; c++)
        if (!isxdigit((unsigned char)*c))
            return false;
    return true;
}

kp_status kpk_byok_file(const char *kek_kid, const uint8_t *blob, size_t bloblen,
                        const char *generator, char **out, size_t *outlen)
{
    if (out == NULL || outlen == NULL)
        return KP_ERR_INVALID_ARG;
    *out = NULL;
    *outlen = 0;
    if (!kpk_byok_kid_valid(kek_kid) || blob == NULL || bloblen == 0 || generator == NULL)
        return KP_ERR_INVALID_ARG;
    for (const char *c = generator; *c != '\0'; c++)
        if (*c < 0x20 || *c == '"' || *c == '\\' || *c == 0x7f)
            return KP_ERR_INVALID_ARG;
    char *ct = NULL;
    kp_status st = kpk_b64_encode_alloc(blob, bloblen, true, &ct);
    if (st != KP_OK)
        return st;
    static const char fmt[] = "{\"schema_version\":\"1.0.0\",\"header\":{\"kid\":\"%s\",\"alg\":"
                              "\"dir\",\"enc\":\"CKM_RSA_AES_KEY_WRAP\"},\"ciphertext\":\"%s\","
                              "\"generator\":\"%s\"}";
    size_t cap = sizeof(fmt) + strlen(kek_kid) + strlen(ct) + strlen(generator);
    char *doc = malloc(cap);
    st = doc != NULL ? KP_OK : KP_ERR_NOMEM;
    if (st == KP_OK) {
        int n = snprintf(doc, cap, fmt, kek_kid, ct, generator);
        *outlen = (size_t)n;
        *out = doc;
    }
    free(ct);
    return st;
}
