/*
 * The kit's output: text lines (conf_report_line as each test ends) or one JSON object.
 */
#ifndef KEYPLANE_CONF_REPORT_H
#define KEYPLANE_CONF_REPORT_H

#include "conf.h"

void conf_report_header(const conf_kit *k);
void conf_report_line(const conf_run *r);
void conf_report_summary(size_t pass, size_t fail, size_t skip);
void conf_report_json(const conf_kit *k, const conf_run *runs, size_t n, size_t pass, size_t fail,
                      size_t skip);

#endif
