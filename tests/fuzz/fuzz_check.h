/*
 * The checks the fuzz targets of the core and the file plugin share (fuzz_policy.c,
 * fuzz_envelope.c, fuzz_state.c, fuzz_filestore.c): a target that finds a broken promise says
 * which and aborts, so libFuzzer keeps the input and the replay test fails on it.
 */
#ifndef KP_TEST_FUZZ_CHECK_H
#define KP_TEST_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints "<target>: <what>: <why>" and aborts. */
void kp_test_fuzz_die(const char *target, const char *what, const char *why)
    __attribute__((noreturn));
/* An error text an operator reads: not empty, one printable line, and not quoting the input the
 * way jansson's syntax errors do ("near '<bytes>'": the bytes may be a passphrase or a key). */
void kp_test_fuzz_error_text(const char *target, const char *what, const char *text);

#endif
