/*
 * Process hardening of the keyplane command, before main runs: a crash or a debugger must not
 * carry off what the process holds (store passphrases, PINs, unwrapped DEKs, private keys).
 *
 * - The process is made non-dumpable (prctl(PR_SET_DUMPABLE, 0), as ssh-agent and gpg-agent
 *   do) and its core size limit is set to 0, soft and hard: no core file, no ptrace attach by
 *   the same user, /proc/PID/{mem,environ,...} readable by root only.
 * - OpenSSL's secure heap is set up: RSA and EC private keys' BIGNUMs that OpenSSL decodes or
 *   generates live in mlock'ed pages excluded from core dumps (MADV_DONTDUMP) and cleared on
 *   free. libkeyplane does not do this itself: the secure heap is one per process and a
 *   library must not take that decision for the program that links it (docs/cli.md).
 *
 * This runs as a constructor, so that nothing the command does (not even the dynamic loader's
 * initialisers of later objects or main's first line) happens while the process is dumpable.
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/crypto.h>

#include "harden.h"

/* Sizes of the secure heap: a power of two. 4 MiB holds the private keys a file store instance
 * keeps (up to 128: 0.9 KiB each for RSA-2048, 1.8 KiB for RSA-4096) for several stores, and
 * those of many concurrent apply workers; 64 bytes is the smallest piece handed out. */
#define KP_CLI_SECURE_HEAP (4u << 20)
#define KP_CLI_SECURE_MIN 64

__attribute__((constructor)) static void s_harden(void)
{
    /* Failures leave the process as it was; main says so (kp_cli_harden_warn). */
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
    (void)setrlimit(RLIMIT_CORE, &none);
    /* 1: locked; 2: mapped but mlock refused (RLIMIT_MEMLOCK), still kept out of dumps. */
    (void)CRYPTO_secure_malloc_init(KP_CLI_SECURE_HEAP, KP_CLI_SECURE_MIN);
}

void kp_cli_harden_warn(bool quiet)
{
    if (!quiet && prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
        fprintf(stderr, "keyplane: warning: the process could not be made non-dumpable; a "
                        "crash may leave secrets in a core file\n");
    if (!quiet && !CRYPTO_secure_malloc_initialized())
        fprintf(stderr, "keyplane: warning: OpenSSL's secure heap is not available; private "
                        "keys are held in ordinary memory\n");
}
