/* What the core's other parts use of format/x509.c beyond the public kp_cert_* calls. Not
 * installed. */
#ifndef KP_FORMAT_X509_H
#define KP_FORMAT_X509_H

#include <stddef.h>

#include <keyplane/error.h>

/* Whether text is a distinguished name kp_cert_generate takes ("CN=TDE protector,O=Contoso"):
 * KP_OK, or KP_ERR_INVALID_ARG with one line in err. The policy validator asks it, so a subject
 * that would fail at the next rotation fails at validation. */
kp_status kp__cert_subject_check(const char *text, char *err, size_t errlen);

#endif
