/* The cycle test's own test: core's lowest file (core/src/base/error.c, status and detail text)
 * as built for libkeyplane, plus one call from that lowest layer up into the policy layer.
 * check_cycles.py, given this object in place of the real one, must report a cycle; if it does
 * not, the cycle test cannot fail. */
#include "base/error.c"

#include "keyplane/keyplane.h"

kp_status kp__selftest_backedge(void);
kp_status kp__selftest_backedge(void)
{
    return kp_policy_load(NULL, NULL, NULL, NULL);
}
