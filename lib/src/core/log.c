#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <tidemark/log.h>

static tm_log_sink log_sink;
static void *log_userdata;
static enum tm_log_level log_level = TM_LOG_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void tm_log_set_sink(tm_log_sink sink, void *userdata)
{
        log_sink = sink;
        log_userdata = userdata;
}

void tm_log_set_level(enum tm_log_level level)
{
        log_level = level;
}

enum tm_log_level tm_log_get_level(void)
{
        return log_level;
}

/* The format attribute lets -Wformat=2 (clang's -Wformat-nonliteral) see
 * that fmt comes from the checked callers. */
__attribute__((format(printf, 3, 0))) static void emit(enum tm_log_level level, int err,
                                                       const char *fmt, va_list ap)
{
        static const char *names[] = { "error", "warning", "info", "debug", "trace" };
        char msg[2048], ebuf[128];
        size_t n;

        if (level > log_level)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (err) {
                n = strlen(msg);
                /* GNU strerror_r: strerror() is not thread-safe. */
                snprintf(msg + n, sizeof(msg) - n, ": %s",
                         strerror_r(err < 0 ? -err : err, ebuf, sizeof(ebuf)));
        }
        if (log_sink) {
                log_sink(level, err, msg, log_userdata);
                return;
        }
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "tidemark: %s%s%s\n", level <= TM_LOG_WARN ? names[level] : "",
                level <= TM_LOG_WARN ? ": " : "", msg);
        pthread_mutex_unlock(&log_lock);
}

void tm_log(enum tm_log_level level, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        emit(level, 0, fmt, ap);
        va_end(ap);
}

int tm_log_errno(enum tm_log_level level, int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        emit(level, r, fmt, ap);
        va_end(ap);
        return r;
}

enum tm_log_level tm_log_level_of(int r)
{
        switch (r) {
        case -ENOSPC:
        case -EDQUOT:
        case -EACCES:
        case -EPERM:
        case -EROFS:
                return TM_LOG_DEBUG;
        default:
                return TM_LOG_ERR;
        }
}
