/*
 * Reading secrets from the places a user may keep them: an environment variable, a file, an
 * inherited file descriptor, or standard input. Never from a command-line argument, which
 * other users can read in /proc.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <keyplane/keyplane.h>

static kp_status s_fail(char *err, size_t errlen, kp_status st, const char *fmt, const char *a,
                        const char *b)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, fmt, a, b);
    return st;
}

static kp_status s_too_large(char *err, size_t errlen, const char *what, size_t max)
{
    char lim[32];
    snprintf(lim, sizeof(lim), "%zu", max);
    return s_fail(err, errlen, KP_ERR_INVALID_ARG, "secret from %s is larger than %s bytes", what,
                  lim);
}

static kp_status s_read_fd(int fd, size_t max, kp_secret **out, const char *what, char *err,
                           size_t errlen)
{
    kp_secret *s = kp_secret_new(0);
    KP_ENSURE(s != NULL, KP_ERR_NOMEM);
    unsigned char buf[4096];
    kp_status st = KP_OK;
    for (bool done = false; st == KP_OK && !done;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            st = s_fail(err, errlen, KP_ERR_IO, "cannot read secret from %s: %s", what,
                        strerror(errno));
        else if (n == 0)
            done = true;
        else if (kp_secret_len(s) + (size_t)n > max)
            st = s_too_large(err, errlen, what, max);
        else
            st = kp_secret_append(&s, buf, (size_t)n);
    }
    kp_memwipe(buf, sizeof(buf));
    if (st == KP_OK)
        *out = s;
    else
        kp_secret_free(s);
    return st;
}

int kp_secret_source_valid(const char *ref)
{
    if (ref == NULL)
        return 0;
    if (strcmp(ref, "stdin") == 0 || strcmp(ref, "-") == 0)
        return 1;
    if (strncmp(ref, "env:", 4) == 0) {
        const char *n = ref + 4;
        if (*n == '\0' || (*n >= '0' && *n <= '9'))
            return 0;
        for (; *n != '\0'; n++)
            if (!((*n >= 'A' && *n <= 'Z') || (*n >= 'a' && *n <= 'z') ||
                  (*n >= '0' && *n <= '9') || *n == '_'))
                return 0;
        return 1;
    }
    if (strncmp(ref, "file:", 5) == 0)
        return ref[5] != '\0';
    if (strncmp(ref, "fd:", 3) == 0) {
        const char *n = ref + 3;
        if (*n == '\0')
            return 0;
        for (; *n != '\0'; n++)
            if (*n < '0' || *n > '9')
                return 0;
        return 1;
    }
    return 0;
}

kp_status kp_secret_read_source(const char *ref, size_t max, int strip_newline, kp_secret **out,
                                char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    KP_ENSURE(out != NULL, KP_ERR_INVALID_ARG);
    *out = NULL;
    if (!kp_secret_source_valid(ref))
        /* Not echoed: a caller may have passed the secret itself. */
        return s_fail(err, errlen, KP_ERR_INVALID_ARG,
                      "bad secret source%s%s: use env:NAME, file:PATH, fd:N or stdin", "", "");

    kp_secret *s = NULL;
    kp_status st = KP_OK;
    if (strncmp(ref, "env:", 4) == 0) {
        const char *v = secure_getenv(ref + 4);
        if (v == NULL)
            return s_fail(err, errlen, KP_ERR_NOT_FOUND,
                          "secret source %s: environment variable %s is not set", ref, ref + 4);
        size_t len = strlen(v);
        if (len > max)
            return s_too_large(err, errlen, ref, max);
        s = kp_secret_new_copy(v, len);
        if (s == NULL)
            return KP_ERR_NOMEM;
    } else if (strncmp(ref, "file:", 5) == 0) {
        int fd = open(ref + 5, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
            return s_fail(err, errlen, errno == ENOENT ? KP_ERR_NOT_FOUND : KP_ERR_IO,
                          "cannot open secret file %s: %s", ref + 5, strerror(errno));
        st = s_read_fd(fd, max, &s, ref, err, errlen);
        close(fd);
    } else if (strncmp(ref, "fd:", 3) == 0) {
        long fd = strtol(ref + 3, NULL, 10);
        if (fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0)
            return s_fail(err, errlen, KP_ERR_INVALID_ARG, "secret source %s: %s", ref,
                          "not an open file descriptor");
        st = s_read_fd((int)fd, max, &s, ref, err, errlen);
    } else {
        st = s_read_fd(STDIN_FILENO, max, &s, "standard input", err, errlen);
    }
    if (st == KP_OK && strip_newline) {
        size_t len = kp_secret_len(s);
        const unsigned char *d = kp_secret_cdata(s);
        if (len > 0 && d[len - 1] == '\n') {
            len--;
            if (len > 0 && d[len - 1] == '\r')
                len--;
        }
        st = kp_secret_shrink(s, len);
    }
    if (st == KP_OK)
        *out = s;
    else
        kp_secret_free(s);
    return st;
}
