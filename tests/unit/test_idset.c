/* Unit tests for the id set (core/idset.h): insert/has, growth to 100k ids,
 * ids that collide in their hash bits, and concurrent inserts that must
 * claim every id exactly once. */
#include <pthread.h>
#include <stdatomic.h>

#include "core/idset.h"
#include "tm_test_util.h"

#define N_IDS     100000
#define N_THREADS 4
#define N_SHARED  40000

static void make_ids(uint64_t seed, tm_id *ids, size_t n)
{
        uint64_t s = seed;

        for (size_t i = 0; i < n; i++)
                tmt_fill(&s, ids[i].b, TM_ID_LEN);
}

static void test_insert_has(void **state)
{
        struct tm_idset s;
        tm_id a, b;

        (void)state;
        memset(&a, 0x01, sizeof(a));
        memset(&b, 0x02, sizeof(b));
        assert_int_equal(tm_idset_init(&s, 0), 0);
        assert_int_equal(tm_idset_has(&s, &a), 0);
        assert_int_equal(tm_idset_insert(&s, &a), 1);
        assert_int_equal(tm_idset_has(&s, &a), 1);
        assert_int_equal(tm_idset_has(&s, &b), 0);
        assert_int_equal(tm_idset_insert(&s, &a), 0);
        assert_int_equal(s.n, 1);
        assert_int_equal(tm_idset_insert(&s, &b), 1);
        assert_int_equal(s.n, 2);
        tm_idset_dispose(&s);
        tm_idset_dispose(&s); /* twice is safe */
        {
                struct tm_idset zero;

                memset(&zero, 0, sizeof(zero));
                tm_idset_dispose(&zero); /* never initialised */
        }
}

static void test_same_hash_bits(void **state)
{
        struct tm_idset s;
        tm_id ids[64];

        (void)state;
        /* identical first 8 bytes (the slot hash), different tails: the set
         * keeps full ids, so all are distinct members */
        assert_int_equal(tm_idset_init(&s, 16), 0);
        for (int i = 0; i < 64; i++) {
                memset(&ids[i], 0xab, sizeof(ids[i]));
                ids[i].b[TM_ID_LEN - 1] = (uint8_t)i;
                ids[i].b[20] = (uint8_t)(i * 7);
        }
        for (int i = 0; i < 64; i++)
                assert_int_equal(tm_idset_insert(&s, &ids[i]), 1);
        for (int i = 0; i < 64; i++) {
                assert_int_equal(tm_idset_has(&s, &ids[i]), 1);
                assert_int_equal(tm_idset_insert(&s, &ids[i]), 0);
        }
        ids[0].b[TM_ID_LEN - 1] = 0xff;
        assert_int_equal(tm_idset_has(&s, &ids[0]), 0);
        assert_int_equal(s.n, 64);
        tm_idset_dispose(&s);
}

static void test_growth(void **state)
{
        uint64_t seed = tmt_seed();
        tm_id *ids = malloc((size_t)N_IDS * sizeof(*ids)), other;
        struct tm_idset s;
        size_t cap0;

        (void)state;
        assert_non_null(ids);
        make_ids(seed, ids, N_IDS);
        assert_int_equal(tm_idset_init(&s, 10), 0); /* far too small: must grow */
        cap0 = s.cap;
        for (size_t i = 0; i < N_IDS; i++)
                assert_int_equal(tm_idset_insert(&s, &ids[i]), 1);
        assert_int_equal(s.n, N_IDS);
        assert_true(s.cap > cap0);
        assert_true(s.cap >= (size_t)N_IDS * 10 / 7); /* load factor stays <= 0.7 */
        for (size_t i = 0; i < N_IDS; i++) {
                assert_int_equal(tm_idset_has(&s, &ids[i]), 1);
                assert_int_equal(tm_idset_insert(&s, &ids[i]), 0);
        }
        assert_int_equal(s.n, N_IDS);
        {
                uint64_t s2 = seed ^ 0x5555555555555555ULL;

                for (int i = 0; i < 1000; i++) {
                        tmt_fill(&s2, other.b, TM_ID_LEN);
                        assert_int_equal(tm_idset_has(&s, &other), 0);
                }
        }
        tm_idset_dispose(&s);

        /* a size hint avoids growth */
        assert_int_equal(tm_idset_init(&s, N_IDS), 0);
        cap0 = s.cap;
        for (size_t i = 0; i < N_IDS; i++)
                assert_int_equal(tm_idset_insert(&s, &ids[i]), 1);
        assert_int_equal(s.cap, cap0);
        tm_idset_dispose(&s);
        free(ids);
}

struct worker {
        struct tm_idset *set;
        const tm_id *ids;
        atomic_int *claims;
        uint64_t seed;
        size_t claimed;
};

static void *insert_worker(void *arg)
{
        struct worker *w = arg;
        uint64_t s = w->seed;
        size_t start = (size_t)(tmt_rand(&s) % N_SHARED);

        /* every thread inserts every id, from a different starting point */
        for (size_t k = 0; k < N_SHARED; k++) {
                size_t i = (start + k) % N_SHARED;
                int r = tm_idset_insert(w->set, &w->ids[i]);

                if (r == 1) {
                        atomic_fetch_add(&w->claims[i], 1);
                        w->claimed++;
                } else if (r != 0) {
                        atomic_fetch_add(&w->claims[i], 1000); /* an error: fails below */
                }
                if (!tm_idset_has(w->set, &w->ids[i]))
                        atomic_fetch_add(&w->claims[i], 1000);
        }
        return NULL;
}

static void test_concurrent_claims(void **state)
{
        uint64_t seed = tmt_seed();
        tm_id *ids = malloc((size_t)N_SHARED * sizeof(*ids));
        atomic_int *claims = calloc(N_SHARED, sizeof(*claims));
        struct worker w[N_THREADS];
        pthread_t th[N_THREADS];
        struct tm_idset s;
        size_t total = 0;

        (void)state;
        assert_non_null(ids);
        assert_non_null(claims);
        make_ids(seed, ids, N_SHARED);
        assert_int_equal(tm_idset_init(&s, 100), 0); /* grows under contention */
        for (int t = 0; t < N_THREADS; t++) {
                w[t] = (struct worker){
                        .set = &s, .ids = ids, .claims = claims, .seed = seed + (uint64_t)t
                };
                assert_int_equal(pthread_create(&th[t], NULL, insert_worker, &w[t]), 0);
        }
        for (int t = 0; t < N_THREADS; t++) {
                pthread_join(th[t], NULL);
                total += w[t].claimed;
        }
        for (size_t i = 0; i < N_SHARED; i++)
                if (atomic_load(&claims[i]) != 1)
                        fail_msg("id %zu claimed %d times", i, atomic_load(&claims[i]));
        assert_int_equal(total, N_SHARED);
        assert_int_equal(s.n, N_SHARED);
        tm_idset_dispose(&s);
        free(claims);
        free(ids);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_insert_has),
                cmocka_unit_test(test_same_hash_bits),
                cmocka_unit_test(test_growth),
                cmocka_unit_test(test_concurrent_claims),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
