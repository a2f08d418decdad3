/*
 * The catalog: an SQLite cache of the repository. sqlite3 is used here and
 * nowhere else.
 *
 * Schema (PRAGMA user_version = CATALOG_VERSION):
 *   meta(key TEXT PRIMARY KEY, value TEXT)
 *   index_files(id BLOB PRIMARY KEY)                          WITHOUT ROWID
 *   packs(id BLOB PRIMARY KEY, type, size)                    WITHOUT ROWID
 *   blobs(id, pack, type, flags, "offset", length, raw_length,
 *         PRIMARY KEY(id, pack))                              WITHOUT ROWID
 *     + index blobs_pack(pack, "offset")
 *   snapshots(id BLOB PRIMARY KEY, time, component, manifest) WITHOUT ROWID
 *     + indexes snapshots_component_time(component, time), snapshots_time(time)
 * manifest is the canonical JSON of tm_snapshot_encode(); the snapshot id is
 * not part of that encoding and lives in the id column.
 *
 * Locking: the connection is opened SQLITE_OPEN_NOMUTEX and every public call
 * holds cat->lock, which serializes the threads sharing one tm_catalog.
 * The foreach calls never hold the lock (or a statement) while their
 * callback runs: they read a batch of rows under the lock, release it, call
 * fn for the batch, and resume after the last key seen (keyset pagination).
 * So a callback may call back into the catalog, even to modify it; rows
 * added or removed during an iteration may or may not be seen. Transactions
 * belong to the connection, not to a thread: a tm_catalog_begin() in one
 * thread covers calls made by other threads until the commit.
 *
 * Damage: a file that is not SQLite, a corrupt page met while opening, a
 * database file shorter than its header says, or a wrong user_version give
 * -EBADMSG from tm_catalog_open(), and the caller rebuilds. Opening reads
 * page 1, the schema, and both edges of every b-tree (O(log n), not a full
 * check); corruption found later is -EBADMSG from the call that met it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include <tidemark/catalog.h>
#include <tidemark/log.h>

#define CATALOG_VERSION 1
/* Rows fetched per lock hold in the foreach calls. */
#define BATCH_ROWS          256
#define SNAPSHOT_BATCH_ROWS 32

enum stmt {
        S_BEGIN,
        S_COMMIT,
        S_ROLLBACK,
        S_META_GET,
        S_META_SET,
        S_INDEX_HAS,
        S_INDEX_ADD,
        S_INDEX_REMOVE,
        S_INDEX_PAGE,
        S_PACK_ADD,
        S_PACK_HAS,
        S_PACK_REMOVE,
        S_PACK_REMOVE_BLOBS,
        S_PACK_PAGE,
        S_BLOB_ADD,
        S_BLOB_FIND,
        S_BLOB_FIND_ALL,
        S_BLOB_PAGE,
        S_BLOB_PACK_PAGE,
        S_BLOB_COUNT,
        S_SNAP_ADD,
        S_SNAP_REMOVE,
        S_SNAP_HAS,
        S_SNAP_GET,
        S_SNAP_PAGE,
        S_SNAP_PAGE_COMPONENT,
        N_STMT
};

/* clang-format off */
static const char *const stmt_sql[N_STMT] = {
        [S_BEGIN]             = "BEGIN IMMEDIATE",
        [S_COMMIT]            = "COMMIT",
        [S_ROLLBACK]          = "ROLLBACK",
        [S_META_GET]          = "SELECT value FROM meta WHERE key = ?1",
        [S_META_SET]          = "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)",
        [S_INDEX_HAS]         = "SELECT 1 FROM index_files WHERE id = ?1",
        [S_INDEX_ADD]         = "INSERT INTO index_files(id) VALUES (?1)",
        [S_INDEX_REMOVE]      = "DELETE FROM index_files WHERE id = ?1",
        [S_INDEX_PAGE]        = "SELECT id FROM index_files WHERE id > ?1 ORDER BY id LIMIT ?2",
        [S_PACK_ADD]          = "INSERT OR IGNORE INTO packs(id, type, size) VALUES (?1, ?2, ?3)",
        [S_PACK_HAS]          = "SELECT 1 FROM packs WHERE id = ?1",
        [S_PACK_REMOVE]       = "DELETE FROM packs WHERE id = ?1",
        [S_PACK_REMOVE_BLOBS] = "DELETE FROM blobs WHERE pack = ?1",
        [S_PACK_PAGE]         = "SELECT id, type, size FROM packs WHERE id > ?1 ORDER BY id LIMIT ?2",
        [S_BLOB_ADD]          = "INSERT OR IGNORE INTO blobs(id, pack, type, flags, \"offset\", "
                                "length, raw_length) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        [S_BLOB_FIND]         = "SELECT pack, type, flags, \"offset\", length, raw_length "
                                "FROM blobs WHERE id = ?1 LIMIT 1",
        [S_BLOB_FIND_ALL]     = "SELECT pack, type, flags, \"offset\", length, raw_length "
                                "FROM blobs WHERE id = ?1 ORDER BY pack LIMIT ?2",
        [S_BLOB_PAGE]         = "SELECT id, pack, type, flags, \"offset\", length, raw_length "
                                "FROM blobs WHERE (id, pack) > (?1, ?2) ORDER BY id, pack LIMIT ?3",
        [S_BLOB_PACK_PAGE]    = "SELECT id, pack, type, flags, \"offset\", length, raw_length "
                                "FROM blobs WHERE pack = ?1 AND (\"offset\", id) > (?2, ?3) "
                                "ORDER BY \"offset\", id LIMIT ?4",
        [S_BLOB_COUNT]        = "SELECT count(*) FROM blobs",
        [S_SNAP_ADD]          = "INSERT INTO snapshots(id, time, component, manifest) "
                                "VALUES (?1, ?2, ?3, ?4)",
        [S_SNAP_REMOVE]       = "DELETE FROM snapshots WHERE id = ?1",
        [S_SNAP_HAS]          = "SELECT 1 FROM snapshots WHERE id = ?1",
        [S_SNAP_GET]          = "SELECT manifest FROM snapshots WHERE id = ?1",
        [S_SNAP_PAGE]         = "SELECT id, time, manifest FROM snapshots "
                                "WHERE (time, id) > (?1, ?2) ORDER BY time, id LIMIT ?3",
        [S_SNAP_PAGE_COMPONENT] = "SELECT id, time, manifest FROM snapshots "
                                "WHERE component = ?4 AND (time, id) > (?1, ?2) "
                                "ORDER BY time, id LIMIT ?3",
};
/* clang-format on */

static const char schema_sql[] =
        "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
        "CREATE TABLE index_files(id BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE packs(id BLOB PRIMARY KEY NOT NULL, type INTEGER NOT NULL,"
        " size INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE blobs(id BLOB NOT NULL, pack BLOB NOT NULL, type INTEGER NOT NULL,"
        " flags INTEGER NOT NULL, \"offset\" INTEGER NOT NULL, length INTEGER NOT NULL,"
        " raw_length INTEGER NOT NULL, PRIMARY KEY(id, pack)) WITHOUT ROWID;"
        "CREATE INDEX blobs_pack ON blobs(pack, \"offset\");"
        "CREATE TABLE snapshots(id BLOB PRIMARY KEY NOT NULL, time INTEGER NOT NULL,"
        " component TEXT NOT NULL, manifest BLOB NOT NULL) WITHOUT ROWID;"
        "CREATE INDEX snapshots_component_time ON snapshots(component, time);"
        "CREATE INDEX snapshots_time ON snapshots(time);";

/* Read both edges of every b-tree so a truncated or damaged file shows up at
 * open (each probe is O(depth)). */
static const char *const probe_sql[] = {
        "SELECT key FROM meta ORDER BY key LIMIT 1",
        "SELECT key FROM meta ORDER BY key DESC LIMIT 1",
        "SELECT id FROM index_files ORDER BY id LIMIT 1",
        "SELECT id FROM index_files ORDER BY id DESC LIMIT 1",
        "SELECT id FROM packs ORDER BY id LIMIT 1",
        "SELECT id FROM packs ORDER BY id DESC LIMIT 1",
        "SELECT id, pack FROM blobs ORDER BY id, pack LIMIT 1",
        "SELECT id, pack FROM blobs ORDER BY id DESC, pack DESC LIMIT 1",
        "SELECT pack, \"offset\" FROM blobs INDEXED BY blobs_pack ORDER BY pack, \"offset\" LIMIT "
        "1",
        "SELECT pack, \"offset\" FROM blobs INDEXED BY blobs_pack "
        "ORDER BY pack DESC, \"offset\" DESC LIMIT 1",
        "SELECT id FROM snapshots ORDER BY id LIMIT 1",
        "SELECT id FROM snapshots ORDER BY id DESC LIMIT 1",
        "SELECT component, time FROM snapshots INDEXED BY snapshots_component_time "
        "ORDER BY component, time LIMIT 1",
        "SELECT component, time FROM snapshots INDEXED BY snapshots_component_time "
        "ORDER BY component DESC, time DESC LIMIT 1",
        "SELECT time FROM snapshots INDEXED BY snapshots_time ORDER BY time LIMIT 1",
        "SELECT time FROM snapshots INDEXED BY snapshots_time ORDER BY time DESC LIMIT 1",
};

struct tm_catalog {
        sqlite3 *db;
        char *path;
        pthread_mutex_t lock;
        sqlite3_stmt *stmt[N_STMT];
        /* While opening, "no such table" and the like mean the file is not
         * the catalog we expect: -EBADMSG (rebuild), not -EIO. */
        int opening;
};

static void lock(tm_catalog *cat)
{
        pthread_mutex_lock(&cat->lock);
}

static void unlock(tm_catalog *cat)
{
        pthread_mutex_unlock(&cat->lock);
}

/* Translate an SQLite result code once, logging what is a real failure. */
static int map_rc(tm_catalog *cat, int rc, const char *what)
{
        int r, sys;

        switch (rc & 0xff) {
        case SQLITE_CONSTRAINT:
                return -EEXIST; /* an expected outcome: not logged */
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                r = -EBUSY;
                break;
        case SQLITE_FULL:
                r = -ENOSPC;
                break;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                r = -EBADMSG;
                break;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_ERROR:
        case SQLITE_SCHEMA:
                r = cat->opening ? -EBADMSG : -EIO;
                break;
        case SQLITE_IOERR:
        case SQLITE_CANTOPEN:
                sys = cat->db ? sqlite3_system_errno(cat->db) : 0;
                r = sys == ENOSPC || sys == EDQUOT  ? -ENOSPC
                    : sys == EACCES || sys == EPERM ? -EACCES
                                                    : -EIO;
                break;
        default:
                r = -EIO;
                break;
        }
        return tm_log_errno(r == -EBUSY ? TM_LOG_WARN : TM_LOG_ERR, r, "catalog '%s': %s: %s",
                            cat->path, what, cat->db ? sqlite3_errmsg(cat->db) : "open failed");
}

static sqlite3_stmt *get_stmt(tm_catalog *cat, enum stmt s)
{
        return cat->stmt[s];
}

static void done_stmt(sqlite3_stmt *st)
{
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
}

static int bind_id(sqlite3_stmt *st, int i, const tm_id *id)
{
        return sqlite3_bind_blob(st, i, id->b, TM_ID_LEN, SQLITE_STATIC);
}

/* A column that must hold an id; anything else means a damaged row. */
static int column_id(sqlite3_stmt *st, int i, tm_id *ret)
{
        const void *p = sqlite3_column_blob(st, i);

        if (!p || sqlite3_column_bytes(st, i) != TM_ID_LEN)
                return -EBADMSG;
        memcpy(ret->b, p, TM_ID_LEN);
        return 0;
}

/* Run a statement that returns no rows. Caller holds the lock and has bound
 * the parameters. */
static int run(tm_catalog *cat, sqlite3_stmt *st, const char *what)
{
        int rc = sqlite3_step(st);

        done_stmt(st);
        if (rc == SQLITE_DONE || rc == SQLITE_ROW)
                return 0;
        return map_rc(cat, rc, what);
}

/* Run a lookup by id: 1 if a row came back, 0 if none. */
static int run_has(tm_catalog *cat, enum stmt s, const tm_id *id, const char *what)
{
        sqlite3_stmt *st;
        int rc, r;

        if (!cat || !id)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, s);
        bind_id(st, 1, id);
        rc = sqlite3_step(st);
        done_stmt(st);
        if (rc == SQLITE_ROW)
                r = 1;
        else if (rc == SQLITE_DONE)
                r = 0;
        else
                r = map_rc(cat, rc, what);
        unlock(cat);
        return r;
}

/* Run a delete/insert by id. For deletes, -ENOENT when no row was there. */
static int run_id(tm_catalog *cat, enum stmt s, const tm_id *id, int enoent, const char *what)
{
        int r;

        if (!cat || !id)
                return -EINVAL;
        lock(cat);
        bind_id(get_stmt(cat, s), 1, id);
        r = run(cat, get_stmt(cat, s), what);
        if (r == 0 && enoent && sqlite3_changes(cat->db) == 0)
                r = -ENOENT;
        unlock(cat);
        return r;
}

/* Plain SQL text (schema, pragmas, savepoints) under the caller's lock. */
static int exec_sql(tm_catalog *cat, const char *sql, const char *what)
{
        int rc = sqlite3_exec(cat->db, sql, NULL, NULL, NULL);

        if (rc == SQLITE_OK)
                return 0;
        return map_rc(cat, rc, what);
}

/* One integer from a single-row query (pragmas, counts). */
static int query_int(tm_catalog *cat, const char *sql, int64_t *ret)
{
        sqlite3_stmt *st = NULL;
        int rc, r;

        rc = sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL);
        if (rc != SQLITE_OK) {
                r = map_rc(cat, rc, sql);
                goto out;
        }
        rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                r = rc == SQLITE_DONE ? -EBADMSG : map_rc(cat, rc, sql);
                goto out;
        }
        *ret = sqlite3_column_int64(st, 0);
        r = 0;
out:
        sqlite3_finalize(st);
        return r;
}

static uint32_t be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * Create the file 0600 if missing (manifests in it are plaintext; SQLite
 * gives -wal and -shm the main file's mode), and catch what SQLite itself
 * would open without complaint: a file shorter than the page count its
 * header vouches for (a truncated copy). When a WAL with content exists the
 * main file may legitimately lag behind, so the size check is skipped.
 */
/* Cheap checks that a non-empty catalog file is an SQLite database that is
 * not truncated; run through SQLite's own file handle. Opening and closing a
 * descriptor of our own here would be a bug: closing any descriptor of a
 * file drops every POSIX lock this process holds on it, including those of
 * another open catalog handle, which lets another process delete the -wal
 * file under it. */
static int precheck_file(sqlite3 *db, const char *path)
{
        sqlite3_file *f = NULL;
        sqlite3_int64 size = 0;
        char wal[4096];
        uint8_t h[100];
        struct stat st, wst;
        uint32_t page_size, n_pages;

        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
                return -EBADMSG;
        if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
            !f->pMethods)
                return 0; /* nothing to check through: the first query will tell */
        if (f->pMethods->xFileSize(f, &size) != SQLITE_OK || size == 0)
                return 0; /* new: SQLite writes the header */
        if (f->pMethods->xRead(f, h, sizeof(h), 0) != SQLITE_OK ||
            memcmp(h, "SQLite format 3", 16) != 0)
                return -EBADMSG;
        page_size = (uint32_t)h[16] << 8 | h[17];
        if (page_size == 1)
                page_size = 65536;
        if (page_size < 512 || (page_size & (page_size - 1)) != 0)
                return -EBADMSG;
        n_pages = be32(h + 28);
        /* The in-header size is valid only when the change counter matches
         * version-valid-for (SQLite file format, section 1.3.7). */
        if (n_pages == 0 || be32(h + 24) != be32(h + 92))
                return 0;
        if ((uint64_t)size >= (uint64_t)n_pages * page_size)
                return 0;
        if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", path) < sizeof(wal) &&
            stat(wal, &wst) == 0 && wst.st_size > 0)
                return 0;
        return -EBADMSG;
}

/* Create a missing catalog file 0600: it holds decrypted manifests. */
static int create_private(const char *path)
{
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);

        if (fd >= 0) {
                close(fd); /* a new file: no handle of ours can hold locks on it */
                return 0;
        }
        if (errno == EEXIST)
                return 0;
        return tm_log_errno(TM_LOG_ERR, errno == EDQUOT ? -ENOSPC : -errno,
                            "unable to create catalog '%s'", path);
}

/* Make or check the schema. Called under nothing (open is single-threaded). */
static int setup_schema(tm_catalog *cat)
{
        int64_t version = 0, n_objects = 0;
        int r;

        r = query_int(cat, "PRAGMA user_version", &version);
        if (r < 0)
                return r;
        if (version == CATALOG_VERSION)
                return 0;
        if (version != 0)
                return -EBADMSG;
        /* Version 0: a new file, or a concurrent opener is creating it right
         * now. Decide under the write lock. */
        r = exec_sql(cat, "BEGIN IMMEDIATE", "begin schema");
        if (r < 0)
                return r;
        r = query_int(cat, "PRAGMA user_version", &version);
        if (r < 0 || version == CATALOG_VERSION)
                goto out;
        r = query_int(cat, "SELECT count(*) FROM sqlite_master", &n_objects);
        if (r < 0)
                goto out;
        if (version != 0 || n_objects != 0) {
                r = -EBADMSG; /* somebody else's database */
                goto out;
        }
        r = exec_sql(cat, schema_sql, "create schema");
        if (r < 0)
                goto out;
        r = exec_sql(cat, "PRAGMA user_version = 1", "set schema version");
out:
        if (r < 0) {
                sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
                return r;
        }
        return exec_sql(cat, "COMMIT", "commit schema");
}

static int probe(tm_catalog *cat)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(probe_sql); i++) {
                sqlite3_stmt *st = NULL;
                int rc;

                rc = sqlite3_prepare_v2(cat->db, probe_sql[i], -1, &st, NULL);
                if (rc == SQLITE_OK) {
                        do
                                rc = sqlite3_step(st);
                        while (rc == SQLITE_ROW);
                }
                sqlite3_finalize(st);
                if (rc != SQLITE_DONE)
                        return map_rc(cat, rc, "check");
        }
        return 0;
}

int tm_catalog_open(const char *path, tm_catalog **ret)
{
        tm_catalog *cat = NULL;
        sqlite3_stmt *st = NULL;
        int rc, r;

        if (!path || !*path || !ret)
                return -EINVAL;
        cat = calloc(1, sizeof(*cat));
        if (!cat)
                return -ENOMEM;
        pthread_mutex_init(&cat->lock, NULL);
        cat->opening = 1;
        cat->path = strdup(path);
        if (!cat->path) {
                r = -ENOMEM;
                goto out;
        }
        r = create_private(path);
        if (r < 0)
                goto out;
        rc = sqlite3_open_v2(path, &cat->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
        if (rc != SQLITE_OK) {
                r = map_rc(cat, rc, "open");
                goto out;
        }
        r = precheck_file(cat->db, path);
        if (r < 0)
                goto out;
        sqlite3_extended_result_codes(cat->db, 1);
        sqlite3_busy_timeout(cat->db, 10000);
        /* The first statement reads the header: not SQLite gives NOTADB here. */
        rc = sqlite3_prepare_v2(cat->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                r = map_rc(cat, rc, "set journal mode");
                goto out;
        }
        if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
                tm_log(TM_LOG_WARN, "catalog '%s': journal mode is '%s', not wal", path,
                       (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        st = NULL;
        /* A backup adds and looks up blob ids in random order: a page cache
         * larger than the 2 MiB default (32 MiB) keeps inner b-tree pages hot. */
        r = exec_sql(cat,
                     "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;"
                     "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY",
                     "set pragmas");
        if (r < 0)
                goto out;
        r = setup_schema(cat);
        if (r < 0)
                goto out;
        for (int i = 0; i < N_STMT; i++) {
                rc = sqlite3_prepare_v3(cat->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                        &cat->stmt[i], NULL);
                if (rc != SQLITE_OK) {
                        r = map_rc(cat, rc, "prepare");
                        goto out;
                }
        }
        r = probe(cat);
        if (r < 0)
                goto out;
        cat->opening = 0;
        *ret = cat;
        cat = NULL;
        r = 0;
out:
        sqlite3_finalize(st);
        tm_catalog_free(cat);
        return r;
}

void tm_catalog_free(tm_catalog *cat)
{
        if (!cat)
                return;
        for (int i = 0; i < N_STMT; i++)
                sqlite3_finalize(cat->stmt[i]);
        if (cat->db)
                sqlite3_close(cat->db);
        pthread_mutex_destroy(&cat->lock);
        free(cat->path);
        free(cat);
}

int tm_catalog_destroy(const char *path)
{
        static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
        int r = 0;

        if (!path || !*path)
                return -EINVAL;
        for (size_t i = 0; i < TM_ARRAY_SIZE(suffixes); i++) {
                char p[4096];

                if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffixes[i]) >= sizeof(p))
                        return -ENAMETOOLONG;
                if (unlink(p) < 0 && errno != ENOENT && r == 0)
                        r = tm_log_errno(TM_LOG_ERR, -errno, "unable to remove '%s'", p);
        }
        return r;
}

static int run_simple(tm_catalog *cat, enum stmt s, const char *what)
{
        int r;

        if (!cat)
                return -EINVAL;
        lock(cat);
        r = run(cat, get_stmt(cat, s), what);
        unlock(cat);
        return r;
}

int tm_catalog_begin(tm_catalog *cat)
{
        return run_simple(cat, S_BEGIN, "begin");
}

int tm_catalog_commit(tm_catalog *cat)
{
        return run_simple(cat, S_COMMIT, "commit");
}

int tm_catalog_rollback(tm_catalog *cat)
{
        return run_simple(cat, S_ROLLBACK, "rollback");
}

int tm_catalog_meta_get(tm_catalog *cat, const char *key, char **ret)
{
        sqlite3_stmt *st;
        char *v = NULL;
        int rc, r;

        if (!cat || !key || !ret)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_META_GET);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                const unsigned char *t = sqlite3_column_text(st, 0);

                v = strdup(t ? (const char *)t : "");
                r = v ? 0 : -ENOMEM;
        } else if (rc == SQLITE_DONE) {
                r = -ENOENT;
        } else {
                r = map_rc(cat, rc, "meta get");
        }
        done_stmt(st);
        unlock(cat);
        if (r == 0)
                *ret = v;
        return r;
}

int tm_catalog_meta_set(tm_catalog *cat, const char *key, const char *value)
{
        sqlite3_stmt *st;
        int r;

        if (!cat || !key || !value)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_META_SET);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        r = run(cat, st, "meta set");
        unlock(cat);
        return r;
}

int tm_catalog_index_has(tm_catalog *cat, const tm_id *index_id)
{
        return run_has(cat, S_INDEX_HAS, index_id, "index has");
}

int tm_catalog_index_add(tm_catalog *cat, const tm_id *index_id)
{
        return run_id(cat, S_INDEX_ADD, index_id, 0, "index add");
}

int tm_catalog_index_remove(tm_catalog *cat, const tm_id *index_id)
{
        return run_id(cat, S_INDEX_REMOVE, index_id, 1, "index remove");
}

/* Keyset pagination over a table keyed by id alone: fetch up to max ids after
 * *last (or from the start), under the lock. */
static int page_ids(tm_catalog *cat, enum stmt s, int started, const tm_id *last, tm_id *ids,
                    uint8_t *types, uint64_t *sizes, size_t max, size_t *ret_n)
{
        sqlite3_stmt *st;
        size_t n = 0;
        int rc = SQLITE_DONE, r = 0;

        lock(cat);
        st = get_stmt(cat, s);
        if (started)
                bind_id(st, 1, last);
        else
                sqlite3_bind_zeroblob(st, 1, 0);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
        while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                r = column_id(st, 0, &ids[n]);
                if (r < 0)
                        break;
                if (types)
                        types[n] = (uint8_t)sqlite3_column_int(st, 1);
                if (sizes)
                        sizes[n] = (uint64_t)sqlite3_column_int64(st, 2);
                n++;
        }
        if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = map_rc(cat, rc, "list");
        done_stmt(st);
        unlock(cat);
        *ret_n = n;
        return r;
}

int tm_catalog_index_foreach(tm_catalog *cat, tm_catalog_id_fn fn, void *userdata)
{
        tm_id *ids = NULL, last;
        size_t n;
        int started = 0, r;

        if (!cat || !fn)
                return -EINVAL;
        ids = malloc(BATCH_ROWS * sizeof(*ids));
        if (!ids)
                return -ENOMEM;
        do {
                r = page_ids(cat, S_INDEX_PAGE, started, &last, ids, NULL, NULL, BATCH_ROWS, &n);
                for (size_t i = 0; r == 0 && i < n; i++)
                        r = fn(&ids[i], userdata);
                if (n > 0)
                        last = ids[n - 1];
                started = 1;
        } while (r == 0 && n == BATCH_ROWS);
        free(ids);
        return r;
}

int tm_catalog_pack_add(tm_catalog *cat, const tm_id *pack_id, uint8_t type, uint64_t size)
{
        sqlite3_stmt *st;
        int r;

        if (!cat || !pack_id || size > INT64_MAX)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_PACK_ADD);
        bind_id(st, 1, pack_id);
        sqlite3_bind_int(st, 2, type);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
        r = run(cat, st, "pack add");
        unlock(cat);
        return r;
}

int tm_catalog_pack_has(tm_catalog *cat, const tm_id *pack_id)
{
        return run_has(cat, S_PACK_HAS, pack_id, "pack has");
}

int tm_catalog_pack_remove(tm_catalog *cat, const tm_id *pack_id)
{
        int changes = 0, r;

        if (!cat || !pack_id)
                return -EINVAL;
        lock(cat);
        /* A savepoint makes the two deletes one step, inside or outside the
         * caller's transaction. */
        r = exec_sql(cat, "SAVEPOINT pack_remove", "pack remove");
        if (r < 0)
                goto out;
        bind_id(get_stmt(cat, S_PACK_REMOVE_BLOBS), 1, pack_id);
        r = run(cat, get_stmt(cat, S_PACK_REMOVE_BLOBS), "pack remove blobs");
        if (r == 0) {
                changes += sqlite3_changes(cat->db);
                bind_id(get_stmt(cat, S_PACK_REMOVE), 1, pack_id);
                r = run(cat, get_stmt(cat, S_PACK_REMOVE), "pack remove");
                changes += sqlite3_changes(cat->db);
        }
        if (r < 0) {
                sqlite3_exec(cat->db, "ROLLBACK TO pack_remove; RELEASE pack_remove", NULL, NULL,
                             NULL);
                goto out;
        }
        r = exec_sql(cat, "RELEASE pack_remove", "pack remove");
        if (r == 0 && changes == 0)
                r = -ENOENT;
out:
        unlock(cat);
        return r;
}

int tm_catalog_pack_foreach(tm_catalog *cat, tm_catalog_pack_fn fn, void *userdata)
{
        tm_id *ids = NULL, last;
        uint8_t *types = NULL;
        uint64_t *sizes = NULL;
        size_t n;
        int started = 0, r;

        if (!cat || !fn)
                return -EINVAL;
        ids = malloc(BATCH_ROWS * sizeof(*ids));
        types = malloc(BATCH_ROWS * sizeof(*types));
        sizes = malloc(BATCH_ROWS * sizeof(*sizes));
        if (!ids || !types || !sizes) {
                r = -ENOMEM;
                goto out;
        }
        do {
                r = page_ids(cat, S_PACK_PAGE, started, &last, ids, types, sizes, BATCH_ROWS, &n);
                for (size_t i = 0; r == 0 && i < n; i++)
                        r = fn(&ids[i], types[i], sizes[i], userdata);
                if (n > 0)
                        last = ids[n - 1];
                started = 1;
        } while (r == 0 && n == BATCH_ROWS);
out:
        free(sizes);
        free(types);
        free(ids);
        return r;
}

int tm_catalog_blob_add(tm_catalog *cat, const tm_id *pack_id, const struct tm_pack_entry *e)
{
        sqlite3_stmt *st;
        int r;

        if (!cat || !pack_id || !e || e->offset > INT64_MAX)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_BLOB_ADD);
        bind_id(st, 1, &e->id);
        bind_id(st, 2, pack_id);
        sqlite3_bind_int(st, 3, e->type);
        sqlite3_bind_int(st, 4, e->flags);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)e->offset);
        sqlite3_bind_int64(st, 6, e->length);
        sqlite3_bind_int64(st, 7, e->raw_length);
        r = run(cat, st, "blob add");
        unlock(cat);
        return r;
}

/* Columns type, flags, offset, length, raw_length starting at column c. */
static void column_entry(sqlite3_stmt *st, int c, struct tm_pack_entry *e)
{
        e->type = (uint8_t)sqlite3_column_int(st, c);
        e->flags = (uint8_t)sqlite3_column_int(st, c + 1);
        e->offset = (uint64_t)sqlite3_column_int64(st, c + 2);
        e->length = (uint32_t)sqlite3_column_int64(st, c + 3);
        e->raw_length = (uint32_t)sqlite3_column_int64(st, c + 4);
}

int tm_catalog_blob_find(tm_catalog *cat, const tm_id *blob_id, tm_id *ret_pack,
                         struct tm_pack_entry *ret)
{
        struct tm_pack_entry e = { 0 };
        sqlite3_stmt *st;
        tm_id pack;
        int rc, r;

        if (!cat || !blob_id)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_BLOB_FIND);
        bind_id(st, 1, blob_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                r = column_id(st, 0, &pack);
                e.id = *blob_id;
                column_entry(st, 1, &e);
        } else if (rc == SQLITE_DONE) {
                r = -ENOENT;
        } else {
                r = map_rc(cat, rc, "blob find");
        }
        done_stmt(st);
        unlock(cat);
        if (r == 0) {
                if (ret_pack)
                        *ret_pack = pack;
                if (ret)
                        *ret = e;
        }
        return r;
}

int tm_catalog_blob_find_all(tm_catalog *cat, const tm_id *blob_id, tm_id *ret_packs,
                             struct tm_pack_entry *ret, size_t max, size_t *ret_n)
{
        sqlite3_stmt *st;
        size_t n = 0;
        int rc, r = 0;

        if (!cat || !blob_id || !ret_packs || !ret || !ret_n || max == 0 || max > INT32_MAX)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_BLOB_FIND_ALL);
        bind_id(st, 1, blob_id);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < max) {
                r = column_id(st, 0, &ret_packs[n]);
                if (r < 0)
                        break;
                memset(&ret[n], 0, sizeof(ret[n]));
                ret[n].id = *blob_id;
                column_entry(st, 1, &ret[n]);
                n++;
        }
        if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
                r = map_rc(cat, rc, "blob find all");
        done_stmt(st);
        unlock(cat);
        if (r == 0 && n == 0)
                r = -ENOENT;
        *ret_n = r == 0 ? n : 0;
        return r;
}

struct blob_row {
        tm_id pack;
        struct tm_pack_entry e;
};

/* One page of blob rows; in_pack selects the per-pack, offset-ordered walk. */
static int page_blobs(tm_catalog *cat, const tm_id *in_pack, int started,
                      const struct blob_row *last, struct blob_row *rows, size_t *ret_n)
{
        sqlite3_stmt *st;
        size_t n = 0;
        int rc = SQLITE_DONE, r = 0;

        lock(cat);
        if (in_pack) {
                st = get_stmt(cat, S_BLOB_PACK_PAGE);
                bind_id(st, 1, in_pack);
                if (started) {
                        sqlite3_bind_int64(st, 2, (sqlite3_int64)last->e.offset);
                        bind_id(st, 3, &last->e.id);
                } else {
                        sqlite3_bind_int64(st, 2, -1);
                        sqlite3_bind_zeroblob(st, 3, 0);
                }
                sqlite3_bind_int(st, 4, BATCH_ROWS);
        } else {
                st = get_stmt(cat, S_BLOB_PAGE);
                if (started) {
                        bind_id(st, 1, &last->e.id);
                        bind_id(st, 2, &last->pack);
                } else {
                        sqlite3_bind_zeroblob(st, 1, 0);
                        sqlite3_bind_zeroblob(st, 2, 0);
                }
                sqlite3_bind_int(st, 3, BATCH_ROWS);
        }
        while (n < BATCH_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                r = column_id(st, 0, &rows[n].e.id);
                if (r == 0)
                        r = column_id(st, 1, &rows[n].pack);
                if (r < 0)
                        break;
                column_entry(st, 2, &rows[n].e);
                n++;
        }
        if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                r = map_rc(cat, rc, "blob list");
        done_stmt(st);
        unlock(cat);
        *ret_n = n;
        return r;
}

static int blob_walk(tm_catalog *cat, const tm_id *in_pack, tm_catalog_blob_fn fn, void *userdata)
{
        struct blob_row *rows = NULL, last;
        size_t n;
        int started = 0, r;

        if (!cat || !fn)
                return -EINVAL;
        rows = malloc(BATCH_ROWS * sizeof(*rows));
        if (!rows)
                return -ENOMEM;
        do {
                r = page_blobs(cat, in_pack, started, &last, rows, &n);
                for (size_t i = 0; r == 0 && i < n; i++)
                        r = fn(&rows[i].e.id, &rows[i].pack, &rows[i].e, userdata);
                if (n > 0)
                        last = rows[n - 1];
                started = 1;
        } while (r == 0 && n == BATCH_ROWS);
        free(rows);
        return r;
}

int tm_catalog_blob_foreach(tm_catalog *cat, tm_catalog_blob_fn fn, void *userdata)
{
        return blob_walk(cat, NULL, fn, userdata);
}

int tm_catalog_blob_foreach_in_pack(tm_catalog *cat, const tm_id *pack_id, tm_catalog_blob_fn fn,
                                    void *userdata)
{
        if (!pack_id)
                return -EINVAL;
        return blob_walk(cat, pack_id, fn, userdata);
}

/* Counts blob locations (rows): a blob stored in two packs counts twice,
 * which is rare. count(DISTINCT id) would be exact but builds a temporary
 * b-tree over every id (seconds on a large catalog); count(*) is one scan. */
int tm_catalog_blob_count(tm_catalog *cat, uint64_t *ret)
{
        sqlite3_stmt *st;
        int64_t v = 0;
        int rc, r;

        if (!cat || !ret)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_BLOB_COUNT);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
                v = sqlite3_column_int64(st, 0);
                r = 0;
        } else {
                r = map_rc(cat, rc, "blob count");
        }
        done_stmt(st);
        unlock(cat);
        if (r == 0)
                *ret = (uint64_t)v;
        return r;
}

int tm_catalog_snapshot_add(tm_catalog *cat, const struct tm_snapshot *s)
{
        tm_buf json = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        sqlite3_stmt *st;
        int r;

        if (!cat || !s || !s->component)
                return -EINVAL;
        r = tm_snapshot_encode(s, &json);
        if (r < 0)
                goto out;
        lock(cat);
        st = get_stmt(cat, S_SNAP_ADD);
        bind_id(st, 1, &s->id);
        sqlite3_bind_int64(st, 2, s->time);
        sqlite3_bind_text(st, 3, s->component, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 4, json.data, (int)json.len, SQLITE_STATIC);
        r = run(cat, st, "snapshot add");
        unlock(cat);
out:
        tm_buf_dispose(&json);
        return r;
}

int tm_catalog_snapshot_remove(tm_catalog *cat, const tm_id *snap_id)
{
        return run_id(cat, S_SNAP_REMOVE, snap_id, 1, "snapshot remove");
}

int tm_catalog_snapshot_has(tm_catalog *cat, const tm_id *snap_id)
{
        return run_has(cat, S_SNAP_HAS, snap_id, "snapshot has");
}

/* Decode a stored manifest; the id is not part of the encoding. A manifest
 * that no longer decodes means the catalog is damaged. */
static int decode_manifest(tm_catalog *cat, const tm_id *id, const void *p, size_t n,
                           struct tm_snapshot *ret)
{
        struct tm_snapshot s;
        int r;

        memset(&s, 0, sizeof(s));
        r = tm_snapshot_decode(p, n, &s);
        if (r < 0) {
                char hex[TM_ID_HEX_LEN + 1];

                tm_snapshot_dispose(&s);
                if (r == -ENOMEM)
                        return r;
                tm_id_hex(id, hex);
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "catalog '%s': snapshot '%s': bad stored manifest", cat->path,
                                    hex);
        }
        s.id = *id;
        *ret = s;
        return 0;
}

int tm_catalog_snapshot_get(tm_catalog *cat, const tm_id *snap_id, struct tm_snapshot *ret)
{
        tm_buf json = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        sqlite3_stmt *st;
        int rc, r;

        if (!cat || !snap_id || !ret)
                return -EINVAL;
        lock(cat);
        st = get_stmt(cat, S_SNAP_GET);
        bind_id(st, 1, snap_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
                r = tm_buf_append(&json, sqlite3_column_blob(st, 0),
                                  (size_t)sqlite3_column_bytes(st, 0));
        else if (rc == SQLITE_DONE)
                r = -ENOENT;
        else
                r = map_rc(cat, rc, "snapshot get");
        done_stmt(st);
        unlock(cat);
        if (r == 0)
                r = decode_manifest(cat, snap_id, json.data, json.len, ret);
        tm_buf_dispose(&json);
        return r;
}

struct snap_row {
        tm_id id;
        int64_t time;
        tm_buf json;
};

int tm_catalog_snapshot_foreach(tm_catalog *cat, const char *component, tm_catalog_snapshot_fn fn,
                                void *userdata)
{
        struct snap_row rows[SNAPSHOT_BATCH_ROWS];
        tm_id last_id = { { 0 } };
        int64_t last_time = INT64_MIN;
        size_t n = 0;
        int started = 0, r;

        if (!cat || !fn)
                return -EINVAL;
        for (size_t i = 0; i < SNAPSHOT_BATCH_ROWS; i++)
                rows[i].json = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        do {
                sqlite3_stmt *st;
                int rc = SQLITE_DONE;

                n = 0;
                r = 0;
                lock(cat);
                st = get_stmt(cat, component ? S_SNAP_PAGE_COMPONENT : S_SNAP_PAGE);
                sqlite3_bind_int64(st, 1, last_time);
                if (started)
                        bind_id(st, 2, &last_id);
                else
                        sqlite3_bind_zeroblob(st, 2, 0);
                sqlite3_bind_int(st, 3, SNAPSHOT_BATCH_ROWS);
                if (component)
                        sqlite3_bind_text(st, 4, component, -1, SQLITE_STATIC);
                while (n < SNAPSHOT_BATCH_ROWS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
                        r = column_id(st, 0, &rows[n].id);
                        if (r < 0)
                                break;
                        rows[n].time = sqlite3_column_int64(st, 1);
                        tm_buf_clear(&rows[n].json);
                        r = tm_buf_append(&rows[n].json, sqlite3_column_blob(st, 2),
                                          (size_t)sqlite3_column_bytes(st, 2));
                        if (r < 0)
                                break;
                        n++;
                }
                if (r == 0 && rc != SQLITE_DONE && rc != SQLITE_ROW)
                        r = map_rc(cat, rc, "snapshot list");
                done_stmt(st);
                unlock(cat);
                for (size_t i = 0; r == 0 && i < n; i++) {
                        struct tm_snapshot s;

                        r = decode_manifest(cat, &rows[i].id, rows[i].json.data, rows[i].json.len,
                                            &s);
                        if (r < 0)
                                break;
                        r = fn(&s, userdata);
                        tm_snapshot_dispose(&s);
                }
                if (n > 0) {
                        last_id = rows[n - 1].id;
                        last_time = rows[n - 1].time;
                }
                started = 1;
        } while (r == 0 && n == SNAPSHOT_BATCH_ROWS);
        for (size_t i = 0; i < SNAPSHOT_BATCH_ROWS; i++)
                tm_buf_dispose(&rows[i].json);
        return r;
}

int tm_catalog_clear(tm_catalog *cat)
{
        int r;

        if (!cat)
                return -EINVAL;
        lock(cat);
        r = exec_sql(cat,
                     "SAVEPOINT clear_all;"
                     "DELETE FROM meta; DELETE FROM index_files; DELETE FROM packs;"
                     "DELETE FROM blobs; DELETE FROM snapshots;"
                     "RELEASE clear_all",
                     "clear");
        if (r < 0)
                sqlite3_exec(cat->db, "ROLLBACK TO clear_all; RELEASE clear_all", NULL, NULL, NULL);
        unlock(cat);
        return r;
}
