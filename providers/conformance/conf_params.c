/*
 * The params file: the instance's params as a policy's instance block would give them, typed by
 * the plugin's own PLUGIN_PARAMS descriptors the way the core types them (SECRET references
 * resolved into the kit's secrets, PATH made absolute relative to the file), plus the kit's own
 * settings (key_prefix, datakey_key). Mistakes in the file are the user's, not the plugin's: they
 * stop the kit with exit status 2.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include <keyplane/kit/params.h>

#include "conf.h"

static bool s_err(char *err, size_t len, const char *fmt, ...) KP_PRINTF_(3, 4);

static bool s_err(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return false;
}

static const char *s_scalar(yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static char *s_abs(const char *dir, const char *v)
{
    char *p = NULL;
    if (v[0] == '/')
        return strdup(v);
    return asprintf(&p, "%s/%s", dir, v) < 0 ? NULL : p;
}

/* A SECRET reference into a kit secret; file: references are relative to the params file. */
static bool s_secret(const char *dir, const char *name, const char *ref, kp_param *p, char *err,
                     size_t len)
{
    if (strncmp(ref, "env:", 4) == 0) {
        const char *v = getenv(ref + 4);
        if (v == NULL)
            return s_err(err, len, "param '%s': environment variable %s is not set", name, ref + 4);
        p->secret = conf_secret_new(v, strlen(v));
        p->str = strdup(ref);
    } else if (strncmp(ref, "file:", 5) == 0 && ref[5] != '\0') {
        char *path = s_abs(dir, ref + 5);
        int fd = path != NULL ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        int e = errno;
        if (fd >= 0) {
            unsigned char buf[65536];
            size_t n = 0;
            ssize_t r;
            while (n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) > 0)
                n += (size_t)r;
            close(fd);
            if (n > 0 && buf[n - 1] == '\n')
                n -= n > 1 && buf[n - 2] == '\r' ? 2 : 1;
            p->secret = conf_secret_new(buf, n);
            explicit_bzero(buf, sizeof(buf));
            if (asprintf((char **)&p->str, "file:%s", path) < 0)
                p->str = NULL;
        }
        free(path);
        if (fd < 0)
            return s_err(err, len, "param '%s': cannot open %s: %s", name, ref + 5, strerror(e));
    } else {
        /* not echoed: it may be the secret itself */
        return s_err(err, len, "param '%s' takes a reference (env:NAME or file:PATH)", name);
    }
    if (p->secret == NULL || p->str == NULL)
        return s_err(err, len, "out of memory");
    conf_forbid_text(name, conf_secret_bytes(p->secret), conf_secret_size(p->secret));
    return true;
}

static bool s_value(const char *dir, const kp_param_desc *d, const char *v, kp_param *p, char *err,
                    size_t len)
{
    p->name = d->name;
    p->type = d->type;
    switch (d->type) {
    case KP_PARAM_INT: {
        char *end = NULL;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || isspace((unsigned char)v[0]))
            return s_err(err, len, "param '%s' must be an integer", d->name);
        if (d->min <= d->max && (n < d->min || n > d->max))
            return s_err(err, len, "param '%s' must be within %lld..%lld", d->name,
                         (long long)d->min, (long long)d->max);
        p->num = n;
        p->str = strdup(v);
        break;
    }
    case KP_PARAM_BOOL: {
        bool b = false;
        if (!kpk_param_bool(v, &b))
            return s_err(err, len, "param '%s' must be true or false", d->name);
        p->num = b;
        p->str = strdup(b ? "true" : "false"); /* as the core hands booleans to a plugin */
        break;
    }
    case KP_PARAM_SECRET:
        return s_secret(dir, d->name, v, p, err, len);
    case KP_PARAM_PATH:
        if (v[0] == '\0')
            return s_err(err, len, "param '%s' must be a non-empty path", d->name);
        p->str = s_abs(dir, v);
        break;
    default: /* STRING, and types the params test reports as unknown */
        p->str = strdup(v);
        break;
    }
    return p->str != NULL || s_err(err, len, "out of memory");
}

static bool s_params(conf_kit *k, yaml_document_t *doc, yaml_node_t *map, const char *dir,
                     const kp_param_desc *descs, char *err, size_t len)
{
    if (map->type != YAML_MAPPING_NODE)
        return s_err(err, len, "'params' must be a mapping");
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    conf_params *P = &k->params;
    P->list = calloc(n + 1, sizeof(*P->list));
    if (P->list == NULL)
        return s_err(err, len, "out of memory");
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
         pr++) {
        const char *key = s_scalar(yaml_document_get_node(doc, pr->key));
        yaml_node_t *vn = yaml_document_get_node(doc, pr->value);
        const char *v = s_scalar(vn);
        if (key == NULL || strncmp(key, "x-", 2) == 0)
            continue;
        const kp_param_desc *d = kpk_param_desc(descs, key);
        if (d == NULL) {
            char acc[256];
            kpk_param_names(descs, acc, sizeof(acc));
            return s_err(err, len, "unknown param '%.64s' for plugin '%s' (accepted: %s)", key,
                         k->info->name, acc);
        }
        if (v == NULL || (vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                          (v[0] == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0)))
            return s_err(err, len, "param '%s' needs one value", key);
        if (!s_value(dir, d, v, &P->list[P->n], err, len))
            return false;
        P->n++;
    }
    return true;
}

static bool s_required(conf_kit *k, const kp_param_desc *descs, char *err, size_t len)
{
    for (const kp_param_desc *d = descs; d != NULL && d->name != NULL; d++)
        if ((d->flags & KP_PARAM_REQUIRED) && kp_param_find(k->params.list, d->name) == NULL)
            return s_err(err, len, "the params file lacks the required param '%s' (%s)", d->name,
                         d->help != NULL ? d->help : "");
    return true;
}

static bool s_prefix_ok(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 24 || !isalnum((unsigned char)v[0]))
        return false;
    for (; *v != '\0'; v++)
        if (!isalnum((unsigned char)*v) && *v != '-')
            return false;
    return true;
}

static bool s_document(conf_kit *k, yaml_document_t *doc, const char *dir,
                       const kp_param_desc *descs, char *err, size_t len)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (root == NULL)
        return true; /* an empty file: no params */
    if (root->type != YAML_MAPPING_NODE)
        return s_err(err, len, "the params file must be a mapping");
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const char *key = s_scalar(yaml_document_get_node(doc, pr->key));
        yaml_node_t *vn = yaml_document_get_node(doc, pr->value);
        if (key == NULL || strncmp(key, "x-", 2) == 0)
            continue;
        if (strcmp(key, "params") == 0) {
            if (!s_params(k, doc, vn, dir, descs, err, len))
                return false;
        } else if (strcmp(key, "key_prefix") == 0) {
            const char *v = s_scalar(vn);
            if (v == NULL || !s_prefix_ok(v))
                return s_err(err, len,
                             "key_prefix must be 1-24 letters, digits or '-', "
                             "starting with a letter or digit");
            free(k->params.key_prefix);
            k->params.key_prefix = strdup(v);
        } else if (strcmp(key, "datakey_key") == 0) {
            const char *v = s_scalar(vn);
            if (v == NULL || v[0] == '\0')
                return s_err(err, len, "datakey_key must be a key id");
            free(k->params.datakey_key);
            k->params.datakey_key = strdup(v);
        } else if (strcmp(key, "objects_at") == 0) {
            const char *v = s_scalar(vn);
            if (v == NULL || v[0] == '\0')
                return s_err(err, len, "objects_at must be a location prefix (s3://BUCKET/DIR/)");
            free(k->params.objects_at);
            k->params.objects_at = strdup(v);
        } else {
            return s_err(err, len, "unknown key '%s' (params, key_prefix, datakey_key, objects_at)",
                         key);
        }
    }
    return true;
}

bool conf_params_load(conf_kit *k, const kp_param_desc *descs, char *err, size_t len)
{
    bool ok = false;
    if (k->params_path != NULL) {
        FILE *f = fopen(k->params_path, "rb");
        if (f == NULL)
            return s_err(err, len, "cannot open %s: %s", k->params_path, strerror(errno));
        char *abs = realpath(k->params_path, NULL);
        char *slash = abs != NULL ? strrchr(abs, '/') : NULL;
        if (slash != NULL)
            *slash = '\0';
        const char *dir = slash == abs ? "/" : abs;
        yaml_parser_t parser;
        yaml_document_t doc;
        yaml_parser_initialize(&parser);
        yaml_parser_set_input_file(&parser, f);
        if (!yaml_parser_load(&parser, &doc)) {
            s_err(err, len, "%s:%zu: %s", k->params_path, parser.problem_mark.line + 1,
                  parser.problem != NULL ? parser.problem : "YAML error");
        } else {
            ok = abs != NULL ? s_document(k, &doc, dir, descs, err, len)
                             : s_err(err, len, "cannot resolve %s", k->params_path);
            yaml_document_delete(&doc);
        }
        yaml_parser_delete(&parser);
        fclose(f);
        free(abs);
    } else {
        ok = true;
    }
    if (ok && k->params.list == NULL && (k->params.list = calloc(1, sizeof(kp_param))) == NULL)
        ok = s_err(err, len, "out of memory");
    if (ok && k->params.key_prefix == NULL && (k->params.key_prefix = strdup("kt")) == NULL)
        ok = s_err(err, len, "out of memory");
    return ok && s_required(k, descs, err, len);
}

void conf_params_free(conf_params *P)
{
    for (size_t i = 0; P->list != NULL && i < P->n; i++) {
        free((char *)P->list[i].str);
        conf_secret_free((kp_secret *)P->list[i].secret);
    }
    free(P->list);
    free(P->key_prefix);
    free(P->datakey_key);
    free(P->objects_at);
    memset(P, 0, sizeof(*P));
}
