/*
 * keyplane backup: S3 client-side encryption of database backups (docs/backup.md). Inside the
 * command: the streaming cipher (backup_pipe.c), the envelope's metadata (backup_meta.c), where
 * bytes come from and go to (backup_io.c), and the command (cmd_backup.c).
 */
#ifndef KP_CLI_BACKUP_H
#define KP_CLI_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <keyplane/keyplane.h>

#include "cli.h"

#define KP_BK_ERR 512
#define KP_BK_MAC 16 /* AES-256-GMAC's tag */

/* Where the bytes come from: read fills buf with up to cap bytes of the stream in order (*got
 * less than cap only at its end); size is the whole stream's, known before the first read. */
typedef struct kp_cli_bk_src {
    kp_status (*read)(void *ctx, uint8_t *buf, size_t cap, size_t *got, char *err, size_t errlen);
    void *ctx;
    uint64_t size;
} kp_cli_bk_src;

/* Where they go, in order. */
typedef struct kp_cli_bk_sink {
    kp_status (*write)(void *ctx, const uint8_t *buf, size_t len, char *err, size_t errlen);
    void *ctx;
} kp_cli_bk_sink;

typedef enum kp_cli_bk_mode {
    KP_BK_CBC_ENCRYPT = 1, /* AES-CBC, PKCS#5 padding added */
    KP_BK_CBC_DECRYPT,     /* AES-CBC, PKCS#5 padding checked and removed */
    KP_BK_GCM_DECRYPT,     /* AES-GCM, the 16-byte tag at the end checked */
} kp_cli_bk_mode;

typedef void (*kp_cli_bk_progress_fn)(void *arg, uint64_t done, uint64_t total);

/* One run of the cipher from src to sink, in constant memory: a reader and a writer thread
 * overlap the I/O with the cipher; CBC decryption splits each buffer across two threads. */
typedef struct kp_cli_bk_job {
    kp_cli_bk_mode mode;
    const kp_secret *key; /* 16, 24 or 32 bytes */
    uint8_t iv[16];
    size_t ivlen; /* 16 (CBC), 12 or more (GCM) */
    kp_cli_bk_src src;
    kp_cli_bk_sink sink;
    kp_cli_bk_progress_fn progress; /* may be NULL; called from the cipher's thread */
    void *progress_arg;
    const uint8_t *mac_key; /* 32 bytes: GMAC of the IV and the ciphertext into mac (NULL:
                               none) */
    uint8_t mac[KP_BK_MAC]; /* result */
    uint64_t out_bytes;     /* result: bytes given to the sink */
    char err[KP_BK_ERR];    /* result: why it failed, one line */
} kp_cli_bk_job;

/* KP_OK, or the failure with job->err: KP_ERR_INTEGRITY for input that is not what the mode
 * decrypts (truncated, bad padding, a tag that does not verify), a source's or a sink's own
 * status for theirs. */
kp_status kp_cli_bk_run(kp_cli_bk_job *job);

/* The signal (SIGINT, SIGTERM, SIGHUP) that interrupted the command, 0 while none did: the reader
 * stops at its next buffer, so that the caller drops its output (an S3 multipart upload aborted,
 * not left with its parts billed). Set by the command's handler. */
extern volatile sig_atomic_t kp_cli_bk_signal;

/* The cipher's buffer size: reads and writes come in these (a multiple of 16). */
#define KP_BK_SLOT (2u * 1024 * 1024)

#endif
