/*
 * The leaves of an XML answer (S3 listings and errors, STS credentials), read with expat: each
 * element that holds text is handed over with its path from the root. AWS's XML answers are
 * shallow records, so a path and a text is all a caller needs; expat does the parsing, entities
 * and encodings, and refuses what is not well-formed; a DOCTYPE is refused outright.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <expat.h>
#include <openssl/crypto.h>

#include "aws_internal.h"

#define S_DEPTH_MAX 8
#define S_PATH_MAX 512
#define S_TEXT_MAX (64 * 1024)

typedef struct s_walk {
    XML_Parser p;
    kp_aws_xml_leaf_fn *leaf;
    void *arg;
    char path[S_PATH_MAX];
    size_t ends[S_DEPTH_MAX + 1]; /* path length before each level's name */
    int depth;
    char *text;
    size_t tlen;
    bool children; /* the open element has child elements: its text is not a leaf's */
    kp_status st;
    char why[128];
} s_walk;

static void s_stop(s_walk *w, kp_status st, const char *why)
{
    if (w->st == KP_OK) {
        w->st = st;
        snprintf(w->why, sizeof(w->why), "%s", why);
    }
    XML_StopParser(w->p, XML_FALSE);
}

/* A namespace-free local name: "s3:Key" and "Key" are the same leaf. */
static const char *s_local(const char *name)
{
    const char *c = strrchr(name, ':');
    return c != NULL ? c + 1 : name;
}

static void XMLCALL s_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    s_walk *w = ud;
    if (w->st != KP_OK)
        return;
    if (w->depth >= S_DEPTH_MAX) {
        s_stop(w, KP_ERR_BACKEND, "XML nested too deep");
        return;
    }
    const char *local = s_local(name);
    size_t at = w->depth == 0 ? 0 : w->ends[w->depth];
    size_t need = strlen(local) + (w->depth > 0 ? 1 : 0);
    if (at + need >= sizeof(w->path)) {
        s_stop(w, KP_ERR_BACKEND, "XML element path too long");
        return;
    }
    w->ends[w->depth] = at;
    snprintf(w->path + at, sizeof(w->path) - at, "%s%s", w->depth > 0 ? "/" : "", local);
    w->depth++;
    w->ends[w->depth] = at + need;
    w->tlen = 0;
    w->children = false;
}

static void XMLCALL s_end(void *ud, const XML_Char *name)
{
    (void)name;
    s_walk *w = ud;
    if (w->st != KP_OK)
        return;
    if (!w->children) {
        w->text[w->tlen] = '\0';
        kp_status st = w->leaf(w->arg, w->path, w->text);
        if (st != KP_OK) {
            w->st = st;
            XML_StopParser(w->p, XML_FALSE);
            return;
        }
    }
    w->depth--;
    w->path[w->ends[w->depth]] = '\0';
    w->tlen = 0;
    w->children = true; /* the parent has at least this child */
}

static void XMLCALL s_chars(void *ud, const XML_Char *s, int len)
{
    s_walk *w = ud;
    if (w->st != KP_OK || len <= 0)
        return;
    if (w->tlen + (size_t)len > S_TEXT_MAX) {
        s_stop(w, KP_ERR_BACKEND, "XML text over 64 KiB");
        return;
    }
    memcpy(w->text + w->tlen, s, (size_t)len);
    w->tlen += (size_t)len;
}

/* AWS never sends a document type; one in an answer is refused before any entity is declared. */
static void XMLCALL s_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                              const XML_Char *pubid, int internal)
{
    (void)name, (void)sysid, (void)pubid, (void)internal;
    s_stop(ud, KP_ERR_BACKEND, "a document type declaration");
}

kp_status kp_aws_xml_walk(const uint8_t *body, size_t len, kp_aws_xml_leaf_fn *leaf, void *arg,
                          char *err, size_t errlen)
{
    s_walk w;
    memset(&w, 0, sizeof(w));
    w.leaf = leaf;
    w.arg = arg;
    if (len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "XML answer too large");
        return KP_ERR_BACKEND;
    }
    w.text = malloc(S_TEXT_MAX + 1);
    w.p = XML_ParserCreate("UTF-8");
    if (w.text == NULL || w.p == NULL) {
        free(w.text);
        if (w.p != NULL)
            XML_ParserFree(w.p);
        snprintf(err, errlen, "out of memory");
        return KP_ERR_NOMEM;
    }
    XML_SetUserData(w.p, &w);
    XML_SetElementHandler(w.p, s_start, s_end);
    XML_SetCharacterDataHandler(w.p, s_chars);
    XML_SetStartDoctypeDeclHandler(w.p, s_doctype);
    enum XML_Status xs = XML_Parse(w.p, (const char *)body, (int)len, XML_TRUE);
    kp_status st = w.st;
    if (st == KP_OK && xs != XML_STATUS_OK) {
        st = KP_ERR_BACKEND;
        snprintf(w.why, sizeof(w.why), "%s at line %lu", XML_ErrorString(XML_GetErrorCode(w.p)),
                 (unsigned long)XML_GetCurrentLineNumber(w.p));
    }
    if (st != KP_OK && w.why[0] != '\0')
        snprintf(err, errlen, "malformed XML answer: %s", w.why);
    XML_ParserFree(w.p);
    OPENSSL_cleanse(w.text, S_TEXT_MAX + 1); /* STS answers hold secret keys */
    free(w.text);
    return st;
}
