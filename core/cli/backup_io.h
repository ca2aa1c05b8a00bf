/*
 * Sources and sinks of `keyplane backup` (backup_io.c): local files and objects.
 */
#ifndef KP_CLI_BACKUP_IO_H
#define KP_CLI_BACKUP_IO_H

#include <limits.h>
#include <time.h>

#include "backup.h"

typedef struct kp_cli_bk_file_in {
    int fd;
    const char *path;
    uint64_t size;
    struct timespec mtime; /* at the open: a file written meanwhile is refused */
} kp_cli_bk_file_in;

/* A regular file to read whole (its size known now). */
kp_status kp_cli_bk_file_in_open(const char *path, kp_cli_bk_file_in *in, char *err, size_t errlen);
kp_status kp_cli_bk_file_read(void *ctx, uint8_t *buf, size_t cap, size_t *got, char *err,
                              size_t errlen);
/* KP_OK when the file still has the size and modification time it had at the open, else
 * KP_ERR_CONFLICT with err: what was read is no whole version of it. */
kp_status kp_cli_bk_file_in_unchanged(const kp_cli_bk_file_in *in, char *err, size_t errlen);
void kp_cli_bk_file_in_close(kp_cli_bk_file_in *in);

typedef struct kp_cli_bk_file_out {
    int fd;
    bool replace;
    char path[PATH_MAX];
    char tmp[PATH_MAX]; /* the temporary name, "" while the file has none */
} kp_cli_bk_file_out;

/* A new file (0600) that appears at path only at the commit: KP_ERR_EXISTS when path exists
 * and replace is false. */
kp_status kp_cli_bk_file_out_open(const char *path, bool replace, kp_cli_bk_file_out *o, char *err,
                                  size_t errlen);
kp_status kp_cli_bk_file_write(void *ctx, const uint8_t *buf, size_t len, char *err, size_t errlen);
/* Syncs its bytes to the disk (before another file that names it is committed). */
kp_status kp_cli_bk_file_out_sync(kp_cli_bk_file_out *o, char *err, size_t errlen);
/* Syncs it and gives it its name (KP_ERR_EXISTS when a file appeared there meanwhile and
 * replace is false); the file is closed either way, and nothing is left on failure. */
kp_status kp_cli_bk_file_out_commit(kp_cli_bk_file_out *o, char *err, size_t errlen);
/* Drops an output that will not be committed. */
void kp_cli_bk_file_out_drop(kp_cli_bk_file_out *o);

typedef struct kp_cli_bk_object_in {
    kp_ctx *ctx;
    kp_instance *inst;
    const char *where;
    const char *tag; /* kp_object_info.tag: a changed object is refused */
    uint64_t offset; /* the next byte to ask the store for */
    /* read-ahead, when ahead is not NULL: one request fills ahead_cap bytes, which the next
     * reads take (fewer, larger ranged GETs: each costs a round trip) */
    uint8_t *ahead;
    size_t ahead_cap, ahead_len, ahead_pos;
} kp_cli_bk_object_in;
kp_status kp_cli_bk_object_read(void *ctx, uint8_t *buf, size_t cap, size_t *got, char *err,
                                size_t errlen);

typedef struct kp_cli_bk_object_out {
    kp_ctx *ctx;
    kp_object_out *w;
} kp_cli_bk_object_out;
kp_status kp_cli_bk_object_write(void *ctx, const uint8_t *buf, size_t len, char *err,
                                 size_t errlen);

#endif
