/*
 * Terminal output on stderr: the \r-rewritten progress line and the log
 * sink. Both go through one mutex, because progress reports come from a
 * library worker thread while warnings can come from any thread; a message
 * erases the progress line first, and the next report redraws it.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/time.h>

#include "cli.h"

static pthread_mutex_t term_lock = PTHREAD_MUTEX_INITIALIZER;
static int line_active; /* a progress line is on screen */

static void erase_line_locked(void)
{
        if (line_active) {
                fputs("\r\033[K", stderr);
                line_active = 0;
        }
}

void cli_term_line(const char *prefix, const char *msg)
{
        pthread_mutex_lock(&term_lock);
        erase_line_locked();
        fprintf(stderr, "%s%s\n", prefix, msg);
        fflush(stderr);
        pthread_mutex_unlock(&term_lock);
}

void cli_log_sink(enum tm_log_level level, int err, const char *msg, void *userdata)
{
        const char *prefix = "tidemark: ";

        if (level == TM_LOG_ERR)
                prefix = "tidemark: error: ";
        else if (level == TM_LOG_WARN)
                prefix = "tidemark: warning: ";
        else if (cli_opts.quiet)
                return;
        cli_term_line(prefix, msg);
}

void cli_progress_init(struct cli_progress *p)
{
        p->enabled = !cli_opts.quiet && isatty(STDERR_FILENO);
        p->start_ns = tm_time_mono();
}

/* "1:02:03" or "2:03". */
static void format_duration(int64_t s, char *out, size_t n)
{
        if (s < 0)
                s = 0;
        if (s >= 3600)
                snprintf(out, n, "%lld:%02lld:%02lld", (long long)(s / 3600),
                         (long long)(s / 60 % 60), (long long)(s % 60));
        else
                snprintf(out, n, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
}

void cli_progress_update(const struct tm_progress *p, void *userdata)
{
        struct cli_progress *cp = userdata;
        char done[32], total[32], elapsed[32], eta[48] = "", files_total[32] = "";
        char line[256];
        double secs, rate;

        if (!cp || !cp->enabled)
                return;
        secs = p->elapsed_ns > 0 ? (double)p->elapsed_ns / 1e9 : 0;
        rate = secs > 0 ? (double)p->bytes_done / secs : 0;
        cli_format_bytes(p->bytes_done, done, sizeof(done));
        if (p->bytes_total)
                cli_format_bytes(p->bytes_total, total, sizeof(total));
        else
                snprintf(total, sizeof(total), "?");
        if (p->files_total)
                snprintf(files_total, sizeof(files_total), "%llu",
                         (unsigned long long)p->files_total);
        else
                snprintf(files_total, sizeof(files_total), "?");
        format_duration((int64_t)secs, elapsed, sizeof(elapsed));
        if (p->totals_final && rate > 0 && p->bytes_total > p->bytes_done) {
                char d[32];

                format_duration((int64_t)((double)(p->bytes_total - p->bytes_done) / rate), d,
                                sizeof(d));
                snprintf(eta, sizeof(eta), "  ETA %s", d);
        }
        snprintf(line, sizeof(line), "[%s] %s %llu/%s files  %s/%s  %.1f MiB/s%s", elapsed,
                 p->phase ? p->phase : "", (unsigned long long)p->files_done, files_total, done,
                 total, rate / (1024.0 * 1024.0), eta);
        pthread_mutex_lock(&term_lock);
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        line_active = 1;
        pthread_mutex_unlock(&term_lock);
}

void cli_progress_done(struct cli_progress *p)
{
        if (!p->enabled)
                return;
        pthread_mutex_lock(&term_lock);
        erase_line_locked();
        fflush(stderr);
        pthread_mutex_unlock(&term_lock);
}
