#pragma once
/*
 * harden: process-wide protections every tidemark program applies first
 * thing in main(). A tidemark process holds the repository's unwrapped
 * master key, passphrases, S3 and PostgreSQL credentials and TLS keys in
 * memory; a core file or a debugger attached by another process of the same
 * user would hand them out.
 */

/**
 * tm_harden_process() - no core files (RLIMIT_CORE 0, soft and hard) and not
 * dumpable (PR_SET_DUMPABLE 0: no core even with a core_pattern pipe, no
 * ptrace attach by the same user, /proc/PID/mem and environ readable by root
 * only). Survives neither execve() of another program nor a setuid change,
 * so every program calls it itself. Returns 0 or a negative errno (the
 * caller should refuse to run). Thread-safety: call before starting threads.
 */
int tm_harden_process(void);

/**
 * tm_harden_check() - 1 when the calling process is hardened (no core
 * limit and not dumpable), 0 when not, a negative errno when it cannot tell.
 * Thread-safety: safe.
 */
int tm_harden_check(void);
