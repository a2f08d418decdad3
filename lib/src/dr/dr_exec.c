/*
 * Running PostgreSQL's programs and the operators' hooks: a child in its
 * own process group (so a timeout kills the hook and whatever it started),
 * output captured for the step log, a hard deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/time.h>

#define OUTPUT_KEEP 4096

extern char **environ;

/* environ plus extra, extra winning on the same name. */
static char **merge_env(const char *const *extra)
{
        size_t n = 0, m = 0, k = 0;
        char **e;

        while (environ[n])
                n++;
        while (extra && extra[m])
                m++;
        e = calloc(n + m + 1, sizeof(*e));
        if (!e)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const char *eq = strchr(environ[i], '=');
                size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
                int shadowed = 0;

                for (size_t j = 0; j < m && !shadowed; j++)
                        shadowed = !strncmp(extra[j], environ[i], len);
                if (!shadowed)
                        e[k++] = environ[i];
        }
        for (size_t j = 0; j < m; j++)
                e[k++] = (char *)extra[j];
        return e;
}

int tm_dr_exec(const char *const *argv, const char *const *env, int64_t timeout_ns,
               char **ret_output)
{
        char buf[OUTPUT_KEEP * 2], chunk[1024], **e = NULL;
        size_t used = 0;
        int p[2] = { -1, -1 }, status = 0, r, timed_out = 0;
        int64_t deadline = tm_time_mono() + timeout_ns;
        pid_t pid;

        if (ret_output)
                *ret_output = NULL;
        e = merge_env(env);
        if (!e)
                return -ENOMEM;
        if (pipe2(p, O_CLOEXEC) < 0) {
                r = -errno;
                free(e);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                r = -errno;
                close(p[0]);
                close(p[1]);
                free(e);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int devnull = open("/dev/null", O_RDONLY);

                /* async-signal-safe only until exec: the daemon has threads */
                setpgid(0, 0);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(p[1], 1);
                dup2(p[1], 2);
                execve(argv[0], (char *const *)argv, e);
                _exit(127);
        }
        close(p[1]);
        free(e);
        for (;;) {
                int64_t left = deadline - tm_time_mono();
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                ssize_t n;

                if (left <= 0) {
                        timed_out = 1;
                        break;
                }
                r = poll(&pfd, 1, (int)(left / 1000000 + 1));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        continue;
                n = read(p[0], chunk, sizeof(chunk));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* EOF: the child (and everything holding the pipe) is done */
                if (used + (size_t)n > sizeof(buf)) {
                        /* keep the tail: errors come last */
                        size_t drop = used + (size_t)n - OUTPUT_KEEP;

                        if (drop > used)
                                drop = used;
                        memmove(buf, buf + drop, used - drop);
                        used -= drop;
                }
                if ((size_t)n > sizeof(buf) - used)
                        n = (ssize_t)(sizeof(buf) - used);
                memcpy(buf + used, chunk, (size_t)n);
                used += (size_t)n;
        }
        close(p[0]);
        if (timed_out) {
                kill(-pid, SIGKILL);
                kill(pid, SIGKILL);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (ret_output) {
                size_t start = used > OUTPUT_KEEP ? used - OUTPUT_KEEP : 0;
                char *o = malloc(used - start + 1);

                if (o) {
                        memcpy(o, buf + start, used - start);
                        o[used - start] = '\0';
                        while (used > start && (o[used - start - 1] == '\n'))
                                o[--used - start] = '\0';
                }
                *ret_output = o;
        }
        if (timed_out)
                return -ETIMEDOUT;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

enum tm_dr_auto_verdict tm_dr_auto_decide(int failures, int threshold,
                                          const struct tm_dr_health *standby)
{
        if (failures <= 0)
                return TM_DR_AUTO_HEALTHY;
        if (failures < threshold)
                return TM_DR_AUTO_WAIT;
        if (!standby || !standby->reachable || !standby->in_recovery)
                return TM_DR_AUTO_NO_CANDIDATE;
        /* the standby still receives WAL: the primary is alive and only we
         * cannot see it, so promoting would make two primaries */
        if (standby->receiver_streaming)
                return TM_DR_AUTO_STANDBY_SEES_PRIMARY;
        return TM_DR_AUTO_PROMOTE;
}

const char *tm_dr_auto_verdict_name(enum tm_dr_auto_verdict v)
{
        static const char *names[] = { "healthy", "waiting", "no_candidate",
                                       "standby_sees_primary", "promote" };

        return (unsigned)v < TM_ARRAY_SIZE(names) ? names[v] : "?";
}

int tm_dr_log_init(struct tm_dr_log *l)
{
        l->steps = json_array();
        if (!l->steps)
                return -ENOMEM;
        pthread_mutex_init(&l->lock, NULL);
        return 0;
}

void tm_dr_log_dispose(struct tm_dr_log *l)
{
        if (!l || !l->steps)
                return;
        json_decref(l->steps);
        l->steps = NULL;
        pthread_mutex_destroy(&l->lock);
}

json_t *tm_dr_log_copy(struct tm_dr_log *l)
{
        json_t *c;

        pthread_mutex_lock(&l->lock);
        c = json_deep_copy(l->steps);
        pthread_mutex_unlock(&l->lock);
        return c;
}
