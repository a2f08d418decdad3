/* Unit tests for the job history: add, update, progress, get and list; the
 * history survives a reopen; a job left queued or running is marked
 * interrupted on open; a torn last line is ignored and a corrupt one is
 * refused. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/jobs.h>

static char dir[64], path[128];

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/tm-jobs-XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/jobs.jsonl", dir);
        return 0;
}

static int teardown(void **state)
{
        unlink(path);
        rmdir(dir);
        return 0;
}

static void test_jobs_lifecycle(void **state)
{
        tm_jobs *js = NULL;
        struct tm_job a = { 0 }, b = { 0 }, got, *list = NULL;
        size_t n = 0;
        FILE *f;

        assert_int_equal(tm_jobs_open(path, &js), 0);
        snprintf(a.kind, sizeof(a.kind), "backup");
        snprintf(a.component, sizeof(a.component), "db");
        snprintf(a.strategy, sizeof(a.strategy), "full");
        assert_int_equal(tm_jobs_add(js, &a), 0);
        assert_int_equal(a.id, 1);
        assert_string_equal(a.state, "queued");
        assert_int_equal(a.attempt, 1);
        b = a;
        snprintf(b.component, sizeof(b.component), "files");
        assert_int_equal(tm_jobs_add(js, &b), 0);
        assert_int_equal(b.id, 2);

        snprintf(a.state, sizeof(a.state), "succeeded");
        a.result_json = strdup("{\"ok\":true}");
        assert_int_equal(tm_jobs_update(js, &a), 0);
        free(a.result_json);
        a.result_json = NULL;
        snprintf(b.state, sizeof(b.state), "running");
        assert_int_equal(tm_jobs_update(js, &b), 0);
        assert_int_equal(tm_jobs_progress(js, 2, 5, 500), 0);
        assert_int_equal(tm_jobs_progress(js, 9, 5, 500), -ENOENT);
        assert_int_equal(tm_jobs_get(js, 2, &got), 0);
        assert_int_equal(got.bytes_done, 500);
        assert_string_equal(got.state, "running");
        tm_job_dispose(&got);
        assert_int_equal(tm_jobs_get(js, 7, &got), -ENOENT);
        struct tm_job ghost = { .id = 42 };
        assert_int_equal(tm_jobs_update(js, &ghost), -ENOENT);
        tm_jobs_close(js);

        /* a torn write at the end is ignored */
        f = fopen(path, "a");
        fputs("{\"id\":3,\"sta", f);
        fclose(f);
        assert_int_equal(tm_jobs_open(path, &js), 0);
        assert_int_equal(tm_jobs_list(js, &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0].state, "succeeded");
        assert_string_equal(list[0].result_json, "{\"ok\":true}");
        assert_string_equal(list[1].state, "interrupted"); /* was running */
        assert_true(list[1].finished > 0);
        assert_true(tm_job_state_final(list[1].state));
        assert_false(tm_job_state_final("running"));
        tm_job_array_free(list, n);
        /* ids continue after the reopen */
        memset(&a, 0, sizeof(a));
        assert_int_equal(tm_jobs_add(js, &a), 0);
        assert_int_equal(a.id, 3);
        tm_jobs_close(js);
        tm_jobs_close(NULL);

        f = fopen(path, "a");
        fputs("garbage\n", f);
        fclose(f);
        assert_int_equal(tm_jobs_open(path, &js), -EBADMSG);
}

struct writer {
        tm_jobs *js;
        int r;
};

/* 40 jobs, each queued, running with progress, then succeeded */
static void *write_jobs(void *arg)
{
        struct writer *w = arg;

        for (int i = 0; i < 40 && w->r == 0; i++) {
                struct tm_job j = { 0 };

                snprintf(j.kind, sizeof(j.kind), "backup");
                w->r = tm_jobs_add(w->js, &j);
                if (w->r == 0) {
                        snprintf(j.state, sizeof(j.state), "running");
                        w->r = tm_jobs_update(w->js, &j);
                }
                if (w->r == 0)
                        w->r = tm_jobs_progress(w->js, j.id, (uint64_t)i, 100);
                if (w->r == 0) {
                        snprintf(j.state, sizeof(j.state), "succeeded");
                        w->r = tm_jobs_update(w->js, &j);
                }
        }
        return NULL;
}

/* Writers flush outside the table lock: several threads adding and
 * updating while others list still give unique ids, a consistent table,
 * and a file that replays to the same table. */
static void test_jobs_concurrent(void **state)
{
        tm_jobs *js = NULL;
        struct writer w[3];
        pthread_t th[3];
        struct tm_job *list = NULL;
        size_t n = 0;

        (void)state;
        unlink(path);
        assert_int_equal(tm_jobs_open(path, &js), 0);
        for (int i = 0; i < 3; i++) {
                w[i] = (struct writer){ js, 0 };
                assert_int_equal(pthread_create(&th[i], NULL, write_jobs, &w[i]), 0);
        }
        for (int k = 0; k < 50; k++) {
                assert_int_equal(tm_jobs_list(js, &list, &n), 0);
                for (size_t i = 1; i < n; i++)
                        assert_true(list[i - 1].id < list[i].id);
                tm_job_array_free(list, n);
        }
        for (int i = 0; i < 3; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(w[i].r, 0);
        }
        tm_jobs_close(js);
        assert_int_equal(tm_jobs_open(path, &js), 0);
        assert_int_equal(tm_jobs_list(js, &list, &n), 0);
        assert_int_equal(n, 120);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(list[i].id, i + 1);
                assert_string_equal(list[i].state, "succeeded");
        }
        tm_job_array_free(list, n);
        tm_jobs_close(js);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jobs_lifecycle),
                cmocka_unit_test(test_jobs_concurrent),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
