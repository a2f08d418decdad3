/*
 * Read-only views of the repository: snapshots, ls, diff, stats.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/time.h>

#include "cli.h"

/* ---- snapshots ---- */

static const char *node_type_name(uint8_t t)
{
        switch (t) {
        case TM_NODE_FILE:
                return "file";
        case TM_NODE_DIR:
                return "dir";
        case TM_NODE_SYMLINK:
                return "symlink";
        case TM_NODE_FIFO:
                return "fifo";
        case TM_NODE_CHARDEV:
                return "chardev";
        case TM_NODE_BLOCKDEV:
                return "blockdev";
        case TM_NODE_SOCKET:
                return "socket";
        default:
                return "unknown";
        }
}

/* Tags joined by commas into out. */
static void join_tags(const struct tm_snapshot *s, char *out, size_t n)
{
        size_t o = 0;

        out[0] = '\0';
        for (size_t i = 0; i < s->n_tags && o < n; i++) {
                int k = snprintf(out + o, n - o, "%s%s", i ? "," : "", s->tags[i]);

                if (k < 0)
                        break;
                o += (size_t)k;
        }
}

#define W(w, s) ((w) = TM_MAX((w), strlen(s)))

int cli_cmd_snapshots(void)
{
        struct tm_snapshot *snaps = NULL;
        size_t n = 0, wh = 4, wc = 9, ws = 8, wz = 4;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;

        if (cli_opts.n_args > 0)
                return cli_error("snapshots takes no arguments (got '%s'; use --component to "
                                 "filter)",
                                 cli_opts.args[0]);
        if (cli_repo_open(&repo) < 0)
                goto out;
        ret = tm_repo_snapshot_list(repo, cli_opts.component, &snaps, &n);
        if (ret < 0) {
                cli_error_errno(ret, "cannot list snapshots in '%s'", tm_repo_location(repo));
                goto out;
        }
        if (cli_opts.json) {
                json_t *a = json_array();

                for (size_t i = 0; a && i < n; i++)
                        json_array_append_new(a, cli_snapshot_json(&snaps[i]));
                cli_json_print(a);
                r = CLI_EXIT_OK;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                char size[32];

                W(wh, snaps[i].host ? snaps[i].host : "");
                W(wc, snaps[i].component ? snaps[i].component : "");
                W(ws, snaps[i].strategy ? snaps[i].strategy : "");
                cli_format_bytes(snaps[i].summary.bytes, size, sizeof(size));
                W(wz, size);
        }
        {
                size_t width = 8 + 2 + 20 + 2 + wh + 2 + wc + 2 + ws + 2 + wz + 2 + 4;
                char line[1024];

                memset(line, '-', TM_MIN(width, sizeof(line) - 1));
                line[TM_MIN(width, sizeof(line) - 1)] = '\0';
                cli_out("%-8s  %-20s  %-*s  %-*s  %-*s  %*s  %s\n%s\n", "ID", "TIME", (int)wh,
                        "HOST", (int)wc, "COMPONENT", (int)ws, "STRATEGY", (int)wz, "SIZE", "TAGS",
                        line);
                for (size_t i = 0; i < n; i++) {
                        char id[9], time[32], size[32], tags[512];

                        cli_short_id(&snaps[i].id, id);
                        tm_time_format(snaps[i].time, time, sizeof(time));
                        cli_format_bytes(snaps[i].summary.bytes, size, sizeof(size));
                        join_tags(&snaps[i], tags, sizeof(tags));
                        cli_out("%-8s  %-20s  %-*s  %-*s  %-*s  %*s  %s\n", id, time, (int)wh,
                                snaps[i].host ? snaps[i].host : "", (int)wc,
                                snaps[i].component ? snaps[i].component : "", (int)ws,
                                snaps[i].strategy ? snaps[i].strategy : "", (int)wz, size, tags);
                }
                cli_out("%s\n%zu snapshot%s\n", line, n, n == 1 ? "" : "s");
        }
        r = CLI_EXIT_OK;
out:
        tm_snapshot_array_free(snaps, n);
        tm_repo_free(repo);
        return r;
}

/* ---- ls ---- */

static void mode_string(const struct tm_node *n, char out[11])
{
        static const char types[] = { '?', '-', 'd', 'l', 'p', 'c', 'b', 's' };
        uint32_t m = n->mode;

        out[0] = n->type < sizeof(types) ? types[n->type] : '?';
        for (int i = 0; i < 3; i++) {
                uint32_t bits = m >> (6 - 3 * i);

                out[1 + 3 * i] = bits & 4 ? 'r' : '-';
                out[2 + 3 * i] = bits & 2 ? 'w' : '-';
                out[3 + 3 * i] = bits & 1 ? 'x' : '-';
        }
        if (m & 04000)
                out[3] = out[3] == 'x' ? 's' : 'S';
        if (m & 02000)
                out[6] = out[6] == 'x' ? 's' : 'S';
        if (m & 01000)
                out[9] = out[9] == 'x' ? 't' : 'T';
        out[10] = '\0';
}

struct ls_ctx {
        const char *prefix; /* snapshot-relative path of the listed dir, "" = root */
};

static void ls_print(const char *path, const struct tm_node *n)
{
        if (cli_opts.json) {
                char mtime[40];
                json_t *o;

                tm_time_format_ns(n->mtime_ns, mtime, sizeof(mtime));
                o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "name", n->name, "path",
                              path, "type", node_type_name(n->type), "mode", (json_int_t)n->mode,
                              "uid", (json_int_t)n->uid, "gid", (json_int_t)n->gid, "size",
                              (json_int_t)n->size, "mtime", mtime);
                if (o && n->user && *n->user)
                        json_object_set_new(o, "user", json_string(n->user));
                if (o && n->group && *n->group)
                        json_object_set_new(o, "group", json_string(n->group));
                if (o && n->type == TM_NODE_SYMLINK && n->target)
                        json_object_set_new(o, "target", json_string(n->target));
                cli_json_print(o);
        } else if (cli_opts.long_format) {
                char mode[11], mtime[32], uid[16], gid[16];
                const char *user = n->user, *group = n->group;

                mode_string(n, mode);
                tm_time_format(n->mtime_ns, mtime, sizeof(mtime));
                mtime[10] = ' '; /* 2025-01-07 10:00:00 */
                mtime[19] = '\0';
                if (!user || !*user) {
                        snprintf(uid, sizeof(uid), "%u", n->uid);
                        user = uid;
                }
                if (!group || !*group) {
                        snprintf(gid, sizeof(gid), "%u", n->gid);
                        group = gid;
                }
                cli_out("%s %8s %8s %12llu %s %s%s%s\n", mode, user, group,
                        (unsigned long long)n->size, mtime, path,
                        n->type == TM_NODE_SYMLINK ? " -> " : "",
                        n->type == TM_NODE_SYMLINK && n->target ? n->target : "");
        } else {
                cli_out("%s\n", path);
        }
}

static int ls_visit(const char *path, const struct tm_node *node, void *userdata)
{
        struct ls_ctx *c = userdata;
        size_t n = strlen(c->prefix) + strlen(path) + 3;
        char *full = malloc(n);

        if (!full)
                return -ENOMEM;
        if (*c->prefix)
                snprintf(full, n, "/%s/%s", c->prefix, path);
        else
                snprintf(full, n, "/%s", path);
        ls_print(full, node);
        free(full);
        return 0;
}

int cli_cmd_ls(void)
{
        struct tm_snapshot snap = { 0 };
        struct tm_node node = { 0 };
        struct ls_ctx ctx;
        char *rel = NULL;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;
        char id[9];

        if (cli_opts.n_args < 1 || cli_opts.n_args > 2)
                return cli_error("ls needs a snapshot and at most one path (ls SNAP [PATH])");
        {
                const char *p = cli_opts.n_args == 2 ? cli_opts.args[1] : "";
                size_t n;

                while (*p == '/')
                        p++;
                rel = strdup(p);
                if (!rel)
                        return cli_error_errno(-ENOMEM, "ls");
                n = strlen(rel);
                while (n > 0 && rel[n - 1] == '/')
                        rel[--n] = '\0';
        }
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (cli_snapshot_find(repo, cli_opts.args[0], &snap) < 0)
                goto out;
        cli_short_id(&snap.id, id);
        ret = tm_repo_lookup_path(repo, &snap.tree, rel, &node);
        if (ret == -ENOENT) {
                cli_error("'/%s' is not in snapshot %s", rel, id);
                goto out;
        }
        if (ret < 0) {
                cli_error_errno(ret, "cannot look up '/%s' in snapshot %s", rel, id);
                goto out;
        }
        if (*rel) {
                char *full = malloc(strlen(rel) + 2);

                if (!full) {
                        cli_error_errno(-ENOMEM, "ls");
                        goto out;
                }
                snprintf(full, strlen(rel) + 2, "/%s", rel);
                ls_print(full, &node);
                free(full);
        }
        if (node.type == TM_NODE_DIR) {
                ctx.prefix = rel;
                ret = tm_repo_walk(repo, &node.subtree, ls_visit, &ctx);
                if (ret < 0) {
                        cli_error_errno(ret, "cannot list '/%s' in snapshot %s", rel, id);
                        goto out;
                }
        }
        r = CLI_EXIT_OK;
out:
        tm_node_dispose(&node);
        tm_snapshot_dispose(&snap);
        tm_repo_free(repo);
        free(rel);
        return r;
}

/* ---- diff ---- */

struct diff_counts {
        uint64_t added[3], removed[3], changed[3], type_changed; /* file, dir, other */
};

static int kind_of(const struct tm_node *n)
{
        return n->type == TM_NODE_FILE ? 0 : n->type == TM_NODE_DIR ? 1 : 2;
}

static int diff_visit(char change, const char *path, const struct tm_node *a,
                      const struct tm_node *b, void *userdata)
{
        struct diff_counts *c = userdata;
        const struct tm_node *n = b ? b : a;

        switch (change) {
        case '+':
                c->added[kind_of(n)]++;
                break;
        case '-':
                c->removed[kind_of(n)]++;
                break;
        case 'M':
                c->changed[kind_of(n)]++;
                break;
        default:
                c->type_changed++;
                break;
        }
        if (cli_opts.json) {
                char ch[2] = { change, '\0' };
                size_t len = strlen(path) + 2;
                char *full = malloc(len);

                if (!full)
                        return -ENOMEM;
                snprintf(full, len, "/%s", path);
                cli_json_print(json_pack("{s:s, s:s, s:s, s:s}", "message_type", "change", "change",
                                         ch, "path", full, "type", node_type_name(n->type)));
                free(full);
        } else {
                cli_out("%c    /%s\n", change, path);
        }
        return 0;
}

int cli_cmd_diff(void)
{
        struct tm_snapshot a = { 0 }, b = { 0 };
        struct diff_counts c = { 0 };
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;
        char ida[9], idb[9];

        if (cli_opts.n_args != 2)
                return cli_error("diff needs two snapshots (diff SNAP1 SNAP2)");
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (cli_snapshot_find(repo, cli_opts.args[0], &a) < 0 ||
            cli_snapshot_find(repo, cli_opts.args[1], &b) < 0)
                goto out;
        cli_short_id(&a.id, ida);
        cli_short_id(&b.id, idb);
        if (!cli_opts.json)
                cli_out("comparing snapshot %s to %s:\n\n", ida, idb);
        ret = tm_diff_trees(repo, &a.tree, &b.tree, diff_visit, &c);
        if (ret < 0) {
                cli_error_errno(ret, "cannot compare snapshots %s and %s", ida, idb);
                goto out;
        }
        if (cli_opts.json) {
                cli_json_print(json_pack(
                        "{s:s, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I}, s:I}",
                        "message_type", "statistics", "files", "new", (json_int_t)c.added[0],
                        "removed", (json_int_t)c.removed[0], "changed", (json_int_t)c.changed[0],
                        "dirs", "new", (json_int_t)c.added[1], "removed", (json_int_t)c.removed[1],
                        "changed", (json_int_t)c.changed[1], "others", "new",
                        (json_int_t)c.added[2], "removed", (json_int_t)c.removed[2], "changed",
                        (json_int_t)c.changed[2], "type_changed", (json_int_t)c.type_changed));
        } else {
                static const char *labels[] = { "Files:", "Dirs:", "Others:" };

                cli_out("\n");
                for (int k = 0; k < 3; k++)
                        cli_out("%-14s %6llu new, %6llu removed, %6llu changed\n", labels[k],
                                (unsigned long long)c.added[k], (unsigned long long)c.removed[k],
                                (unsigned long long)c.changed[k]);
                cli_out("%-14s %6llu\n", "Type changes:", (unsigned long long)c.type_changed);
        }
        r = CLI_EXIT_OK;
out:
        tm_snapshot_dispose(&a);
        tm_snapshot_dispose(&b);
        tm_repo_free(repo);
        return r;
}

/* ---- stats ---- */

static double ratio(uint64_t num, uint64_t den)
{
        return den ? (double)num / (double)den : 0;
}

int cli_cmd_stats(void)
{
        struct tm_repo_stats st = { 0 };
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;
        double compression, dedup;

        if (cli_opts.n_args > 0)
                return cli_error("stats takes no arguments (got '%s')", cli_opts.args[0]);
        if (cli_repo_open(&repo) < 0)
                goto out;
        ret = tm_stats_compute(repo, &st);
        if (ret < 0) {
                cli_error_errno(ret, "cannot compute statistics of '%s'", tm_repo_location(repo));
                goto out;
        }
        /* compression: unique plaintext per sealed byte; deduplication:
         * what a full restore of every snapshot writes per unique byte */
        compression = ratio(st.blob_raw_bytes, st.blob_stored_bytes);
        dedup = ratio(st.restore_bytes, st.blob_raw_bytes);
        if (cli_opts.json) {
                json_t *o = json_pack(
                        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "snapshots",
                        (json_int_t)st.snapshots, "restore_bytes", (json_int_t)st.restore_bytes,
                        "restore_files", (json_int_t)st.restore_files, "blobs",
                        (json_int_t)st.blobs, "blob_raw_bytes", (json_int_t)st.blob_raw_bytes,
                        "blob_stored_bytes", (json_int_t)st.blob_stored_bytes, "packs",
                        (json_int_t)st.packs, "pack_bytes", (json_int_t)st.pack_bytes,
                        "index_files", (json_int_t)st.index_files);

                if (o) {
                        json_object_set_new(o, "fresh_copies",
                                            json_integer((json_int_t)st.fresh_copies));
                        json_object_set_new(o, "fresh_copy_bytes",
                                            json_integer((json_int_t)st.fresh_copy_bytes));
                        json_object_set_new(o, "compression_ratio",
                                            st.blob_stored_bytes ? json_real(compression)
                                                                 : json_null());
                        json_object_set_new(o, "deduplication_ratio",
                                            st.blob_raw_bytes ? json_real(dedup) : json_null());
                }
                cli_json_print(o);
        } else {
                char restore[32], raw[32], stored[32], packs[32];

                cli_format_bytes(st.restore_bytes, restore, sizeof(restore));
                cli_format_bytes(st.blob_raw_bytes, raw, sizeof(raw));
                cli_format_bytes(st.blob_stored_bytes, stored, sizeof(stored));
                cli_format_bytes(st.pack_bytes, packs, sizeof(packs));
                cli_out("repository %.16s at %s\n", tm_repo_id(repo), tm_repo_location(repo));
                cli_out("  snapshots:            %llu\n", (unsigned long long)st.snapshots);
                cli_out("  total restore size:   %s in %llu files\n", restore,
                        (unsigned long long)st.restore_files);
                cli_out("  unique blobs:         %llu (%s uncompressed)\n",
                        (unsigned long long)st.blobs, raw);
                cli_out("  stored size:          %s in %llu packs (%s of blobs)\n", packs,
                        (unsigned long long)st.packs, stored);
                cli_out("  index files:          %llu\n", (unsigned long long)st.index_files);
                if (st.fresh_copies) {
                        char fresh[32];

                        cli_format_bytes(st.fresh_copy_bytes, fresh, sizeof(fresh));
                        cli_out("  fresh copies of archived blobs: %llu (%s kept hot/warm so "
                                "recent snapshots need no thaw)\n",
                                (unsigned long long)st.fresh_copies, fresh);
                }
                if (st.blob_stored_bytes)
                        cli_out("  compression ratio:    %.2fx\n", compression);
                else
                        cli_out("  compression ratio:    n/a\n");
                if (st.blob_raw_bytes)
                        cli_out("  deduplication ratio:  %.2fx\n", dedup);
                else
                        cli_out("  deduplication ratio:  n/a\n");
        }
        r = CLI_EXIT_OK;
out:
        tm_repo_free(repo);
        return r;
}
