#pragma once
/* pg: what the module's files share (never included by programs). */
#include <stdint.h>

#include <tidemark/pg.h>

/* Store one WAL file (read from fd, from offset 0) as a snapshot of the WAL
 * component comp tagged with name; sc (may be NULL) becomes its extra.wal,
 * with partial and received_ns (the server's time up to which the stream was
 * caught up, 0: unknown). ret (may be NULL) gets the snapshot. */
int tm_pg__wal_store(tm_repo *repo, const char *comp, const char *name, int fd,
                     const struct tm_pg_walscan *sc, int partial, int64_t received_ns,
                     struct tm_snapshot *ret);

/* start_lsn, timeline and WAL segment size (16 MiB when absent) of a base
 * backup's manifest. Returns 0 or -EBADMSG. */
int tm_pg__base_info(const struct tm_snapshot *base, uint64_t *ret_lsn, uint32_t *ret_tli,
                     uint64_t *ret_segsz);

#include <libpq-fe.h>
/* Log "PostgreSQL: what: <the connection's error message>", return r. */
int tm_pg__fail(PGconn *conn, int r, const char *what);
/* libpq notice processor: server notices go to the log. */
void tm_pg__notice(void *arg, const char *message);
/* "16MB" (SHOW wal_segment_size) in bytes; 0 if not understood. */
uint64_t tm_pg__parse_size(const char *s);
