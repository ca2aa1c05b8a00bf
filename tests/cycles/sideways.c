/* The layer rule's own test: core's plugin-directory code (core/src/plugin/dirs.c) as built for
 * libkeyplane, plus one call sideways into the format layer, which plugin/ may not use. It closes
 * no cycle, so only the declared layers (check_cycles.py --layers) can catch it. */
#include "../../core/src/plugin/dirs.c"

#include "keyplane/keyplane.h"

const char *kp__selftest_sideways(void);
const char *kp__selftest_sideways(void)
{
    return kp_wrap_alg_name(0);
}
