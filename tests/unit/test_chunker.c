/* Unit tests for lib/src/chunker: parameter validation, agreement with a
 * byte-at-a-time reference of the documented algorithm (which pins the
 * repository format), cut bounds, determinism, seed dependence, average
 * size and shift resistance. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/chunker.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/time.h>

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        /* splitmix64 */
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static void rng_fill(void *p, size_t n)
{
        uint8_t *q = p;
        size_t i = 0;

        for (; i + 8 <= n; i += 8) {
                uint64_t v = rng_next();

                memcpy(q + i, &v, 8);
        }
        for (; i < n; i++)
                q[i] = (uint8_t)rng_next();
}

static int rng_setup(void **state)
{
        const char *s = getenv("TM_TEST_SEED");

        rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)tm_time_now();
        printf("test_chunker: TM_TEST_SEED=%" PRIu64 "\n", rng_state);
        return 0;
}

static struct tm_chunker_params params(uint32_t min, uint32_t avg, uint32_t max)
{
        return (struct tm_chunker_params){ .min = min, .avg = avg, .max = max };
}

/* Cut a whole buffer the way the backup pipeline does: each call sees at
 * most `window` bytes (>= max) or what is left. Returns the number of
 * chunks, lengths in lens (if non-NULL, room for cap entries). */
static size_t cut_all(const tm_chunker *c, const uint8_t *p, size_t n, size_t window, size_t *lens,
                      size_t cap)
{
        size_t off = 0, k = 0;

        while (off < n) {
                size_t l = tm_chunker_cut(c, p + off, TM_MIN(n - off, window));

                assert_true(l >= 1 && l <= n - off);
                if (lens) {
                        assert_true(k < cap);
                        lens[k] = l;
                }
                k++;
                off += l;
        }
        return k;
}

/* The documented algorithm, one byte at a time and written independently
 * of lib/src/chunker: gear[4j + k] is little-endian word k of
 * HMAC-SHA-256(seed, "tidemark gear" || u32le(j)); h = (h << 1) + gear[b]
 * from byte min on; before avg a cut needs the top log2(avg) + 2 bits of h
 * clear, from avg on the top log2(avg) - 2; the cut follows that byte. */
static void ref_gear(const uint8_t seed[32], uint64_t gear[256])
{
        for (uint32_t j = 0; j < 64; j++) {
                uint8_t msg[17], out[32];

                memcpy(msg, "tidemark gear", 13);
                tm_set_u32le(msg + 13, j);
                tm_crypto_hmac(seed, 32, msg, sizeof(msg), out);
                for (int k = 0; k < 4; k++)
                        gear[4 * j + k] = tm_get_u64le(out + 8 * k);
        }
}

static size_t ref_cut(const uint64_t gear[256], const struct tm_chunker_params *p, const uint8_t *d,
                      size_t n)
{
        int bits = 0;
        uint64_t h = 0, ms, ml;

        while ((1u << bits) < p->avg)
                bits++;
        ms = ~0ull << (64 - (bits + 2));
        ml = ~0ull << (64 - (bits - 2));
        if (n <= p->min)
                return n;
        if (n > p->max)
                n = p->max;
        for (size_t i = p->min; i < n; i++) {
                h = (h << 1) + gear[d[i]];
                if (!(h & (i < p->avg ? ms : ml)))
                        return i + 1;
        }
        return n;
}

static void test_params_check(void **state)
{
        struct tm_chunker_params def = TM_CHUNKER_PARAMS_DEFAULT, p;
        static const uint32_t bad[][3] = {
                { 63, 128, 256 },           { 0, 128, 256 },
                { 128, 128, 256 },          { 200, 128, 256 },
                { 64, 100, 256 },           { 64, 128, 128 },
                { 64, 256, 128 },           { 64, 128, 64u << 20 | 1 },
                { 64, 3u << 20, 8u << 20 },
        };

        assert_int_equal(tm_chunker_params_check(&def), 0);
        p = params(64, 128, 129);
        assert_int_equal(tm_chunker_params_check(&p), 0);
        p = params(64, 1u << 25, 64u << 20);
        assert_int_equal(tm_chunker_params_check(&p), 0);
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                p = params(bad[i][0], bad[i][1], bad[i][2]);
                assert_int_equal(tm_chunker_params_check(&p), -EINVAL);
        }
        assert_int_equal(tm_chunker_params_check(NULL), -EINVAL);
}

static void test_new(void **state)
{
        struct tm_chunker_params p = params(256, 1024, 4096), bad = params(256, 1000, 4096);
        const struct tm_chunker_params *got;
        uint8_t seed[32] = { 1 };
        tm_chunker *c = NULL;

        assert_int_equal(tm_chunker_new(&bad, seed, &c), -EINVAL);
        assert_null(c);
        assert_int_equal(tm_chunker_new(&p, NULL, &c), -EINVAL);
        assert_null(c);
        assert_int_equal(tm_chunker_new(&p, seed, &c), 0);
        assert_non_null(c);
        got = tm_chunker_params(c);
        assert_int_equal(got->min, 256);
        assert_int_equal(got->avg, 1024);
        assert_int_equal(got->max, 4096);
        tm_chunker_free(c);
        tm_chunker_free(NULL);
}

static void test_short_input(void **state)
{
        struct tm_chunker_params p = params(256, 1024, 4096);
        uint8_t seed[32] = { 2 }, d[300];
        tm_chunker *c;

        rng_fill(d, sizeof(d));
        assert_int_equal(tm_chunker_new(&p, seed, &c), 0);
        for (size_t n = 0; n <= 256; n++)
                assert_int_equal(tm_chunker_cut(c, d, n), n);
        /* Just above min: a cut, if any, is after min. */
        for (size_t n = 257; n <= sizeof(d); n++) {
                size_t l = tm_chunker_cut(c, d, n);

                assert_true(l > 256 && l <= n);
        }
        tm_chunker_free(c);
}

static void test_matches_reference(void **state)
{
        static const uint32_t ps[][3] = {
                { 64, 256, 1024 },
                { 256, 1024, 8192 },
                { 1000, 1024, 1025 },
                { 4096, 16384, 65536 },
        };
        size_t n = 4u << 20;
        uint8_t *d = malloc(n), seed[32];
        uint64_t gear[256];

        assert_non_null(d);
        rng_fill(d, n);
        rng_fill(seed, sizeof(seed));
        ref_gear(seed, gear);
        for (size_t k = 0; k < TM_ARRAY_SIZE(ps); k++) {
                struct tm_chunker_params p = params(ps[k][0], ps[k][1], ps[k][2]);
                size_t off = 0, n_chunks = 0;
                tm_chunker *c;

                assert_int_equal(tm_chunker_new(&p, seed, &c), 0);
                while (off < n) {
                        /* Vary the window so odd and even ends are covered. */
                        size_t w = TM_MIN(n - off, p.max + (off & 3));
                        size_t want = ref_cut(gear, &p, d + off, w);

                        assert_int_equal(tm_chunker_cut(c, d + off, w), want);
                        /* A window cut short by the end of the stream. */
                        if (w > p.min + 1)
                                assert_int_equal(tm_chunker_cut(c, d + off, w - 1),
                                                 ref_cut(gear, &p, d + off, w - 1));
                        off += want;
                        n_chunks++;
                }
                assert_true(n_chunks > n / p.max);
                tm_chunker_free(c);
        }
        free(d);
}

static void test_bounds_and_determinism(void **state)
{
        struct tm_chunker_params p = params(2048, 8192, 32768);
        size_t n = 8u << 20, cap = n / 2048 + 1;
        size_t *a = calloc(cap, sizeof(*a)), *b = calloc(cap, sizeof(*b)), ka, kb, total = 0;
        uint8_t *d = malloc(n), seed[32];
        tm_chunker *c1, *c2;

        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(d);
        rng_fill(d, n);
        rng_fill(seed, sizeof(seed));
        assert_int_equal(tm_chunker_new(&p, seed, &c1), 0);
        assert_int_equal(tm_chunker_new(&p, seed, &c2), 0);
        ka = cut_all(c1, d, n, SIZE_MAX, a, cap);
        /* Another chunker from the same seed, fed exactly max bytes a time. */
        kb = cut_all(c2, d, n, p.max, b, cap);
        assert_int_equal(ka, kb);
        assert_memory_equal(a, b, ka * sizeof(*a));
        for (size_t i = 0; i < ka; i++) {
                if (i + 1 < ka)
                        assert_true(a[i] > p.min && a[i] <= p.max);
                total += a[i];
        }
        assert_int_equal(total, n);
        /* Average on random data within a sane factor of avg. */
        assert_true(n / ka >= p.avg / 2 && n / ka <= 2 * p.avg);
        printf("test_chunker: %zu chunks, mean %zu (avg %u)\n", ka, n / ka, p.avg);
        tm_chunker_free(c1);
        tm_chunker_free(c2);
        free(a);
        free(b);
        free(d);
}

static void test_seed_matters(void **state)
{
        struct tm_chunker_params p = params(256, 1024, 8192);
        size_t n = 1u << 20, cap = n / 256 + 1, same = 0;
        size_t *a = calloc(cap, sizeof(*a)), *b = calloc(cap, sizeof(*b)), ka, kb;
        uint8_t *d = malloc(n), s1[32], s2[32];
        tm_chunker *c1, *c2;

        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(d);
        rng_fill(d, n);
        rng_fill(s1, sizeof(s1));
        memcpy(s2, s1, sizeof(s2));
        s2[31] ^= 1;
        assert_int_equal(tm_chunker_new(&p, s1, &c1), 0);
        assert_int_equal(tm_chunker_new(&p, s2, &c2), 0);
        ka = cut_all(c1, d, n, SIZE_MAX, a, cap);
        kb = cut_all(c2, d, n, SIZE_MAX, b, cap);
        /* Compare cut positions: with ~800 chunks, a different table cannot
         * plausibly reproduce more than a handful by chance. */
        for (size_t i = 0, j = 0, oa = 0, ob = 0; i < ka && j < kb;) {
                if (oa + a[i] == ob + b[j])
                        same++;
                if (oa + a[i] <= ob + b[j])
                        oa += a[i++];
                else
                        ob += b[j++];
        }
        assert_true(same < ka / 4);
        tm_chunker_free(c1);
        tm_chunker_free(c2);
        free(a);
        free(b);
        free(d);
}

struct chunk {
        size_t len;
        tm_id id;
};

static int chunk_cmp(const void *x, const void *y)
{
        const struct chunk *a = x, *b = y;

        if (a->len != b->len)
                return a->len < b->len ? -1 : 1;
        return tm_id_cmp(&a->id, &b->id);
}

static size_t chunk_list(const tm_chunker *c, const uint8_t *p, size_t n, struct chunk *out,
                         size_t cap)
{
        size_t off = 0, k = 0;

        while (off < n) {
                size_t l = tm_chunker_cut(c, p + off, n - off);

                assert_true(k < cap);
                out[k].len = l;
                tm_crypto_sha256(p + off, l, &out[k].id);
                k++;
                off += l;
        }
        return k;
}

/* Inserting one byte at the start of 100 MiB changes at most 3 chunks: the
 * chunker resynchronises at the first cut after the edit. */
static void test_shift_resistance(void **state)
{
        struct tm_chunker_params p = TM_CHUNKER_PARAMS_DEFAULT;
        size_t n = 100u << 20, cap = n / p.min + 2, ka, kb, changed = 0;
        uint8_t *d = malloc(n + 1), seed[32];
        struct chunk *a = calloc(cap, sizeof(*a)), *b = calloc(cap, sizeof(*b));
        tm_chunker *c;

        assert_non_null(d);
        assert_non_null(a);
        assert_non_null(b);
        rng_fill(d + 1, n);
        rng_fill(seed, sizeof(seed));
        d[0] = (uint8_t)rng_next();
        assert_int_equal(tm_chunker_new(&p, seed, &c), 0);
        ka = chunk_list(c, d + 1, n, a, cap);
        kb = chunk_list(c, d, n + 1, b, cap);
        /* Chunks of the edited stream that the original does not have. */
        qsort(a, ka, sizeof(*a), chunk_cmp);
        for (size_t j = 0; j < kb; j++)
                if (!bsearch(&b[j], a, ka, sizeof(*a), chunk_cmp))
                        changed++;
        printf("test_chunker: %zu -> %zu chunks, %zu new after a 1-byte insert\n", ka, kb, changed);
        assert_true(ka > 50);
        assert_true(changed >= 1 && changed <= 3);
        tm_chunker_free(c);
        free(a);
        free(b);
        free(d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_params_check),
                cmocka_unit_test(test_new),
                cmocka_unit_test(test_short_input),
                cmocka_unit_test(test_matches_reference),
                cmocka_unit_test(test_bounds_and_determinism),
                cmocka_unit_test(test_seed_matters),
                cmocka_unit_test(test_shift_resistance),
        };

        return cmocka_run_group_tests(tests, rng_setup, NULL);
}
