#pragma once
/*
 * runbook: runbooks declared in the configuration as ordered steps, run by
 * tidemark-monitord as jobs. [runbook.NAME] has description = ..., and one
 * "step = ..." line per step, in order:
 *
 *   step = http METHOD SERVICE PATH [JSON BODY]   call a [service.*]; ok on 2xx
 *   step = wait_jobs [TIMEOUT]       wait for the jobs the last http step
 *                                    started (job_id / jobs[].job_id) at
 *                                    SERVICE/api/v1/jobs/ID; ok if all succeed
 *   step = command SHELL COMMAND     /bin/sh -c; ok on exit 0 (output kept)
 *   step = wait DURATION             sleep
 *   step = check NAME                run [check.NAME]; ok if it passes
 *
 * {key} in a step is replaced by the context's value for key (e.g.
 * {incident_id}); context values are restricted to [A-Za-z0-9_.:@/-] so
 * they cannot change a command's meaning. The run stops at the first
 * failed step unless continue_on_error = on.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/probe.h>

enum tm_runbook_step_type {
        TM_RUNBOOK_HTTP,
        TM_RUNBOOK_WAIT_JOBS,
        TM_RUNBOOK_COMMAND,
        TM_RUNBOOK_WAIT,
        TM_RUNBOOK_CHECK
};

struct tm_runbook_step {
        enum tm_runbook_step_type type;
        char *text; /* as written, for the log */
        char *method, *path, *body;
        const struct tm_probe_service *service;
        char *command;
        const struct tm_probe_check *check;
        int64_t duration_ns; /* wait; wait_jobs timeout */
};

struct tm_runbook {
        char *name, *description;
        struct tm_runbook_step *steps;
        size_t n_steps;
        int continue_on_error;
        int64_t command_timeout_ns;
};

struct tm_runbooks {
        struct tm_runbook *rb;
        size_t n;
};

/**
 * tm_runbooks_load() - read every [runbook.*] of cfg (services and checks
 * from pc). Returns 0 and *ret (free with tm_runbooks_free), -EINVAL (err
 * "FILE:LINE: reason"), -ENOMEM.
 */
int tm_runbooks_load(const struct tm_config *cfg, const struct tm_probe_config *pc,
                     struct tm_runbooks **ret, char *err, size_t errlen);
void tm_runbooks_free(struct tm_runbooks *rbs);
const struct tm_runbook *tm_runbooks_find(const struct tm_runbooks *rbs, const char *name);
/* A runbook's description and steps as JSON (new reference). */
json_t *tm_runbook_json(const struct tm_runbook *rb);

/* Called after each step with its log entry (borrowed). */
typedef void (*tm_runbook_step_fn)(void *ud, const json_t *entry);

/**
 * tm_runbook_validate_context() - 0 when every value of context (an object
 * of strings and numbers, or NULL) is allowed, else -EINVAL with msg set.
 */
int tm_runbook_validate_context(const json_t *context, char *msg, size_t msglen);
/**
 * tm_runbook_run() - run rb with context. *ret_log gets the array of step
 * entries (caller decrefs). Returns 0 when every step passed, -EIO when one
 * failed, -ECANCELED when *stop became non-zero, -EINVAL (bad context),
 * -ENOMEM. Blocking; thread-safe.
 */
int tm_runbook_run(const struct tm_runbook *rb, const struct tm_config *cfg, const json_t *context,
                   tm_runbook_step_fn fn, void *ud, const volatile int *stop, json_t **ret_log);
