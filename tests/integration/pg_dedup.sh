#!/usr/bin/env bash
# A second base backup of an unchanged database adds less than 5% to the
# repository (relation files cut on fixed blocks, everything deduplicated),
# with a real PostgreSQL 15 on loopback. The issue asks for 1 GB; a CI test
# must stay under a minute, so this runs pgbench -i at scale 8 (~130 MB)
# in the gcc pass and at scale 2 under the sanitizers (TM_PG_DEDUP_SCALE
# overrides); bench/bench-pg.sh measures the same at scale 50 (~800 MB).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_common.bash"

pg_setup
SCALE=${TM_PG_DEDUP_SCALE:-8}
[[ $TM_BIN == *asan* || $TM_BIN == *sanit* ]] && SCALE=${TM_PG_DEDUP_SCALE:-2}
PORT=$(free_port)
pg_primary "$T/primary" "$PORT"
CONN="host=$T/sock port=$PORT user=postgres"
as_pg "$PGBIN/pgbench" -h "$T/sock" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres \
        >"$T/pgbench.log" 2>&1 || fail "pgbench -i: $(tail -3 "$T/pgbench.log")"
psql_at "$PORT" -c CHECKPOINT

repo_bytes() { du -sb "$T/repo" | cut -f1; }
run as_pg "$TMW" --json backup --component database --postgres "$CONN"
assert_rc 0 "first base backup"
size=$(json_get 'd["summary"]["bytes"]' <<<"$RUN_OUT")
r1=$(repo_bytes)
run as_pg "$TMW" --json backup --component database --postgres "$CONN"
assert_rc 0 "second base backup"
r2=$(repo_bytes)
added=$((r2 - r1))
log "scale $SCALE: base backup of $size bytes; the repository grew by $r1, then by $added bytes ($((added * 1000 / r1))‰)"
((added * 20 < r1)) || fail "the second base backup of an unchanged database added $added bytes to $r1 (5% is $((r1 / 20)))"
pass
