#pragma once
/*
 * jobs: the persisted job history of a daemon (backup, validate and
 * retention jobs). A JSON-lines file, one record per state change (the last
 * record of an id wins), compacted when opened. Jobs found queued or running
 * when the file is opened were cut short by a crash or a restart: they are
 * marked "interrupted" and the caller decides whether to retry them.
 */
#include <stddef.h>
#include <stdint.h>

#define TM_JOB_KIND_MAX 16
#define TM_JOB_NAME_MAX 72

struct tm_job {
        uint64_t id;                /* assigned by tm_jobs_add, from 1 */
        char kind[TM_JOB_KIND_MAX]; /* "backup", "validate" */
        char component[TM_JOB_NAME_MAX];
        char strategy[TM_JOB_KIND_MAX];
        char state[TM_JOB_KIND_MAX];    /* queued running succeeded partial failed interrupted */
        char trigger[TM_JOB_KIND_MAX];  /* api schedule retry */
        char target[TM_JOB_NAME_MAX];   /* validate: the snapshot id */
        char snapshot[TM_JOB_NAME_MAX]; /* backup: the snapshot it made */
        char error[256];
        int64_t created, started, finished; /* ns; 0 = not yet */
        uint64_t retry_of;                  /* the interrupted job this retries */
        uint64_t retried_by;                /* set on an interrupted job once retried */
        int attempt;                        /* 1, 2, ... */
        uint64_t files_done, bytes_done;    /* progress (not persisted while running) */
        char *result_json; /* a JSON object (owned; tm_job_dispose frees) or NULL */
};

typedef struct tm_jobs tm_jobs;

/**
 * tm_jobs_open() - load (or create) the history at path, mark jobs left
 * queued or running as interrupted, and compact the file. Returns 0 and
 * *ret (caller closes), -EBADMSG (a line that is not a job record, named in
 * the log), -errno.
 */
int tm_jobs_open(const char *path, tm_jobs **ret);
/* Close; NULL-safe. */
void tm_jobs_close(tm_jobs *j);
/**
 * tm_jobs_add() - record a new job (id and created are assigned; state
 * defaults to "queued"); *job gets the id. Returns 0 or -errno (the file
 * could not be written). Thread-safe, like every function here.
 */
int tm_jobs_add(tm_jobs *j, struct tm_job *job);
/* Replace a job's record (by id) and persist it. Returns 0, -ENOENT, -errno. */
int tm_jobs_update(tm_jobs *j, const struct tm_job *job);
/* Progress only, in memory. Returns 0 or -ENOENT. */
int tm_jobs_progress(tm_jobs *j, uint64_t id, uint64_t files_done, uint64_t bytes_done);
/* A copy of one job (dispose with tm_job_dispose). Returns 0 or -ENOENT. */
int tm_jobs_get(tm_jobs *j, uint64_t id, struct tm_job *ret);
/* Copies of all jobs, oldest first (free with tm_job_array_free). */
int tm_jobs_list(tm_jobs *j, struct tm_job **ret, size_t *ret_n);
void tm_job_dispose(struct tm_job *job);
void tm_job_array_free(struct tm_job *a, size_t n);
/* Is the state one of the final ones (succeeded partial failed interrupted)? */
int tm_job_state_final(const char *state);
