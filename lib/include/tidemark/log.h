#pragma once
/*
 * log: one logging API for the library and the programs. Each program
 * installs a sink (the CLI writes text to stderr; daemons JSON lines).
 * Messages are lowercase, no final period, values quoted.
 */
#include <stdarg.h>

enum tm_log_level { TM_LOG_ERR = 0, TM_LOG_WARN, TM_LOG_INFO, TM_LOG_DEBUG, TM_LOG_TRACE };

typedef void (*tm_log_sink)(enum tm_log_level level, int err, const char *msg, void *userdata);

/* Install a sink (NULL restores the default: text on stderr). Not thread-safe
 * against concurrent logging; call at start-up. */
void tm_log_set_sink(tm_log_sink sink, void *userdata);
/* Messages above this level are dropped. Default TM_LOG_INFO. */
void tm_log_set_level(enum tm_log_level level);
enum tm_log_level tm_log_get_level(void);

void tm_log(enum tm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs with strerror(-r) appended and returns r, so a failure logs and
 * propagates in one line. Thread-safe. */
int tm_log_errno(enum tm_log_level level, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The level at which a layer without the whole context should log a failure
 * it propagates: environmental errors that the caller reports with more
 * context (no space, permission denied, read-only) go to debug, so the user
 * reads one line, from the caller; everything else is an error. */
enum tm_log_level tm_log_level_of(int r);
