#pragma once
/*
 * tier: storage tiers and their lifecycle. A repository's packs live in up
 * to four tiers, hot (the repository's own location), warm (S3
 * STANDARD_IA), cold (S3 GLACIER) and archive (S3 DEEP_ARCHIVE), each
 * configured by a [tier.NAME] section of the one config file. A pack's
 * temperature is the age of the youngest snapshot that references it; the
 * lifecycle moves each pack to the tier its age belongs in (never below warm
 * for tree packs; index files and manifests never leave hot), copying,
 * verifying, recording and only then deleting, so that a crash at any point
 * leaves the pack readable in at least one tier. Archived packs are thawed
 * (S3 restore) before they are read: in one batch before a restore.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/backend.h>
#include <tidemark/config.h>
#include <tidemark/core.h>
#include <tidemark/repo.h>

enum tm_tier_level { TM_TIER_HOT, TM_TIER_WARM, TM_TIER_COLD, TM_TIER_ARCHIVE };
#define TM_TIER_LEVELS 4

/* One [tier.NAME] section. */
struct tm_tier_conf {
        int configured;
        char *location;       /* backend location (hot: the repository's own) */
        char *storage_class;  /* S3 storage class of writes (STANDARD_IA, GLACIER...) */
        int64_t age_ns;       /* packs older than this belong in the next tier; for
                                 archive, how long it keeps them (reported only) */
        char retrieval[16];   /* thaw speed: Expedited, Standard or Bulk */
        int thaw_days;        /* how long a thawed copy stays readable */
        int64_t thaw_poll_ns; /* how often a waiting reader asks again */
};

struct tm_tier_set {
        struct tm_tier_conf t[TM_TIER_LEVELS];
        int n_configured; /* tiers below hot */
        /* when backupd runs the lifecycle: [tier.hot] schedule (default
         * hourly; "none": never) */
        int has_schedule;
        struct tm_schedule schedule;
};

/* "hot", "warm", "cold", "archive" ("?" out of range). */
const char *tm_tier_level_name(unsigned level);
/* The level of a name. Returns 0 or -EINVAL. */
int tm_tier_level_parse(const char *name, unsigned *ret);

/**
 * tm_tier_set_load() - read the [tier.*] sections of c into ret, with the
 * spec's defaults (ages 24h, 7d, 90d, 7y; classes STANDARD_IA, GLACIER,
 * DEEP_ARCHIVE; retrieval Standard; thawed copies kept 7 days; poll every
 * 60 s). c may be NULL (no tiers). Returns 0, or -EINVAL with err set to
 * "FILE:LINE: reason" (unknown tier or key, bad value, ages not
 * increasing, a colder tier without a location). Ownership: dispose ret
 * with tm_tier_set_dispose(), also after an error.
 */
int tm_tier_set_load(const struct tm_config *c, struct tm_tier_set *ret, char *err, size_t errlen);
void tm_tier_set_dispose(struct tm_tier_set *s);

/**
 * tm_tier_backend_open() - the backend of a repository at location with the
 * tiers of s: location alone when no tier below hot is configured, else a
 * tiered backend (tm_backend_open_tiered) over location and the tiers'
 * locations (each written with its storage class). Returns 0 or the errno
 * of the backend that failed to open (logged with its tier).
 */
int tm_tier_backend_open(const struct tm_tier_set *s, const char *location, int create,
                         tm_backend **ret);

/* The tier a pack of this age belongs in among the configured ones (tree
 * packs: never below warm). */
unsigned tm_tier_target(const struct tm_tier_set *s, int64_t age_ns, int is_tree);

/* The expected delay of a thaw, for messages: "3-5 hours". */
const char *tm_tier_thaw_eta(unsigned level, const char *retrieval);

struct tm_tier_stats {
        uint64_t packs[TM_TIER_LEVELS], bytes[TM_TIER_LEVELS]; /* where packs are now */
        uint64_t moved, moved_bytes; /* moves done (or planned, with dry_run) */
        uint64_t thawing;            /* moves waiting for their source to thaw */
        uint64_t finished;           /* interrupted moves completed */
        uint64_t unreferenced;       /* packs no snapshot uses (left to prune) */
        uint64_t failed;             /* moves that failed (logged; retried next run) */
};

struct tm_tier_opts {
        int64_t now_ns; /* the clock (0: now); tests move it forward */
        int dry_run;    /* plan and count, move nothing */
};

/**
 * tm_tier_run() - one lifecycle pass over repo (opened with tiers): compute
 * every pack's temperature from the snapshots, finish moves a crash
 * interrupted, then move each pack to its tier. A pack whose source is
 * archived and not thawed gets a thaw request and moves on a later pass.
 * Moves only go colder. Fills ret (tiers as they are after the pass).
 * Returns 0, -EAGAIN (some moves failed and were logged; the repository is
 * whole), -errno. Thread-safety: one pass per repository at a time (backupd
 * serializes it with its other maintenance).
 */
int tm_tier_run(tm_repo *repo, const struct tm_tier_opts *o, struct tm_tier_stats *ret);

/* The tier holding a pack's warmest copy, TM_TIER_LEVELS when it is in none
 * (or unknown). Cheap after the first call: see tm_backend_tier_where(). */
unsigned tm_tier_of_pack(tm_repo *repo, const tm_id *pack_id);

/* Packs and bytes per tier, from the tiers' listings (no temperature, no
 * move). Returns 0 or -errno. */
int tm_tier_usage(tm_repo *repo, struct tm_tier_stats *ret);

struct tm_thaw_stats {
        uint64_t packs;     /* packs the snapshots need */
        uint64_t archived;  /* of those, in an archive class and not yet readable */
        uint64_t requested; /* restore requests issued */
        int64_t waited_ns;  /* time spent waiting */
};

/**
 * tm_tier_thaw() - make every pack that the trees need readable: issue all
 * the restore requests first (one batch), then, with wait, poll each tier's
 * thaw_poll until all are readable or timeout_ns (0: no limit) passed.
 * Progress is logged with the expected delay. Returns 0 (all readable),
 * -EAGAIN (not yet: !wait, or timeout), -errno.
 */
int tm_tier_thaw(tm_repo *repo, const tm_id *trees, size_t n_trees, int wait, int64_t timeout_ns,
                 struct tm_thaw_stats *ret);
