/*
 * Runbook steps. Commands run through fork + exec of /bin/sh (not the
 * libc shell helper, which blocks signals), with their output bounded and a deadline; HTTP steps go
 * through httpc with the service's token.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/httpc.h>
#include <tidemark/runbook.h>
#include <tidemark/time.h>

#define OUTPUT_MAX 4096

static void step_dispose(struct tm_runbook_step *s)
{
        free(s->text);
        free(s->method);
        free(s->path);
        free(s->body);
        free(s->command);
}

void tm_runbooks_free(struct tm_runbooks *rbs)
{
        if (!rbs)
                return;
        for (size_t i = 0; i < rbs->n; i++) {
                for (size_t k = 0; k < rbs->rb[i].n_steps; k++)
                        step_dispose(&rbs->rb[i].steps[k]);
                free(rbs->rb[i].steps);
                free(rbs->rb[i].name);
                free(rbs->rb[i].description);
        }
        free(rbs->rb);
        free(rbs);
}

const struct tm_runbook *tm_runbooks_find(const struct tm_runbooks *rbs, const char *name)
{
        for (size_t i = 0; i < rbs->n; i++)
                if (!strcmp(rbs->rb[i].name, name))
                        return &rbs->rb[i];
        return NULL;
}

static const char *step_type_names[] = { "http", "wait_jobs", "command", "wait", "check" };

static int parse_step(const struct tm_config *cfg, const struct tm_probe_config *pc,
                      const struct tm_config_section *s, const struct tm_config_kv *kv,
                      struct tm_runbook_step *st, char *err, size_t errlen)
{
        const char *v = kv->value, *rest;
        char word[32];
        size_t k = strcspn(v, " \t");

        st->text = strdup(v);
        if (!st->text)
                return -ENOMEM;
        snprintf(word, sizeof(word), "%.*s", (int)TM_MIN(k, sizeof(word) - 1), v);
        rest = v + k;
        while (*rest == ' ' || *rest == '\t')
                rest++;
        if (!strcmp(word, "http")) {
                char method[16] = "", service[128] = "", path[1024] = "";
                int n = 0;

                st->type = TM_RUNBOOK_HTTP;
                if (sscanf(rest, "%15s %127s %1023s %n", method, service, path, &n) < 3 ||
                    path[0] != '/')
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'http' needs METHOD SERVICE /PATH "
                                                       "[JSON BODY]: '%s'",
                                                       v);
                if (strcmp(method, "GET") && strcmp(method, "POST") && strcmp(method, "PUT") &&
                    strcmp(method, "DELETE"))
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'http': method must be GET, POST, "
                                                       "PUT or DELETE, not '%s'",
                                                       method);
                st->service = tm_probe_service_find(pc, service);
                if (!st->service)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'http': no [service.%s]", service);
                st->method = strdup(method);
                st->path = strdup(path);
                if (!st->method || !st->path)
                        return -ENOMEM;
                if (rest[n]) {
                        json_error_t je;
                        json_t *j = json_loads(rest + n, JSON_DECODE_ANY, &je);

                        /* {key} placeholders are substituted later; check the
                         * JSON only when there are none */
                        if (!j && !strchr(rest + n, '{'))
                                return tm_config_section_error(
                                        cfg, s, NULL, err, errlen,
                                        "step 'http': the body is not JSON: %s", je.text);
                        json_decref(j);
                        st->body = strdup(rest + n);
                        if (!st->body)
                                return -ENOMEM;
                }
        } else if (!strcmp(word, "wait_jobs") || !strcmp(word, "wait")) {
                st->type = !strcmp(word, "wait") ? TM_RUNBOOK_WAIT : TM_RUNBOOK_WAIT_JOBS;
                st->duration_ns = 300 * TM_NSEC_PER_SEC;
                if (*rest && tm_config_parse_duration(rest, &st->duration_ns) < 0)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step '%s': '%s' is not a duration", word,
                                                       rest);
                if (st->type == TM_RUNBOOK_WAIT && !*rest)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'wait' needs a duration");
        } else if (!strcmp(word, "command")) {
                st->type = TM_RUNBOOK_COMMAND;
                if (!*rest)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'command' needs a command");
                st->command = strdup(rest);
                if (!st->command)
                        return -ENOMEM;
        } else if (!strcmp(word, "check")) {
                st->type = TM_RUNBOOK_CHECK;
                st->check = tm_probe_check_find(pc, rest);
                if (!st->check)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "step 'check': no [check.%s]", rest);
        } else {
                return tm_config_section_error(cfg, s, NULL, err, errlen,
                                               "a step is http, wait_jobs, command, wait or "
                                               "check, not '%s'",
                                               word);
        }
        return 0;
}

int tm_runbooks_load(const struct tm_config *cfg, const struct tm_probe_config *pc,
                     struct tm_runbooks **ret, char *err, size_t errlen)
{
        struct tm_runbooks *rbs = calloc(1, sizeof(*rbs));
        int r = 0;

        if (!rbs)
                return -ENOMEM;
        rbs->rb = calloc(cfg->n_sections + 1, sizeof(*rbs->rb));
        if (!rbs->rb) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < cfg->n_sections; i++) {
                const struct tm_config_section *s = &cfg->sections[i];
                struct tm_runbook *rb;
                const char *v;

                if (strncmp(s->name, "runbook.", 8))
                        continue;
                rb = &rbs->rb[rbs->n++];
                rb->name = strdup(s->name + 8);
                v = tm_config_section_get(s, "description");
                rb->description = strdup(v ? v : "");
                rb->steps = calloc(s->n_kv + 1, sizeof(*rb->steps));
                if (!rb->name || !rb->description || !rb->steps) {
                        r = -ENOMEM;
                        goto out;
                }
                rb->command_timeout_ns = 300 * TM_NSEC_PER_SEC;
                for (size_t k = 0; k < s->n_kv; k++) {
                        const struct tm_config_kv *kv = &s->kv[k];

                        if (!strcmp(kv->key, "step")) {
                                r = parse_step(cfg, pc, s, kv, &rb->steps[rb->n_steps++], err,
                                               errlen);
                        } else if (!strcmp(kv->key, "continue_on_error")) {
                                if (tm_config_parse_bool(kv->value, &rb->continue_on_error) < 0)
                                        r = tm_config_section_error(
                                                cfg, s, kv->key, err, errlen,
                                                "continue_on_error must be on or off");
                        } else if (!strcmp(kv->key, "command_timeout")) {
                                if (tm_config_parse_duration(kv->value, &rb->command_timeout_ns) <
                                    0)
                                        r = tm_config_section_error(
                                                cfg, s, kv->key, err, errlen,
                                                "command_timeout must be a duration");
                        } else if (strcmp(kv->key, "description")) {
                                r = tm_config_section_error(cfg, s, kv->key, err, errlen,
                                                            "unknown key '%s' in [%s]", kv->key,
                                                            s->name);
                        }
                        if (r < 0)
                                goto out;
                }
                if (!rb->n_steps) {
                        r = tm_config_section_error(cfg, s, NULL, err, errlen,
                                                    "[%s] has no step = ... line", s->name);
                        goto out;
                }
        }
out:
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                tm_runbooks_free(rbs);
                return r;
        }
        *ret = rbs;
        return 0;
}

json_t *tm_runbook_json(const struct tm_runbook *rb)
{
        json_t *steps = json_array();

        for (size_t i = 0; steps && i < rb->n_steps; i++)
                json_array_append_new(steps, json_pack("{s:s, s:s}", "type",
                                                       step_type_names[rb->steps[i].type], "step",
                                                       rb->steps[i].text));
        return json_pack("{s:s, s:s, s:o, s:b}", "name", rb->name, "description", rb->description,
                         "steps", steps, "continue_on_error", rb->continue_on_error);
}

int tm_runbook_validate_context(const json_t *context, char *msg, size_t msglen)
{
        const char *k;
        json_t *v;

        if (!context)
                return 0;
        if (!json_is_object(context)) {
                snprintf(msg, msglen, "context must be an object");
                return -EINVAL;
        }
        json_object_foreach((json_t *)context, k, v)
        {
                const char *s;
                char num[64];

                if (json_is_integer(v)) {
                        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                        s = num;
                } else if (json_is_string(v)) {
                        s = json_string_value(v);
                } else {
                        snprintf(msg, msglen, "context.%s must be a string or an integer", k);
                        return -EINVAL;
                }
                if (strlen(s) > 200) {
                        snprintf(msg, msglen, "context.%s is longer than 200 characters", k);
                        return -EINVAL;
                }
                for (const char *p = s; *p; p++)
                        if (!isalnum((unsigned char)*p) && !strchr("_.:@/-", *p)) {
                                snprintf(msg, msglen,
                                         "context.%s may hold only letters, digits and _.:@/-", k);
                                return -EINVAL;
                        }
        }
        return 0;
}

/* Replace {key} by the context's values; unknown placeholders stay. */
static char *substitute(const char *in, const json_t *context)
{
        tm_buf b = TM_BUF_INIT(64 * 1024);
        int r = 0;

        for (const char *p = in; *p && r >= 0;) {
                const char *close = *p == '{' ? strchr(p, '}') : NULL;

                if (close && close - p > 1 && close - p < 64) {
                        char key[64];
                        json_t *v;

                        snprintf(key, sizeof(key), "%.*s", (int)(close - p - 1), p + 1);
                        v = context ? json_object_get(context, key) : NULL;
                        if (v && json_is_string(v)) {
                                r = tm_buf_printf(&b, "%s", json_string_value(v));
                                p = close + 1;
                                continue;
                        }
                        if (v && json_is_integer(v)) {
                                r = tm_buf_printf(&b, "%lld", (long long)json_integer_value(v));
                                p = close + 1;
                                continue;
                        }
                }
                r = tm_buf_append(&b, p, 1);
                p++;
        }
        if (r >= 0)
                r = tm_buf_append(&b, "", 1);
        if (r < 0) {
                tm_buf_dispose(&b);
                return NULL;
        }
        return (char *)b.data;
}

static int run_command(const char *cmd, int64_t timeout_ns, const volatile int *stop, char *out,
                       size_t outlen, char *msg, size_t msglen)
{
        int pfd[2], status = 0, r = 0;
        size_t used = 0;
        int64_t deadline = tm_time_mono() + timeout_ns;
        pid_t pid;

        out[0] = '\0';
        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(pfd[0]);
                close(pfd[1]);
                return r;
        }
        if (pid == 0) {
                int devnull = open("/dev/null", O_RDONLY);

                dup2(devnull, 0);
                dup2(pfd[1], 1);
                dup2(pfd[1], 2);
                setpgid(0, 0);
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
                _exit(127);
        }
        close(pfd[1]);
        for (;;) {
                struct pollfd p = { .fd = pfd[0], .events = POLLIN };
                char buf[1024];
                int64_t left = deadline - tm_time_mono();
                ssize_t n;

                if (left <= 0 || (stop && *stop)) {
                        kill(-pid, SIGKILL);
                        kill(pid, SIGKILL);
                        snprintf(msg, msglen, left <= 0 ? "timed out after %lld s" : "cancelled",
                                 (long long)(timeout_ns / TM_NSEC_PER_SEC));
                        r = left <= 0 ? -ETIMEDOUT : -ECANCELED;
                        break;
                }
                if (poll(&p, 1, (int)TM_MIN(left / 1000000 + 1, 200)) <= 0)
                        continue;
                n = read(pfd[0], buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (used + 1 < outlen) {
                        size_t k = TM_MIN((size_t)n, outlen - 1 - used);

                        memcpy(out + used, buf, k);
                        used += k;
                        out[used] = '\0';
                }
        }
        close(pfd[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (r < 0)
                return r;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                snprintf(msg, msglen, "exit 0");
                return 0;
        }
        if (WIFEXITED(status))
                snprintf(msg, msglen, "exit %d", WEXITSTATUS(status));
        else
                snprintf(msg, msglen, "killed by signal %d", WTERMSIG(status));
        return -EIO;
}

/* Collect job ids from an answer: {"job_id": N} or {"jobs": [{"job_id": N}...]}. */
static void collect_jobs(const json_t *ans, json_t *ids)
{
        json_t *v = json_object_get(ans, "job_id"), *jobs = json_object_get(ans, "jobs"), *j;
        size_t i;

        if (json_is_integer(v))
                json_array_append_new(ids, json_integer(json_integer_value(v)));
        json_array_foreach(jobs, i, j)
        {
                v = json_object_get(j, "job_id");
                if (json_is_integer(v))
                        json_array_append_new(ids, json_integer(json_integer_value(v)));
        }
}

static void sleep_ns(int64_t ns, const volatile int *stop)
{
        int64_t end = tm_time_mono() + ns;

        while (!(stop && *stop)) {
                int64_t left = end - tm_time_mono();
                struct timespec ts;

                if (left <= 0)
                        break;
                left = TM_MIN(left, 100 * 1000000LL);
                ts.tv_sec = (time_t)(left / TM_NSEC_PER_SEC);
                ts.tv_nsec = (long)(left % TM_NSEC_PER_SEC);
                nanosleep(&ts, NULL);
        }
}

static int wait_jobs(const struct tm_probe_service *sv, const json_t *ids, int64_t timeout_ns,
                     const volatile int *stop, json_t *detail, char *msg, size_t msglen)
{
        int64_t deadline = tm_time_mono() + timeout_ns;
        size_t i;
        json_t *id;

        if (!sv || !json_array_size(ids)) {
                snprintf(msg, msglen, "the previous http step started no job");
                return -EINVAL;
        }
        json_array_foreach((json_t *)ids, i, id)
        {
                char url[2048];

                snprintf(url, sizeof(url), "%s/api/v1/jobs/%lld", sv->url,
                         (long long)json_integer_value(id));
                for (;;) {
                        struct tm_httpc_req rq = { .url = url,
                                                   .bearer = sv->token,
                                                   .timeout_ms = 5000 };
                        struct tm_httpc_resp resp;
                        json_t *j = NULL;
                        const char *state = NULL;
                        int r = tm_httpc_request(&rq, &resp);

                        if (r >= 0 && resp.status == 200)
                                j = json_loads((const char *)resp.body.data, 0, NULL);
                        tm_buf_dispose(&resp.body);
                        state = j ? json_string_value(json_object_get(j, "state")) : NULL;
                        if (state && (!strcmp(state, "succeeded") || !strcmp(state, "failed") ||
                                      !strcmp(state, "partial") || !strcmp(state, "interrupted"))) {
                                json_array_append_new(detail, json_deep_copy(j));
                                if (strcmp(state, "succeeded")) {
                                        snprintf(msg, msglen, "job %lld %s",
                                                 (long long)json_integer_value(id), state);
                                        json_decref(j);
                                        return -EIO;
                                }
                                json_decref(j);
                                break;
                        }
                        json_decref(j);
                        if (stop && *stop)
                                return -ECANCELED;
                        if (tm_time_mono() > deadline) {
                                snprintf(msg, msglen, "job %lld not finished after %lld s",
                                         (long long)json_integer_value(id),
                                         (long long)(timeout_ns / TM_NSEC_PER_SEC));
                                return -ETIMEDOUT;
                        }
                        sleep_ns(200 * 1000000LL, stop);
                }
        }
        snprintf(msg, msglen, "%zu job(s) succeeded", json_array_size(ids));
        return 0;
}

static int run_step(const struct tm_runbook *rb, const struct tm_runbook_step *st,
                    const struct tm_config *cfg, const json_t *context,
                    const struct tm_probe_service **last_sv, json_t *last_jobs,
                    const volatile int *stop, json_t *entry)
{
        char msg[600] = "";
        int r = 0;

        switch (st->type) {
        case TM_RUNBOOK_HTTP: {
                char url[2048], *path = substitute(st->path, context);
                char *body = st->body ? substitute(st->body, context) : NULL;
                struct tm_httpc_req rq = { .method = st->method,
                                           .url = url,
                                           .body = body,
                                           .bearer = st->service->token,
                                           .timeout_ms = 30000,
                                           .max_response = 1 << 20 };
                struct tm_httpc_resp resp;

                if (!path || (st->body && !body)) {
                        free(path);
                        free(body);
                        return -ENOMEM;
                }
                snprintf(url, sizeof(url), "%s%s", st->service->url, path);
                r = tm_httpc_request(&rq, &resp);
                if (r < 0) {
                        snprintf(msg, sizeof(msg), "%s", resp.error);
                } else {
                        json_t *ans = json_loads((const char *)resp.body.data, 0, NULL);

                        json_object_set_new(entry, "http_status", json_integer(resp.status));
                        if (ans) {
                                json_array_clear(last_jobs);
                                collect_jobs(ans, last_jobs);
                                json_object_set_new(entry, "response", ans);
                        }
                        *last_sv = st->service;
                        snprintf(msg, sizeof(msg), "%s %s answered HTTP %ld", st->method, path,
                                 resp.status);
                        r = resp.status >= 200 && resp.status < 300 ? 0 : -EIO;
                }
                tm_buf_dispose(&resp.body);
                free(path);
                free(body);
                break;
        }
        case TM_RUNBOOK_WAIT_JOBS: {
                json_t *detail = json_array();

                r = wait_jobs(*last_sv, last_jobs, st->duration_ns, stop, detail, msg, sizeof(msg));
                json_object_set_new(entry, "jobs", detail);
                break;
        }
        case TM_RUNBOOK_COMMAND: {
                char *cmd = substitute(st->command, context);
                char *out = malloc(OUTPUT_MAX);

                if (!cmd || !out) {
                        free(cmd);
                        free(out);
                        return -ENOMEM;
                }
                r = run_command(cmd, rb->command_timeout_ns, stop, out, OUTPUT_MAX, msg,
                                sizeof(msg));
                json_object_set_new(entry, "output", json_string(out));
                if (!json_object_get(entry, "output"))
                        json_object_set_new(entry, "output", json_string("(not UTF-8)"));
                free(cmd);
                free(out);
                break;
        }
        case TM_RUNBOOK_WAIT:
                sleep_ns(st->duration_ns, stop);
                r = stop && *stop ? -ECANCELED : 0;
                snprintf(msg, sizeof(msg), "waited %lld s",
                         (long long)(st->duration_ns / TM_NSEC_PER_SEC));
                break;
        case TM_RUNBOOK_CHECK: {
                struct tm_probe_result res;

                r = tm_probe_run(cfg, st->check, &res);
                if (r >= 0) {
                        snprintf(msg, sizeof(msg), "check %s %s: %s", st->check->name,
                                 tm_probe_status_name(res.status), res.message);
                        r = res.status == TM_PROBE_OK ? 0 : -EIO;
                }
                break;
        }
        }
        json_object_set_new(entry, "message", json_string(msg));
        return r;
}

int tm_runbook_run(const struct tm_runbook *rb, const struct tm_config *cfg, const json_t *context,
                   tm_runbook_step_fn fn, void *ud, const volatile int *stop, json_t **ret_log)
{
        json_t *log = json_array(), *last_jobs = json_array();
        const struct tm_probe_service *last_sv = NULL;
        char msg[256];
        int failed = 0, r = 0;

        if (!log || !last_jobs) {
                r = -ENOMEM;
                goto out;
        }
        if (tm_runbook_validate_context(context, msg, sizeof(msg)) < 0) {
                r = -EINVAL;
                goto out;
        }
        for (size_t i = 0; i < rb->n_steps; i++) {
                const struct tm_runbook_step *st = &rb->steps[i];
                char t0s[40];
                int64_t t0 = tm_time_now(), m0 = tm_time_mono();
                json_t *entry;

                tm_time_format(t0, t0s, sizeof(t0s));
                entry = json_pack("{s:I, s:s, s:s, s:s}", "step", (json_int_t)(i + 1), "type",
                                  step_type_names[st->type], "text", st->text, "started", t0s);
                if (!entry) {
                        r = -ENOMEM;
                        goto out;
                }
                if (stop && *stop) {
                        json_decref(entry);
                        r = -ECANCELED;
                        goto out;
                }
                r = run_step(rb, st, cfg, context, &last_sv, last_jobs, stop, entry);
                if (r == -ENOMEM) {
                        json_decref(entry);
                        goto out;
                }
                json_object_set_new(entry, "status", json_string(r >= 0 ? "ok" : "failed"));
                json_object_set_new(entry, "duration_seconds",
                                    json_real((double)(tm_time_mono() - m0) / 1e9));
                json_array_append_new(log, entry);
                if (fn)
                        fn(ud, entry);
                if (r == -ECANCELED)
                        goto out;
                if (r < 0) {
                        failed = 1;
                        if (!rb->continue_on_error)
                                break;
                }
        }
        r = failed ? -EIO : 0;
out:
        json_decref(last_jobs);
        if (r == -ENOMEM || r == -EINVAL) {
                json_decref(log);
                return r;
        }
        *ret_log = log;
        return r;
}
