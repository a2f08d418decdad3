#pragma once
/*
 * audit: a tamper-evident log of mutating requests. One JSON object per line;
 * each line carries "seq" (1, 2, ...) and "prev", the hex SHA-256 of the
 * previous line's bytes (without its newline; 64 zeros for the first line).
 * Editing, removing or reordering a line breaks the chain at the next line.
 * A sidecar FILE.head holds {"seq": n, "hash": sha256 of the last line}, so a
 * truncated file or an edited last line is detected too.
 *
 * The chain proves integrity against accidental or naive edits; someone who
 * can rewrite the whole file and its head can forge it (ship the log off the
 * host for that).
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct tm_audit tm_audit;

/**
 * tm_audit_open() - open (or create) an audit log for appending; continues
 * the chain of an existing file. Returns 0 and *ret (caller closes), -EBADMSG
 * (the last line is not a valid entry), -errno.
 */
int tm_audit_open(const char *path, tm_audit **ret);
/* Close; NULL-safe. */
void tm_audit_close(tm_audit *a);
/**
 * tm_audit_append() - append one entry: a copy of the object fields plus
 * "seq" and "prev"; fsyncs the file, then rewrites the head. Returns 0,
 * -EINVAL (not an object), -errno. Thread-safe.
 */
int tm_audit_append(tm_audit *a, json_t *entry);
/**
 * tm_audit_verify() - check a whole file and its head (if present).
 * Returns 0 (intact; *ret_lines = number of lines), -EBADMSG (why gets
 * "line N: reason"), -errno (cannot read).
 */
int tm_audit_verify(const char *path, uint64_t *ret_lines, char *why, size_t why_len);
