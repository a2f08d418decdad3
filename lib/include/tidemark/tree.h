#pragma once
/*
 * tree: directory listings, the `tree` blobs. The structs here are plain
 * data (not opaque objects) because every program walks them.
 *
 * Canonical encoding (one byte sequence per tree, so an unchanged directory
 * yields the same blob id and costs nothing):
 *   magic "TMTR" || version u8 (1) || n varint || n nodes, sorted by name
 *   (bytewise, strictly increasing).
 *   node = name (varint len + bytes) || type u8 || mode varint (07777 bits)
 *        || uid varint || gid varint || user str || group str
 *        || mtime_ns zigzag-varint || ctime_ns zigzag-varint
 *        || size varint || dev varint || inode varint || nlink varint
 *        || rdev varint || n_xattrs varint || n x (name str || value str)
 *           (sorted by name, strictly increasing)
 *        || file: n_content varint || n x (id[32] || size varint)
 *           dir: subtree id[32]
 *           symlink: target str
 *   str = varint length || bytes (no NUL inside names)
 * Names are never empty, ".", "..", and never contain '/' or NUL.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>

enum tm_node_type {
        TM_NODE_FILE = 1,
        TM_NODE_DIR = 2,
        TM_NODE_SYMLINK = 3,
        TM_NODE_FIFO = 4,
        TM_NODE_CHARDEV = 5,
        TM_NODE_BLOCKDEV = 6,
        TM_NODE_SOCKET = 7,
};

struct tm_xattr {
        char *name;
        uint8_t *value;
        size_t len;
};

struct tm_content {
        tm_id id;
        uint64_t size;
};

struct tm_node {
        char *name;
        uint8_t type;  /* enum tm_node_type */
        uint32_t mode; /* permission and special bits (07777) */
        uint32_t uid, gid;
        char *user, *group; /* may be NULL: encoded as empty */
        int64_t mtime_ns, ctime_ns;
        uint64_t size, dev, inode, nlink, rdev;
        size_t n_xattrs;
        struct tm_xattr *xattrs;
        size_t n_content; /* file */
        struct tm_content *content;
        tm_id subtree; /* dir */
        char *target;  /* symlink */
};

struct tm_tree {
        size_t n;
        size_t cap;
        struct tm_node *nodes;
};

#define TM_TREE_INIT     \
        (struct tm_tree) \
        {                \
                0        \
        }

/* Is name usable as a node name? (non-empty, not "." or "..", no '/'). */
int tm_tree_name_valid(const char *name);
/* Append a node, taking ownership of every pointer inside it (node is zeroed
 * on success and on failure its contents are freed). Returns 0, -ENOMEM. */
int tm_tree_add_take(struct tm_tree *t, struct tm_node *node);
/* Sort nodes by name (and each node's xattrs) and encode canonically;
 * -EEXIST on a duplicate name or xattr name, -EINVAL on an invalid name or
 * type, a mode above 07777, or a field the node's type does not carry
 * (content on a non-file, a non-zero subtree on a non-dir, a target on a
 * non-symlink), which would otherwise be silently dropped. */
int tm_tree_encode(struct tm_tree *t, tm_buf *out);
/* Parse and validate; only canonical input is accepted, so re-encoding a
 * decoded tree gives the same bytes. Empty user/group decode as NULL. *ret is
 * written only on success. Returns 0, -EBADMSG, -ENOMEM. */
int tm_tree_decode(const void *p, size_t n, struct tm_tree *ret);
/* Binary search by name in a decoded (sorted) tree; NULL if absent.
 * Borrowed: valid until tm_tree_dispose(t). */
const struct tm_node *tm_tree_find(const struct tm_tree *t, const char *name);
void tm_node_dispose(struct tm_node *n);
void tm_tree_dispose(struct tm_tree *t);
/* Deep copy of a node. Returns 0, -ENOMEM. */
int tm_node_copy(const struct tm_node *src, struct tm_node *ret);
