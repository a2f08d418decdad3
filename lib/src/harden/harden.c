/*
 * harden: no core files, no same-user ptrace (see tidemark/harden.h).
 *
 * Both limits matter: RLIMIT_CORE 0 alone does not stop a core_pattern that
 * pipes to a helper (systemd-coredump ignores the limit for piped cores on
 * some kernels), and PR_SET_DUMPABLE 0 alone is reset by a setuid change.
 */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <tidemark/harden.h>

int tm_harden_process(void)
{
        const struct rlimit none = { 0, 0 };

        if (setrlimit(RLIMIT_CORE, &none) < 0)
                return -errno;
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return -errno;
        return 0;
}

int tm_harden_check(void)
{
        struct rlimit rl;
        int d;

        if (getrlimit(RLIMIT_CORE, &rl) < 0)
                return -errno;
        d = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (d < 0)
                return -errno;
        return rl.rlim_cur == 0 && rl.rlim_max == 0 && d == 0;
}
