/*
 * objects (ABI 1.6, KP_INST_OBJECTS). An object appears only when its write commits, whole: not
 * before, not after an abandoned write, never over another object. STAT gives its size, a tag
 * and the metadata it was made with; READ gives any range of its bytes, short only at the end,
 * nothing past it, and nothing of another version (a tag not its own: KP_ERR_CONFLICT). Two
 * sizes are written: a small one and one past 8 MiB (where a store such as
 * S3 switches to a multipart upload), in writes of odd sizes.
 */
#include <stdlib.h>
#include <string.h>

#include "conf_tests.h"

#define S_BIG (9u * 1024 * 1024 + 4321)

static const kp_meta s_meta[] = {{"purpose", "conformance"}, {"x-amz-iv", "AAEC/w=="}};

static void s_where(conf_run *r, const char *tag, char *out, size_t len)
{
    char name[CONF_NAME_LEN];
    conf_name(r->kit, tag, name);
    snprintf(out, len, "%s%s", r->kit->params.objects_at, name);
}

/* A deterministic pattern, so every range can be checked. */
static void s_fill(uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 131 + (i >> 11));
}

/* Writes body/n to where in odd-sized writes; commits or abandons. */
static kp_status s_write(conf_run *r, const char *where, const uint8_t *body, size_t n, bool commit)
{
    kp_object_writer *w = NULL;
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ob_create, KP_FN_OB_CREATE)(r->inst, where, s_meta, 2, &w);
    if (st != KP_OK)
        return st;
    if (w == NULL) {
        conf_fail(r, "OB_CREATE of %s: KP_OK without a writer", where);
        return KP_ERR_PLUGIN;
    }
    static const size_t sizes[] = {1, 4095, 65536, 3 * 1024 * 1024 + 7};
    for (size_t off = 0, i = 0; st == KP_OK && off < n; i++) {
        size_t k = sizes[i % 4] < n - off ? sizes[i % 4] : n - off;
        st = CONF_FN(r->kit, ob_write, KP_FN_OB_WRITE)(r->inst, w, body + off, k);
        off += k;
    }
    if (st != KP_OK) {
        conf_fail(r, "OB_WRITE to %s: %s: %s", where, conf_status_name(st), conf_reason());
        commit = false;
    }
    kp_status cs = CONF_FN(r->kit, ob_close, KP_FN_OB_CLOSE)(r->inst, w, commit ? 1 : 0);
    return st != KP_OK ? st : cs;
}

typedef struct s_seen {
    int calls;
    bool purpose, iv;
} s_seen;

static kp_status s_visit(void *arg, const kp_meta *meta, size_t nmeta)
{
    s_seen *s = arg;
    s->calls++;
    for (size_t i = 0; i < nmeta; i++) {
        s->purpose |=
            strcmp(meta[i].key, "purpose") == 0 && strcmp(meta[i].value, "conformance") == 0;
        s->iv |= strcmp(meta[i].key, "x-amz-iv") == 0 && strcmp(meta[i].value, "AAEC/w==") == 0;
    }
    return KP_OK;
}

/* READ of [off, off+want) must give exactly the pattern's bytes there (fewer only at the end). */
static void s_range(conf_run *r, const char *where, const char *tag, const uint8_t *body,
                    size_t size, size_t off, size_t want)
{
    uint8_t *buf = malloc(want > 0 ? want : 1);
    size_t len = want;
    if (buf == NULL)
        return;
    conf_err_clear();
    kp_status st =
        CONF_FN(r->kit, ob_read, KP_FN_OB_READ)(r->inst, where, tag, (uint64_t)off, buf, &len);
    size_t expect = off >= size ? 0 : (size - off < want ? size - off : want);
    if (st != KP_OK)
        conf_fail(r, "OB_READ of %zu bytes at %zu of %s: %s: %s", want, off, where,
                  conf_status_name(st), conf_reason());
    else if (len != expect)
        conf_fail(r, "OB_READ of %zu bytes at %zu of a %zu-byte object gave %zu, want %zu", want,
                  off, size, len, expect);
    else if (len > 0 && memcmp(buf, body + off, len) != 0)
        conf_fail(r, "OB_READ at %zu gave other bytes than were written", off);
    free(buf);
}

/* READ with a tag that is not the object's (one character of STAT's changed) must refuse with
 * KP_ERR_CONFLICT: a reader never gets bytes of another version mixed into its stream. */
static void s_stale(conf_run *r, const char *where, const char *tag)
{
    char other[sizeof(((kp_object_info *)0)->tag)];
    size_t n = strnlen(tag, sizeof(other) - 1);
    if (n == 0)
        return; /* no tag: nothing to hold a read to */
    memcpy(other, tag, n);
    other[n] = '\0';
    size_t at = n / 2;
    other[at] = other[at] == '0' ? '1' : '0';
    uint8_t buf[16];
    size_t len = sizeof(buf);
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ob_read, KP_FN_OB_READ)(r->inst, where, other, 0, buf, &len);
    if (st != KP_ERR_CONFLICT)
        conf_fail(r, "OB_READ of %s with a tag not its own: %s, want KP_ERR_CONFLICT", where,
                  conf_status_name(st));
}

static void s_one(conf_run *r, const char *tag, const uint8_t *body, size_t size)
{
    char where[1024];
    s_where(r, tag, where, sizeof(where));
    kp_object_info info;
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    conf_err_clear();
    kp_status st = CONF_FN(r->kit, ob_stat, KP_FN_OB_STAT)(r->inst, where, &info, NULL, NULL);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "OB_STAT of an absent %s: %s, want KP_ERR_NOT_FOUND", where,
                  conf_status_name(st));
    /* abandoned: nothing there */
    if ((st = s_write(r, where, body, size < 4096 ? size : 4096, false)) != KP_OK)
        conf_fail(r, "an abandoned write of %s: %s: %s", where, conf_status_name(st),
                  conf_reason());
    st = CONF_FN(r->kit, ob_stat, KP_FN_OB_STAT)(r->inst, where, &info, NULL, NULL);
    if (st != KP_ERR_NOT_FOUND)
        conf_fail(r, "OB_STAT after an abandoned write of %s: %s, want KP_ERR_NOT_FOUND", where,
                  conf_status_name(st));
    if ((st = s_write(r, where, body, size, true)) != KP_OK) {
        conf_fail(r, "writing %zu bytes to %s: %s: %s", size, where, conf_status_name(st),
                  conf_reason());
        return;
    }
    s_seen seen = {0};
    st = CONF_FN(r->kit, ob_stat, KP_FN_OB_STAT)(r->inst, where, &info, s_visit, &seen);
    if (st != KP_OK) {
        conf_fail(r, "OB_STAT of %s: %s: %s", where, conf_status_name(st), conf_reason());
        return;
    }
    if (info.size != size)
        conf_fail(r, "OB_STAT of %s: size %llu, want %zu", where, (unsigned long long)info.size,
                  size);
    if (strnlen(info.tag, sizeof(info.tag)) == sizeof(info.tag))
        conf_fail(r, "OB_STAT of %s: the tag is not NUL-terminated", where);
    if (seen.calls != 1 || !seen.purpose || !seen.iv)
        conf_fail(r, "OB_STAT of %s: the metadata visited %d times, pairs %s", where, seen.calls,
                  seen.purpose && seen.iv ? "right" : "missing or changed");
    s_range(r, where, info.tag, body, size, 0, size);
    s_range(r, where, info.tag, body, size, size / 3, size / 2 + 1);
    s_range(r, where, info.tag, body, size, size - 1, 4096);
    s_range(r, where, info.tag, body, size, size, 16);
    s_range(r, where, NULL, body, size, 1, 100);
    s_stale(r, where, info.tag);
    /* never over another object */
    st = s_write(r, where, body, 10, true);
    if (st != KP_ERR_EXISTS)
        conf_fail(r, "a second object at %s: %s, want KP_ERR_EXISTS", where, conf_status_name(st));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    if (CONF_FN(r->kit, ob_stat, KP_FN_OB_STAT)(r->inst, where, &info, NULL, NULL) != KP_OK ||
        info.size != size)
        conf_fail(r, "%s changed after a refused second write", where);
}

void conf_t_objects(conf_run *r)
{
    uint8_t *body = malloc(S_BIG);
    if (body == NULL) {
        conf_fail(r, "out of memory");
        return;
    }
    s_fill(body, S_BIG);
    s_one(r, "obj-small", body, 70000);
    s_one(r, "obj-big", body, S_BIG);
    free(body);
}
