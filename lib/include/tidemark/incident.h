#pragma once
/*
 * incident: the incident register of tidemark-monitord. An incident has an
 * id (INC-1, INC-2, ...), a title, a severity (critical high medium low),
 * the affected services, a status (open -> acknowledged -> resolved, or
 * updates in between: investigating, identified, monitoring) and a timeline
 * of every change. The register is one JSON file, rewritten atomically
 * (temp + fsync + rename) on every change, so a crash loses nothing that
 * was acknowledged to a client.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct tm_incidents tm_incidents;

/**
 * tm_incidents_open() - load (or start) the register at path. Returns 0
 * and *ret (caller closes), -EBADMSG (not a register; named in the log),
 * -errno. Every function here is thread-safe.
 */
int tm_incidents_open(const char *path, tm_incidents **ret);
void tm_incidents_close(tm_incidents *in);
/* "critical" "high" "medium" "low". Returns 0 or -EINVAL. */
int tm_incident_severity_valid(const char *s);

/**
 * tm_incidents_create() - open an incident. services is an array of strings
 * (borrowed); source is "api" or "alert:NAME". Returns 0 and the new id in
 * id (>= 16 bytes), -EINVAL (empty title, bad severity), -errno (not saved).
 */
int tm_incidents_create(tm_incidents *in, const char *title, const char *severity,
                        const json_t *services, const char *source, const char *author, int64_t now,
                        char *id, size_t idlen);
/**
 * tm_incidents_acknowledge() - mark it acknowledged (once). *ret_response_s
 * gets the seconds from open to acknowledgement. Returns 0, -ENOENT,
 * -EBUSY (already acknowledged or resolved), -errno.
 */
int tm_incidents_acknowledge(tm_incidents *in, const char *id, const char *author,
                             const char *message, int64_t now, double *ret_response_s);
/**
 * tm_incidents_update() - add an update to the timeline, optionally moving
 * to status (investigating identified monitoring; NULL keeps it). Returns 0,
 * -ENOENT, -EINVAL (bad status), -EBUSY (resolved), -errno.
 */
int tm_incidents_update(tm_incidents *in, const char *id, const char *author, const char *message,
                        const char *status, int64_t now);
/* Resolve. Returns 0, -ENOENT, -EBUSY (already resolved), -errno. */
int tm_incidents_resolve(tm_incidents *in, const char *id, const char *author, const char *message,
                         int64_t now);
/* Add a timeline entry of kind (e.g. "runbook", "alert") with data (borrowed,
 * may be NULL), whatever the status. Returns 0, -ENOENT, -errno. */
int tm_incidents_note(tm_incidents *in, const char *id, const char *kind, const char *author,
                      const char *message, const json_t *data, int64_t now);
/* One incident as JSON (new reference), or NULL when there is none. */
json_t *tm_incidents_get(tm_incidents *in, const char *id);
/* Incidents (newest first), filtered by status ("active" = not resolved;
 * NULL = all) and by creation time in [from, to) (0 = unbounded). */
json_t *tm_incidents_list(tm_incidents *in, const char *status, int64_t from, int64_t to);
/* Number of incidents not resolved, by severity (critical high medium low). */
void tm_incidents_active_counts(tm_incidents *in, unsigned counts[4]);
