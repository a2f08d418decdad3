/*
 * The backend contract of the S3 driver against a real S3 protocol:
 * tests/fake/s3front.py (signature checks, fault injection) in front of
 * s3rver. tests/integration/s3_backend.sh starts both and runs this binary
 * with TM_S3_TEST_ENDPOINT (the front, "http://127.0.0.1:PORT"),
 * TM_S3_TEST_BUCKET and TM_S3_TEST_PREFIX set; without them every test is
 * skipped (there is no server to talk to).
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <tidemark/backend.h>

static const char *endpoint, *bucket, *prefix;
static uint64_t seed_state;

static uint64_t next_rand(void)
{
        uint64_t z = (seed_state += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n)
{
        size_t i;

        for (i = 0; i < n; i++)
                p[i] = (uint8_t)next_rand();
}

/* A backend under "<prefix>/<sub>" with the given tuning. */
static tm_backend *open_sub(const char *sub, const char *secret, int page, int attempts)
{
        char pfx[256];
        struct tm_s3_opts o = { .endpoint = endpoint,
                                .bucket = bucket,
                                .prefix = pfx,
                                .access_key = "S3RVER",
                                .secret_key = secret,
                                .path_style = 1,
                                .list_page = page,
                                .max_attempts = attempts,
                                .stall_timeout_s = 2,
                                .multipart_threshold = 6u << 20,
                                .part_size = 5u << 20 };
        tm_backend *b = NULL;

        if (!endpoint) {
                print_message("TM_S3_TEST_ENDPOINT not set: run tests/integration/s3_backend.sh\n");
                skip();
        }
        snprintf(pfx, sizeof(pfx), "%s/%s", prefix, sub);
        assert_int_equal(tm_backend_open_s3(&o, &b), 0);
        return b;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *userdata)
{
        return size * nmemb;
}

/* POST a fault command to the front's admin endpoint. */
static void fault(const char *json)
{
        char url[256];
        CURL *h = curl_easy_init();
        long st = 0;

        assert_non_null(h);
        snprintf(url, sizeof(url), "%s/__fault", endpoint);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
        assert_int_equal(st, 200);
        curl_easy_cleanup(h);
}

static int need_server(void **state)
{
        if (!endpoint) {
                print_message("TM_S3_TEST_ENDPOINT not set: run tests/integration/s3_backend.sh\n");
                skip();
        }
        return 0;
}

static void test_contract(void **state)
{
        tm_backend *b = open_sub("contract", "S3RVER", 0, 0);
        tm_buf buf = TM_BUF_INIT(0);
        uint64_t size = 0;
        static uint8_t big[1 << 20];

        need_server(state);
        fill(big, sizeof(big));
        assert_int_equal(tm_backend_is_remote(b), 1);
        assert_int_equal(tm_backend_head(b, "config", &size), -ENOENT);
        assert_int_equal(tm_backend_get(b, "config", 0, &buf), -ENOENT);
        assert_int_equal(tm_backend_put(b, "config", "v1", 2), 0);
        assert_int_equal(tm_backend_put(b, "config", "version2", 8), 0); /* replaces */
        assert_int_equal(tm_backend_head(b, "config", &size), 0);
        assert_int_equal(size, 8);
        assert_int_equal(tm_backend_get(b, "config", 0, &buf), 0);
        assert_int_equal(buf.len, 8);
        assert_memory_equal(buf.data, "version2", 8);
        assert_int_equal(tm_backend_get(b, "config", 4, &buf), -E2BIG);
        /* empty objects */
        assert_int_equal(tm_backend_put(b, "keys/empty", "", 0), 0);
        assert_int_equal(tm_backend_get(b, "keys/empty", 0, &buf), 0);
        assert_int_equal(buf.len, 0);
        assert_non_null(buf.data);
        /* ranges: exact bytes; past the end is a truncation */
        assert_int_equal(tm_backend_put(b, "data/ab/pack", big, sizeof(big)), 0);
        assert_int_equal(tm_backend_get_range(b, "data/ab/pack", 12345, 1000, &buf), 0);
        assert_int_equal(buf.len, 1000);
        assert_memory_equal(buf.data, big + 12345, 1000);
        assert_int_equal(tm_backend_get_range(b, "data/ab/pack", sizeof(big) - 10, 10, &buf), 0);
        assert_memory_equal(buf.data, big + sizeof(big) - 10, 10);
        assert_int_equal(tm_backend_get_range(b, "data/ab/pack", sizeof(big) - 10, 11, &buf),
                         -EBADMSG);
        assert_int_equal(tm_backend_get_range(b, "data/ab/pack", sizeof(big), 0, &buf), 0);
        assert_int_equal(tm_backend_get_range(b, "data/ab/pack", sizeof(big) + 1, 0, &buf),
                         -EBADMSG);
        assert_int_equal(tm_backend_get_range(b, "data/ab/nope", 0, 1, &buf), -ENOENT);
        /* put_new */
        assert_int_equal(tm_backend_put_new(b, "locks/l1", "a", 1), 0);
        assert_int_equal(tm_backend_put_new(b, "locks/l1", "b", 1), -EEXIST);
        assert_int_equal(tm_backend_get(b, "locks/l1", 0, &buf), 0);
        assert_memory_equal(buf.data, "a", 1);
        /* remove */
        assert_int_equal(tm_backend_remove(b, "locks/l1"), 0);
        assert_int_equal(tm_backend_remove(b, "locks/l1"), -ENOENT);
        assert_int_equal(tm_backend_head(b, "locks/l1", &size), -ENOENT);
        assert_int_equal(tm_backend_clean_temp(b, 0), 0);
        tm_backend_free(b);
        tm_buf_dispose(&buf);
        /* local hot and S3 warm: a reader of its packs waits on the network */
        {
                char dir[] = "/tmp/tm-s3-tiered-XXXXXX";
                struct tm_backend_tier t[TM_BACKEND_TIERS] = { 0 };
                tm_backend *tb = NULL;

                assert_non_null(mkdtemp(dir));
                assert_int_equal(tm_backend_open_local(dir, 1, &t[0].backend), 0);
                assert_int_equal(tm_backend_is_remote(t[0].backend), 0);
                t[1].backend = open_sub("contract-warm", "S3RVER", 0, 0);
                assert_int_equal(tm_backend_open_tiered(t, &tb), 0);
                assert_int_equal(tm_backend_is_remote(tb), 1);
                tm_backend_free(tb);
                assert_int_equal(nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
        }
}

static void test_multipart(void **state)
{
        tm_backend *b = open_sub("multipart", "S3RVER", 0, 0);
        size_t n = (12u << 20) + 12345; /* three parts at 5 MiB */
        uint8_t *p = malloc(n);
        tm_buf buf = TM_BUF_INIT(0);
        uint64_t size = 0;

        need_server(state);
        assert_non_null(p);
        fill(p, n);
        assert_int_equal(tm_backend_put(b, "data/cd/big", p, n), 0);
        assert_int_equal(tm_backend_head(b, "data/cd/big", &size), 0);
        assert_int_equal(size, n);
        assert_int_equal(tm_backend_get(b, "data/cd/big", 0, &buf), 0);
        assert_int_equal(buf.len, n);
        assert_memory_equal(buf.data, p, n);
        assert_int_equal(tm_backend_get_range(b, "data/cd/big", (5u << 20) - 7, 100, &buf), 0);
        assert_memory_equal(buf.data, p + (5u << 20) - 7, 100);
        tm_backend_free(b);
        tm_buf_dispose(&buf);
        free(p);
}

#define NOBJ     1050
#define NTHREADS 4

struct putter {
        tm_backend *b;
        int from, to, r;
};

static void *put_some(void *arg)
{
        struct putter *pt = arg;
        char name[64], body[32];
        int i;

        for (i = pt->from; i < pt->to && pt->r == 0; i++) {
                snprintf(name, sizeof(name), "data/%02x/obj%05d", i % 7, i);
                snprintf(body, sizeof(body), "%d", i);
                pt->r = tm_backend_put(pt->b, name, body, strlen(body));
        }
        return NULL;
}

struct seen {
        uint8_t hit[NOBJ];
        int n, bad, stop_after;
};

static int on_name(const char *name, uint64_t size, void *userdata)
{
        struct seen *s = userdata;
        unsigned dir;
        int i;

        if (sscanf(name, "data/%02x/obj%05d", &dir, &i) != 2 || i < 0 || i >= NOBJ ||
            dir != (unsigned)(i % 7) || s->hit[i]++ || size != (uint64_t)snprintf(NULL, 0, "%d", i))
                s->bad++;
        s->n++;
        return s->stop_after && s->n == s->stop_after ? 42 : 0;
}

static int count_fn(const char *name, uint64_t size, void *userdata)
{
        (*(int *)userdata)++;
        return 0;
}

static void test_list_pagination(void **state)
{
        tm_backend *b = open_sub("list", "S3RVER", 100, 0);
        struct putter pt[NTHREADS];
        pthread_t th[NTHREADS];
        struct seen *s = calloc(1, sizeof(*s));
        struct tm_backend_stats st;
        int i, n = 0;

        need_server(state);
        assert_non_null(s);
        /* concurrent puts through one backend: the handle pool is shared */
        for (i = 0; i < NTHREADS; i++) {
                pt[i] = (struct putter){ b, i * NOBJ / NTHREADS, (i + 1) * NOBJ / NTHREADS, 0 };
                assert_int_equal(pthread_create(&th[i], NULL, put_some, &pt[i]), 0);
        }
        for (i = 0; i < NTHREADS; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(pt[i].r, 0);
        }
        assert_int_equal(tm_backend_put(b, "index/i0", "x", 1), 0);
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        assert_int_equal(tm_backend_list(b, "data", on_name, s), 0);
        assert_int_equal(s->bad, 0);
        assert_int_equal(s->n, NOBJ);
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        /* 1050 keys at 100 a page: 11 pages */
        print_message("list: %llu requests so far\n", (unsigned long long)st.requests);
        assert_int_equal(tm_backend_list(b, "data/03", count_fn, &n), 0);
        assert_int_equal(n, NOBJ / 7);
        n = 0;
        assert_int_equal(tm_backend_list(b, "", count_fn, &n), 0);
        assert_int_equal(n, NOBJ + 1);
        memset(s, 0, sizeof(*s));
        s->stop_after = 150; /* a non-zero return stops the listing, on page 2 */
        assert_int_equal(tm_backend_list(b, "data/", on_name, s), 42);
        assert_int_equal(s->n, 150);
        tm_backend_free(b);
        free(s);
}

static void test_wrong_secret(void **state)
{
        tm_backend *b = open_sub("contract", "not-the-secret", 0, 0);
        tm_buf buf = TM_BUF_INIT(0);
        struct tm_backend_stats st;
        int n = 0;

        need_server(state);
        assert_int_equal(tm_backend_put(b, "keys/k", "x", 1), -EACCES);
        assert_int_equal(tm_backend_get(b, "config", 0, &buf), -EACCES);
        assert_int_equal(tm_backend_list(b, "", count_fn, &n), -EACCES);
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        assert_int_equal(st.retries, 0); /* a 403 is final */
        tm_backend_free(b);
        tm_buf_dispose(&buf);
}

/* Puts and gets of n objects while the front fails ~rate of the requests. */
static void faulty_batch(const char *mode, const char *sub)
{
        char cmd[128], name[64];
        tm_backend *b = open_sub(sub, "S3RVER", 10, 8);
        tm_buf buf = TM_BUF_INIT(0);
        struct tm_backend_stats st;
        uint8_t body[3000];
        int i, n = 0;

        snprintf(cmd, sizeof(cmd), "{\"mode\":\"%s\",\"rate\":0.1}", mode);
        fault(cmd);
        for (i = 0; i < 60; i++) {
                snprintf(name, sizeof(name), "data/ee/o%03d", i);
                fill(body, sizeof(body));
                body[0] = (uint8_t)i;
                assert_int_equal(tm_backend_put(b, name, body, sizeof(body)), 0);
                assert_int_equal(tm_backend_get(b, name, 0, &buf), 0);
                assert_int_equal(buf.len, sizeof(body));
                assert_memory_equal(buf.data, body, sizeof(body));
                assert_int_equal(tm_backend_get_range(b, name, 100, 50, &buf), 0);
                assert_memory_equal(buf.data, body + 100, 50);
        }
        assert_int_equal(tm_backend_list(b, "data", count_fn, &n), 0);
        assert_int_equal(n, 60);
        fault("{\"mode\":\"off\"}");
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        print_message("%s: %llu requests, %llu retries\n", mode, (unsigned long long)st.requests,
                      (unsigned long long)st.retries);
        assert_true(st.retries > 0);
        tm_backend_free(b);
        tm_buf_dispose(&buf);
}

static void test_faults_500(void **state)
{
        need_server(state);
        faulty_batch("500", "f500");
}

static void test_faults_503(void **state)
{
        need_server(state);
        faulty_batch("503", "f503");
}

static void test_faults_reset(void **state)
{
        need_server(state);
        faulty_batch("reset", "freset");
}

static void test_faults_truncate(void **state)
{
        need_server(state);
        faulty_batch("truncate", "ftrunc");
}

static void test_exhausted(void **state)
{
        tm_backend *b = open_sub("exhausted", "S3RVER", 0, 2);
        tm_buf buf = TM_BUF_INIT(0);

        need_server(state);
        fault("{\"mode\":\"503\",\"rate\":1}");
        assert_int_equal(tm_backend_put(b, "keys/k", "x", 1), -EAGAIN);
        /* a stall longer than the stall timeout (2 s here) */
        fault("{\"mode\":\"stall\",\"rate\":1,\"stall_s\":6}");
        assert_int_equal(tm_backend_get(b, "config", 0, &buf), -ETIMEDOUT);
        fault("{\"mode\":\"off\"}");
        tm_backend_free(b);
        tm_buf_dispose(&buf);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_contract),        cmocka_unit_test(test_multipart),
                cmocka_unit_test(test_list_pagination), cmocka_unit_test(test_wrong_secret),
                cmocka_unit_test(test_faults_500),      cmocka_unit_test(test_faults_503),
                cmocka_unit_test(test_faults_reset),    cmocka_unit_test(test_faults_truncate),
                cmocka_unit_test(test_exhausted),
        };
        const char *seed = getenv("TM_TEST_SEED");

        seed_state = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
        printf("seed %llu (replay with TM_TEST_SEED)\n", (unsigned long long)seed_state);
        endpoint = getenv("TM_S3_TEST_ENDPOINT");
        bucket = getenv("TM_S3_TEST_BUCKET");
        prefix = getenv("TM_S3_TEST_PREFIX");
        if (!bucket)
                bucket = "backups";
        if (!prefix)
                prefix = "unit";
        curl_global_init(CURL_GLOBAL_DEFAULT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
