/*
 * The test functions of the kit, one per test name (conf_tests.c lists them), grouped by area
 * into conf_t_*.c.
 */
#ifndef KEYPLANE_CONF_TESTS_H
#define KEYPLANE_CONF_TESTS_H

#include "conf.h"

/* conf_t_handshake.c */
void conf_t_handshake(conf_run *r);
void conf_t_mandatory(conf_run *r);
/* conf_t_params.c */
void conf_t_params(conf_run *r);
/* conf_t_instance.c */
void conf_t_instance_info(conf_run *r);
void conf_t_check(conf_run *r);
void conf_t_init(conf_run *r);
/* conf_t_buffer.c */
void conf_t_buffer(conf_run *r);
/* conf_t_versions.c */
void conf_t_versions(conf_run *r);
void conf_t_fingerprint(conf_run *r);
/* conf_t_wrap.c */
void conf_t_wrap(conf_run *r);
void conf_t_unwrap_garbage(conf_run *r);
/* conf_t_import.c */
void conf_t_import_fpr(conf_run *r);
/* conf_t_export.c */
void conf_t_export_wrapped(conf_run *r);
void conf_t_export(conf_run *r);
/* conf_t_errors.c */
void conf_t_errors(conf_run *r);
/* conf_t_store.c */
void conf_t_secretstore(conf_run *r);
/* conf_t_state.c */
void conf_t_state(conf_run *r);
/* conf_t_datakey.c */
void conf_t_datakey(conf_run *r);
/* conf_t_objects.c */
void conf_t_objects(conf_run *r);
/* conf_t_cert.c */
void conf_t_cert(conf_run *r);
/* conf_t_threads.c */
void conf_t_threads(conf_run *r);
/* conf_valgrind.c */
void conf_t_secrets_wiped(conf_run *r);
void conf_t_valgrind(conf_run *r);
const char *conf_valgrind_applies(const conf_kit *k);

#endif
