/*
 * Parameter descriptions looked up and listed in one place (keyplane/kit/params.h), so the
 * core and the conformance kit refuse an unknown param with the same list of the known ones.
 */
#include <stdio.h>
#include <string.h>

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
