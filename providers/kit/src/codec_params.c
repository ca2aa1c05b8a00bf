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
    buf[0] = '\0';
    for (const kp_param_desc *d = descs; d != NULL && d->name != NULL; d++) {
        if (buf[0] != '\0')
            strncat(buf, ", ", len - strlen(buf) - 1);
        strncat(buf, d->name, len - strlen(buf) - 1);
    }
    if (buf[0] == '\0')
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
