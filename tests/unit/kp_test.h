/* Shared helpers of the unit tests. */
#ifndef KP_TEST_H
#define KP_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <keyplane/keyplane.h>

/* A fresh directory under $TMPDIR (or /tmp); caller frees the string, kp_test_rmtree removes. */
char *kp_test_tmpdir(void);
void kp_test_rmtree(const char *path);
/* Writes text to dir/name and returns the malloc'd path. */
char *kp_test_write(const char *dir, const char *name, const char *text);
/* A context whose only plugin directory is dir (the build's plugin dir when NULL). */
kp_ctx *kp_test_ctx(const char *dir);
/* The directory of single-fault mock plugin name (tests/mock-plugins); caller frees. */
char *kp_test_mock_dir(const char *name);
/* Loading mock name is refused with want, in one line naming its path and reason. */
void kp_test_expect_refused(const char *name, kp_status want, const char *reason);
/* A policy with two file instances "a" and "b" under dir and a chain "c" over both. */
char *kp_test_two_region_policy(const char *dir);

#endif
