/*
 * jobs: the job history. Everything lives in memory (an array in id order)
 * and every change appends one JSON line, fsynced, so the file is a log
 * replayed at open. Progress counters change four times a second and are
 * not worth a write: they stay in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <tidemark/core.h>
#include <tidemark/jobs.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#define JOBS_FILE_MAX (512u * 1024 * 1024)

/*
 * Two locks: `lock` guards the table and is held only for memory work;
 * `wlock` orders the appends to the file, whose fdatasync can take tens of
 * milliseconds. Readers (GET /api/v1/jobs, /backups/status) then never wait
 * on a disk flush (bench-load.sh measured p50 38 ms before). A writer takes
 * wlock, then lock briefly; the file and the table see changes in the same
 * order.
 */
struct tm_jobs {
        pthread_mutex_t lock;
        pthread_mutex_t wlock;
        char *path;
        int fd;
        struct tm_job *a;
        size_t n, cap;
        uint64_t next_id;
};

int tm_job_state_final(const char *s)
{
        return !strcmp(s, "succeeded") || !strcmp(s, "partial") || !strcmp(s, "failed") ||
               !strcmp(s, "interrupted");
}

void tm_job_dispose(struct tm_job *job)
{
        if (!job)
                return;
        free(job->result_json);
        job->result_json = NULL;
}

void tm_job_array_free(struct tm_job *a, size_t n)
{
        for (size_t i = 0; a && i < n; i++)
                tm_job_dispose(&a[i]);
        free(a);
}

static int job_copy(const struct tm_job *src, struct tm_job *dst)
{
        *dst = *src;
        dst->result_json = NULL;
        if (src->result_json) {
                dst->result_json = tm_strdup(src->result_json);
                if (!dst->result_json)
                        return -ENOMEM;
        }
        return 0;
}

static json_t *job_to_json(const struct tm_job *j)
{
        json_t *o =
                json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, "
                          "s:I, s:i}",
                          "id", (json_int_t)j->id, "kind", j->kind, "component", j->component,
                          "strategy", j->strategy, "state", j->state, "trigger", j->trigger,
                          "target", j->target, "snapshot", j->snapshot, "error", j->error,
                          "created", (json_int_t)j->created, "started", (json_int_t)j->started,
                          "finished", (json_int_t)j->finished, "retry_of", (json_int_t)j->retry_of,
                          "retried_by", (json_int_t)j->retried_by, "attempt", j->attempt);

        if (o && j->result_json) {
                json_t *r = json_loads(j->result_json, 0, NULL);

                if (r)
                        json_object_set_new(o, "result", r);
        }
        return o;
}

static void copy_str(char *dst, size_t n, json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));

        snprintf(dst, n, "%s", s ? s : "");
}

static int job_from_json(json_t *o, struct tm_job *j)
{
        json_t *res;

        memset(j, 0, sizeof(*j));
        if (!json_is_integer(json_object_get(o, "id")) ||
            json_integer_value(json_object_get(o, "id")) < 1 ||
            !json_is_string(json_object_get(o, "state")))
                return -EBADMSG;
        j->id = (uint64_t)json_integer_value(json_object_get(o, "id"));
        copy_str(j->kind, sizeof(j->kind), o, "kind");
        copy_str(j->component, sizeof(j->component), o, "component");
        copy_str(j->strategy, sizeof(j->strategy), o, "strategy");
        copy_str(j->state, sizeof(j->state), o, "state");
        copy_str(j->trigger, sizeof(j->trigger), o, "trigger");
        copy_str(j->target, sizeof(j->target), o, "target");
        copy_str(j->snapshot, sizeof(j->snapshot), o, "snapshot");
        copy_str(j->error, sizeof(j->error), o, "error");
        j->created = json_integer_value(json_object_get(o, "created"));
        j->started = json_integer_value(json_object_get(o, "started"));
        j->finished = json_integer_value(json_object_get(o, "finished"));
        j->retry_of = (uint64_t)json_integer_value(json_object_get(o, "retry_of"));
        j->retried_by = (uint64_t)json_integer_value(json_object_get(o, "retried_by"));
        j->attempt = (int)json_integer_value(json_object_get(o, "attempt"));
        res = json_object_get(o, "result");
        if (res) {
                j->result_json = json_dumps(res, JSON_COMPACT);
                if (!j->result_json)
                        return -ENOMEM;
        }
        return 0;
}

/* Append one record; called with wlock held (at open: nothing else runs). */
static int persist(tm_jobs *js, const struct tm_job *j)
{
        json_t *o = job_to_json(j);
        char *s = NULL;
        size_t n;
        int r = 0;

        if (!o)
                return -ENOMEM;
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        n = strlen(s);
        s[n] = '\n';
        if (write(js->fd, s, n + 1) != (ssize_t)(n + 1) || fdatasync(js->fd) < 0)
                r = tm_log_errno(TM_LOG_ERR, errno ? -errno : -EIO, "cannot write '%s'", js->path);
        free(s);
        return r;
}

static struct tm_job *find(tm_jobs *js, uint64_t id)
{
        /* ids are assigned in order and never removed: binary search */
        size_t lo = 0, hi = js->n;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;

                if (js->a[mid].id == id)
                        return &js->a[mid];
                if (js->a[mid].id < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

/* Insert or replace (taking src's result_json); keeps the array sorted. */
static int put(tm_jobs *js, struct tm_job *src)
{
        struct tm_job *cur = find(js, src->id);
        size_t i;

        if (cur) {
                tm_job_dispose(cur);
                *cur = *src;
                src->result_json = NULL;
                return 0;
        }
        if (js->n == js->cap) {
                size_t cap = js->cap ? js->cap * 2 : 64;
                struct tm_job *na = realloc(js->a, cap * sizeof(*na));

                if (!na)
                        return -ENOMEM;
                js->a = na;
                js->cap = cap;
        }
        i = js->n;
        while (i > 0 && js->a[i - 1].id > src->id)
                i--;
        memmove(&js->a[i + 1], &js->a[i], (js->n - i) * sizeof(*js->a));
        js->a[i] = *src;
        src->result_json = NULL;
        js->n++;
        if (src->id >= js->next_id)
                js->next_id = src->id + 1;
        return 0;
}

/* Rewrite the file with one line per job (temporary file + rename). */
static int compact(tm_jobs *js)
{
        char tmp[4096];
        int fd = -1, r = 0;

        snprintf(tmp, sizeof(tmp), "%s.tmp", js->path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return tm_log_errno(TM_LOG_ERR, -errno, "cannot create '%s'", tmp);
        {
                int keep = js->fd;

                js->fd = fd;
                for (size_t i = 0; i < js->n && r >= 0; i++)
                        r = persist(js, &js->a[i]);
                js->fd = keep;
        }
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r >= 0 && rename(tmp, js->path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return 0;
}

int tm_jobs_open(const char *path, tm_jobs **ret)
{
        tm_buf content = TM_BUF_INIT(JOBS_FILE_MAX);
        tm_jobs *js = NULL;
        json_t *o = NULL;
        size_t lineno = 0;
        int r;

        js = calloc(1, sizeof(*js));
        if (!js)
                return -ENOMEM;
        pthread_mutex_init(&js->lock, NULL);
        pthread_mutex_init(&js->wlock, NULL);
        js->fd = -1;
        js->next_id = 1;
        js->path = tm_strdup(path);
        if (!js->path) {
                r = -ENOMEM;
                goto out;
        }
        r = tm_file_read_all(path, JOBS_FILE_MAX, &content);
        if (r < 0 && r != -ENOENT) {
                tm_log_errno(TM_LOG_ERR, r, "cannot read '%s'", path);
                goto out;
        }
        for (const char *p = (const char *)content.data, *end = p ? p + content.len : NULL;
             p && p < end;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                struct tm_job j;

                lineno++;
                if (!nl)
                        break; /* a record cut short by a crash: it never happened */
                o = json_loadb(p, (size_t)(nl - p), 0, NULL);
                if (!o || job_from_json(o, &j) < 0) {
                        r = tm_log_errno(TM_LOG_ERR, -EBADMSG, "'%s' line %zu: not a job record",
                                         path, lineno);
                        goto out;
                }
                json_decref(o);
                o = NULL;
                r = put(js, &j);
                tm_job_dispose(&j);
                if (r < 0)
                        goto out;
                p = nl + 1;
        }
        for (size_t i = 0; i < js->n; i++) {
                struct tm_job *j = &js->a[i];

                if (!tm_job_state_final(j->state)) {
                        tm_log(TM_LOG_WARN,
                               "job %llu (%s %s) was %s when the daemon stopped: "
                               "marked interrupted",
                               (unsigned long long)j->id, j->kind, j->component, j->state);
                        snprintf(j->state, sizeof(j->state), "interrupted");
                        snprintf(j->error, sizeof(j->error), "the daemon stopped during the job");
                        j->finished = tm_time_now();
                }
        }
        r = compact(js);
        if (r < 0)
                goto out;
        js->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (js->fd < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot open '%s'", path);
                goto out;
        }
        *ret = js;
        js = NULL;
        r = 0;
out:
        json_decref(o);
        tm_buf_dispose(&content);
        tm_jobs_close(js);
        return r;
}

void tm_jobs_close(tm_jobs *js)
{
        if (!js)
                return;
        if (js->fd >= 0)
                close(js->fd);
        tm_job_array_free(js->a, js->n);
        pthread_mutex_destroy(&js->lock);
        pthread_mutex_destroy(&js->wlock);
        free(js->path);
        free(js);
}

int tm_jobs_add(tm_jobs *js, struct tm_job *job)
{
        struct tm_job copy;
        int r;

        pthread_mutex_lock(&js->wlock);
        pthread_mutex_lock(&js->lock);
        job->id = js->next_id; /* no other add runs: wlock */
        pthread_mutex_unlock(&js->lock);
        job->created = tm_time_now();
        if (!job->state[0])
                snprintf(job->state, sizeof(job->state), "queued");
        if (!job->attempt)
                job->attempt = 1;
        r = persist(js, job);
        if (r >= 0)
                r = job_copy(job, &copy);
        if (r >= 0) {
                pthread_mutex_lock(&js->lock);
                r = put(js, &copy);
                pthread_mutex_unlock(&js->lock);
                tm_job_dispose(&copy);
        }
        pthread_mutex_unlock(&js->wlock);
        return r;
}

int tm_jobs_update(tm_jobs *js, const struct tm_job *job)
{
        struct tm_job copy, *cur;
        int r;

        pthread_mutex_lock(&js->wlock);
        pthread_mutex_lock(&js->lock);
        cur = find(js, job->id);
        pthread_mutex_unlock(&js->lock);
        if (!cur) { /* jobs are never removed: it stays absent */
                r = -ENOENT;
                goto out;
        }
        r = persist(js, job);
        if (r >= 0)
                r = job_copy(job, &copy);
        if (r >= 0) {
                pthread_mutex_lock(&js->lock);
                /* progress counters may have moved meanwhile (under lock only) */
                cur = find(js, job->id);
                copy.files_done = TM_MAX(copy.files_done, cur->files_done);
                copy.bytes_done = TM_MAX(copy.bytes_done, cur->bytes_done);
                r = put(js, &copy);
                pthread_mutex_unlock(&js->lock);
                tm_job_dispose(&copy);
        }
out:
        pthread_mutex_unlock(&js->wlock);
        return r;
}

int tm_jobs_progress(tm_jobs *js, uint64_t id, uint64_t files_done, uint64_t bytes_done)
{
        struct tm_job *cur;

        pthread_mutex_lock(&js->lock);
        cur = find(js, id);
        if (cur) {
                cur->files_done = files_done;
                cur->bytes_done = bytes_done;
        }
        pthread_mutex_unlock(&js->lock);
        return cur ? 0 : -ENOENT;
}

int tm_jobs_get(tm_jobs *js, uint64_t id, struct tm_job *ret)
{
        struct tm_job *cur;
        int r = -ENOENT;

        pthread_mutex_lock(&js->lock);
        cur = find(js, id);
        if (cur)
                r = job_copy(cur, ret);
        pthread_mutex_unlock(&js->lock);
        return r;
}

int tm_jobs_list(tm_jobs *js, struct tm_job **ret, size_t *ret_n)
{
        struct tm_job *a;
        size_t n;
        int r = 0;

        pthread_mutex_lock(&js->lock);
        n = js->n;
        a = calloc(n ? n : 1, sizeof(*a));
        if (!a) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n && r >= 0; i++)
                r = job_copy(&js->a[i], &a[i]);
        if (r < 0) {
                tm_job_array_free(a, n);
                goto out;
        }
        *ret = a;
        *ret_n = n;
out:
        pthread_mutex_unlock(&js->lock);
        return r;
}
