/*
 * What the kit prints: a line per test as it finishes (ok / FAIL / skip), the closing count, or
 * with --json one JSON object with every result, for CI systems to keep.
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "conf_report.h"

void conf_report_header(const conf_kit *k)
{
    printf("# keyplane-conformance %s (ABI %d.%d): %s\n", CONF_VERSION, KP_ABI_MAJOR, KP_ABI_MINOR,
           k->path);
    if (k->loaded)
        printf("# plugin %s %s, needs ABI %u.%u, capabilities 0x%x\n", k->info->name,
               k->info->version != NULL ? k->info->version : "?", k->info->abi_major,
               k->info->abi_minor, k->info->capabilities);
    if (k->have_iinfo)
        printf("# instance: capabilities 0x%x, wrap_algs 0x%x, unwrap_algs 0x%x, key_bits 0x%x, "
               "export_keyx 0x%x, import_keyx 0x%x, flags 0x%x\n",
               k->iinfo.capabilities, k->iinfo.wrap_algs, k->iinfo.unwrap_algs, k->iinfo.key_bits,
               k->iinfo.export_keyx, k->iinfo.import_keyx, k->iinfo.flags);
    if (k->params.key_prefix != NULL)
        printf("# names made by this run: %s-%s-*\n", k->params.key_prefix, k->run_id);
}

void conf_report_line(const conf_run *r)
{
    const char *name = r->test->name;
    if (r->result == CONF_OK) {
        printf("ok   %s (%.0f ms)\n", name, r->ms);
    } else if (r->result == CONF_SKIP) {
        printf("skip %s: %s\n", name, r->skip);
    } else {
        printf("FAIL %s: %s\n", name, r->nreasons > 0 ? r->reasons[0] : "?");
        for (size_t i = 1; i < r->nreasons; i++)
            printf("     - %s\n", r->reasons[i]);
        if (r->dropped > 0)
            printf("     - and %zu more\n", r->dropped);
    }
    if (r->note[0] != '\0')
        printf("#    %s\n", r->note);
    fflush(stdout);
}

void conf_report_summary(size_t pass, size_t fail, size_t skip)
{
    printf("%zu passed, %zu failed, %zu skipped\n", pass, fail, skip);
}

static void s_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void conf_report_json(const conf_kit *k, const conf_run *runs, size_t n, size_t pass, size_t fail,
                      size_t skip)
{
    static const char *res[] = {"ok", "fail", "skip"};
    FILE *f = stdout;
    fprintf(f, "{\"kit\":\"%s\",\"abi\":\"%d.%d\",\"path\":", CONF_VERSION, KP_ABI_MAJOR,
            KP_ABI_MINOR);
    s_json_str(f, k->path);
    fprintf(f, ",\"plugin\":");
    if (k->info != NULL) {
        fprintf(f, "{\"name\":");
        s_json_str(f, k->info->name);
        fprintf(f, ",\"version\":");
        s_json_str(f, k->info->version);
        fprintf(f, ",\"abi_minor\":%u,\"capabilities\":%u}", k->info->abi_minor,
                k->info->capabilities);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, ",\"run_id\":\"%s\",\"tests\":[", k->run_id);
    for (size_t i = 0; i < n; i++) {
        const conf_run *r = &runs[i];
        fprintf(f, "%s{\"name\":\"%s\",\"result\":\"%s\",\"ms\":%.1f", i > 0 ? "," : "",
                r->test->name, res[r->result], r->ms);
        if (r->result == CONF_SKIP) {
            fprintf(f, ",\"reason\":");
            s_json_str(f, r->skip);
        }
        if (r->result == CONF_FAIL) {
            fprintf(f, ",\"reason\":");
            s_json_str(f, r->nreasons > 0 ? r->reasons[0] : "?");
            fprintf(f, ",\"reasons\":[");
            for (size_t j = 0; j < r->nreasons; j++) {
                fprintf(f, "%s", j > 0 ? "," : "");
                s_json_str(f, r->reasons[j]);
            }
            fprintf(f, "],\"more\":%zu", r->dropped);
        }
        if (r->note[0] != '\0') {
            fprintf(f, ",\"note\":");
            s_json_str(f, r->note);
        }
        fprintf(f, "}");
    }
    fprintf(f, "],\"passed\":%zu,\"failed\":%zu,\"skipped\":%zu}\n", pass, fail, skip);
}
