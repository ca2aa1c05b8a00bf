/*
 * Error text of the pkcs11 plugin: every CK_RV becomes a kp_status and its CKR_ name, so an
 * operator can look the code up in the token vendor's documentation. The text goes to the
 * core (kp_errorf); whoever needs it back reads it with the GET_ERROR upcall. Results go back
 * by the ABI's buffer convention through provider.h's kp_buffer_take.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p11_internal.h"

/* Codes added after v2.40, which p11-kit 0.24 headers lack. */
#define S_CKR_AEAD_DECRYPT_FAILED 0x35UL
#define S_CKR_TOKEN_RESOURCE_EXCEEDED 0x201UL
#define S_CKR_OPERATION_CANCEL_FAILED 0x202UL
#define S_CKR_KEY_EXHAUSTED 0x203UL
#define S_CKR_PENDING 0x204UL
#define S_CKR_SESSION_ASYNC_NOT_SUPPORTED 0x205UL
#define S_CKR_SEED_RANDOM_REQUIRED 0x206UL
#define S_CKR_OPERATION_NOT_VALIDATED 0x207UL
#define S_CKR_TOKEN_NOT_INITIALIZED 0x208UL
#define S_CKR_PARAMETER_SET_NOT_SUPPORTED 0x209UL

typedef struct s_rv_name {
    CK_RV rv;
    const char *name;
} s_rv_name;

#define S_RV(x)                                                                                    \
    {                                                                                              \
        x, #x                                                                                      \
    }
#define S_RV3(x)                                                                                   \
    {                                                                                              \
        S_##x, #x                                                                                  \
    }
static const s_rv_name s_names[] = {
    S_RV(CKR_OK),
    S_RV(CKR_CANCEL),
    S_RV(CKR_HOST_MEMORY),
    S_RV(CKR_SLOT_ID_INVALID),
    S_RV(CKR_GENERAL_ERROR),
    S_RV(CKR_FUNCTION_FAILED),
    S_RV(CKR_ARGUMENTS_BAD),
    S_RV(CKR_NO_EVENT),
    S_RV(CKR_NEED_TO_CREATE_THREADS),
    S_RV(CKR_CANT_LOCK),
    S_RV(CKR_ATTRIBUTE_READ_ONLY),
    S_RV(CKR_ATTRIBUTE_SENSITIVE),
    S_RV(CKR_ATTRIBUTE_TYPE_INVALID),
    S_RV(CKR_ATTRIBUTE_VALUE_INVALID),
    S_RV(CKR_ACTION_PROHIBITED),
    S_RV(CKR_DATA_INVALID),
    S_RV(CKR_DATA_LEN_RANGE),
    S_RV(CKR_DEVICE_ERROR),
    S_RV(CKR_DEVICE_MEMORY),
    S_RV(CKR_DEVICE_REMOVED),
    S_RV(CKR_ENCRYPTED_DATA_INVALID),
    S_RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    S_RV3(CKR_AEAD_DECRYPT_FAILED),
    S_RV(CKR_FUNCTION_CANCELED),
    S_RV(CKR_FUNCTION_NOT_PARALLEL),
    S_RV(CKR_FUNCTION_NOT_SUPPORTED),
    S_RV(CKR_KEY_HANDLE_INVALID),
    S_RV(CKR_KEY_SIZE_RANGE),
    S_RV(CKR_KEY_TYPE_INCONSISTENT),
    S_RV(CKR_KEY_NOT_NEEDED),
    S_RV(CKR_KEY_CHANGED),
    S_RV(CKR_KEY_NEEDED),
    S_RV(CKR_KEY_INDIGESTIBLE),
    S_RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    S_RV(CKR_KEY_NOT_WRAPPABLE),
    S_RV(CKR_KEY_UNEXTRACTABLE),
    S_RV(CKR_MECHANISM_INVALID),
    S_RV(CKR_MECHANISM_PARAM_INVALID),
    S_RV(CKR_OBJECT_HANDLE_INVALID),
    S_RV(CKR_OPERATION_ACTIVE),
    S_RV(CKR_OPERATION_NOT_INITIALIZED),
    S_RV(CKR_PIN_INCORRECT),
    S_RV(CKR_PIN_INVALID),
    S_RV(CKR_PIN_LEN_RANGE),
    S_RV(CKR_PIN_EXPIRED),
    S_RV(CKR_PIN_LOCKED),
    S_RV(CKR_SESSION_CLOSED),
    S_RV(CKR_SESSION_COUNT),
    S_RV(CKR_SESSION_HANDLE_INVALID),
    S_RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    S_RV(CKR_SESSION_READ_ONLY),
    S_RV(CKR_SESSION_EXISTS),
    S_RV(CKR_SESSION_READ_ONLY_EXISTS),
    S_RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    S_RV(CKR_SIGNATURE_INVALID),
    S_RV(CKR_SIGNATURE_LEN_RANGE),
    S_RV(CKR_TEMPLATE_INCOMPLETE),
    S_RV(CKR_TEMPLATE_INCONSISTENT),
    S_RV(CKR_TOKEN_NOT_PRESENT),
    S_RV(CKR_TOKEN_NOT_RECOGNIZED),
    S_RV(CKR_TOKEN_WRITE_PROTECTED),
    S_RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    S_RV(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    S_RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    S_RV(CKR_USER_ALREADY_LOGGED_IN),
    S_RV(CKR_USER_NOT_LOGGED_IN),
    S_RV(CKR_USER_PIN_NOT_INITIALIZED),
    S_RV(CKR_USER_TYPE_INVALID),
    S_RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    S_RV(CKR_USER_TOO_MANY_TYPES),
    S_RV(CKR_WRAPPED_KEY_INVALID),
    S_RV(CKR_WRAPPED_KEY_LEN_RANGE),
    S_RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
    S_RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    S_RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    S_RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    S_RV(CKR_RANDOM_NO_RNG),
    S_RV(CKR_DOMAIN_PARAMS_INVALID),
    S_RV(CKR_CURVE_NOT_SUPPORTED),
    S_RV(CKR_BUFFER_TOO_SMALL),
    S_RV(CKR_SAVED_STATE_INVALID),
    S_RV(CKR_INFORMATION_SENSITIVE),
    S_RV(CKR_STATE_UNSAVEABLE),
    S_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    S_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    S_RV(CKR_MUTEX_BAD),
    S_RV(CKR_MUTEX_NOT_LOCKED),
    S_RV(CKR_NEW_PIN_MODE),
    S_RV(CKR_NEXT_OTP),
    S_RV(CKR_EXCEEDED_MAX_ITERATIONS),
    S_RV(CKR_FIPS_SELF_TEST_FAILED),
    S_RV(CKR_LIBRARY_LOAD_FAILED),
    S_RV(CKR_PIN_TOO_WEAK),
    S_RV(CKR_PUBLIC_KEY_INVALID),
    S_RV(CKR_FUNCTION_REJECTED),
    S_RV3(CKR_TOKEN_RESOURCE_EXCEEDED),
    S_RV3(CKR_OPERATION_CANCEL_FAILED),
    S_RV3(CKR_KEY_EXHAUSTED),
    S_RV3(CKR_PENDING),
    S_RV3(CKR_SESSION_ASYNC_NOT_SUPPORTED),
    S_RV3(CKR_SEED_RANDOM_REQUIRED),
    S_RV3(CKR_OPERATION_NOT_VALIDATED),
    S_RV3(CKR_TOKEN_NOT_INITIALIZED),
    S_RV3(CKR_PARAMETER_SET_NOT_SUPPORTED),
};
#undef S_RV
#undef S_RV3

const char *kp_p11_rv_name(CK_RV rv, char *buf, size_t size)
{
    for (size_t i = 0; i < sizeof(s_names) / sizeof(s_names[0]); i++)
        if (s_names[i].rv == rv)
            return s_names[i].name;
    if (rv >= CKR_VENDOR_DEFINED)
        snprintf(buf, size, "CKR_VENDOR_DEFINED+0x%lx", rv - CKR_VENDOR_DEFINED);
    else
        snprintf(buf, size, "CKR_0x%lx", rv);
    return buf;
}

kp_status kp_p11_rv_status(CK_RV rv, bool mech)
{
    switch (rv) {
    case CKR_OK:
        return KP_OK;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_PIN_NOT_INITIALIZED:
    case CKR_USER_NOT_LOGGED_IN:
        return KP_ERR_AUTH;
    case CKR_MECHANISM_INVALID:
    case CKR_MECHANISM_PARAM_INVALID:
        return KP_ERR_UNSUPPORTED;
    case CKR_ARGUMENTS_BAD:
        return mech ? KP_ERR_UNSUPPORTED : KP_ERR_BACKEND;
    case CKR_KEY_UNEXTRACTABLE:
    case CKR_KEY_NOT_WRAPPABLE:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
        return KP_ERR_DENIED;
    case CKR_TOKEN_WRITE_PROTECTED:
    case CKR_SESSION_READ_ONLY:
        return KP_ERR_PERMISSION;
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_KEY_SIZE_RANGE:
        return KP_ERR_UNSUPPORTED;
    case CKR_ENCRYPTED_DATA_INVALID:
    case CKR_ENCRYPTED_DATA_LEN_RANGE:
    case CKR_WRAPPED_KEY_INVALID:
    case CKR_WRAPPED_KEY_LEN_RANGE:
        return KP_ERR_CRYPTO;
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_DEVICE_ERROR:
    case CKR_SESSION_COUNT:
    case CKR_DEVICE_MEMORY:
    case CKR_FUNCTION_CANCELED:
        return KP_ERR_UNAVAILABLE;
    case CKR_HOST_MEMORY:
        return KP_ERR_NOMEM;
    default:
        return KP_ERR_BACKEND;
    }
}

static kp_status s_ck(kp_p11_inst *pi, kp_p11_op *op, CK_RV rv, kp_status st, const char *fn,
                      const char *fmt, va_list ap)
{
    char why[KP_ERROR_MAX + 1], buf[40];
    const char *name = kp_p11_rv_name(rv, buf, sizeof(buf));

    if (op != NULL)
        op->rv = rv;
    vsnprintf(why, sizeof(why), fmt, ap);
    if (why[0] == '\0')
        return kp_p11_err(pi, st, "%s: %s", fn, name);
    return kp_p11_err(pi, st, "%s: %s (%s)", fn, name, why);
}

kp_status kp_p11_ck(kp_p11_inst *pi, kp_p11_op *op, CK_RV rv, bool mech, const char *fn,
                    const char *fmt, ...)
{
    kp_status st = KP_OK;
    va_list ap;

    va_start(ap, fmt);
    st = s_ck(pi, op, rv, kp_p11_rv_status(rv, mech), fn, fmt, ap);
    va_end(ap);
    return st;
}

kp_status kp_p11_ck_as(kp_p11_inst *pi, kp_p11_op *op, CK_RV rv, kp_status st, const char *fn,
                       const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    st = s_ck(pi, op, rv, st, fn, fmt, ap);
    va_end(ap);
    return st;
}

void kp_p11_text(const unsigned char *field, size_t len, char *buf, size_t size)
{
    while (len > 0 && (field[len - 1] == ' ' || field[len - 1] == '\0'))
        len--;
    if (len >= size)
        len = size - 1;
    /* Labels are UTF-8; anything that could break a one-line message becomes '?'. */
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)(field[i] < 0x20 || field[i] == 0x7f ? '?' : field[i]);
    buf[len] = '\0';
}
