/* Unit tests for harden: after tm_harden_process() the process has no core
 * limit and is not dumpable, and a child that crashes in that state leaves
 * no core file even where the parent allowed cores. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/harden.h>

static void test_harden_process(void **state)
{
        struct rlimit rl;
        pid_t pid;
        int st;

        (void)state;
        /* each case runs in a child: hardening cannot be undone, and the
         * other tests of this binary should not depend on it */
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (tm_harden_check() != 0)
                        _exit(10);
                if (tm_harden_process() != 0)
                        _exit(11);
                if (tm_harden_check() != 1)
                        _exit(12);
                if (getrlimit(RLIMIT_CORE, &rl) < 0 || rl.rlim_cur || rl.rlim_max)
                        _exit(13);
                if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
                        _exit(14);
                /* the hard limit is 0: nothing can raise it again */
                rl.rlim_cur = rl.rlim_max = RLIM_INFINITY;
                if (setrlimit(RLIMIT_CORE, &rl) == 0)
                        _exit(15);
                /* twice is fine */
                if (tm_harden_process() != 0)
                        _exit(16);
                raise(SIGQUIT);
                _exit(17);
        }
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (WIFEXITED(st))
                fail_msg("hardening step %d failed", WEXITSTATUS(st));
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGQUIT);
        assert_false(WCOREDUMP(st));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_harden_process),
        };

        /* a not hardened process starts with cores allowed if the shell let
         * it; raise the soft limit to the hard one so WCOREDUMP would show a
         * core if hardening did nothing */
        struct rlimit rl;

        if (getrlimit(RLIMIT_CORE, &rl) == 0) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_CORE, &rl);
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
