#pragma once
/*
 * daemon: the start-up chores every tidemark daemon shares (backupd,
 * monitord, failoverd): JSON log lines on stderr, the state directory, the
 * access log, and the port file a test or a supervisor reads once the
 * daemon listens.
 */
#include <stddef.h>

#include <tidemark/log.h>

/**
 * tm_daemon_log_sink() - a tm_log sink writing one JSON object per line to
 * stderr: {"ts", "level", "msg", "service", "errno"}. userdata is the
 * service name (a string that outlives the sink). Thread-safe.
 */
void tm_daemon_log_sink(enum tm_log_level level, int err, const char *msg, void *userdata);
/* Create path and its missing parents (mode 0700). Returns 0 or -errno. */
int tm_daemon_mkdir_p(const char *path);
/**
 * tm_daemon_open_log() - open an access log given as "stderr", "stdout",
 * "none" or a path (appended, created 0600). Returns 0 and *ret_fd (-1 for
 * "none"; the caller closes fds > 2), or -errno.
 */
int tm_daemon_open_log(const char *spec, int *ret_fd);
/* Write "PORT\n" to path atomically (temp file + rename). Returns 0 or -errno. */
int tm_daemon_write_port_file(const char *path, int port);
/**
 * tm_daemon_read_tls() - read a PEM certificate and key for the HTTP server
 * ([server] tls_cert, tls_key). Both NULL: 0 and no TLS (*ret_* NULL). One
 * without the other: -EINVAL. Else 0 and the two NUL-terminated PEMs (the
 * caller frees both, the key with tm_daemon_secret_free), or -errno of the
 * file that failed. Failures are logged, naming the file.
 */
int tm_daemon_read_tls(const char *cert_path, const char *key_path, char **ret_cert,
                       char **ret_key);
/**
 * tm_daemon_load_password() - the repository passphrase of a daemon: the
 * file given (else TIDEMARK_PASSWORD_FILE; trailing newlines dropped), else
 * TIDEMARK_PASSWORD. Returns 0 with *ret (free with tm_daemon_secret_free)
 * and *ret_len, or a negative errno after logging which source failed
 * (-EINVAL: none given).
 */
int tm_daemon_load_password(const char *file, char **ret, size_t *ret_len);
/* Wipe a NUL-terminated secret (passphrase, TLS key) and free it; NULL-safe. */
void tm_daemon_secret_free(char *s);
