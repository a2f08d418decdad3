#!/usr/bin/env bash
# tidemark-failoverd killed -9 between the fence and the stop of the old
# primary in a planned switchover (the chaos suite's fo_kill, replaying
# that one kill point): the fenced primary is still the only primary, so
# the restarted daemon lifts the fence and writes resume with no operator
# action and no acknowledged row lost. Before this was fixed the platform
# stayed without a writable database until someone reset the setting.
set -euo pipefail
src=${TM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${TM_BIN:-$src/build/bin}
[[ $(id -u) -eq 0 ]] || { echo "[failover_interrupted] SKIP: needs root (PostgreSQL as postgres)"; exit 77; }
[[ -x /usr/lib/postgresql/15/bin/pg_ctl ]] || { echo "[failover_interrupted] SKIP: no PostgreSQL 15"; exit 77; }
command -v pgbouncer >/dev/null || { echo "[failover_interrupted] SKIP: no pgbouncer"; exit 77; }
out=$(TM_BIN=$bin TM_CHAOS_FO_KILL_AFTER=fence bash "$src/tests/chaos/run.sh" --rounds 1 \
        --seed "${TM_TEST_SEED:-78}" --only fo_kill 2>&1) || {
        printf '%s\n' "$out"
        echo "[failover_interrupted] FAIL: the chaos round failed"
        exit 1
}
printf '%s\n' "$out"
grep -q "fo_kill=1" <<<"$out" || { echo "[failover_interrupted] FAIL: no fo_kill round ran"; exit 1; }
grep -q "last logged: step stop-old-primary\|last logged: step fence" <<<"$out" ||
        { echo "[failover_interrupted] FAIL: the kill did not land after the fence"; exit 1; }
grep -q "needed the operator action: 0," <<<"$out" ||
        { echo "[failover_interrupted] FAIL: the platform needed the operator to lift the fence"; exit 1; }
echo "[failover_interrupted] PASS"
