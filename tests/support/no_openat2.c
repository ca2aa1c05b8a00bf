/*
 * LD_PRELOAD shim for the CLI tests: openat2 as a kernel without it (ENOSYS) or a seccomp
 * filter refusing it (EPERM, KP_TEST_OPENAT2=EPERM) answers, so that the file plugin's
 * component-by-component walk is what runs (cli.store_links.no_openat2, .openat2_eperm). Every
 * refused call appends one byte to $KP_TEST_OPENAT2_MARK, so the test knows the shim was hit.
 * Other system calls go to libc's syscall() unchanged.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The build hides symbols by default; this one must interpose libc's. */
__attribute__((visibility("default"))) long syscall(long n, ...);

long syscall(long n, ...)
{
    va_list ap;
    long a[6];
    va_start(ap, n);
    /* x86-64 and aarch64 pass the six as registers: reading unpassed ones is what libc does */
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
#ifdef SYS_openat2
    if (n == SYS_openat2) {
        const char *mark = getenv("KP_TEST_OPENAT2_MARK"), *mode = getenv("KP_TEST_OPENAT2");
        int fd = mark != NULL ? open(mark, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
        if (fd >= 0) {
            (void)!write(fd, "x", 1);
            close(fd);
        }
        errno = mode != NULL && strcmp(mode, "EPERM") == 0 ? EPERM : ENOSYS;
        return -1;
    }
#endif
    long (*real)(long, ...);
    void *sym = dlsym(RTLD_NEXT, "syscall");
    memcpy(&real, &sym, sizeof(real));
    return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}
