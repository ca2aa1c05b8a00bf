/* kp_test_fail (kp_test.h), in an object of its own: the kit's tests, which do not link
 * libkeyplane, use it through the emulator client and the transport helpers. */
#include <stdio.h>
#include <stdlib.h>

#include "kp_test.h"

void kp_test_fail(const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_msg("%s", msg);
    abort(); /* not reached: cmocka's fail ends the test, or the program outside one */
}
