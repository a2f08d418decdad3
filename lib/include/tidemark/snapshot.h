#pragma once
/*
 * snapshot: the manifest of one component at one instant, stored as an
 * encrypted JSON document in snapshots/<id> (id = SHA-256 of the stored
 * file). The JSON is canonical (sorted keys, compact) so the same manifest
 * always encodes to the same bytes.
 *
 * {"version":1,"time":"2025-01-07T10:00:00.123456789Z","host":"h",
 *  "username":"u","component":"plugins","strategy":"full",
 *  "parent":"<hex>"|absent,"tree":"<hex>","paths":["/srv/plugins"],
 *  "tags":["t"],"summary":{...},"extra":{...}|absent}
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>

#define TM_SNAPSHOT_MAX (16u * 1024 * 1024)

struct tm_snapshot_summary {
        uint64_t files; /* regular files in the snapshot */
        uint64_t dirs;
        uint64_t others;           /* symlinks, devices, fifos */
        uint64_t files_new;        /* not in the parent */
        uint64_t files_changed;    /* in the parent, re-read */
        uint64_t files_unmodified; /* taken from the parent without reading */
        uint64_t files_failed;     /* could not be read (exit 3) */
        uint64_t bytes;            /* total size of the files */
        uint64_t bytes_read;       /* bytes read from the source */
        uint64_t blobs_added;
        uint64_t bytes_added;  /* plaintext bytes of new blobs */
        uint64_t bytes_stored; /* sealed bytes written to packs */
        int64_t duration_ns;
};

struct tm_snapshot {
        tm_id id;     /* filled when loaded or saved; not part of the encoding */
        int64_t time; /* ns, UTC */
        char *host;
        char *username;
        char *component;
        char *strategy; /* full | incremental | differential | continuous */
        int has_parent;
        tm_id parent;
        tm_id tree;
        size_t n_paths;
        char **paths;
        size_t n_tags;
        char **tags;
        struct tm_snapshot_summary summary;
        char *extra_json; /* optional compact JSON object for later fields; NULL if none */
};

/* Canonical JSON (appended to out). Returns 0, -EINVAL (missing or empty
 * host, component, strategy; time before 1970 or from 2262 on; a string that
 * is not UTF-8; extra_json not a JSON object; a summary counter above
 * INT64_MAX), -ENOMEM. */
int tm_snapshot_encode(const struct tm_snapshot *s, tm_buf *out);
/* Parse and validate the JSON. Unknown top-level keys are ignored (newer
 * writers). *ret is written only on success (id zeroed). Returns 0, -EBADMSG,
 * -ENOMEM. */
int tm_snapshot_decode(const void *p, size_t n, struct tm_snapshot *ret);
int tm_snapshot_copy(const struct tm_snapshot *src, struct tm_snapshot *ret);
void tm_snapshot_dispose(struct tm_snapshot *s);
/* Add a string to tags or paths (copied). */
int tm_snapshot_add_tag(struct tm_snapshot *s, const char *tag);
int tm_snapshot_add_path(struct tm_snapshot *s, const char *path);
