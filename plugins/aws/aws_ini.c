/*
 * The AWS CLI's shared files (~/.aws/config and ~/.aws/credentials): INI sections of
 * "key = value" lines, as botocore reads them (Python's configparser without inline comments:
 * '#' and ';' start a comment only at the start of a line, keys are case-insensitive, a value
 * may continue on indented lines, which the nested "s3 =" settings use and which are skipped
 * here). Written here because no INI library on Debian 12 handles the nested settings; the
 * format is a few lines of rules.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aws_internal.h"

#define S_LINE_MAX 4096

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

typedef struct s_scan {
    const char *section, *key;
    char *out;
    size_t cap;
    bool section_seen, found;
} s_scan;

/* Reads path line by line; answers what s asks. */
static kp_status s_read(const char *path, s_scan *s, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return KP_ERR_NOT_FOUND;
    char line[S_LINE_MAX];
    bool in = false;
    unsigned no = 0;
    kp_status st = KP_OK;
    while (st == KP_OK && !s->found && fgets(line, sizeof(line), f) != NULL) {
        no++;
        size_t len = strlen(line);
        if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
            snprintf(err, errlen, "%s line %u: longer than %d bytes", path, no, S_LINE_MAX - 2);
            st = KP_ERR_CONFIG;
            break;
        }
        if (line[0] == ' ' || line[0] == '\t') /* a continuation: nested settings */
            continue;
        char *t = s_trim(line);
        if (*t == '\0' || *t == '#' || *t == ';')
            continue;
        if (*t == '[') {
            char *close = strchr(t, ']');
            if (close == NULL || s_trim(close + 1)[0] != '\0') {
                snprintf(err, errlen, "%s line %u: a section header without its ']'", path, no);
                st = KP_ERR_CONFIG;
                break;
            }
            *close = '\0';
            in = strcmp(s_trim(t + 1), s->section) == 0;
            s->section_seen |= in;
            continue;
        }
        char *eq = strchr(t, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s line %u: neither a section nor key = value", path, no);
            st = KP_ERR_CONFIG;
            break;
        }
        if (!in || s->key == NULL)
            continue;
        *eq = '\0';
        if (strcasecmp(s_trim(t), s->key) != 0)
            continue;
        const char *v = s_trim(eq + 1);
        if (strlen(v) >= s->cap) {
            snprintf(err, errlen, "%s line %u: the value of %s is too long", path, no, s->key);
            st = KP_ERR_CONFIG;
            break;
        }
        memcpy(s->out, v, strlen(v) + 1);
        s->found = true;
    }
    fclose(f);
    return st;
}

kp_status kp_aws_ini_get(const char *path, const char *section, const char *key, char *out,
                         size_t cap, char *err, size_t errlen)
{
    s_scan s = {.section = section, .key = key, .out = out, .cap = cap};
    if (cap > 0)
        out[0] = '\0';
    KP_GUARD(s_read(path, &s, err, errlen));
    return s.found ? KP_OK : KP_ERR_NOT_FOUND;
}

bool kp_aws_ini_has(const char *path, const char *section)
{
    char err[KP_AWS_ERR];
    s_scan s = {.section = section};
    return s_read(path, &s, err, sizeof(err)) == KP_OK && s.section_seen;
}
