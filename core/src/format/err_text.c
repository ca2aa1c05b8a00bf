/* The format layer's error text (format/err_text.h). */
#include <stdarg.h>
#include <stdio.h>

#include <keyplane/kit/ossl.h>

#include "format/err_text.h"

kp_status kp__fmt_fail(char *err, size_t errlen, kp_status st, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

kp_status kp__fmt_ossl_fail(char *err, size_t errlen, kp_status st, const char *msg)
{
    char why[KPK_OSSL_REASON_MAX];
    kpk_ossl_reason(why, sizeof(why));
    return kp__fmt_fail(err, errlen, st, "%s%s%s", msg, why[0] != '\0' ? ": " : "", why);
}
