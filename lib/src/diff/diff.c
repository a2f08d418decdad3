/*
 * diff: compare two snapshot trees by merge-walking their sorted listings.
 * Subtrees with the same id are identical by construction (canonical tree
 * encoding, content-addressed ids), so they are skipped without loading.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/ops.h>

struct diff_ctx {
        tm_repo *repo;
        tm_diff_fn fn;
        void *userdata;
};

/* "prefix/name", or "name" at the root. Returns NULL on allocation failure. */
static char *path_join(const char *prefix, const char *name)
{
        size_t n = strlen(prefix) + strlen(name) + 2;
        char *p = malloc(n);

        if (!p)
                return NULL;
        if (*prefix)
                snprintf(p, n, "%s/%s", prefix, name);
        else
                snprintf(p, n, "%s", name);
        return p;
}

static int xattrs_equal(const struct tm_node *a, const struct tm_node *b)
{
        if (a->n_xattrs != b->n_xattrs)
                return 0;
        for (size_t i = 0; i < a->n_xattrs; i++) {
                const struct tm_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];

                if (strcmp(x->name, y->name) || x->len != y->len ||
                    (x->len && memcmp(x->value, y->value, x->len)))
                        return 0;
        }
        return 1;
}

static int str_equal(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Has a node of the same type changed? Directories compare only their own
 * metadata: their mtime and size follow their contents, which the recursion
 * reports entry by entry. */
static int node_changed(const struct tm_node *a, const struct tm_node *b)
{
        if (a->mode != b->mode || a->uid != b->uid || a->gid != b->gid || !xattrs_equal(a, b))
                return 1;
        if (a->type == TM_NODE_DIR)
                return 0;
        if (a->mtime_ns != b->mtime_ns || a->size != b->size)
                return 1;
        switch (a->type) {
        case TM_NODE_FILE:
                if (a->n_content != b->n_content)
                        return 1;
                for (size_t i = 0; i < a->n_content; i++)
                        if (tm_id_cmp(&a->content[i].id, &b->content[i].id) ||
                            a->content[i].size != b->content[i].size)
                                return 1;
                return 0;
        case TM_NODE_SYMLINK:
                return !str_equal(a->target, b->target);
        case TM_NODE_CHARDEV:
        case TM_NODE_BLOCKDEV:
                return a->rdev != b->rdev;
        default:
                return 0;
        }
}

/* Report every node below a directory subtree with one change letter ('+'
 * for a tree only in b, '-' only in a). */
static int report_subtree(struct diff_ctx *c, char change, const char *prefix, const tm_id *tree_id)
{
        struct tm_tree t = TM_TREE_INIT;
        char *path = NULL;
        int r;

        r = tm_repo_tree_load(c->repo, tree_id, &t);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < t.n; i++) {
                const struct tm_node *n = &t.nodes[i];

                free(path);
                path = path_join(prefix, n->name);
                if (!path) {
                        r = -ENOMEM;
                        goto out;
                }
                r = c->fn(change, path, change == '-' ? n : NULL, change == '+' ? n : NULL,
                          c->userdata);
                if (r)
                        goto out;
                if (n->type == TM_NODE_DIR) {
                        r = report_subtree(c, change, path, &n->subtree);
                        if (r)
                                goto out;
                }
        }
out:
        free(path);
        tm_tree_dispose(&t);
        return r;
}

/* One side only: report the node and, for a directory, all below it. */
static int report_one(struct diff_ctx *c, char change, const char *path, const struct tm_node *n)
{
        int r;

        r = c->fn(change, path, change == '-' ? n : NULL, change == '+' ? n : NULL, c->userdata);
        if (r)
                return r;
        if (n->type == TM_NODE_DIR)
                return report_subtree(c, change, path, &n->subtree);
        return 0;
}

static int diff_pair(struct diff_ctx *c, const char *path, const struct tm_node *a,
                     const struct tm_node *b);

static int diff_tree(struct diff_ctx *c, const char *prefix, const tm_id *a_id, const tm_id *b_id)
{
        struct tm_tree ta = TM_TREE_INIT, tb = TM_TREE_INIT;
        char *path = NULL;
        size_t i = 0, j = 0;
        int r;

        if (tm_id_cmp(a_id, b_id) == 0)
                return 0;
        r = tm_repo_tree_load(c->repo, a_id, &ta);
        if (r < 0)
                goto out;
        r = tm_repo_tree_load(c->repo, b_id, &tb);
        if (r < 0)
                goto out;
        while (i < ta.n || j < tb.n) {
                const struct tm_node *na = i < ta.n ? &ta.nodes[i] : NULL;
                const struct tm_node *nb = j < tb.n ? &tb.nodes[j] : NULL;
                int cmp = !na ? 1 : !nb ? -1 : strcmp(na->name, nb->name);

                free(path);
                path = path_join(prefix, cmp <= 0 ? na->name : nb->name);
                if (!path) {
                        r = -ENOMEM;
                        goto out;
                }
                if (cmp < 0) {
                        r = report_one(c, '-', path, na);
                        i++;
                } else if (cmp > 0) {
                        r = report_one(c, '+', path, nb);
                        j++;
                } else {
                        r = diff_pair(c, path, na, nb);
                        i++;
                        j++;
                }
                if (r)
                        goto out;
        }
out:
        free(path);
        tm_tree_dispose(&tb);
        tm_tree_dispose(&ta);
        return r;
}

/* The same name on both sides. */
static int diff_pair(struct diff_ctx *c, const char *path, const struct tm_node *a,
                     const struct tm_node *b)
{
        int r;

        if (a->type != b->type) {
                r = c->fn('T', path, a, b, c->userdata);
                if (r)
                        return r;
                /* what was below the old directory is gone, what is below
                 * the new one is new */
                if (a->type == TM_NODE_DIR) {
                        r = report_subtree(c, '-', path, &a->subtree);
                        if (r)
                                return r;
                }
                if (b->type == TM_NODE_DIR)
                        return report_subtree(c, '+', path, &b->subtree);
                return 0;
        }
        if (node_changed(a, b)) {
                r = c->fn('M', path, a, b, c->userdata);
                if (r)
                        return r;
        }
        if (a->type == TM_NODE_DIR)
                return diff_tree(c, path, &a->subtree, &b->subtree);
        return 0;
}

/* Paths handed to fn are relative to the roots, slash-joined, without a
 * leading slash ("etc/app.conf"), as tm_repo_walk() gives them; entries come
 * in name order, a directory before what is below it. A non-zero return from
 * fn stops the walk and is returned as is. */
int tm_diff_trees(tm_repo *repo, const tm_id *a, const tm_id *b, tm_diff_fn fn, void *userdata)
{
        struct diff_ctx c = { .repo = repo, .fn = fn, .userdata = userdata };

        if (!repo || !a || !b || !fn)
                return -EINVAL;
        return diff_tree(&c, "", a, b);
}
