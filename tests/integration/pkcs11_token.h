/*
 * Helpers of the pkcs11 plugin's tests (unit.pkcs11, unit.pkcs11_race), which both run the
 * plugin on a SoftHSM2 token made for each test and look at that token behind the plugin's
 * back: the token and its policy, the module as the plugin loaded it, a logged-in session on the
 * token, object counts and removals. The helpers act on the token the last kp_test_p11_token
 * made (one per test, as one runs at a time) and fail the running cmocka test on an error.
 */
#ifndef KP_TEST_PKCS11_TOKEN_H
#define KP_TEST_PKCS11_TOKEN_H

#include <stddef.h>

#include <p11-kit/pkcs11.h>

#include "kp_test.h"

/** The path of SoftHSM2's PKCS#11 module; fails the test when it is not installed. */
const char *kp_test_p11_module(void);

/**
 * Makes a SoftHSM2 token labelled label (SO PIN so_pin, user PIN pin) in t's temporary
 * directory, points SOFTHSM2_CONF at its configuration, and loads into t a policy with one
 * pkcs11 instance "hsm" of it whose PIN is env:KP_TEST_HSM_PIN (set to pin here). The helpers
 * below act on this token from then on.
 */
void kp_test_p11_token(kp_test_fx *t, const char *label, const char *so_pin, const char *pin);

/** The module's function list as the plugin loaded it in this process (an instance must be
 *  open: p11-kit initialised it). */
CK_FUNCTION_LIST_PTR kp_test_p11_functions(void);

/** A logged-in R/W session on the test's token, opened behind the plugin's back. */
CK_SESSION_HANDLE kp_test_p11_session(CK_FUNCTION_LIST_PTR fl);

/** How many objects on the token (private ones too) match tmpl; all of them when ntmpl is 0. */
size_t kp_test_p11_count(CK_ATTRIBUTE *tmpl, CK_ULONG ntmpl);

/** Destroys every object labelled label behind the plugin's back, as another tool or a writer
 *  giving up would; fails the test when there is none. */
void kp_test_p11_destroy_labelled(const char *label);

#endif
