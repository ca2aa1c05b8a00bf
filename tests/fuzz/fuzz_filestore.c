/*
 * Fuzz target of the file plugin's metadata parsers (plugins/file): the header
 * (keyplane-store.json, file_header.c), a key version's meta.json (file_keys.c) and a secret
 * version's meta.json (file_secretstore.c), the JSON files anyone who can write to a store's
 * directory controls. The target goes through the public API and the built plugin, as the CLI
 * does, so it follows the plugin wherever its file handling moves: once, it makes a store in a
 * temporary directory (key k and secret s, version 1 each); then each input's first byte picks
 * the file (0 header, 1 key meta, 2 secret meta, modulo 3), the rest replaces it, the calls that
 * read it run, and the good file is put back.
 *
 * Besides memory errors it checks: a call that fails says why in one printable line that does
 * not quote the file (jansson's "near '...'": the file may hold anything, a passphrase
 * included); key k read back is version 1 of k. A header's iteration count is honoured up to the
 * plugin's maximum (10^7 PBKDF2 rounds, some seconds): libFuzzer's -timeout must allow that.
 *
 * Built as a libFuzzer target (fuzz_filestore, Clang) and as a replay program over its corpus
 * (fuzz_filestore_replay; ctest fuzz.filestore.replay). See README.md.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keyplane/keyplane.h>
#include <keyplane/policy.h>
#include <keyplane/secret.h>

#include "fuzz_check.h"
#include "kp_test.h"

#define T "fuzz_filestore"

static const char *const s_files[] = {"keyplane-store.json", "keys/k/1/meta.json",
                                      "secrets/s/1/meta.json"};
#define S_NFILES (sizeof(s_files) / sizeof(s_files[0]))

static kp_ctx *s_ctx;
static kp_policy *s_pol;
static kp_instance *s_inst; /* kept open: its header is opened once */
static char *s_dir;
static char s_path[S_NFILES][512];
static uint8_t *s_good[S_NFILES];
static size_t s_good_len[S_NFILES];

static void s_write(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (len > 0 && write(fd, data, len) != (ssize_t)len) || close(fd) != 0)
        kp_test_fuzz_die(T, "setup", "cannot write a store file");
}

static void s_read(size_t i)
{
    FILE *f = fopen(s_path[i], "rb");
    s_good[i] = malloc(65536);
    if (f == NULL || s_good[i] == NULL)
        kp_test_fuzz_die(T, "setup", "cannot read a store file back");
    s_good_len[i] = fread(s_good[i], 1, 65536, f);
    fclose(f);
}

static void s_ok(const char *what, kp_status st)
{
    if (st != KP_OK) {
        fprintf(stderr, "%s: setup: %s: %s\n", T, what, kp_ctx_last_error(s_ctx));
        abort();
    }
}

static void s_cleanup(void)
{
    kp_test_rmtree(s_dir);
}

static void s_setup(void)
{
    const char *plugins = getenv("KP_FUZZ_PLUGIN_DIR");
    setenv("KP_FUZZ_PASSPHRASE", "fuzz passphrase", 1);
    s_dir = kp_test_tmpdir();
    s_ctx = kp_test_ctx(plugins);
    if (s_dir == NULL || s_ctx == NULL)
        kp_test_fuzz_die(T, "setup", "no temporary directory or context");
    atexit(s_cleanup);
    char text[1024];
    snprintf(text, sizeof(text),
             "version: 1\nproviders:\n  s: {plugin: file, path: %s/store, passphrase: "
             "env:KP_FUZZ_PASSPHRASE, kdf_iterations: 10000}\n",
             s_dir);
    char *policy = kp_test_write(s_dir, "policy.yaml", text);
    if (policy == NULL)
        kp_test_fuzz_die(T, "setup", "cannot write the policy");
    s_ok("kp_policy_load", kp_policy_load(s_ctx, policy, &s_pol, NULL));
    free(policy);
    s_ok("kp_instance_open", kp_instance_open(s_ctx, s_pol, "s", &s_inst));
    s_ok("kp_instance_init", kp_instance_init(s_inst));
    kp_key_spec spec = {.struct_size = sizeof(spec), .name = "k", .type = KP_KEY_RSA, .bits = 2048};
    kp_key_info info = {.struct_size = sizeof(info)};
    s_ok("kp_key_create", kp_key_create(s_inst, &spec, &info));
    kp_secret *value = kp_secret_new_copy("fuzz secret value", 17);
    kp_meta meta = {.key = "purpose", .value = "fuzz"};
    uint32_t version = 0;
    s_ok("kp_store_put", kp_store_put(s_inst, "s", value, &meta, 1, &version));
    kp_secret_free(value);
    /* KP_FUZZ_FILESTORE_SEEDS=DIR writes the good files there as seeds (selector byte first). */
    const char *seeds = getenv("KP_FUZZ_FILESTORE_SEEDS");
    for (size_t i = 0; i < S_NFILES; i++) {
        snprintf(s_path[i], sizeof(s_path[i]), "%s/store/%s", s_dir, s_files[i]);
        s_read(i);
        if (seeds != NULL) {
            char seed[600];
            uint8_t buf[65537];
            buf[0] = (uint8_t)i;
            memcpy(buf + 1, s_good[i], s_good_len[i]);
            snprintf(seed, sizeof(seed), "%s/good-%zu.json", seeds, i);
            s_write(seed, buf, s_good_len[i] + 1);
        }
    }
}

/* A failed call's error text (from the context) passes kp_test_fuzz_error_text. */
static void s_call(const char *what, kp_status st)
{
    if (st != KP_OK)
        kp_test_fuzz_error_text(T, what, kp_ctx_last_error(s_ctx));
}

static kp_status s_key_seen(void *arg, const kp_key_info *info)
{
    (void)arg;
    if (strcmp(info->name, "k") != 0 || info->version != 1)
        kp_test_fuzz_die(T, "kp_key_list", "listed a key other than k version 1");
    return KP_OK;
}

static kp_status s_secret_seen(void *arg, const kp_secret_info *info, const kp_meta *meta,
                               size_t nmeta)
{
    (void)arg;
    if (strcmp(info->name, "s") != 0 || info->version != 1)
        kp_test_fuzz_die(T, "kp_store_list", "listed a secret other than s version 1");
    for (size_t i = 0; i < nmeta; i++)
        if (meta[i].key == NULL || meta[i].value == NULL)
            kp_test_fuzz_die(T, "kp_store_list", "a metadata pair without key or value");
    return KP_OK;
}

static void s_keys(kp_instance *inst)
{
    kp_key_info info = {.struct_size = sizeof(info)};
    kp_status st = kp_key_info_get(inst, "k", 1, &info);
    s_call("kp_key_info_get", st);
    if (st == KP_OK && (strcmp(info.name, "k") != 0 || info.version != 1))
        kp_test_fuzz_die(T, "kp_key_info_get", "k version 1 read back as another key");
    s_call("kp_key_list", kp_key_list(inst, NULL, s_key_seen, NULL));
    uint8_t *spki = NULL;
    size_t len = 0;
    s_call("kp_key_get_public", kp_key_get_public(inst, "k", 1, &spki, &len));
    kp_free(spki);
}

static void s_secrets(kp_instance *inst)
{
    kp_secret *value = NULL;
    s_call("kp_store_list", kp_store_list(inst, NULL, s_secret_seen, NULL));
    s_call("kp_store_get", kp_store_get(inst, "s", 1, &value, s_secret_seen, NULL));
    kp_secret_free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_ctx == NULL)
        s_setup();
    if (size == 0)
        return 0;
    size_t which = data[0] % S_NFILES;
    s_write(s_path[which], data + 1, size - 1);
    if (which == 0) {
        /* The header is opened once per instance: a fresh one reads it. */
        kp_instance *inst = NULL;
        kp_status st = kp_instance_open(s_ctx, s_pol, "s", &inst);
        s_call("kp_instance_open", st);
        if (st == KP_OK) {
            s_secrets(inst);
            s_keys(inst);
        }
        kp_instance_close(inst);
    } else if (which == 1) {
        s_keys(s_inst);
    } else {
        s_secrets(s_inst);
    }
    s_write(s_path[which], s_good[which], s_good_len[which]);
    return 0;
}
