/*
 * tree: the canonical encoding of directory listings (layout in tree.h and
 * docs/format.md). Canonical means the decoder accepts exactly the byte
 * sequences the encoder produces: minimal varints, sorted unique names, no
 * fields a node type does not have, no trailing bytes. That is what makes an
 * unchanged directory hash to the same blob id.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/tree.h>

#define TREE_MAGIC   "TMTR"
#define TREE_VERSION 1
#define MODE_MASK    07777u
/* Smallest encoded node: a 1-byte name with its length, type, and thirteen
 * one-byte varints (mode uid gid user group mtime ctime size dev inode nlink
 * rdev n_xattrs). */
#define NODE_MIN_LEN (2 + 1 + 13)
/* Smallest xattr: a 1-byte name with its length and an empty value. */
#define XATTR_MIN_LEN   3
#define CONTENT_MIN_LEN (TM_ID_LEN + 1)

int tm_tree_name_valid(const char *name)
{
        if (!name || !*name || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return 0;
        return strchr(name, '/') == NULL;
}

static int type_valid(uint8_t type)
{
        return type >= TM_NODE_FILE && type <= TM_NODE_SOCKET;
}

void tm_node_dispose(struct tm_node *n)
{
        if (!n)
                return;
        free(n->name);
        free(n->user);
        free(n->group);
        for (size_t i = 0; i < n->n_xattrs; i++) {
                free(n->xattrs[i].name);
                free(n->xattrs[i].value);
        }
        free(n->xattrs);
        free(n->content);
        free(n->target);
        memset(n, 0, sizeof(*n));
}

void tm_tree_dispose(struct tm_tree *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->n; i++)
                tm_node_dispose(&t->nodes[i]);
        free(t->nodes);
        *t = TM_TREE_INIT;
}

/* Make room for one more node. */
static int tree_grow(struct tm_tree *t)
{
        size_t ncap;
        struct tm_node *p;

        if (t->n < t->cap)
                return 0;
        ncap = t->cap ? t->cap * 2 : 16;
        p = reallocarray(t->nodes, ncap, sizeof(*p));
        if (!p)
                return -ENOMEM;
        t->nodes = p;
        t->cap = ncap;
        return 0;
}

int tm_tree_add_take(struct tm_tree *t, struct tm_node *node)
{
        int r = tree_grow(t);

        if (r < 0) {
                tm_node_dispose(node);
                return r;
        }
        t->nodes[t->n++] = *node;
        memset(node, 0, sizeof(*node));
        return 0;
}

static char *dup_or_null(const char *s, int *failed)
{
        char *d;

        if (!s)
                return NULL;
        d = strdup(s);
        if (!d)
                *failed = 1;
        return d;
}

int tm_node_copy(const struct tm_node *src, struct tm_node *ret)
{
        struct tm_node n = *src;
        int failed = 0;

        n.name = NULL;
        n.user = n.group = n.target = NULL;
        n.xattrs = NULL;
        n.content = NULL;
        n.n_xattrs = 0;
        n.n_content = 0;

        n.name = dup_or_null(src->name, &failed);
        n.user = dup_or_null(src->user, &failed);
        n.group = dup_or_null(src->group, &failed);
        n.target = dup_or_null(src->target, &failed);
        if (failed)
                goto fail;
        if (src->n_xattrs) {
                n.xattrs = calloc(src->n_xattrs, sizeof(*n.xattrs));
                if (!n.xattrs)
                        goto fail;
                for (size_t i = 0; i < src->n_xattrs; i++) {
                        const struct tm_xattr *x = &src->xattrs[i];

                        n.n_xattrs++;
                        n.xattrs[i].name = dup_or_null(x->name, &failed);
                        n.xattrs[i].value = malloc(x->len ? x->len : 1);
                        if (failed || !n.xattrs[i].value)
                                goto fail;
                        if (x->len)
                                memcpy(n.xattrs[i].value, x->value, x->len);
                        n.xattrs[i].len = x->len;
                }
        }
        if (src->n_content) {
                n.content = reallocarray(NULL, src->n_content, sizeof(*n.content));
                if (!n.content)
                        goto fail;
                memcpy(n.content, src->content, src->n_content * sizeof(*n.content));
                n.n_content = src->n_content;
        }
        *ret = n;
        return 0;
fail:
        tm_node_dispose(&n);
        return -ENOMEM;
}

/* Bytewise order, as the encoding requires (strcmp compares unsigned char). */
static int node_cmp(const void *a, const void *b)
{
        return strcmp(((const struct tm_node *)a)->name, ((const struct tm_node *)b)->name);
}

static int xattr_cmp(const void *a, const void *b)
{
        return strcmp(((const struct tm_xattr *)a)->name, ((const struct tm_xattr *)b)->name);
}

static uint64_t zigzag(int64_t v)
{
        return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

static int64_t unzigzag(uint64_t v)
{
        return (int64_t)((v >> 1) ^ (0 - (v & 1)));
}

static int put_str(tm_buf *b, const char *s)
{
        size_t n = s ? strlen(s) : 0;
        int r = tm_put_varint(b, n);

        if (r >= 0)
                r = tm_buf_append(b, s, n);
        return r;
}

static int put_bytes(tm_buf *b, const void *p, size_t n)
{
        int r = tm_put_varint(b, n);

        if (r >= 0)
                r = tm_buf_append(b, p, n);
        return r;
}

/* Check one node's fields and sort its xattrs. -EINVAL or -EEXIST. */
static int node_prepare(struct tm_node *n)
{
        if (!tm_tree_name_valid(n->name) || !type_valid(n->type) || n->mode > MODE_MASK)
                return -EINVAL;
        /* Fields a type does not have are not encoded; refuse to drop them
         * silently. */
        if (n->type != TM_NODE_FILE && n->n_content)
                return -EINVAL;
        if (n->n_content && !n->content)
                return -EINVAL;
        if (n->type != TM_NODE_DIR && !tm_id_is_zero(&n->subtree))
                return -EINVAL;
        if (n->type != TM_NODE_SYMLINK && n->target)
                return -EINVAL;
        if (n->n_xattrs && !n->xattrs)
                return -EINVAL;
        for (size_t i = 0; i < n->n_xattrs; i++) {
                const struct tm_xattr *x = &n->xattrs[i];

                if (!x->name || !*x->name || (x->len && !x->value))
                        return -EINVAL;
        }
        if (n->n_xattrs > 1)
                qsort(n->xattrs, n->n_xattrs, sizeof(*n->xattrs), xattr_cmp);
        for (size_t i = 1; i < n->n_xattrs; i++)
                if (strcmp(n->xattrs[i - 1].name, n->xattrs[i].name) == 0)
                        return -EEXIST;
        return 0;
}

static int node_put(tm_buf *b, const struct tm_node *n)
{
        int r;

        r = put_str(b, n->name);
        if (r >= 0)
                r = tm_put_u8(b, n->type);
        if (r >= 0)
                r = tm_put_varint(b, n->mode);
        if (r >= 0)
                r = tm_put_varint(b, n->uid);
        if (r >= 0)
                r = tm_put_varint(b, n->gid);
        if (r >= 0)
                r = put_str(b, n->user);
        if (r >= 0)
                r = put_str(b, n->group);
        if (r >= 0)
                r = tm_put_varint(b, zigzag(n->mtime_ns));
        if (r >= 0)
                r = tm_put_varint(b, zigzag(n->ctime_ns));
        if (r >= 0)
                r = tm_put_varint(b, n->size);
        if (r >= 0)
                r = tm_put_varint(b, n->dev);
        if (r >= 0)
                r = tm_put_varint(b, n->inode);
        if (r >= 0)
                r = tm_put_varint(b, n->nlink);
        if (r >= 0)
                r = tm_put_varint(b, n->rdev);
        if (r >= 0)
                r = tm_put_varint(b, n->n_xattrs);
        for (size_t i = 0; r >= 0 && i < n->n_xattrs; i++) {
                r = put_str(b, n->xattrs[i].name);
                if (r >= 0)
                        r = put_bytes(b, n->xattrs[i].value, n->xattrs[i].len);
        }
        if (r < 0)
                return r;
        switch (n->type) {
        case TM_NODE_FILE:
                r = tm_put_varint(b, n->n_content);
                for (size_t i = 0; r >= 0 && i < n->n_content; i++) {
                        r = tm_buf_append(b, n->content[i].id.b, TM_ID_LEN);
                        if (r >= 0)
                                r = tm_put_varint(b, n->content[i].size);
                }
                break;
        case TM_NODE_DIR:
                r = tm_buf_append(b, n->subtree.b, TM_ID_LEN);
                break;
        case TM_NODE_SYMLINK:
                r = put_str(b, n->target);
                break;
        default:
                break;
        }
        return r;
}

int tm_tree_encode(struct tm_tree *t, tm_buf *out)
{
        size_t start = out->len;
        int r;

        for (size_t i = 0; i < t->n; i++) {
                r = node_prepare(&t->nodes[i]);
                if (r < 0)
                        return r;
        }
        if (t->n > 1)
                qsort(t->nodes, t->n, sizeof(*t->nodes), node_cmp);
        for (size_t i = 1; i < t->n; i++)
                if (strcmp(t->nodes[i - 1].name, t->nodes[i].name) == 0)
                        return -EEXIST;

        r = tm_buf_append(out, TREE_MAGIC, 4);
        if (r >= 0)
                r = tm_put_u8(out, TREE_VERSION);
        if (r >= 0)
                r = tm_put_varint(out, t->n);
        for (size_t i = 0; r >= 0 && i < t->n; i++)
                r = node_put(out, &t->nodes[i]);
        if (r < 0)
                out->len = start;
        return r;
}

/* A varint with exactly one byte form: a padded encoding (a last group of
 * zero after other groups) would let two byte sequences mean one tree. */
static int get_varint(tm_reader *rd, uint64_t *ret)
{
        size_t start = rd->off;
        uint64_t v;

        if (tm_reader_varint(rd, &v) < 0)
                return -EBADMSG;
        if (rd->off - start > 1 && rd->p[rd->off - 1] == 0)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int get_u32(tm_reader *rd, uint32_t *ret)
{
        uint64_t v;

        if (get_varint(rd, &v) < 0 || v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t)v;
        return 0;
}

/* Read a length-prefixed byte string into a new NUL-terminated copy.
 * *ret stays NULL for an empty string when empty_null is set. */
static int get_str(tm_reader *rd, int empty_null, char **ret, size_t *ret_len)
{
        const uint8_t *p;
        uint64_t len;
        char *s;

        if (get_varint(rd, &len) < 0 || len > tm_reader_left(rd))
                return -EBADMSG;
        if (tm_reader_bytes(rd, (size_t)len, &p) < 0)
                return -EBADMSG;
        if (len == 0 && empty_null) {
                *ret = NULL;
                if (ret_len)
                        *ret_len = 0;
                return 0;
        }
        s = malloc((size_t)len + 1);
        if (!s)
                return -ENOMEM;
        if (len)
                memcpy(s, p, (size_t)len);
        s[len] = 0;
        *ret = s;
        if (ret_len)
                *ret_len = (size_t)len;
        return 0;
}

/* A text field must not hide a NUL: the C string would be shorter than the
 * encoded one and re-encode differently. */
static int get_text(tm_reader *rd, int empty_null, char **ret)
{
        size_t len;
        int r = get_str(rd, empty_null, ret, &len);

        if (r < 0)
                return r;
        if (*ret && strlen(*ret) != len) {
                free(*ret);
                *ret = NULL;
                return -EBADMSG;
        }
        return 0;
}

static int get_xattrs(tm_reader *rd, struct tm_node *n)
{
        uint64_t count;
        int r;

        if (get_varint(rd, &count) < 0 || count > tm_reader_left(rd) / XATTR_MIN_LEN)
                return -EBADMSG;
        if (!count)
                return 0;
        n->xattrs = calloc((size_t)count, sizeof(*n->xattrs));
        if (!n->xattrs)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++) {
                struct tm_xattr *x = &n->xattrs[i];
                char *value;

                n->n_xattrs++;
                r = get_text(rd, 1, &x->name);
                if (r < 0)
                        return r;
                if (!x->name)
                        return -EBADMSG; /* empty name */
                if (i > 0 && strcmp(n->xattrs[i - 1].name, x->name) >= 0)
                        return -EBADMSG;
                r = get_str(rd, 0, &value, &x->len);
                if (r < 0)
                        return r;
                x->value = (uint8_t *)value;
        }
        return 0;
}

static int get_content(tm_reader *rd, struct tm_node *n)
{
        uint64_t count;

        if (get_varint(rd, &count) < 0 || count > tm_reader_left(rd) / CONTENT_MIN_LEN)
                return -EBADMSG;
        if (!count)
                return 0;
        n->content = calloc((size_t)count, sizeof(*n->content));
        if (!n->content)
                return -ENOMEM;
        for (uint64_t i = 0; i < count; i++) {
                const uint8_t *id;

                if (tm_reader_bytes(rd, TM_ID_LEN, &id) < 0 ||
                    get_varint(rd, &n->content[i].size) < 0)
                        return -EBADMSG;
                memcpy(n->content[i].id.b, id, TM_ID_LEN);
                n->n_content++;
        }
        return 0;
}

/* Decode one node into *n; on failure *n holds what was read so far (the
 * caller disposes it). */
static int node_get(tm_reader *rd, struct tm_node *n)
{
        uint64_t mtime, ctime;
        const uint8_t *id;
        int r;

        r = get_text(rd, 0, &n->name);
        if (r < 0)
                return r;
        if (!tm_tree_name_valid(n->name))
                return -EBADMSG;
        if (tm_reader_u8(rd, &n->type) < 0 || !type_valid(n->type))
                return -EBADMSG;
        if (get_u32(rd, &n->mode) < 0 || n->mode > MODE_MASK)
                return -EBADMSG;
        if (get_u32(rd, &n->uid) < 0 || get_u32(rd, &n->gid) < 0)
                return -EBADMSG;
        r = get_text(rd, 1, &n->user);
        if (r >= 0)
                r = get_text(rd, 1, &n->group);
        if (r < 0)
                return r;
        if (get_varint(rd, &mtime) < 0 || get_varint(rd, &ctime) < 0 ||
            get_varint(rd, &n->size) < 0 || get_varint(rd, &n->dev) < 0 ||
            get_varint(rd, &n->inode) < 0 || get_varint(rd, &n->nlink) < 0 ||
            get_varint(rd, &n->rdev) < 0)
                return -EBADMSG;
        n->mtime_ns = unzigzag(mtime);
        n->ctime_ns = unzigzag(ctime);
        r = get_xattrs(rd, n);
        if (r < 0)
                return r;
        switch (n->type) {
        case TM_NODE_FILE:
                return get_content(rd, n);
        case TM_NODE_DIR:
                if (tm_reader_bytes(rd, TM_ID_LEN, &id) < 0)
                        return -EBADMSG;
                memcpy(n->subtree.b, id, TM_ID_LEN);
                return 0;
        case TM_NODE_SYMLINK:
                return get_text(rd, 0, &n->target);
        default:
                return 0;
        }
}

int tm_tree_decode(const void *p, size_t n, struct tm_tree *ret)
{
        struct tm_tree t = TM_TREE_INIT;
        const uint8_t *magic;
        uint64_t count;
        uint8_t version;
        tm_reader rd;
        int r;

        tm_reader_init(&rd, p, n);
        if (tm_reader_bytes(&rd, 4, &magic) < 0 || tm_reader_u8(&rd, &version) < 0 ||
            get_varint(&rd, &count) < 0 || memcmp(magic, TREE_MAGIC, 4) != 0 ||
            version != TREE_VERSION || count > tm_reader_left(&rd) / NODE_MIN_LEN)
                return -EBADMSG;
        if (count) {
                t.nodes = calloc((size_t)count, sizeof(*t.nodes));
                if (!t.nodes)
                        return -ENOMEM;
                t.cap = (size_t)count;
        }
        for (uint64_t i = 0; i < count; i++) {
                /* Count the node first so that a partial one is disposed too. */
                t.n++;
                r = node_get(&rd, &t.nodes[i]);
                if (r < 0)
                        goto out;
                if (i > 0 && strcmp(t.nodes[i - 1].name, t.nodes[i].name) >= 0) {
                        r = -EBADMSG;
                        goto out;
                }
        }
        if (tm_reader_left(&rd) != 0) {
                r = -EBADMSG;
                goto out;
        }
        *ret = t;
        t = TM_TREE_INIT;
        r = 0;
out:
        tm_tree_dispose(&t);
        return r;
}

const struct tm_node *tm_tree_find(const struct tm_tree *t, const char *name)
{
        size_t lo = 0, hi = t->n;

        if (!name)
                return NULL;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, t->nodes[mid].name);

                if (c == 0)
                        return &t->nodes[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}
