/*
 * The keyplane command's state directory (state_dir.c): where the journal and the lock of a
 * policy live, never beside the policy file or a device (docs/cli.md, "The state directory").
 */
#ifndef KP_CLI_STATE_DIR_H
#define KP_CLI_STATE_DIR_H

#include <stddef.h>

#include "cli.h"

/* The directory --state-dir named (NULL: KEYPLANE_STATE_DIR, else $XDG_STATE_HOME/keyplane,
 * else ~/.local/state/keyplane). Set once, before the command runs. */
void kp_cli_set_state_dir(const char *dir);

/* Writes to buf the path of the policy's file of kind ext ("journal", "lock") in the state
 * directory: <16 hex digits of the SHA-256 of the policy's canonical path>-<its base name>.ext.
 * The directory is created (0700) when missing and refused when another user owns it or others
 * may write to it. KP_OK, else an error was printed on stderr. */
kp_status kp_cli_state_path(kp_cli *cli, const char *ext, char *buf, size_t len);

#endif
