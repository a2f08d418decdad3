/*
 * fs_pg.c: @T/<component>/ of a PostgreSQL component is a PGDATA that
 * recovers to T: the base backup's files, plus recovery.signal and the
 * recovery settings appended to postgresql.auto.conf (docs/filesystem.md,
 * docs/postgresql.md). The two files are made up here, as blobs held in
 * memory and served through the blob cache like any other.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/crypto.h>
#include <tidemark/log.h>
#include <tidemark/pg.h>

#include "fs.h"

/* the made-up content of one postgresql.auto.conf: small */
#define AUTO_CONF_MAX (4u << 20)

int fs_synth_add(struct fs *fs, const void *p, size_t n, tm_id *ret)
{
        static const char domain[] = "tidemark-fs synthetic blob\n";
        tm_buf key = TM_BUF_INIT(AUTO_CONF_MAX + sizeof(domain));
        struct fs_synth *a;
        int r;

        /* a plain hash under a prefix no repository blob id (an HMAC under
         * the repository's secret key) can be */
        r = tm_buf_append(&key, domain, sizeof(domain));
        if (r == 0)
                r = tm_buf_append(&key, p, n);
        if (r < 0) {
                tm_buf_dispose(&key);
                return r;
        }
        tm_crypto_sha256(key.data, key.len, ret);
        tm_buf_dispose(&key);
        pthread_mutex_lock(&fs->synth_lock);
        for (size_t i = 0; i < fs->n_synth; i++)
                if (tm_id_cmp(&fs->synth[i].id, ret) == 0) {
                        pthread_mutex_unlock(&fs->synth_lock);
                        return 0;
                }
        a = realloc(fs->synth, (fs->n_synth + 1) * sizeof(*a));
        r = a ? 0 : -ENOMEM;
        if (r == 0) {
                fs->synth = a;
                a[fs->n_synth].id = *ret;
                a[fs->n_synth].data = TM_BUF_INIT(AUTO_CONF_MAX);
                r = tm_buf_append(&a[fs->n_synth].data, p, n);
                if (r == 0)
                        fs->n_synth++;
                else
                        tm_buf_dispose(&a[fs->n_synth].data);
        }
        pthread_mutex_unlock(&fs->synth_lock);
        return r;
}

int fs_synth_get(struct fs *fs, const tm_id *id, tm_buf *ret)
{
        int r = -ENOENT;

        pthread_mutex_lock(&fs->synth_lock);
        for (size_t i = 0; i < fs->n_synth && r == -ENOENT; i++)
                if (tm_id_cmp(&fs->synth[i].id, id) == 0)
                        r = tm_buf_append(ret, fs->synth[i].data.data, fs->synth[i].data.len);
        pthread_mutex_unlock(&fs->synth_lock);
        return r;
}

void fs_synth_dispose(struct fs *fs)
{
        for (size_t i = 0; i < fs->n_synth; i++)
                tm_buf_dispose(&fs->synth[i].data);
        free(fs->synth);
        fs->synth = NULL;
        fs->n_synth = 0;
}

/* The file's bytes, blob by blob. */
static int read_file(struct fs *fs, const struct tm_node *nd, tm_buf *out)
{
        int r = 0;

        for (size_t i = 0; i < nd->n_content && r == 0; i++) {
                struct fs_blob *b = NULL;

                if (!fs->cache) {
                        r = fs_load_blob(fs, &nd->content[i].id, out);
                        continue;
                }
                r = fs_cache_get(fs->cache, &nd->content[i].id, &b);
                if (r == 0) {
                        r = tm_buf_append(out, b->data.data, b->data.len);
                        fs_cache_put(fs->cache, b);
                }
        }
        return r;
}

/* Insert a node, keeping the listing sorted by name (binary search relies on it). */
static int tree_insert(struct tm_tree *t, struct tm_node *nd)
{
        struct tm_node *a = realloc(t->nodes, (t->n + 1) * sizeof(*a));
        size_t at = 0;

        if (!a)
                return -ENOMEM;
        t->nodes = a;
        t->cap = t->n + 1;
        while (at < t->n && strcmp(a[at].name, nd->name) < 0)
                at++;
        memmove(&a[at + 1], &a[at], (t->n - at) * sizeof(*a));
        a[at] = *nd;
        t->n++;
        memset(nd, 0, sizeof(*nd));
        return 0;
}

int fs_pg_decorate(struct fs *fs, const char *component, int64_t target, struct tm_tree *t)
{
        struct tm_pg_plan plan = { 0 };
        struct tm_node *conf = NULL, sig = { 0 };
        struct tm_content *c = NULL;
        tm_buf data = TM_BUF_INIT(AUTO_CONF_MAX), cmd = TM_BUF_INIT(64 * 1024);
        char err[1024];
        tm_id id;
        int r;

        if (!fs->pg_exe)
                return 0;
        r = tm_pg_plan_pitr(fs->repo, component, target, &plan, err, sizeof(err));
        if (r < 0) {
                tm_log(TM_LOG_WARN, "%s/: shown without recovery settings: %s", component,
                       err[0] ? err : strerror(-r));
                return 0;
        }
        for (size_t i = 0; i < t->n; i++)
                if (strcmp(t->nodes[i].name, "postgresql.auto.conf") == 0 &&
                    t->nodes[i].type == TM_NODE_FILE)
                        conf = &t->nodes[i];
        if (!conf || tm_tree_find(t, "recovery.signal")) {
                tm_log(TM_LOG_WARN,
                       "%s/: not a base backup PGDATA (no postgresql.auto.conf, or a "
                       "recovery.signal already): shown as it is",
                       component);
                goto out;
        }
        r = tm_pg_restore_command(&cmd, fs->pg_exe, fs->pg_repo, fs->pg_password_file, NULL,
                                  component);
        if (r == 0)
                r = tm_buf_append(&cmd, "", 1);
        if (r == 0)
                r = read_file(fs, conf, &data);
        if (r == 0)
                r = tm_pg_recovery_conf(&data, (const char *)cmd.data, plan.to_end ? 0 : target);
        if (r == 0)
                r = fs_synth_add(fs, data.data, data.len, &id);
        c = r == 0 ? calloc(1, sizeof(*c)) : NULL;
        if (r == 0 && !c)
                r = -ENOMEM;
        if (r < 0) {
                r = tm_log_errno(TM_LOG_ERR, r == -EBADMSG ? -EIO : r,
                                 "%s/postgresql.auto.conf cannot be read", component);
                goto out;
        }
        c->id = id;
        c->size = data.len;
        free(conf->content);
        conf->content = c;
        conf->n_content = 1;
        conf->size = data.len;
        /* recovery.signal: empty, private, the server's */
        sig.name = strdup("recovery.signal");
        sig.user = conf->user ? strdup(conf->user) : NULL;
        sig.group = conf->group ? strdup(conf->group) : NULL;
        if (!sig.name || (conf->user && !sig.user) || (conf->group && !sig.group)) {
                r = -ENOMEM;
                goto out;
        }
        sig.type = TM_NODE_FILE;
        sig.mode = 0600;
        sig.uid = conf->uid;
        sig.gid = conf->gid;
        sig.mtime_ns = sig.ctime_ns = conf->mtime_ns;
        sig.nlink = 1;
        r = tree_insert(t, &sig);
out:
        tm_node_dispose(&sig);
        tm_buf_dispose(&data);
        tm_buf_dispose(&cmd);
        tm_snapshot_dispose(&plan.base);
        return r;
}
