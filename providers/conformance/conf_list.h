/*
 * Listings collected from KS_LIST and SS_LIST visitors, checked as they arrive (the visitor's
 * info must be a full kp_key_info with terminated strings), for the tests to inspect in order.
 */
#ifndef KEYPLANE_CONF_LIST_H
#define KEYPLANE_CONF_LIST_H

#include "conf.h"

typedef struct conf_entry {
    char name[KP_NAME_MAX];
    uint32_t version;
    char fpr[KPK_FPR_HEX];
    uint64_t size; /* secrets */
} conf_entry;

typedef struct conf_list {
    conf_entry *e;
    size_t n, cap;
    conf_run *r;
    bool bad; /* a visitor call was malformed (reported once) */
} conf_list;

kp_status conf_list_keys(conf_run *r, const char *name, conf_list *l);
kp_status conf_list_secrets(conf_run *r, const char *name, conf_list *l);
/** Fails the run when some name's versions are not ascending in listing order. */
void conf_list_check_ascending(conf_run *r, const conf_list *l, const char *call);
void conf_list_free(conf_list *l);

#endif
