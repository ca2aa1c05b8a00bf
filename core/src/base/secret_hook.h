/* Test hook for kp_secret (not installed): called at free with the block's bytes after the
 * wipe, so tests can assert that secrets are zero when released. */
#ifndef KP_BASE_SECRET_HOOK_H
#define KP_BASE_SECRET_HOOK_H

#include <stddef.h>

typedef void (*kp_secret_free_hook)(const unsigned char *data, size_t len);
void kp__secret_set_free_hook(kp_secret_free_hook hook);

#endif
