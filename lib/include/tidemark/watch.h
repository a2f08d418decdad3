#pragma once
/*
 * watch: notice changes below a set of paths (the only module that uses
 * inotify), and decide when a continuous backup is due. Directories are
 * watched recursively, new ones as they appear; a kernel queue overflow is
 * answered by a full rescan (and counts as a change, since what changed is
 * unknown). The debounce is "at most one snapshot every interval while
 * something changes": the first change after a quiet period is due at once
 * if the last cut is older than the interval, later ones wait for it.
 *
 * A tm_watch is used by one thread at a time.
 */
#include <stddef.h>
#include <stdint.h>

enum tm_watch_kind {
        TM_WATCH_CREATE = 1, /* a file, directory or link appeared */
        TM_WATCH_MODIFY,     /* a file's contents changed */
        TM_WATCH_ATTRIB,     /* metadata changed (mode, owner, times) */
        TM_WATCH_DELETE,     /* removed */
        TM_WATCH_MOVE_FROM,  /* renamed away (the old name) */
        TM_WATCH_MOVE_TO,    /* renamed here (the new name) */
        TM_WATCH_OVERFLOW,   /* events were lost: the tree was rescanned */
};

/* What tm_watch_process reports: kind, the absolute path (for an overflow,
 * the first watched path), and whether it is a directory. */
typedef void (*tm_watch_fn)(enum tm_watch_kind kind, const char *path, int is_dir, void *userdata);

struct tm_watch_opts {
        const char *const *paths; /* absolute; directories or files */
        size_t n_paths;
        const char *const *ignore; /* absolute path prefixes not watched (e.g. the repository) */
        size_t n_ignore;
};

typedef struct tm_watch tm_watch;

/* Name of a kind ("create", "modify", ...). */
const char *tm_watch_kind_name(enum tm_watch_kind k);

/**
 * tm_watch_new() - start watching opts->paths recursively. A path that does
 * not exist is skipped (logged), the others must be watchable.
 * Returns 0 and *ret (free with tm_watch_free), -EINVAL (no paths, or a
 * relative one), -ENOSPC (the user's inotify watch limit,
 * fs.inotify.max_user_watches, is reached), -errno.
 * Ownership: the options are copied. Thread-safety: a new object.
 */
int tm_watch_new(const struct tm_watch_opts *opts, tm_watch **ret);
/* Stop watching and free; NULL-safe. */
void tm_watch_free(tm_watch *w);

/* The inotify descriptor, readable when events wait (for poll()). */
int tm_watch_fd(const tm_watch *w);
/* Number of directories and files watched now. */
size_t tm_watch_count(const tm_watch *w);

/**
 * tm_watch_process() - wait up to timeout_ms (0: do not wait, -1: forever)
 * for events, then read and handle every queued one: count it as a change,
 * watch new directories (and everything below them), forget removed ones,
 * rescan after an overflow, and report each to fn (may be NULL).
 * Returns the number of events handled (0 on timeout), -EINTR, -errno.
 */
int tm_watch_process(tm_watch *w, int timeout_ms, tm_watch_fn fn, void *userdata);

/* Changes counted since the last tm_watch_take (or since tm_watch_new). */
uint64_t tm_watch_pending(const tm_watch *w);
/**
 * tm_watch_due_at() - the monotonic time (ns, like tm_time_mono) at which a
 * snapshot is due: -1 when nothing is pending, else the last take plus
 * interval_ns (or 0 when there was no take yet: due at once).
 */
int64_t tm_watch_due_at(const tm_watch *w, int64_t interval_ns);
/* Is a snapshot due at monotonic time now? (pending and due_at <= now) */
int tm_watch_due(const tm_watch *w, int64_t now, int64_t interval_ns);
/**
 * tm_watch_take() - a snapshot starts at now: clear the pending changes and
 * remember the time. Call it before the snapshot reads the tree, so what
 * changes while it runs is pending for the next one.
 */
void tm_watch_take(tm_watch *w, int64_t now);
