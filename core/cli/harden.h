/*
 * The keyplane command's process hardening (harden.c): what main asks of it after the
 * constructor has run.
 */
#ifndef KP_CLI_HARDEN_H
#define KP_CLI_HARDEN_H

#include <stdbool.h>

/* Warns on stderr, unless quiet, when the process is still dumpable or has no OpenSSL secure
 * heap. */
void kp_cli_harden_warn(bool quiet);

#endif
