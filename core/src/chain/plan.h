/*
 * A plan as planning builds it and apply runs it: actions, then findings nobody can fix by
 * copying. Not installed.
 */
#ifndef KP_CHAIN_PLAN_H
#define KP_CHAIN_PLAN_H

#include <keyplane/keyplane.h>

struct kp_plan {
    kp_action *actions;
    size_t n, cap;
    kp_finding *findings;
    size_t nfind, capfind;
};

#endif
