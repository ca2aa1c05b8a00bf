/*
 * Parameter descriptions looked up and listed in one place (keyplane/kit/params.h), so the
 * core and the conformance kit refuse an unknown param with the same list of the known ones,
 * and the one spelling of a boolean that the policy, params and the command's options share.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <keyplane/kit/params.h>

const kp_param_desc *kpk_param_desc(const kp_param_desc *descs, const char *name)
{
    for (const kp_param_desc *d = descs; d != NULL && d->name != NULL; d++)
        if (strcmp(d->name, name) == 0)
            return d;
    return NULL;
}

void kpk_param_names(const kp_param_desc *descs, char *buf, size_t len)
{
    /* A name that does not fit whole ends the list with "...": a cut name would be one that
     * does not exist, and read as the one to copy. */
    buf[0] = '\0';
    size_t n = 0;
    for (const kp_param_desc *d = descs; d != NULL && d->name != NULL; d++) {
        const char *sep = n > 0 ? ", " : "";
        size_t add = strlen(sep) + strlen(d->name);
        bool last = d[1].name == NULL;
        if (n + add + (last ? 0 : 5) >= len) {
            if (n + strlen(sep) + 3 < len)
                snprintf(buf + n, len - n, "%s...", sep);
            break;
        }
        n += (size_t)snprintf(buf + n, len - n, "%s%s", sep, d->name);
    }
    if (descs == NULL || descs[0].name == NULL)
        snprintf(buf, len, "none");
}

bool kpk_param_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; v != NULL && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *out = strcasecmp(v, yes[i]) == 0;
            return true;
        }
    }
    return false;
}
