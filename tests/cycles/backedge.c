/* The cycle test's own test: core's error-text code as built for libkeyplane, plus one call from
 * that lowest layer up into the policy layer. check_cycles.py, given this object in place of the
 * real one, must report a cycle; if it does not, the cycle test cannot fail. */
#include "../../core/src/error.c"

#include "keyplane/keyplane.h"

void kp__selftest_backedge(void);
void kp__selftest_backedge(void)
{
    kp_policy_free(NULL);
}
