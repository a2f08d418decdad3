/* Unit tests for lib/src/core/core.c: bounded buffers, hex and ids, the
 * little-endian and varint encoders, the bounds-checked reader and the small
 * file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/core.h>
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

static int rng_setup(void **state)
{
        const char *s = getenv("TM_TEST_SEED");

        rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)tm_time_now();
        printf("test_core: TM_TEST_SEED=%" PRIu64 "\n", rng_state);
        return 0;
}

static void test_buf_append_limit(void **state)
{
        tm_buf b = TM_BUF_INIT(10);

        assert_int_equal(tm_buf_append(&b, "hello", 5), 0);
        assert_int_equal(tm_buf_append(&b, "world", 5), 0);
        assert_int_equal(b.len, 10);
        assert_memory_equal(b.data, "helloworld", 10);
        assert_int_equal(b.data[10], 0); /* NUL-terminated for text */
        assert_int_equal(tm_buf_append(&b, "!", 1), -E2BIG);
        assert_int_equal(b.len, 10);
        assert_int_equal(tm_buf_append(&b, "", 0), 0);
        assert_int_equal(tm_buf_reserve(&b, 0), 0);
        assert_int_equal(tm_buf_reserve(&b, 1), -E2BIG);
        assert_int_equal(tm_buf_reserve(&b, SIZE_MAX), -E2BIG);
        tm_buf_clear(&b);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.data[0], 0);
        assert_int_equal(tm_buf_append(&b, "0123456789", 10), 0);
        tm_buf_dispose(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        assert_int_equal(b.limit, 10); /* limit survives dispose */
        tm_buf_dispose(&b);            /* twice is fine */
        tm_buf_dispose(NULL);
}

static void test_buf_unlimited(void **state)
{
        tm_buf b = TM_BUF_INIT(0);
        uint8_t chunk[1000];

        for (size_t i = 0; i < sizeof(chunk); i++)
                chunk[i] = (uint8_t)i;
        for (int i = 0; i < 1000; i++)
                assert_int_equal(tm_buf_append(&b, chunk, sizeof(chunk)), 0);
        assert_int_equal(b.len, 1000 * sizeof(chunk));
        assert_true(b.cap > b.len);
        assert_memory_equal(b.data + 999 * sizeof(chunk), chunk, sizeof(chunk));
        /* Impossible sizes fail cleanly instead of wrapping around. */
        assert_int_equal(tm_buf_reserve(&b, SIZE_MAX), -E2BIG);
        assert_int_equal(tm_buf_reserve(&b, SIZE_MAX - b.len), -ENOMEM);
        assert_int_equal(b.len, 1000 * sizeof(chunk));
        tm_buf_dispose(&b);
}

static void test_buf_shrink(void **state)
{
        tm_buf b = TM_BUF_INIT(0);
        uint8_t data[1000];

        (void)state;
        memset(data, 7, sizeof(data));
        assert_int_equal(tm_buf_append(&b, data, 600), 0);
        assert_true(b.cap > 601);
        tm_buf_shrink(&b);
        assert_int_equal(b.cap, 601);
        assert_int_equal(b.len, 600);
        assert_memory_equal(b.data, data, 600);
        assert_int_equal(tm_buf_append(&b, data, 400), 0); /* still grows */
        assert_int_equal(b.len, 1000);
        tm_buf_dispose(&b);
        tm_buf_shrink(&b); /* empty: nothing to do */
        assert_null(b.data);
}

static void test_buf_printf(void **state)
{
        tm_buf b = TM_BUF_INIT(16);

        assert_int_equal(tm_buf_printf(&b, "%s-%d", "ab", 42), 0);
        assert_int_equal(b.len, 5);
        assert_string_equal((const char *)b.data, "ab-42");
        assert_int_equal(tm_buf_printf(&b, "%05u", 7u), 0);
        assert_string_equal((const char *)b.data, "ab-4200007");
        assert_int_equal(tm_buf_printf(&b, "%s", "0123456789"), -E2BIG);
        assert_int_equal(b.len, 10);
        assert_string_equal((const char *)b.data, "ab-4200007");
        assert_int_equal(tm_buf_printf(&b, "%s", ""), 0);
        assert_int_equal(b.len, 10);
        tm_buf_dispose(&b);
}

static void test_buf_move(void **state)
{
        tm_buf src = TM_BUF_INIT(100), dst = TM_BUF_INIT(50);

        assert_int_equal(tm_buf_append(&dst, "old", 3), 0);
        assert_int_equal(tm_buf_append(&src, "new data", 8), 0);
        tm_buf_move(&dst, &src);
        assert_int_equal(dst.len, 8);
        assert_memory_equal(dst.data, "new data", 8);
        assert_null(src.data);
        assert_int_equal(src.len, 0);
        assert_int_equal(src.cap, 0);
        /* src is reusable afterwards. */
        assert_int_equal(tm_buf_append(&src, "x", 1), 0);
        assert_int_equal(src.len, 1);
        tm_buf_dispose(&src);
        tm_buf_dispose(&dst);
}

static void test_buf_dispose_secret(void **state)
{
        tm_buf b = TM_BUF_INIT(0);

        assert_int_equal(tm_buf_append(&b, "secret key", 10), 0);
        tm_buf_dispose_secret(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
        tm_buf_dispose_secret(&b);
        tm_buf_dispose_secret(NULL);
}

static void test_hex(void **state)
{
        const uint8_t bytes[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
        uint8_t back[6];
        char hex[13];

        tm_hex_encode(bytes, sizeof(bytes), hex);
        assert_string_equal(hex, "00017f80abff");
        assert_int_equal(tm_hex_decode("00017f80abff", back, 6), 0);
        assert_memory_equal(back, bytes, 6);
        assert_int_equal(tm_hex_decode("00017F80ABFF", back, 6), 0);
        assert_memory_equal(back, bytes, 6);
        tm_hex_encode(bytes, 0, hex);
        assert_string_equal(hex, "");
        assert_int_equal(tm_hex_decode("", back, 0), 0);
        /* Wrong lengths and non-hex characters. */
        assert_int_equal(tm_hex_decode("00017f80abf", back, 6), -EINVAL);
        assert_int_equal(tm_hex_decode("00017f80abff0", back, 6), -EINVAL);
        assert_int_equal(tm_hex_decode("00017f80abfg", back, 6), -EINVAL);
        assert_int_equal(tm_hex_decode("0x017f80abff", back, 6), -EINVAL);
        assert_int_equal(tm_hex_decode(" 0017f80abff", back, 6), -EINVAL);
        assert_int_equal(tm_hex_decode(NULL, back, 6), -EINVAL);
}

static void test_id(void **state)
{
        tm_id a, b, zero;
        char hex[TM_ID_HEX_LEN + 1];

        memset(&zero, 0, sizeof(zero));
        for (int i = 0; i < TM_ID_LEN; i++)
                a.b[i] = (uint8_t)(i * 7 + 1);
        tm_id_hex(&a, hex);
        assert_int_equal(strlen(hex), TM_ID_HEX_LEN);
        assert_int_equal(tm_id_parse(hex, &b), 0);
        assert_int_equal(tm_id_cmp(&a, &b), 0);
        b.b[31]++;
        assert_true(tm_id_cmp(&a, &b) < 0);
        assert_true(tm_id_cmp(&b, &a) > 0);
        assert_true(tm_id_is_zero(&zero));
        assert_false(tm_id_is_zero(&a));
        zero.b[31] = 1;
        assert_false(tm_id_is_zero(&zero));
        /* Parse failures leave *ret alone. */
        b = a;
        hex[63] = 0;
        assert_int_equal(tm_id_parse(hex, &b), -EINVAL);
        assert_int_equal(tm_id_cmp(&a, &b), 0);
        assert_int_equal(tm_id_parse("zz", &b), -EINVAL);
}

static void test_fixed_ints(void **state)
{
        tm_buf b = TM_BUF_INIT(0);
        uint8_t p[8];

        assert_int_equal(tm_put_u8(&b, 0xab), 0);
        assert_int_equal(tm_put_u32le(&b, 0x01020304u), 0);
        assert_int_equal(tm_put_u64le(&b, 0x1122334455667788ull), 0);
        assert_int_equal(b.len, 13);
        assert_memory_equal(b.data, "\xab\x04\x03\x02\x01\x88\x77\x66\x55\x44\x33\x22\x11", 13);
        assert_int_equal(tm_get_u32le(b.data + 1), 0x01020304u);
        assert_int_equal(tm_get_u64le(b.data + 5), 0x1122334455667788ull);
        tm_set_u32le(p, 0xdeadbeefu);
        assert_memory_equal(p, "\xef\xbe\xad\xde", 4);
        tm_set_u64le(p, UINT64_MAX);
        assert_int_equal(tm_get_u64le(p), UINT64_MAX);
        tm_buf_dispose(&b);
        b.limit = 3;
        assert_int_equal(tm_put_u32le(&b, 1), -E2BIG);
        assert_int_equal(tm_put_u64le(&b, 1), -E2BIG);
        assert_int_equal(b.len, 0);
        tm_buf_dispose(&b);
}

static void test_varint_roundtrip(void **state)
{
        static const struct {
                uint64_t v;
                size_t len;
        } known[] = {
                { 0, 1 },           { 1, 1 },           { 127, 1 },   { 128, 2 },
                { 300, 2 },         { 16383, 2 },       { 16384, 3 }, { UINT32_MAX, 5 },
                { 1ull << 63, 10 }, { UINT64_MAX, 10 },
        };
        tm_buf b = TM_BUF_INIT(0);
        tm_reader r;
        uint64_t v;

        for (size_t i = 0; i < TM_ARRAY_SIZE(known); i++) {
                tm_buf_clear(&b);
                assert_int_equal(tm_put_varint(&b, known[i].v), 0);
                assert_int_equal(b.len, known[i].len);
                tm_reader_init(&r, b.data, b.len);
                assert_int_equal(tm_reader_varint(&r, &v), 0);
                assert_int_equal(v, known[i].v);
                assert_int_equal(tm_reader_left(&r), 0);
        }
        /* 300 = 0xac 0x02 (the protobuf example). */
        tm_buf_clear(&b);
        assert_int_equal(tm_put_varint(&b, 300), 0);
        assert_memory_equal(b.data, "\xac\x02", 2);
        /* Random values, many in one stream. */
        tm_buf_clear(&b);
        {
                uint64_t vals[500];

                for (size_t i = 0; i < TM_ARRAY_SIZE(vals); i++) {
                        vals[i] = rng_next() >> (rng_next() % 64);
                        assert_int_equal(tm_put_varint(&b, vals[i]), 0);
                }
                tm_reader_init(&r, b.data, b.len);
                for (size_t i = 0; i < TM_ARRAY_SIZE(vals); i++) {
                        assert_int_equal(tm_reader_varint(&r, &v), 0);
                        assert_int_equal(v, vals[i]);
                }
                assert_int_equal(tm_reader_left(&r), 0);
                assert_int_equal(tm_reader_varint(&r, &v), -EBADMSG);
        }
        tm_buf_dispose(&b);
}

static void test_varint_malformed(void **state)
{
        static const struct {
                const char *p;
                size_t n;
        } bad[] = {
                { "", 0 },
                { "\x80", 1 },                                          /* truncated */
                { "\xff\xff", 2 },                                      /* truncated */
                { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 10 },     /* > 64 bits */
                { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 10 },     /* > 64 bits */
                { "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11 }, /* 11 bytes */
                { "\x80\x00", 2 },                                      /* overlong 0 */
                { "\x81\x80\x00", 3 },                                  /* overlong 1 */
        };
        tm_reader r;
        uint64_t v = 42;

        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                tm_reader_init(&r, bad[i].p, bad[i].n);
                assert_int_equal(tm_reader_varint(&r, &v), -EBADMSG);
                assert_int_equal(v, 42);
                /* A failed read consumes nothing. */
                assert_int_equal(tm_reader_left(&r), bad[i].n);
        }
        /* The largest 10-byte encoding is fine. */
        tm_reader_init(&r, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10);
        assert_int_equal(tm_reader_varint(&r, &v), 0);
        assert_int_equal(v, UINT64_MAX);
}

static void test_reader_bounds(void **state)
{
        const uint8_t data[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 };
        const uint8_t *p = NULL;
        tm_reader r;
        uint64_t u64 = 0;
        uint32_t u32 = 0;
        uint8_t u8 = 0;

        tm_reader_init(&r, data, sizeof(data));
        assert_int_equal(tm_reader_left(&r), 13);
        assert_int_equal(tm_reader_u8(&r, &u8), 0);
        assert_int_equal(u8, 1);
        assert_int_equal(tm_reader_u32le(&r, &u32), 0);
        assert_int_equal(u32, 0x05040302u);
        assert_int_equal(tm_reader_left(&r), 8);
        assert_int_equal(tm_reader_bytes(&r, 9, &p), -EBADMSG);
        assert_null(p);
        assert_int_equal(tm_reader_bytes(&r, 2, &p), 0);
        assert_ptr_equal(p, data + 5);
        /* 6 left: a u64 does not fit, and nothing is consumed by trying. */
        assert_int_equal(tm_reader_u64le(&r, &u64), -EBADMSG);
        assert_int_equal(tm_reader_left(&r), 6);
        assert_int_equal(tm_reader_u32le(&r, &u32), 0);
        assert_int_equal(u32, 0x0b0a0908u);
        assert_int_equal(tm_reader_u32le(&r, &u32), -EBADMSG);
        assert_int_equal(tm_reader_bytes(&r, SIZE_MAX, &p), -EBADMSG);
        assert_int_equal(tm_reader_bytes(&r, 2, &p), 0);
        assert_int_equal(tm_reader_left(&r), 0);
        assert_int_equal(tm_reader_u8(&r, &u8), -EBADMSG);
        assert_int_equal(tm_reader_bytes(&r, 0, &p), 0);
        tm_reader_init(&r, data, 8);
        assert_int_equal(tm_reader_u64le(&r, &u64), 0);
        assert_int_equal(u64, 0x0807060504030201ull);
        tm_reader_init(&r, NULL, 0);
        assert_int_equal(tm_reader_u8(&r, &u8), -EBADMSG);
}

static void test_strdup_ncpu(void **state)
{
        char *s = tm_strdup("abc");

        assert_non_null(s);
        assert_string_equal(s, "abc");
        free(s);
        assert_null(tm_strdup(NULL));
        assert_true(tm_ncpu() >= 1);
        assert_int_equal(tm_ncpu(), (int)sysconf(_SC_NPROCESSORS_ONLN));
}

static void write_file(const char *path, const void *p, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t)n);
        assert_int_equal(close(fd), 0);
}

static void test_file_read_all(void **state)
{
        char dir[] = "/tmp/tm-test-core-XXXXXX", path[64], empty[64];
        size_t big = 200000;
        uint8_t *data = malloc(big);
        tm_buf b = TM_BUF_INIT(0);

        assert_non_null(data);
        for (size_t i = 0; i < big; i++)
                data[i] = (uint8_t)rng_next();
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/f", dir);
        snprintf(empty, sizeof(empty), "%s/e", dir);
        write_file(path, data, big);
        write_file(empty, "", 0);

        assert_int_equal(tm_file_read_all(path, big, &b), 0);
        assert_int_equal(b.len, big);
        assert_memory_equal(b.data, data, big);
        assert_int_equal(b.data[big], 0);
        /* One byte over the limit. */
        assert_int_equal(tm_file_read_all(path, big - 1, &b), -E2BIG);
        assert_int_equal(b.len, big); /* b untouched on failure */
        /* Limits below the internal read size work too. */
        write_file(path, "hello", 5);
        assert_int_equal(tm_file_read_all(path, 5, &b), 0);
        assert_int_equal(b.len, 5);
        assert_string_equal((const char *)b.data, "hello");
        assert_int_equal(tm_file_read_all(path, 4, &b), -E2BIG);
        assert_int_equal(tm_file_read_all(path, 0, &b), 0); /* 0 = unlimited */
        assert_int_equal(b.len, 5);
        assert_int_equal(tm_file_read_all(empty, 10, &b), 0);
        assert_int_equal(b.len, 0);
        assert_non_null(b.data);
        assert_int_equal(b.data[0], 0);
        snprintf(path, sizeof(path), "%s/missing", dir);
        assert_int_equal(tm_file_read_all(path, 10, &b), -ENOENT);
        assert_int_equal(tm_file_read_all(dir, 10, &b), -EISDIR);

        snprintf(path, sizeof(path), "%s/f", dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(unlink(empty), 0);
        assert_int_equal(rmdir(dir), 0);
        tm_buf_dispose(&b);
        free(data);
}

static void test_assert(void **state)
{
        int status = 0;
        pid_t pid;

        TM_ASSERT(1 + 1 == 2);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                /* The child must die by abort() with a message on stderr. */
                int devnull = open("/dev/null", O_WRONLY);

                if (devnull >= 0)
                        dup2(devnull, 2);
                signal(SIGABRT, SIG_DFL);
                TM_ASSERT(pid != 0);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buf_append_limit),
                cmocka_unit_test(test_buf_unlimited),
                cmocka_unit_test(test_buf_shrink),
                cmocka_unit_test(test_buf_printf),
                cmocka_unit_test(test_buf_move),
                cmocka_unit_test(test_buf_dispose_secret),
                cmocka_unit_test(test_hex),
                cmocka_unit_test(test_id),
                cmocka_unit_test(test_fixed_ints),
                cmocka_unit_test(test_varint_roundtrip),
                cmocka_unit_test(test_varint_malformed),
                cmocka_unit_test(test_reader_bounds),
                cmocka_unit_test(test_strdup_ncpu),
                cmocka_unit_test(test_file_read_all),
                cmocka_unit_test(test_assert),
        };

        return cmocka_run_group_tests(tests, rng_setup, NULL);
}
