/*
 * cli.aws_multipart's driver: puts SIZE seeded bytes as a new version of NAME in instance INST
 * of POLICY (with one metadata pair), reads that version back and compares, then prints the
 * version. Values past 16 MiB go to S3 in parts (plugins/aws/aws_s3_multipart.c), which no
 * command reaches (keyplane secret put takes 1 MiB).
 *   aws_put_big PLUGIN_DIR POLICY INST NAME SIZE
 * Exit 0 with "version N"; 1 with the library's error on stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kp_test.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: aws_put_big PLUGIN_DIR POLICY INST NAME SIZE\n");
        return 2;
    }
    size_t size = (size_t)strtoull(argv[5], NULL, 10);
    uint8_t *buf = malloc(size > 0 ? size : 1);
    if (buf == NULL)
        return 1;
    uint32_t x = 0x2545f491u;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    kp_secret *value = kp_secret_new_copy(buf, size), *back = NULL;
    kp_ctx *ctx = NULL;
    kp_policy *pol = NULL;
    kp_instance *inst = NULL;
    uint32_t version = 0;
    kp_meta meta[] = {{"note", "multipart"}};
    kp_status st = value != NULL
                       ? kp_test_open_instance(argv[1], argv[2], argv[3], &ctx, &pol, &inst)
                       : KP_ERR_NOMEM;
    if (st == KP_OK)
        st = kp_store_put(inst, argv[4], value, meta, 1, &version);
    if (st == KP_OK)
        st = kp_store_get(inst, argv[4], version, &back, NULL, NULL);
    int rc = 0;
    if (st != KP_OK) {
        fprintf(stderr, "aws_put_big: %s\n", ctx != NULL ? kp_ctx_last_error(ctx) : "no context");
        rc = 1;
    } else if (kp_secret_len(back) != size || memcmp(kp_secret_cdata(back), buf, size) != 0) {
        fprintf(stderr, "aws_put_big: v%u read back differs\n", version);
        rc = 1;
    } else {
        printf("version %u\n", version);
    }
    kp_secret_free(back);
    kp_secret_free(value);
    kp_instance_close(inst);
    kp_policy_free(pol);
    kp_ctx_free(ctx);
    free(buf);
    return rc;
}
