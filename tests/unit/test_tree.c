/* Unit tests for tree: canonical encoding (pinned by a golden file), strict
 * decoding, lookup and ownership helpers. TM_UPDATE_GOLDEN=1 rewrites
 * tests/data/tree-golden.bin and the tree fuzz corpus. */
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

#include <tidemark/core.h>
#include <tidemark/time.h>
#include <tidemark/tree.h>

static const char *data_dir(void)
{
        const char *d = getenv("TM_TEST_DATA");

        return d ? d : "tests/data";
}

static int updating_golden(void)
{
        const char *v = getenv("TM_UPDATE_GOLDEN");

        return v && strcmp(v, "1") == 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

static tm_id fill_id(uint8_t v)
{
        tm_id id;

        memset(id.b, v, sizeof(id.b));
        return id;
}

static struct tm_node base_node(const char *name, uint8_t type)
{
        struct tm_node n = { 0 };

        n.name = strdup(name);
        n.type = type;
        n.mode = 0644;
        n.uid = 1000;
        n.gid = 100;
        n.user = strdup("alice");
        n.group = strdup("staff");
        n.mtime_ns = 1700000000123456789LL;
        n.ctime_ns = 1700000001000000000LL;
        n.dev = 0x803;
        n.inode = 4242;
        n.nlink = 1;
        return n;
}

static void add_xattr(struct tm_node *n, const char *name, const char *value)
{
        struct tm_xattr *x = reallocarray(n->xattrs, n->n_xattrs + 1, sizeof(*x));

        assert_non_null(x);
        n->xattrs = x;
        x[n->n_xattrs].name = strdup(name);
        x[n->n_xattrs].len = strlen(value);
        x[n->n_xattrs].value = (uint8_t *)strdup(value);
        n->n_xattrs++;
}

/* The fixed tree the golden file pins. Nodes are added out of order and the
 * xattrs unsorted, so the golden bytes also pin the sorting. */
static void build_fixed_tree(struct tm_tree *t)
{
        struct tm_node n;

        n = base_node("file.txt", TM_NODE_FILE);
        n.size = 3 * 1024 * 1024 + 17;
        n.mtime_ns = -1234567890123LL; /* before 1970: zigzag */
        n.n_content = 2;
        n.content = calloc(2, sizeof(*n.content));
        assert_non_null(n.content);
        n.content[0] = (struct tm_content){ .id = fill_id(0xa1), .size = 2 * 1024 * 1024 };
        n.content[1] = (struct tm_content){ .id = fill_id(0xa2), .size = 1024 * 1024 + 17 };
        add_xattr(&n, "user.zz", "last");
        add_xattr(&n, "security.selinux", "system_u:object_r:etc_t:s0");
        add_xattr(&n, "user.empty", "");
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("sub", TM_NODE_DIR);
        n.mode = 01755;
        n.nlink = 3;
        n.subtree = fill_id(0x5d);
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("link", TM_NODE_SYMLINK);
        n.mode = 0777;
        n.target = strdup("../target/of link");
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("fifo", TM_NODE_FIFO);
        free(n.user);
        free(n.group);
        n.user = n.group = NULL; /* unknown names encode as empty */
        n.uid = 4294967295u;
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("null", TM_NODE_CHARDEV);
        n.rdev = (1u << 8) | 3u;
        n.mode = 0666;
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("Zeta", TM_NODE_BLOCKDEV);
        n.rdev = (8u << 8) | 1u;
        assert_int_equal(tm_tree_add_take(t, &n), 0);

        n = base_node("\xc3\xa9t\xc3\xa9", TM_NODE_SOCKET); /* "été": sorts after ASCII */
        n.mode = 04755;
        n.ctime_ns = INT64_MIN;
        n.size = UINT64_MAX;
        assert_int_equal(tm_tree_add_take(t, &n), 0);
}

static int str_eq(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

static void assert_node_equal(const struct tm_node *a, const struct tm_node *b)
{
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->mode, b->mode);
        assert_int_equal(a->uid, b->uid);
        assert_int_equal(a->gid, b->gid);
        assert_true(str_eq(a->user, b->user));
        assert_true(str_eq(a->group, b->group));
        assert_true(a->mtime_ns == b->mtime_ns);
        assert_true(a->ctime_ns == b->ctime_ns);
        assert_true(a->size == b->size);
        assert_true(a->dev == b->dev);
        assert_true(a->inode == b->inode);
        assert_true(a->nlink == b->nlink);
        assert_true(a->rdev == b->rdev);
        assert_int_equal(a->n_xattrs, b->n_xattrs);
        for (size_t i = 0; i < a->n_xattrs; i++) {
                assert_string_equal(a->xattrs[i].name, b->xattrs[i].name);
                assert_int_equal(a->xattrs[i].len, b->xattrs[i].len);
                if (a->xattrs[i].len)
                        assert_memory_equal(a->xattrs[i].value, b->xattrs[i].value,
                                            a->xattrs[i].len);
        }
        assert_int_equal(a->n_content, b->n_content);
        if (a->n_content)
                assert_memory_equal(a->content, b->content, a->n_content * sizeof(*a->content));
        assert_memory_equal(a->subtree.b, b->subtree.b, TM_ID_LEN);
        assert_true(str_eq(a->target, b->target));
}

static void encode_fixed(tm_buf *out)
{
        struct tm_tree t = TM_TREE_INIT;

        build_fixed_tree(&t);
        assert_int_equal(tm_tree_encode(&t, out), 0);
        tm_tree_dispose(&t);
}

static void write_corpus(const tm_buf *golden)
{
        char path[4096];
        struct tm_tree t = TM_TREE_INIT;
        struct tm_node n = base_node("only", TM_NODE_FILE);
        tm_buf b = TM_BUF_INIT(0);
        static const uint8_t garbage1[] = "TMTR\x01\xff\xff\xff\xff\x0f";
        static const uint8_t garbage2[] = { 0x00, 0x01, 0x02, 0x03, 0xfe, 0xff };

        snprintf(path, sizeof(path), "%s/../fuzz/corpus/tree/valid-golden.bin", data_dir());
        write_file(path, golden->data, golden->len);
        assert_int_equal(tm_tree_encode(&t, &b), 0);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/tree/valid-empty.bin", data_dir());
        write_file(path, b.data, b.len);
        tm_buf_clear(&b);
        assert_int_equal(tm_tree_add_take(&t, &n), 0);
        assert_int_equal(tm_tree_encode(&t, &b), 0);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/tree/valid-one.bin", data_dir());
        write_file(path, b.data, b.len);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/tree/garbage-count.bin", data_dir());
        write_file(path, garbage1, sizeof(garbage1) - 1);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/tree/garbage-bytes.bin", data_dir());
        write_file(path, garbage2, sizeof(garbage2));
        tm_buf_dispose(&b);
        tm_tree_dispose(&t);
}

static void test_golden(void **state)
{
        char path[4096];
        tm_buf enc = TM_BUF_INIT(0), golden = TM_BUF_INIT(1 << 20);

        (void)state;
        encode_fixed(&enc);
        snprintf(path, sizeof(path), "%s/tree-golden.bin", data_dir());
        if (updating_golden()) {
                write_file(path, enc.data, enc.len);
                write_corpus(&enc);
        }
        assert_int_equal(tm_file_read_all(path, 1 << 20, &golden), 0);
        assert_int_equal(enc.len, golden.len);
        assert_memory_equal(enc.data, golden.data, enc.len);
        /* The header, spelled out, so a change of magic or version is loud. */
        assert_memory_equal(golden.data, "TMTR\x01\x07", 6);
        tm_buf_dispose(&golden);
        tm_buf_dispose(&enc);
}

static void test_roundtrip(void **state)
{
        struct tm_tree t = TM_TREE_INIT, d = TM_TREE_INIT;
        tm_buf enc = TM_BUF_INIT(0), again = TM_BUF_INIT(0);

        (void)state;
        build_fixed_tree(&t);
        assert_int_equal(tm_tree_encode(&t, &enc), 0);
        /* encode sorted the caller's nodes bytewise */
        assert_string_equal(t.nodes[0].name, "Zeta");
        assert_string_equal(t.nodes[t.n - 1].name, "\xc3\xa9t\xc3\xa9");
        assert_string_equal(tm_tree_find(&t, "file.txt")->xattrs[0].name, "security.selinux");
        assert_string_equal(t.nodes[1].name, "fifo");
        assert_int_equal(tm_tree_decode(enc.data, enc.len, &d), 0);
        assert_int_equal(d.n, t.n);
        for (size_t i = 0; i < t.n; i++)
                assert_node_equal(&t.nodes[i], &d.nodes[i]);
        assert_null(tm_tree_find(&d, "fifo")->user); /* empty decodes as NULL */
        assert_int_equal(tm_tree_encode(&d, &again), 0);
        assert_int_equal(again.len, enc.len);
        assert_memory_equal(again.data, enc.data, enc.len);
        tm_buf_dispose(&again);
        tm_buf_dispose(&enc);
        tm_tree_dispose(&d);
        tm_tree_dispose(&t);
        tm_tree_dispose(&t); /* safe twice */
}

static void test_empty_tree(void **state)
{
        struct tm_tree t = TM_TREE_INIT, d = TM_TREE_INIT;
        tm_buf enc = TM_BUF_INIT(0);

        (void)state;
        assert_int_equal(tm_tree_encode(&t, &enc), 0);
        assert_int_equal(enc.len, 6);
        assert_memory_equal(enc.data, "TMTR\x01\x00", 6);
        assert_int_equal(tm_tree_decode(enc.data, enc.len, &d), 0);
        assert_int_equal(d.n, 0);
        assert_null(tm_tree_find(&d, "x"));
        tm_buf_dispose(&enc);
        tm_tree_dispose(&d);
}

static void test_find(void **state)
{
        struct tm_tree t = TM_TREE_INIT;
        tm_buf enc = TM_BUF_INIT(0);
        char name[16];

        (void)state;
        for (int i = 199; i >= 0; i--) {
                struct tm_node n = base_node("x", TM_NODE_FILE);

                free(n.name);
                snprintf(name, sizeof(name), "n%03d", i);
                n.name = strdup(name);
                n.inode = (uint64_t)i;
                assert_int_equal(tm_tree_add_take(&t, &n), 0);
                assert_null(n.name); /* taken */
        }
        assert_int_equal(tm_tree_encode(&t, &enc), 0);
        for (int i = 0; i < 200; i++) {
                const struct tm_node *f;

                snprintf(name, sizeof(name), "n%03d", i);
                f = tm_tree_find(&t, name);
                assert_non_null(f);
                assert_int_equal(f->inode, i);
        }
        assert_null(tm_tree_find(&t, "n200"));
        assert_null(tm_tree_find(&t, "a"));
        assert_null(tm_tree_find(&t, "z"));
        assert_null(tm_tree_find(&t, "n05"));
        assert_null(tm_tree_find(&t, NULL));
        tm_buf_dispose(&enc);
        tm_tree_dispose(&t);
}

static void test_name_valid(void **state)
{
        (void)state;
        assert_true(tm_tree_name_valid("a"));
        assert_true(tm_tree_name_valid("..."));
        assert_true(tm_tree_name_valid(".hidden"));
        assert_true(tm_tree_name_valid("\xff\xfe"));
        assert_false(tm_tree_name_valid(""));
        assert_false(tm_tree_name_valid("."));
        assert_false(tm_tree_name_valid(".."));
        assert_false(tm_tree_name_valid("a/b"));
        assert_false(tm_tree_name_valid("/"));
        assert_false(tm_tree_name_valid(NULL));
}

/* Encode a one-node tree built by mutate() and return tm_tree_encode's result. */
static int encode_with(void (*mutate)(struct tm_node *))
{
        struct tm_tree t = TM_TREE_INIT;
        struct tm_node n = base_node("ok", TM_NODE_FILE), m = base_node("other", TM_NODE_FIFO);
        tm_buf enc = TM_BUF_INIT(0);
        int r;

        mutate(&n);
        assert_int_equal(tm_tree_add_take(&t, &m), 0);
        assert_int_equal(tm_tree_add_take(&t, &n), 0);
        r = tm_tree_encode(&t, &enc);
        if (r < 0)
                assert_int_equal(enc.len, 0);
        tm_buf_dispose(&enc);
        tm_tree_dispose(&t);
        return r;
}

static void set_name(struct tm_node *n, const char *name)
{
        free(n->name);
        n->name = name ? strdup(name) : NULL;
}

static void mut_dup(struct tm_node *n)
{
        set_name(n, "other");
}
static void mut_empty(struct tm_node *n)
{
        set_name(n, "");
}
static void mut_dot(struct tm_node *n)
{
        set_name(n, ".");
}
static void mut_dotdot(struct tm_node *n)
{
        set_name(n, "..");
}
static void mut_slash(struct tm_node *n)
{
        set_name(n, "a/b");
}
static void mut_null_name(struct tm_node *n)
{
        set_name(n, NULL);
}
static void mut_type0(struct tm_node *n)
{
        n->type = 0;
}
static void mut_type8(struct tm_node *n)
{
        n->type = 8;
}
static void mut_mode(struct tm_node *n)
{
        n->mode = 0100644; /* st_mode with S_IFREG: the caller must mask */
}
static void mut_dup_xattr(struct tm_node *n)
{
        add_xattr(n, "user.a", "1");
        add_xattr(n, "user.b", "2");
        add_xattr(n, "user.a", "3");
}
static void mut_empty_xattr(struct tm_node *n)
{
        add_xattr(n, "", "1");
}
static void mut_content_on_dir(struct tm_node *n)
{
        n->type = TM_NODE_DIR;
        n->n_content = 1;
        n->content = calloc(1, sizeof(*n->content));
}
static void mut_target_on_file(struct tm_node *n)
{
        n->target = strdup("x");
}
static void mut_subtree_on_file(struct tm_node *n)
{
        n->subtree = fill_id(1);
}
static void mut_none(struct tm_node *n)
{
        (void)n;
}

static void test_encode_rejects(void **state)
{
        (void)state;
        assert_int_equal(encode_with(mut_none), 0);
        assert_int_equal(encode_with(mut_dup), -EEXIST);
        assert_int_equal(encode_with(mut_empty), -EINVAL);
        assert_int_equal(encode_with(mut_dot), -EINVAL);
        assert_int_equal(encode_with(mut_dotdot), -EINVAL);
        assert_int_equal(encode_with(mut_slash), -EINVAL);
        assert_int_equal(encode_with(mut_null_name), -EINVAL);
        assert_int_equal(encode_with(mut_type0), -EINVAL);
        assert_int_equal(encode_with(mut_type8), -EINVAL);
        assert_int_equal(encode_with(mut_mode), -EINVAL);
        assert_int_equal(encode_with(mut_dup_xattr), -EEXIST);
        assert_int_equal(encode_with(mut_empty_xattr), -EINVAL);
        assert_int_equal(encode_with(mut_content_on_dir), -EINVAL);
        assert_int_equal(encode_with(mut_target_on_file), -EINVAL);
        assert_int_equal(encode_with(mut_subtree_on_file), -EINVAL);
}

static void test_truncated(void **state)
{
        tm_buf enc = TM_BUF_INIT(0);
        struct tm_tree d = TM_TREE_INIT;

        (void)state;
        encode_fixed(&enc);
        for (size_t len = 0; len < enc.len; len++) {
                int r = tm_tree_decode(enc.data, len, &d);

                if (r != -EBADMSG)
                        fail_msg("truncated at %zu of %zu: got %d", len, enc.len, r);
        }
        /* a trailing byte is rejected too */
        assert_int_equal(tm_buf_append(&enc, "", 1), 0);
        assert_int_equal(tm_tree_decode(enc.data, enc.len, &d), -EBADMSG);
        assert_int_equal(d.n, 0); /* untouched */
        tm_buf_dispose(&enc);
}

/* Encoded bytes of a one-node tree, without the 6-byte header. */
static void node_bytes(struct tm_node n, tm_buf *out)
{
        struct tm_tree t = TM_TREE_INIT;
        tm_buf enc = TM_BUF_INIT(0);

        assert_int_equal(tm_tree_add_take(&t, &n), 0);
        assert_int_equal(tm_tree_encode(&t, &enc), 0);
        assert_int_equal(tm_buf_append(out, enc.data + 6, enc.len - 6), 0);
        tm_buf_dispose(&enc);
        tm_tree_dispose(&t);
}

static int decode_buf(const tm_buf *b)
{
        struct tm_tree d = TM_TREE_INIT;
        int r = tm_tree_decode(b->data, b->len, &d);

        tm_tree_dispose(&d);
        return r;
}

static void test_decode_rejects(void **state)
{
        tm_buf b = TM_BUF_INIT(0), a = TM_BUF_INIT(0), c = TM_BUF_INIT(0);
        size_t at;

        (void)state;
        node_bytes(base_node("a", TM_NODE_FIFO), &a);
        node_bytes(base_node("c", TM_NODE_FIFO), &c);

        /* the well-formed two-node tree decodes */
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x02", 6), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(tm_buf_append(&b, c.data, c.len), 0);
        assert_int_equal(decode_buf(&b), 0);

        /* out of order, and duplicate */
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x02", 6), 0);
        assert_int_equal(tm_buf_append(&b, c.data, c.len), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x02", 6), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);

        /* header: magic, version, non-minimal count, count beyond the input */
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTX\x01\x01", 6), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[3] = 'R';
        b.data[4] = 2;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[4] = 1;
        assert_int_equal(decode_buf(&b), 0);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x81\x00", 7), 0);
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 14), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);

        /* node fields: a = len 1, 'a', type, mode (2-byte varint 0644) ... */
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x01", 6), 0);
        at = b.len;
        assert_int_equal(tm_buf_append(&b, a.data, a.len), 0);
        b.data[at + 1] = '/';
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 1] = 0;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 1] = '.';
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 1] = 'a';
        b.data[at + 2] = 0;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 2] = 8;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 2] = TM_NODE_SOCKET;
        assert_int_equal(decode_buf(&b), 0);
        /* mode 0644 = 0xa4 0x03; 0xa4 0x20 is 010044: beyond 07777 */
        assert_int_equal(b.data[at + 3], 0xa4);
        assert_int_equal(b.data[at + 4], 0x03);
        b.data[at + 4] = 0x20;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 4] = 0x03;
        /* a fifo that claims a dir's subtree leaves trailing bytes */
        b.data[at + 2] = TM_NODE_DIR;
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 2] = TM_NODE_FILE; /* n_content missing */
        assert_int_equal(decode_buf(&b), -EBADMSG);
        assert_int_equal(tm_buf_append(&b, "\x00", 1), 0);
        assert_int_equal(decode_buf(&b), 0);
        assert_int_equal(tm_buf_append(&b, "\x00", 1), 0);
        assert_int_equal(decode_buf(&b), -EBADMSG);

        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        tm_buf_dispose(&c);
}

static void test_decode_rejects_xattrs(void **state)
{
        struct tm_node n = base_node("x", TM_NODE_FIFO);
        tm_buf b = TM_BUF_INIT(0), body = TM_BUF_INIT(0);
        const uint8_t *p;
        size_t at;

        (void)state;
        add_xattr(&n, "user.a", "1");
        add_xattr(&n, "user.b", "2");
        node_bytes(n, &body);
        assert_int_equal(tm_buf_append(&b, "TMTR\x01\x01", 6), 0);
        assert_int_equal(tm_buf_append(&b, body.data, body.len), 0);
        assert_int_equal(decode_buf(&b), 0);
        p = memmem(b.data, b.len, "user.b", 6);
        assert_non_null(p);
        at = (size_t)(p - b.data);
        b.data[at + 5] = 'a'; /* duplicate name */
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 5] = '0'; /* out of order */
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 5] = 0; /* NUL inside a name */
        assert_int_equal(decode_buf(&b), -EBADMSG);
        b.data[at + 5] = 'b';
        assert_int_equal(decode_buf(&b), 0);
        tm_buf_dispose(&body);
        tm_buf_dispose(&b);
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        uint64_t x = rng_state;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return rng_state = x;
}

/* Random byte flips of a valid tree: decode never crashes, and whatever it
 * accepts re-encodes to the same bytes (the encoding is canonical). */
static void test_mutations_canonical(void **state)
{
        const char *env = getenv("TM_TEST_SEED");
        uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)tm_time_now();
        tm_buf enc = TM_BUF_INIT(0), again = TM_BUF_INIT(0), m = TM_BUF_INIT(0);
        int accepted = 0;

        (void)state;
        printf("test_mutations_canonical: TM_TEST_SEED=%" PRIu64 "\n", seed);
        rng_state = seed ? seed : 1;
        encode_fixed(&enc);
        for (int iter = 0; iter < 3000; iter++) {
                struct tm_tree d = TM_TREE_INIT;
                int flips = 1 + (int)(rng_next() % 3);

                tm_buf_clear(&m);
                assert_int_equal(tm_buf_append(&m, enc.data, enc.len), 0);
                for (int f = 0; f < flips; f++)
                        m.data[rng_next() % m.len] ^= (uint8_t)(1u << (rng_next() % 8));
                if (tm_tree_decode(m.data, m.len, &d) == 0) {
                        accepted++;
                        tm_buf_clear(&again);
                        assert_int_equal(tm_tree_encode(&d, &again), 0);
                        assert_int_equal(again.len, m.len);
                        assert_memory_equal(again.data, m.data, m.len);
                }
                tm_tree_dispose(&d);
        }
        printf("test_mutations_canonical: %d of 3000 mutants accepted\n", accepted);
        tm_buf_dispose(&m);
        tm_buf_dispose(&again);
        tm_buf_dispose(&enc);
}

static void test_node_copy(void **state)
{
        struct tm_tree t = TM_TREE_INIT;
        struct tm_node copy;

        (void)state;
        build_fixed_tree(&t);
        for (size_t i = 0; i < t.n; i++) {
                assert_int_equal(tm_node_copy(&t.nodes[i], &copy), 0);
                assert_node_equal(&t.nodes[i], &copy);
                assert_ptr_not_equal(copy.name, t.nodes[i].name);
                tm_node_dispose(&copy);
                assert_null(copy.name);
                tm_node_dispose(&copy); /* safe twice */
        }
        tm_node_dispose(NULL);
        tm_tree_dispose(NULL);
        tm_tree_dispose(&t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_empty_tree),
                cmocka_unit_test(test_find),
                cmocka_unit_test(test_name_valid),
                cmocka_unit_test(test_encode_rejects),
                cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_decode_rejects),
                cmocka_unit_test(test_decode_rejects_xattrs),
                cmocka_unit_test(test_mutations_canonical),
                cmocka_unit_test(test_node_copy),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
