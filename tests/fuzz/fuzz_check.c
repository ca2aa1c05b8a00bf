/*
 * The checks the fuzz targets share (fuzz_check.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

void kp_test_fuzz_die(const char *target, const char *what, const char *why)
{
    fprintf(stderr, "%s: %s: %s\n", target, what, why);
    abort();
}

void kp_test_fuzz_error_text(const char *target, const char *what, const char *text)
{
    if (text == NULL || text[0] == '\0')
        kp_test_fuzz_die(target, what, "failed without a reason");
    for (const char *p = text; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            kp_test_fuzz_die(target, what, "the error text holds a control character");
    if (strstr(text, " near '") != NULL) {
        fprintf(stderr, "%s: %s: the error text quotes the input: %s\n", target, what, text);
        abort();
    }
}
