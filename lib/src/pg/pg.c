/*
 * pg/pg.c: PostgreSQL base backups over the replication protocol (libpq),
 * the WAL archive (wal-push / wal-fetch) and the recovery settings of a
 * point-in-time restore. The design and its limits are in docs/postgresql.md
 * and docs/format.md "PostgreSQL WAL".
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "pg_internal.h"

#define PG_LABEL_MAX 64
/* Relation files change in place, page by page: cut them on page-aligned
 * fixed blocks so that a scattered update touches one block, not one
 * content-defined chunk of ~1 MiB per change */
#define PG_RELATION_BLOCK   (64u * 1024)
#define PG_BACKUP_LABEL_MAX (64u * 1024)

int tm_pg_wal_component(const char *component, char *out, size_t n)
{
        int k = snprintf(out, n, "%s-wal", component && *component ? component : "database");

        return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

/* ---- helpers ---- */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_DP)
                return rmdir(path) < 0 ? -1 : 0;
        return unlink(path) < 0 ? -1 : 0;
}

/* Remove a directory tree we created (never follows symlinks). */
static void rm_tree(const char *path)
{
        if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) < 0)
                tm_log(TM_LOG_WARN, "cannot remove the temporary directory '%s'", path);
}

static const char *tmp_parent(const char *given)
{
        const char *t = given && *given ? given : getenv("TMPDIR");

        return t && *t ? t : "/var/tmp";
}

/* The newest snapshot of the WAL component tagged with name. */
static int wal_find(tm_repo *repo, const char *component, const char *name, struct tm_snapshot *ret)
{
        char comp[256];
        struct tm_snapshot *a = NULL;
        size_t n = 0;
        int r;

        r = tm_pg_wal_component(component, comp, sizeof(comp));
        if (r < 0)
                return r;
        r = tm_repo_snapshot_list(repo, comp, &a, &n);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (size_t i = n; i-- > 0 && r == -ENOENT;)
                for (size_t k = 0; k < a[i].n_tags; k++)
                        if (strcmp(a[i].tags[k], name) == 0) {
                                r = tm_snapshot_copy(&a[i], ret);
                                break;
                        }
        tm_snapshot_array_free(a, n);
        return r;
}

/* Restore the one file of a WAL snapshot into a fresh directory under
 * parent; ret_dir gets that directory (caller removes it). */
static int wal_restore_tmp(tm_repo *repo, const struct tm_snapshot *snap, const char *name,
                           const char *parent, char *ret_dir, size_t n)
{
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        const char *inc[1] = { name };
        int r;

        if ((size_t)snprintf(ret_dir, n, "%s/.tidemark-wal-XXXXXX", parent) >= n)
                return -ENAMETOOLONG;
        if (!mkdtemp(ret_dir))
                return -errno;
        o.target = ret_dir;
        o.includes = inc;
        o.n_includes = 1;
        o.threads = 1;
        o.no_owner = 1;
        r = tm_restore_run(repo, snap, &o, &st);
        if (r == 0 && st.files != 1)
                r = -EBADMSG;
        if (r < 0) {
                rm_tree(ret_dir);
                ret_dir[0] = '\0';
        }
        return r;
}

static int files_equal(const char *a, const char *b)
{
        static const size_t bufsz = 1 << 16;
        char *ba = NULL, *bb = NULL;
        int fa = -1, fb = -1, r = 0;

        ba = malloc(bufsz);
        bb = malloc(bufsz);
        if (!ba || !bb) {
                r = -ENOMEM;
                goto out;
        }
        fa = open(a, O_RDONLY | O_CLOEXEC);
        fb = open(b, O_RDONLY | O_CLOEXEC);
        if (fa < 0 || fb < 0) {
                r = -errno;
                goto out;
        }
        for (;;) {
                ssize_t na = read(fa, ba, bufsz), nb;
                size_t got = 0;

                if (na < 0) {
                        r = -errno;
                        goto out;
                }
                /* read the same amount from b (short reads allowed) */
                while (got < (size_t)na) {
                        nb = read(fb, bb + got, (size_t)na - got);
                        if (nb < 0) {
                                r = -errno;
                                goto out;
                        }
                        if (nb == 0)
                                break;
                        got += (size_t)nb;
                }
                if (got != (size_t)na || memcmp(ba, bb, got) != 0)
                        goto out; /* r = 0: different */
                if (na == 0) {
                        r = read(fb, bb, 1) == 0;
                        goto out;
                }
        }
out:
        if (fa >= 0)
                close(fa);
        if (fb >= 0)
                close(fb);
        free(ba);
        free(bb);
        return r;
}

/* ---- wal-push / wal-fetch ---- */

void tm_pg_lsn_format(uint64_t lsn, char *out, size_t n)
{
        snprintf(out, n, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

int tm_pg_lsn_parse(const char *s, uint64_t *ret)
{
        unsigned int hi, lo;
        int used = 0;

        if (!s || sscanf(s, "%8X/%8X%n", &hi, &lo, &used) != 2 || s[used])
                return -EINVAL;
        *ret = (uint64_t)hi << 32 | lo;
        return 0;
}

/* extra.wal of a WAL file's snapshot: what tm_pg_wal_index() reads back. */
static char *wal_extra(const struct tm_pg_walscan *sc, int partial, int64_t received_ns)
{
        char a[24], b[24], *out;
        json_t *o;

        tm_pg_lsn_format(sc->start_lsn, a, sizeof(a));
        tm_pg_lsn_format(sc->end_lsn, b, sizeof(b));
        o = json_pack("{s:{s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:I}}", "wal", "timeline",
                      (json_int_t)sc->tli, "start_lsn", a, "end_lsn", b, "records",
                      (json_int_t)sc->records, "commits", (json_int_t)sc->commits,
                      "first_commit_ns", (json_int_t)sc->first_commit_ns, "last_commit_ns",
                      (json_int_t)sc->last_commit_ns, "partial", partial, "received_ns",
                      (json_int_t)received_ns);
        out = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        return out;
}

int tm_pg__wal_store(tm_repo *repo, const char *comp, const char *name, int fd,
                     const struct tm_pg_walscan *sc, int partial, int64_t received_ns,
                     struct tm_snapshot *ret)
{
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot snap = { 0 };
        const char *tags[1] = { name };
        char *extra = NULL;
        int r;

        if (sc) {
                extra = wal_extra(sc, partial, received_ns);
                if (!extra)
                        return -ENOMEM;
        }
        if (lseek(fd, 0, SEEK_SET) < 0) {
                r = -errno;
                goto out;
        }
        o.component = comp;
        o.strategy = "continuous";
        o.stdin_fd = fd;
        o.stdin_filename = name;
        o.tags = tags;
        o.n_tags = 1;
        o.threads = 1;
        o.extra_json = extra;
        r = tm_backup_run(repo, &o, &snap);
        if (r == TM_BACKUP_PARTIAL)
                r = tm_log_errno(TM_LOG_ERR, -EIO, "could not read all of WAL file %s", name);
        if (r == 0 && ret) {
                *ret = snap;
                snap = (struct tm_snapshot){ 0 };
        }
out:
        tm_snapshot_dispose(&snap);
        free(extra);
        return r;
}

/* Scan a whole segment file for its records (mapped, not read: up to 1 GiB). */
static int wal_scan_fd(int fd, uint64_t size, struct tm_pg_walscan *ret)
{
        void *m;
        int r;

        if (size == 0)
                return -EBADMSG;
        m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        r = tm_pg_wal_scan(m, size, ret);
        munmap(m, size);
        return r;
}

int tm_pg_wal_push(tm_repo *repo, const char *component, const char *path)
{
        struct tm_snapshot old = { 0 };
        struct tm_pg_walscan sc;
        struct tm_pg_walname w;
        uint8_t head[TM_PG_WAL_LONG_HEADER_LEN];
        char comp[256], tmp[4096] = "", *pathcopy = NULL, fetched[4200];
        const char *name;
        struct stat st;
        ssize_t got;
        int fd = -1, r, have_scan = 0;

        if (!path)
                return -EINVAL;
        pathcopy = strdup(path);
        if (!pathcopy)
                return -ENOMEM;
        name = basename(pathcopy);
        r = tm_pg_wal_component(component, comp, sizeof(comp));
        if (r < 0)
                goto out;
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot open WAL file '%s'", path);
                goto out;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                r = tm_log_errno(TM_LOG_ERR, -EINVAL, "'%s' is not a regular file", path);
                goto out;
        }
        got = pread(fd, head, sizeof(head), 0);
        if (got < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot read WAL file '%s'", path);
                goto out;
        }
        r = tm_pg_wal_validate(name, head, (size_t)got, (uint64_t)st.st_size);
        if (r == -EINVAL)
                r = tm_log_errno(TM_LOG_ERR, r, "'%s' is not a WAL file name PostgreSQL archives",
                                 name);
        if (r < 0)
                goto out;
        /* segments (and the .partial a promotion leaves) carry the commit
         * times the recoverable window is made of */
        if (tm_pg_walname_parse(name, &w) == 0 &&
            (w.kind == TM_PG_WAL_SEGMENT || w.kind == TM_PG_WAL_PARTIAL)) {
                r = wal_scan_fd(fd, (uint64_t)st.st_size, &sc);
                if (r < 0) {
                        r = tm_log_errno(TM_LOG_ERR, r, "cannot read the records of WAL file %s",
                                         name);
                        goto out;
                }
                have_scan = 1;
        }

        r = wal_find(repo, component, name, &old);
        if (r == 0) {
                /* PostgreSQL retries an archive_command whose success it did
                 * not see: the same bytes are a success, others a conflict */
                r = wal_restore_tmp(repo, &old, name, tmp_parent(NULL), tmp, sizeof(tmp));
                if (r < 0)
                        goto out;
                snprintf(fetched, sizeof(fetched), "%s/%s", tmp, name);
                r = files_equal(fetched, path);
                if (r == 1) {
                        tm_log(TM_LOG_INFO, "WAL file %s is already archived", name);
                        r = 0;
                } else if (r == 0) {
                        r = tm_log_errno(TM_LOG_ERR, -EEXIST,
                                         "WAL file %s is already archived with different "
                                         "contents",
                                         name);
                }
                goto out;
        }
        if (r != -ENOENT)
                goto out;
        r = tm_pg__wal_store(repo, comp, name, fd, have_scan ? &sc : NULL,
                             have_scan && w.kind == TM_PG_WAL_PARTIAL, 0, NULL);
out:
        if (tmp[0])
                rm_tree(tmp);
        if (fd >= 0)
                close(fd);
        tm_snapshot_dispose(&old);
        free(pathcopy);
        return r;
}

int tm_pg_wal_fetch(tm_repo *repo, const char *component, const char *name, const char *dest)
{
        struct tm_pg_walname w;
        struct tm_snapshot snap = { 0 };
        char tmp[4096] = "", src[4200], *destcopy = NULL, partial[64];
        const char *stored_name = name;
        int r;

        if (!name || !dest || tm_pg_walname_parse(name, &w) < 0)
                return -EINVAL;
        r = wal_find(repo, component, name, &snap);
        if (r == -ENOENT && w.kind == TM_PG_WAL_SEGMENT) {
                /* the segment being streamed is stored as .partial (zero
                 * past what was received): recovery replays it up to its
                 * last record, the end of what is stored */
                snprintf(partial, sizeof(partial), "%s.partial", name);
                r = wal_find(repo, component, partial, &snap);
                if (r == 0)
                        stored_name = partial;
        }
        if (r < 0)
                goto out;
        destcopy = strdup(dest);
        if (!destcopy) {
                r = -ENOMEM;
                goto out;
        }
        /* restore next to dest, so that the final rename is atomic */
        r = wal_restore_tmp(repo, &snap, stored_name, dirname(destcopy), tmp, sizeof(tmp));
        if (r < 0) {
                if (r == -ENOENT)
                        r = -EBADMSG; /* the snapshot exists but lacks its file */
                tm_log_errno(TM_LOG_ERR, r, "cannot restore WAL file %s", name);
                goto out;
        }
        snprintf(src, sizeof(src), "%s/%s", tmp, stored_name);
        if (rename(src, dest) < 0)
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot write '%s'", dest);
out:
        if (tmp[0])
                rm_tree(tmp);
        free(destcopy);
        tm_snapshot_dispose(&snap);
        return r;
}

/* ---- base backup: tar members into a staging directory ---- */

struct stage {
        int rootfd;
        int fd; /* the regular file being written, or -1 */
        struct tm_pg_tar_entry cur;
        char **links; /* symlinks created so far: nothing may be written through them */
        size_t n_links;
        uint64_t files, bytes;
        int as_root;
};

static int stage_through_link(const struct stage *s, const char *name)
{
        for (size_t i = 0; i < s->n_links; i++) {
                size_t l = strlen(s->links[i]);

                if (strncmp(name, s->links[i], l) == 0 && name[l] == '/')
                        return 1;
        }
        return 0;
}

static int stage_entry(const struct tm_pg_tar_entry *e, void *userdata)
{
        struct stage *s = userdata;
        char **links;

        if (stage_through_link(s, e->name))
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "base backup member '%s' lies under a symbolic link", e->name);
        s->cur = *e;
        switch (e->type) {
        case '5':
                if (mkdirat(s->rootfd, e->name, 0700) < 0 && errno != EEXIST)
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot create '%s'", e->name);
                if (fchmodat(s->rootfd, e->name, e->mode & 07777, 0) < 0)
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot chmod '%s'", e->name);
                if (s->as_root &&
                    fchownat(s->rootfd, e->name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot chown '%s'", e->name);
                return 0;
        case '2':
                if (symlinkat(e->linkname, s->rootfd, e->name) < 0)
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot create '%s'", e->name);
                links = realloc(s->links, (s->n_links + 1) * sizeof(*links));
                if (!links)
                        return -ENOMEM;
                s->links = links;
                s->links[s->n_links] = strdup(e->name);
                if (!s->links[s->n_links])
                        return -ENOMEM;
                s->n_links++;
                return 0;
        default:
                s->fd = openat(s->rootfd, e->name,
                               O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (s->fd < 0)
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot create '%s'", e->name);
                s->files++;
                return 0;
        }
}

static int stage_data(const void *p, size_t n, void *userdata)
{
        struct stage *s = userdata;
        const char *c = p;

        while (n > 0) {
                ssize_t k = write(s->fd, c, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return tm_log_errno(TM_LOG_ERR, -errno, "cannot write '%s'", s->cur.name);
                }
                c += k;
                n -= (size_t)k;
                s->bytes += (uint64_t)k;
        }
        return 0;
}

static int stage_end(void *userdata)
{
        struct stage *s = userdata;
        struct timespec ts[2];
        int r = 0;

        if (s->fd < 0)
                return 0;
        ts[0].tv_sec = ts[1].tv_sec = s->cur.mtime;
        ts[0].tv_nsec = ts[1].tv_nsec = 0;
        if (fchmod(s->fd, s->cur.mode & 07777) < 0 || futimens(s->fd, ts) < 0 ||
            (s->as_root && fchown(s->fd, s->cur.uid, s->cur.gid) < 0))
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot set the attributes of '%s'",
                                 s->cur.name);
        if (close(s->fd) < 0 && r == 0)
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot write '%s'", s->cur.name);
        s->fd = -1;
        return r;
}

static const struct tm_pg_tar_ops stage_ops = {
        .entry = stage_entry,
        .data = stage_data,
        .end = stage_end,
};

static void stage_dispose(struct stage *s)
{
        if (s->fd >= 0)
                close(s->fd);
        if (s->rootfd >= 0)
                close(s->rootfd);
        for (size_t i = 0; i < s->n_links; i++)
                free(s->links[i]);
        free(s->links);
}

/* ---- base backup: the replication protocol ---- */

struct bb_result {
        char start_lsn[32], stop_lsn[32];
        uint32_t tli;
        char sysid[32];
        int server_version;
        uint64_t seg_size;
};

/* "16MB" (SHOW wal_segment_size) in bytes; 0 if not understood. */
uint64_t tm_pg__parse_size(const char *s)
{
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || v == 0 || v > (1ull << 30))
                return 0;
        if (strcmp(end, "kB") == 0)
                v *= 1024;
        else if (strcmp(end, "MB") == 0)
                v *= 1024 * 1024;
        else if (strcmp(end, "GB") == 0)
                v *= 1024 * 1024 * 1024;
        else if (*end)
                return 0;
        return v;
}

int tm_pg__fail(PGconn *conn, int r, const char *what)
{
        const char *m = conn ? PQerrorMessage(conn) : "";
        char msg[1024];
        size_t n;

        snprintf(msg, sizeof(msg), "%s", m ? m : "");
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        return tm_log_errno(TM_LOG_ERR, r, "PostgreSQL: %s%s%s", what, *msg ? ": " : "", msg);
}

/* Server notices ("all required WAL segments have been archived") go to the
 * log, not straight to stderr. */
void tm_pg__notice(void *arg, const char *message)
{
        size_t n = strlen(message);

        (void)arg;
        while (n > 0 && message[n - 1] == '\n')
                n--;
        tm_log(TM_LOG_INFO, "PostgreSQL: %.*s", (int)n, message);
}

static int copy_lsn(char *out, size_t n, const char *v)
{
        if (!v || strlen(v) >= n || strspn(v, "0123456789ABCDEFabcdef/") != strlen(v))
                return -EPROTO;
        snprintf(out, n, "%s", v);
        return 0;
}

/* One message of the COPY stream (PostgreSQL 15 framing: 'n' new archive,
 * 'd' data, 'p' progress, 'm' manifest). */
static int bb_message(struct tm_pg_tar *tar, int *in_base, const char *buf, int len)
{
        const char *name, *loc;

        if (len < 1)
                return -EPROTO;
        switch (buf[0]) {
        case 'n':
                name = buf + 1;
                if (!memchr(name, '\0', (size_t)len - 1))
                        return -EPROTO;
                loc = name + strlen(name) + 1;
                if (loc >= buf + len || !memchr(loc, '\0', (size_t)(buf + len - loc)))
                        return -EPROTO;
                if (strcmp(name, "base.tar") != 0 || *loc)
                        return tm_log_errno(TM_LOG_ERR, -ENOTSUP,
                                            "base backup: archive '%s' (tablespace '%s'): "
                                            "tablespaces other than the main one are not "
                                            "supported yet",
                                            name, loc);
                if (*in_base)
                        return -EPROTO;
                *in_base = 1;
                return 0;
        case 'd':
                if (!*in_base)
                        return -EPROTO;
                return tm_pg_tar_feed(tar, buf + 1, (size_t)len - 1);
        case 'p':
                return 0;
        case 'm':
                return tm_log_errno(TM_LOG_ERR, -EPROTO, "base backup: unexpected manifest");
        default:
                return tm_log_errno(TM_LOG_ERR, -EPROTO, "base backup: unknown message '%c'",
                                    buf[0]);
        }
}

static int bb_run(const char *conninfo, const char *label, struct stage *stage,
                  struct bb_result *ret)
{
        const char *kw[] = { "dbname", "replication", "fallback_application_name", NULL };
        const char *val[] = { conninfo, "true", "tidemark", NULL };
        struct tm_pg_tar tar;
        PGconn *conn = NULL;
        PGresult *res = NULL;
        char cmd[256];
        int r = 0, tuples_seen = 0, in_base = 0, copy_done = 0;

        tm_pg_tar_init(&tar, &stage_ops, stage);
        conn = PQconnectdbParams(kw, val, 1);
        if (!conn)
                return -ENOMEM;
        if (PQstatus(conn) != CONNECTION_OK) {
                r = tm_pg__fail(conn, -ECONNREFUSED, "cannot connect");
                goto out;
        }
        PQsetNoticeProcessor(conn, tm_pg__notice, NULL);
        ret->server_version = PQserverVersion(conn);
        if (ret->server_version < 150000) {
                r = tm_log_errno(TM_LOG_ERR, -ENOTSUP,
                                 "PostgreSQL %d: base backups need PostgreSQL 15 or later",
                                 ret->server_version / 10000);
                goto out;
        }
        res = PQexec(conn, "IDENTIFY_SYSTEM");
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 2) {
                r = tm_pg__fail(conn, -EPROTO, "IDENTIFY_SYSTEM failed");
                goto out;
        }
        snprintf(ret->sysid, sizeof(ret->sysid), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
        res = PQexec(conn, "SHOW wal_segment_size");
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 1 ||
            !(ret->seg_size = tm_pg__parse_size(PQgetvalue(res, 0, 0)))) {
                r = tm_pg__fail(conn, -EPROTO, "SHOW wal_segment_size failed");
                goto out;
        }
        PQclear(res);
        res = NULL;

        snprintf(cmd, sizeof(cmd),
                 "BASE_BACKUP (LABEL '%s', CHECKPOINT 'fast', WAIT true, MANIFEST 'no')", label);
        if (!PQsendQuery(conn, cmd)) {
                r = tm_pg__fail(conn, -EPROTO, "cannot start BASE_BACKUP");
                goto out;
        }
        while ((res = PQgetResult(conn))) {
                switch (PQresultStatus(res)) {
                case PGRES_TUPLES_OK:
                        /* start position, tablespaces, then (after the copy)
                         * the end position */
                        if (tuples_seen == 0 || copy_done) {
                                if (PQntuples(res) != 1 || PQnfields(res) < 2) {
                                        r = tm_pg__fail(conn, -EPROTO,
                                                        "unexpected BASE_BACKUP reply");
                                        goto out;
                                }
                                r = copy_lsn(copy_done ? ret->stop_lsn : ret->start_lsn,
                                             sizeof(ret->start_lsn), PQgetvalue(res, 0, 0));
                                if (r < 0) {
                                        r = tm_pg__fail(conn, r,
                                                        "bad LSN in the BASE_BACKUP reply");
                                        goto out;
                                }
                                if (!copy_done)
                                        ret->tli =
                                                (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
                        } else {
                                for (int i = 0; i < PQntuples(res); i++)
                                        if (PQnfields(res) >= 2 && !PQgetisnull(res, i, 1)) {
                                                r = tm_log_errno(
                                                        TM_LOG_ERR, -ENOTSUP,
                                                        "tablespace '%s': tablespaces other than "
                                                        "the main one are not supported yet",
                                                        PQgetvalue(res, i, 1));
                                                goto out;
                                        }
                        }
                        tuples_seen++;
                        break;
                case PGRES_COPY_OUT: {
                        char *buf = NULL;
                        int len;

                        while ((len = PQgetCopyData(conn, &buf, 0)) > 0) {
                                r = bb_message(&tar, &in_base, buf, len);
                                PQfreemem(buf);
                                buf = NULL;
                                if (r < 0) {
                                        if (r == -EBADMSG)
                                                tm_log(TM_LOG_ERR,
                                                       "base backup: malformed tar stream");
                                        goto out;
                                }
                        }
                        if (len == -2) {
                                r = tm_pg__fail(conn, -EPROTO, "base backup stream failed");
                                goto out;
                        }
                        r = tm_pg_tar_finish(&tar);
                        if (r < 0) {
                                tm_log(TM_LOG_ERR, "base backup: the tar stream ended early");
                                goto out;
                        }
                        copy_done = 1;
                        break;
                }
                case PGRES_COMMAND_OK:
                        break;
                default:
                        r = tm_pg__fail(conn, -EPROTO, "BASE_BACKUP failed");
                        goto out;
                }
                PQclear(res);
                res = NULL;
        }
        if (!copy_done || !ret->stop_lsn[0] || !ret->tli) {
                r = tm_pg__fail(conn, -EPROTO, "BASE_BACKUP ended without its end position");
                goto out;
        }
out:
        PQclear(res);
        PQfinish(conn);
        return r;
}

static int label_valid(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n <= PG_LABEL_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _.:-") ==
                       n;
}

static int build_extra(const struct bb_result *bb, const char *backup_label, int64_t start_ns,
                       char **ret)
{
        char start[40];
        json_t *o, *pg;
        char *s;

        tm_time_format_ns(start_ns, start, sizeof(start));
        pg = json_pack("{s:s, s:s, s:I, s:s, s:i, s:s, s:s, s:I}", "start_lsn", bb->start_lsn,
                       "stop_lsn", bb->stop_lsn, "timeline", (json_int_t)bb->tli,
                       "system_identifier", bb->sysid, "server_version", bb->server_version,
                       "backup_label", backup_label, "start_time", start, "wal_segment_size",
                       (json_int_t)bb->seg_size);
        if (!pg)
                return -ENOMEM;
        o = json_pack("{s:o}", "postgres", pg);
        if (!o)
                return -ENOMEM;
        s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int tm_pg_backup_run(tm_repo *repo, const struct tm_pg_backup_opts *opts, struct tm_snapshot *ret)
{
        struct tm_backup_opts bo = TM_BACKUP_OPTS_INIT;
        struct stage stage = { .rootfd = -1, .fd = -1 };
        struct tm_snapshot snap = { 0 }, fin = { 0 };
        struct bb_result bb = { 0 };
        tm_buf label_buf = TM_BUF_INIT(PG_BACKUP_LABEL_MAX);
        char dir[4096] = "", lpath[4200], *extra = NULL, *label_text = NULL;
        char rel_base[4200], rel_global[4200];
        const char *rel[2] = { rel_base, rel_global };
        const char *paths[1], *label = opts && opts->label ? opts->label : "tidemark";
        int64_t start_ns = tm_time_now(), stop_ns;
        tm_id old_id;
        int r;

        if (!repo || !opts || !opts->conninfo || !label_valid(label))
                return -EINVAL;
        if ((size_t)snprintf(dir, sizeof(dir), "%s/tidemark-pg-XXXXXX",
                             tmp_parent(opts->staging)) >= sizeof(dir))
                return -ENAMETOOLONG;
        if (!mkdtemp(dir)) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot create a staging directory in '%s'",
                                 tmp_parent(opts->staging));
                dir[0] = '\0';
                goto out;
        }
        stage.rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (stage.rootfd < 0) {
                r = -errno;
                goto out;
        }
        stage.as_root = geteuid() == 0;
        r = bb_run(opts->conninfo, label, &stage, &bb);
        if (r < 0)
                goto out;
        stop_ns = tm_time_now();
        tm_log(TM_LOG_INFO, "base backup %s..%s on timeline %u: %llu files, %llu bytes",
               bb.start_lsn, bb.stop_lsn, bb.tli, (unsigned long long)stage.files,
               (unsigned long long)stage.bytes);

        snprintf(lpath, sizeof(lpath), "%s/backup_label", dir);
        r = tm_file_read_all(lpath, PG_BACKUP_LABEL_MAX, &label_buf);
        if (r < 0) {
                r = tm_log_errno(TM_LOG_ERR, r == -ENOENT ? -EPROTO : r,
                                 "the base backup has no backup_label");
                goto out;
        }
        label_text = strndup((const char *)label_buf.data, label_buf.len);
        if (!label_text) {
                r = -ENOMEM;
                goto out;
        }
        r = build_extra(&bb, label_text, start_ns, &extra);
        if (r < 0)
                goto out;

        paths[0] = dir;
        bo.component = opts->component && *opts->component ? opts->component : "database";
        bo.strategy = "full";
        bo.paths = paths;
        bo.n_paths = 1;
        bo.tags = opts->tags;
        bo.n_tags = opts->n_tags;
        bo.host = opts->host;
        /* a base backup is consistent from its end: restores "at or before
         * T" must never pick one that ends after T */
        bo.time = stop_ns;
        snprintf(rel_base, sizeof(rel_base), "%s/base/*", dir);
        snprintf(rel_global, sizeof(rel_global), "%s/global/*", dir);
        bo.fixed_block_paths = rel;
        bo.n_fixed_block_paths = 2;
        bo.fixed_block = PG_RELATION_BLOCK;
        bo.progress = opts->progress;
        bo.userdata = opts->userdata;
        r = tm_backup_run(repo, &bo, &snap);
        if (r == TM_BACKUP_PARTIAL)
                r = tm_log_errno(TM_LOG_ERR, -EIO, "could not read all of the staged base backup");
        if (r < 0)
                goto out;

        /* tm_backup_run has no extra_json input yet: store the manifest
         * again with it (new one first, then drop the first, so a crash
         * leaves at worst a duplicate without the PostgreSQL fields) */
        r = tm_snapshot_copy(&snap, &fin);
        if (r < 0)
                goto out;
        free(fin.extra_json);
        fin.extra_json = extra;
        extra = NULL;
        for (size_t i = 0; i < fin.n_paths; i++)
                free(fin.paths[i]);
        fin.n_paths = 0;
        {
                char where[300];

                snprintf(where, sizeof(where), "postgresql:system=%s", bb.sysid);
                r = tm_snapshot_add_path(&fin, where);
                if (r < 0)
                        goto out;
        }
        old_id = snap.id;
        r = tm_repo_snapshot_save(repo, &fin);
        if (r < 0)
                goto out;
        r = tm_repo_snapshot_remove(repo, &old_id);
        if (r < 0)
                tm_log_errno(TM_LOG_WARN, r, "cannot remove the intermediate manifest");
        r = 0;
        if (ret) {
                *ret = fin;
                fin = (struct tm_snapshot){ 0 };
        }
out:
        stage_dispose(&stage);
        if (dir[0])
                rm_tree(dir);
        tm_buf_dispose(&label_buf);
        free(label_text);
        free(extra);
        tm_snapshot_dispose(&snap);
        tm_snapshot_dispose(&fin);
        return r;
}

/* ---- point-in-time restore ---- */

int tm_pg_snapshot_is_base_backup(const struct tm_snapshot *s)
{
        json_t *o;
        int yes;

        if (!s || !s->extra_json)
                return 0;
        o = json_loads(s->extra_json, 0, NULL);
        yes = json_is_object(json_object_get(o, "postgres"));
        json_decref(o);
        return yes;
}

/* start_lsn, timeline and segment size of a base backup's manifest. */
int tm_pg__base_info(const struct tm_snapshot *base, uint64_t *ret_lsn, uint32_t *ret_tli,
                     uint64_t *ret_segsz)
{
        json_t *o = base && base->extra_json ? json_loads(base->extra_json, 0, NULL) : NULL;
        json_t *pg = json_object_get(o, "postgres");
        const char *lsn = json_string_value(json_object_get(pg, "start_lsn"));
        json_int_t segsz = json_integer_value(json_object_get(pg, "wal_segment_size"));
        json_int_t tli = json_integer_value(json_object_get(pg, "timeline"));
        unsigned int hi, lo;
        int r = -EBADMSG;

        if (lsn && sscanf(lsn, "%X/%X", &hi, &lo) == 2 && tli > 0 && tli <= UINT32_MAX) {
                *ret_lsn = (uint64_t)hi << 32 | lo;
                *ret_tli = (uint32_t)tli;
                *ret_segsz = segsz > 0 ? (uint64_t)segsz : 16u << 20;
                r = (*ret_segsz & (*ret_segsz - 1)) || *ret_segsz < (1u << 20) ||
                                    *ret_segsz > (1u << 30)
                            ? -EBADMSG
                            : 0;
        }
        json_decref(o);
        return r;
}

/* Append s to b with single quotes doubled (a postgresql.conf string). */
static int conf_quote(tm_buf *b, const char *s)
{
        int r = tm_buf_append(b, "'", 1);

        for (; r == 0 && *s; s++) {
                if (*s == '\n' || *s == '\r')
                        return -EINVAL;
                r = *s == '\'' ? tm_buf_append(b, "''", 2) : tm_buf_append(b, s, 1);
        }
        return r < 0 ? r : tm_buf_append(b, "'", 1);
}

static int write_at(int dirfd, const char *name, int flags, const void *p, size_t n,
                    const struct stat *owner)
{
        const char *c = p;
        int fd, r = 0;

        fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | flags, 0600);
        if (fd < 0)
                return -errno;
        /* the server runs as the PGDATA's owner and must read (and for
         * postgresql.auto.conf rewrite) these files */
        if (geteuid() == 0 && fchown(fd, owner->st_uid, owner->st_gid) < 0)
                r = -errno;
        while (r == 0 && n > 0) {
                ssize_t k = write(fd, c, n);

                if (k < 0) {
                        if (errno != EINTR)
                                r = -errno;
                        continue;
                }
                c += k;
                n -= (size_t)k;
        }
        if (close(fd) < 0 && r == 0)
                r = -errno;
        return r;
}

int tm_pg_recovery_conf(tm_buf *conf, const char *restore_command, int64_t target_ns)
{
        char when[48];
        int r;

        if (!restore_command || !*restore_command)
                return -EINVAL;
        r = tm_buf_printf(conf, "\n# added by tidemark restore\nrestore_command = ");
        if (r == 0)
                r = conf_quote(conf, restore_command);
        if (r == 0 && target_ns) {
                tm_pg_time_format(target_ns, when, sizeof(when));
                r = tm_buf_printf(conf,
                                  "\nrecovery_target_time = '%s'\n"
                                  "recovery_target_action = 'promote'\n",
                                  when);
        } else if (r == 0) {
                r = tm_buf_append(conf, "\n", 1);
        }
        if (r == 0)
                r = tm_buf_printf(conf, "recovery_target_timeline = 'latest'\n");
        return r;
}

int tm_pg_recovery_write(const char *pgdata, const char *restore_command, int64_t target_ns)
{
        tm_buf conf = TM_BUF_INIT(1u << 20);
        struct stat st;
        int dirfd = -1, r;

        if (!pgdata || !restore_command || !*restore_command)
                return -EINVAL;
        dirfd = open(pgdata, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        if (fstat(dirfd, &st) < 0) {
                r = -errno;
                goto out;
        }
        r = tm_pg_recovery_conf(&conf, restore_command, target_ns);
        if (r < 0)
                goto out;
        r = write_at(dirfd, "postgresql.auto.conf", O_APPEND, conf.data, conf.len, &st);
        if (r == 0)
                r = write_at(dirfd, "recovery.signal", O_TRUNC, "", 0, &st);
out:
        close(dirfd);
        tm_buf_dispose(&conf);
        return r;
}

/* ---- connection settings ---- */

/* keyword='value' with \ and ' escaped (libpq's conninfo quoting) */
static int conninfo_add(tm_buf *b, const char *key, const char *v)
{
        int r;

        if (!v || !*v)
                return 0;
        r = tm_buf_printf(b, "%s%s='", b->len ? " " : "", key);
        for (; r == 0 && *v; v++)
                r = *v == '\\' || *v == '\'' ? tm_buf_printf(b, "\\%c", *v)
                                             : tm_buf_append(b, v, 1);
        return r < 0 ? r : tm_buf_append(b, "'", 1);
}

int tm_pg_conninfo(const struct tm_pg_conn *c, char **ret)
{
        tm_buf b = TM_BUF_INIT(64 * 1024);
        const char *host = c->host && *c->host ? c->host : getenv("POSTGRES_HOST");
        const char *pw = c->passfile && *c->passfile ? NULL : getenv("POSTGRES_PASSWORD");
        int r;

        r = conninfo_add(&b, "host", host);
        if (r == 0)
                r = conninfo_add(&b, "port", c->port);
        if (r == 0)
                r = conninfo_add(&b, "user", c->user);
        if (r == 0)
                r = conninfo_add(&b, "passfile", c->passfile);
        if (r == 0)
                r = conninfo_add(&b, "password", pw);
        if (r == 0 && c->extra && *c->extra)
                r = tm_buf_printf(&b, "%s%s", b.len ? " " : "", c->extra);
        if (r == 0)
                r = tm_buf_append(&b, "", 1);
        if (r < 0) {
                tm_buf_dispose_secret(&b);
                return r;
        }
        *ret = (char *)b.data;
        return 0;
}

/* Append one shell word in single quotes. */
static int shell_word(tm_buf *b, const char *s)
{
        int r = tm_buf_append(b, b->len ? " '" : "'", b->len ? 2 : 1);

        for (; r == 0 && *s; s++)
                r = *s == '\'' ? tm_buf_append(b, "'\\''", 4) : tm_buf_append(b, s, 1);
        return r < 0 ? r : tm_buf_append(b, "'", 1);
}

int tm_pg_restore_command(tm_buf *b, const char *exe, const char *repo, const char *password_file,
                          const char *catalog, const char *component)
{
        int r;

        if (!exe || !repo)
                return -EINVAL;
        r = shell_word(b, exe);
        if (r == 0)
                r = shell_word(b, "-q");
        if (r == 0)
                r = shell_word(b, "-r");
        if (r == 0)
                r = shell_word(b, repo);
        if (r == 0 && password_file) {
                r = shell_word(b, "--password-file");
                if (r == 0)
                        r = shell_word(b, password_file);
        }
        if (r == 0 && catalog) {
                r = shell_word(b, "--catalog");
                if (r == 0)
                        r = shell_word(b, catalog);
        }
        if (r == 0)
                r = shell_word(b, "--component");
        if (r == 0)
                r = shell_word(b, component && *component ? component : "database");
        if (r == 0)
                r = tm_buf_printf(b, " wal-fetch %%f %%p");
        return r;
}
