#pragma once
/*
 * replica: cross-region replication. Copies a repository's objects to a
 * second location (another bucket, region or directory) so that the copy is
 * itself a complete repository that check, restore and mount accept with
 * the same passphrase.
 *
 * A pass copies keys, config, then packs, then index files, then snapshot
 * manifests (oldest commit first), which is the primary's own write order:
 * whatever moment a pass is interrupted at, the replica holds a prefix of
 * the primary's commits. Every object is verified before it is written (its
 * name is the SHA-256 of its bytes) and after (size, or the bytes read back
 * with verify = full). What already landed is never copied again, so a pass
 * after a kill -9 continues where the last one stopped. Deletions made by
 * forget and prune on the primary reach the replica in the safe order:
 * snapshots, then index files, then packs.
 *
 * During a pass the primary is held with a writer registration (as a backup
 * does), so a prune on the primary waits for the pass instead of deleting a
 * pack between the listing and the copy.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/config.h>
#include <tidemark/repo.h>

enum tm_replica_verify {
        TM_REPLICA_VERIFY_SIZE, /* the written object's size, from the replica */
        TM_REPLICA_VERIFY_FULL, /* the written object read back and hashed */
};

/* The [replica] section. Strings are owned (tm_replica_conf_dispose). */
struct tm_replica_conf {
        char *name;          /* label of the metrics; default "replica" */
        char *location;      /* "s3:https://host/bucket/prefix" or a directory; required */
        int64_t interval_ns; /* backupd: a pass at least this often; default 5 min */
        uint64_t bandwidth;  /* bytes per second over all transfers; 0 = unlimited */
        int parallel;        /* objects in flight at once; default 2, at most 64 */
        enum tm_replica_verify verify; /* default full */
        int propagate_deletes;         /* delete what forget/prune removed; default on */
};

/**
 * tm_replica_conf_load() - read and validate the [replica] section of c.
 * Returns 0, -ENOENT (no [replica] section; ret is zeroed), -EINVAL with err
 * set to "FILE:LINE: reason", -ENOMEM. Ownership: ret's strings belong to
 * the caller (tm_replica_conf_dispose). Thread-safety: reads c only.
 */
int tm_replica_conf_load(const struct tm_config *c, struct tm_replica_conf *ret, char *err,
                         size_t errlen);
/* The defaults above, with location (copied; NULL allowed). Returns 0 or -ENOMEM. */
int tm_replica_conf_default(const char *location, struct tm_replica_conf *ret);
/* Free the strings; NULL-safe; leaves *c zeroed. */
void tm_replica_conf_dispose(struct tm_replica_conf *c);

/* How far the replica is behind the primary. */
struct tm_replica_status {
        int reachable;             /* the replica could be listed now (else: last known) */
        uint64_t objects_behind;   /* on the primary, missing or different on the replica */
        uint64_t bytes_behind;     /* their size */
        uint64_t snapshots;        /* snapshots on the primary */
        uint64_t snapshots_behind; /* of those, not yet on the replica */
        uint64_t objects_extra;    /* on the replica only: deletions still to propagate */
        /* commit time (ns, UTC: the snapshot's time, which a backup sets
         * when it commits) of the oldest snapshot not yet on the replica;
         * 0 when caught up */
        int64_t oldest_missing_ns;
        /* now - oldest_missing_ns, 0 when caught up: how old the newest
         * data the replica can be trusted to hold completely is */
        int64_t lag_ns;
};

/* What one pass did. */
struct tm_replica_stats {
        uint64_t objects_copied;
        uint64_t bytes_copied;
        uint64_t objects_deleted;
        uint64_t errors; /* objects that failed (each logged with its name) */
        int64_t duration_ns;
        struct tm_replica_status status; /* after the pass */
};

typedef struct tm_replica tm_replica;

/**
 * tm_replica_new() - a replicator from primary to conf->location (opened
 * with tm_backend_open_url(); a directory is created when missing). Nothing
 * is contacted yet. Returns 0, -EINVAL (no location, or the location is the
 * primary's own), -ENOMEM, or the backend's error for a bad location.
 * Ownership: primary and conf are borrowed and must outlive *ret (free with
 * tm_replica_free()). Thread-safety: one pass or status at a time per
 * replicator; tm_replica_last() may be called from any thread.
 */
int tm_replica_new(tm_repo *primary, const struct tm_replica_conf *conf, tm_replica **ret);
void tm_replica_free(tm_replica *r);

/**
 * tm_replica_status() - list both sides and compare, copying nothing. When
 * the replica cannot be listed, the last known listing is used and
 * reachable is 0 (the call still returns 0). Returns 0 or the negative errno
 * of the primary's listing or catalog.
 */
int tm_replica_status(tm_replica *r, struct tm_replica_status *ret);

/**
 * tm_replica_run() - one replication pass (see the top of this file). A
 * non-zero *cancel (polled between objects; may be NULL) ends the pass early,
 * leaving a consistent replica. ret (may be NULL) is filled even on failure.
 * Returns 0 when the replica was caught up with what the pass listed;
 * -EEXIST when the location holds another repository (nothing is written
 * there); -ECANCELED; -EBUSY when a prune holds the primary; -ENODATA when
 * a pack waits for a Glacier thaw (requested; not counted as an error);
 * otherwise the first error (the objects that failed are counted in
 * ret->errors).
 */
int tm_replica_run(tm_replica *r, const volatile int *cancel, struct tm_replica_stats *ret);

/* The status after the last pass or status call (zeroed before any).
 * Thread-safe. */
void tm_replica_last(tm_replica *r, struct tm_replica_status *ret);

/* The location of the replica (borrowed). */
const char *tm_replica_location(const tm_replica *r);
