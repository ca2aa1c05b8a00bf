/*
 * aws_creds_steps: one open instance of a policy driven through steps, in one process, so a
 * test can change the world between two requests of the same instance (cli.aws_creds_refresh:
 * credentials expiring, refreshed, revoked between operations). Usage:
 *
 *   aws_creds_steps POLICY INSTANCE STEP...
 *
 * Steps, each printing one line (the step, then what it did or "error STATUS: TEXT"):
 *   check          the instance's checks: the credentials item's detail ("from SOURCE (access
 *                  key ...XXXX)"), and any item that failed
 *   put:NAME       a new version of NAME (a fresh value), prints its version
 *   get:NAME       the newest version of NAME, compared with what this process put last
 *   list:NAME      how many versions of NAME the listing shows
 *   env:VAR=VALUE  sets VAR in this process (an empty VALUE unsets it)
 *   sh:COMMAND     runs COMMAND with /bin/sh; a failing command ends the run (exit 2)
 * A failed step does not end the run; the exit status is 1 when any step failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keyplane/policy.h>
#include <keyplane/secret.h>

#include "kp_test.h"

static char s_last[64]; /* the value this process put last */

static void s_report(void *arg, const char *item, kp_status status, const char *detail)
{
    (void)arg;
    if (strcmp(item, "credentials") == 0 || status != KP_OK)
        printf(" %s%s%s: %s", item, status == KP_OK ? "" : " error ",
               status == KP_OK ? "" : kp_status_name(status), detail != NULL ? detail : "");
}

static kp_status s_count(void *arg, const kp_secret_info *info, const kp_meta *meta, size_t n)
{
    (void)info, (void)meta, (void)n;
    (*(int *)arg)++;
    return KP_OK;
}

static kp_status s_step(kp_instance *inst, const char *step)
{
    const char *arg = strchr(step, ':') != NULL ? strchr(step, ':') + 1 : "";
    kp_status st = KP_OK;
    if (strcmp(step, "check") == 0) {
        st = kp_instance_check(inst, s_report, NULL);
        putchar('\n');
    } else if (strncmp(step, "put:", 4) == 0) {
        snprintf(s_last, sizeof(s_last), "value-%ld-%d", (long)time(NULL), rand());
        kp_secret *v = kp_secret_new_copy(s_last, strlen(s_last));
        uint32_t version = 0;
        st = v != NULL ? kp_store_put(inst, arg, v, NULL, 0, &version) : KP_ERR_NOMEM;
        kp_secret_free(v);
        if (st == KP_OK)
            printf(" v%u\n", version);
    } else if (strncmp(step, "get:", 4) == 0) {
        kp_secret *v = NULL;
        st = kp_store_get(inst, arg, 0, &v, NULL, NULL);
        if (st == KP_OK)
            printf(" %s\n", kp_secret_len(v) == strlen(s_last) &&
                                    memcmp(kp_secret_cdata(v), s_last, strlen(s_last)) == 0
                                ? "the value put last"
                                : "ANOTHER VALUE");
        kp_secret_free(v);
    } else if (strncmp(step, "list:", 5) == 0) {
        int n = 0;
        st = kp_store_list(inst, arg, s_count, &n);
        if (st == KP_OK)
            printf(" %d versions\n", n);
    } else if (strncmp(step, "env:", 4) == 0 && strchr(arg, '=') != NULL) {
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(strchr(arg, '=') - arg), arg);
        int rc =
            strchr(arg, '=')[1] != '\0' ? setenv(name, strchr(arg, '=') + 1, 1) : unsetenv(name);
        printf(" %s\n", rc == 0 ? "set" : "FAILED");
    } else if (strncmp(step, "sh:", 3) == 0) {
        fflush(stdout);
        int rc = system(arg);
        if (rc != 0) {
            printf(" exit %d\n", rc);
            exit(2);
        }
        printf(" done\n");
    } else {
        kp_test_fail("unknown step %s", step);
    }
    return st;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        kp_test_fail("usage: %s POLICY INSTANCE STEP...", argv[0]);
    kp_ctx *ctx = NULL;
    kp_policy *pol = NULL;
    kp_instance *inst = NULL;
    kp_status st = kp_test_open_instance(KP_TEST_PLUGIN_DIR, argv[1], argv[2], &ctx, &pol, &inst);
    if (st != KP_OK)
        kp_test_fail("open %s: %s: %s", argv[2], kp_status_name(st),
                     ctx != NULL ? kp_ctx_last_error(ctx) : "");
    srand((unsigned)time(NULL));
    int failed = 0;
    for (int i = 3; i < argc; i++) {
        printf("%s:", strncmp(argv[i], "sh:", 3) == 0 ? "sh" : argv[i]);
        st = s_step(inst, argv[i]);
        if (st != KP_OK) {
            printf(" error %s: %s\n", kp_status_name(st), kp_ctx_last_error(ctx));
            failed++;
        }
        fflush(stdout);
    }
    kp_instance_close(inst);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    return failed != 0;
}
