/*
 * Fuzz target of keyplane backup's envelope reader (core/cli/backup_meta.c): every input is read
 * as a local backup's JSON sidecar and, split at newlines into NAME=VALUE lines, as an object's
 * metadata; each set of fields that parses is planned for decryption. Besides memory errors (the
 * sanitizers) it checks what backup_meta.h promises: a plan holds a KMS ciphertext, an IV of the
 * mode's size, at most 16 context pairs of text, and a failure's reason is one printable line
 * that does not quote the input (a sidecar holds key material's ciphertext, not secrets, but a
 * reason that echoes input is a channel all the same).
 *
 * Built as a libFuzzer target (fuzz_backup, Clang) and as a replay program over a corpus
 * (fuzz_backup_replay, any compiler; ctest fuzz.backup.replay). See README.md.
 */
#include <stdlib.h>
#include <string.h>

#include "backup_meta.h"
#include "fuzz_check.h"

static void s_die(const char *what, const char *why)
{
    kp_test_fuzz_die("fuzz_backup", what, why);
}

static void s_plan(const kp_cli_bk_fields *f, const char *what)
{
    kp_cli_bk_plan p;
    char err[KP_BK_ERR] = "";
    kp_status st = kp_cli_bk_plan_make(f, &p, err, sizeof(err));
    if (st != KP_OK) {
        if (st != KP_ERR_NOMEM)
            kp_test_fuzz_error_text("fuzz_backup", what, err);
        return;
    }
    if (p.blob == NULL || p.bloblen == 0)
        s_die(what, "a plan without a data key ciphertext");
    if (p.mode == KP_BK_CBC_DECRYPT ? p.ivlen != 16
                                    : p.mode != KP_BK_GCM_DECRYPT || p.ivlen < 12 || p.ivlen > 16)
        s_die(what, "a plan with an IV of the wrong size for its mode");
    if (p.ncontext > KP_BK_CONTEXT_MAX || p.key_id == NULL)
        s_die(what, "a plan's context or key id out of bounds");
    for (size_t i = 0; i < p.ncontext; i++)
        if (p.context[i].key == NULL || p.context[i].value == NULL)
            s_die(what, "a context pair without text");
    kp_cli_bk_plan_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kp_cli_bk_fields f;
    char err[KP_BK_ERR] = "";
    if (kp_cli_bk_sidecar_read((const char *)data, size, &f, err, sizeof(err)) == KP_OK) {
        s_plan(&f, "sidecar");
        kp_cli_bk_fields_free(&f);
    } else
        kp_test_fuzz_error_text("fuzz_backup", "sidecar", err);
    /* the same bytes as NAME=VALUE lines of an object's metadata */
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&f, 0, sizeof(f));
    for (char *line = text, *next; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (eq != NULL) {
            *eq = '\0';
            (void)kp_cli_bk_fields_set(&f, line, eq + 1);
        }
    }
    s_plan(&f, "metadata");
    kp_cli_bk_fields_free(&f);
    free(text);
    return 0;
}
