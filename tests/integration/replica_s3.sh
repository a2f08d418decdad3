#!/usr/bin/env bash
# Cross-region replication by backupd to an S3 replica (s3rver behind the
# signature-verifying front tests/fake/s3front.py): backups are replicated
# after each job; the replica passes check --read-data and restores
# byte-exact; while the replica resets every connection the lag, bytes
# behind and
# error metrics (scraped from /metrics over HTTP) show the gap, and once it is
# back the replica catches up and the lag returns to 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init
command -v curl >/dev/null || skip "curl missing"
. "$TM_SRC/tests/fake/s3env.sh"
s3_start
REPLICA="s3:http://127.0.0.1:$PORT/backups/dr"

S="$T/plugins"
mkdir -p "$S/sub" "$T/state"
random_file "$S/big.bin" $((3 * 1024 * 1024))
random_file "$S/sub/mid.bin" 300000
for i in $(seq 1 20); do printf 'plugin %d\n' "$i" >"$S/sub/p$i.txt"; done

cat >"$T/backupd.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
[server]
state_dir = $T/state
access_log = none
[component.plugins]
type = files
paths = $S
schedule.full = none
schedule.differential = none
schedule.incremental = none
[replica]
location = $REPLICA
name = dr-eu
interval = 1s
parallel = 3
CONF

# a bad [replica] section stops the daemon at start with FILE:LINE
sed 's/^parallel = 3$/parallel = lots/' "$T/backupd.conf" >"$T/bad.conf"
run timeout 20 "$TM_BIN/tidemark-backupd" -c "$T/bad.conf" --listen 127.0.0.1:0
[[ $RUN_RC -ne 0 ]] || fail "backupd started with a bad [replica] section"
assert_contains "$RUN_ERR" "bad.conf:17: invalid parallel 'lots'" "bad [replica] is named"

bkd_start "$T/backupd.conf"

metric() { # NAME: the value of NAME{replica="dr-eu"} (empty if absent)
        curl -s "$BKD_URL/metrics" | awk -v n="$1" \
                'index($0, n "{replica=\"dr-eu\"} ") == 1 { print $2 }'
}
metric_is() { [[ $(metric "$1") == "$2" ]]; }
metric_gt() { local v; v=$(metric "$1"); [[ -n $v ]] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$v" "$2"; }
backup_job() {
        http POST /api/v1/backup -H 'Content-Type: application/json' \
                -d '{"strategy": "full", "components": ["plugins"]}'
        assert_http 202 "backup job"
}
# caught_up N: the replica holds all N snapshots (by an independent listing,
# the CLI's status) and the daemon's gauges say so too
caught_up() {
        local st
        st=$(tm replicate --status --to "$REPLICA" --json 2>/dev/null) || return 1
        [[ $(json_get 'd["snapshots"], d["snapshots_behind"], d["bytes_behind"]' <<<"$st") == "($1, 0, 0)" ]] &&
                metric_is replication_lag_seconds 0 && metric_is replication_bytes_behind 0 &&
                metric_is replication_snapshots_behind 0
}
replica_restore_matches() { # WHAT
        local c="$T/replica-catalog.$RANDOM.db" out="$T/out.$RANDOM"
        run tm --repo "$REPLICA" --catalog "$c" check --read-data
        assert_rc 0 "$1: check --read-data on the replica"
        assert_contains "$RUN_OUT$RUN_ERR" "no errors were found" "$1: replica check"
        run tm --repo "$REPLICA" --catalog "$c" restore latest --target "$out"
        assert_rc 0 "$1: restore from the replica"
        content_manifest "$S" "$T/want"
        content_manifest "$out" "$T/got"
        assert_files_equal "$T/want" "$T/got" "$1: restore from the replica is byte-exact"
}

# ---- a backup is replicated right after the job
backup_job
wait_for 40 "the first backup replicated" caught_up 1
metric_gt replication_objects_total 4 || fail "no objects counted as copied"
metric_gt replication_bytes_total 3000000 || fail "bytes copied not counted"
metric_is replication_replica_up 1 || fail "replica not reported up"
replica_restore_matches "first backup"
run tm replicate --status --to "$REPLICA" --json
assert_rc 0 "replicate --status"
[[ $(json_get 'd["snapshots_behind"], d["bytes_behind"], d["reachable"]' <<<"$RUN_OUT") == "(0, 0, True)" ]] ||
        fail "status after catching up: $RUN_OUT"
# the label is the replica's, never failoverd's "site"
lag_line_zero() {
        curl -s "$BKD_URL/metrics" >"$T/m0.txt"
        grep -q '^replication_lag_seconds{replica="dr-eu"} 0$' "$T/m0.txt"
}
wait_for 10 'replication_lag_seconds{replica="dr-eu"} 0 in /metrics' lag_line_zero
if command -v promtool >/dev/null; then
        curl -s "$BKD_URL/metrics" >"$T/metrics.txt"
        promtool check metrics <"$T/metrics.txt" || fail "promtool rejects /metrics"
fi

# ---- the replica goes away (every connection to it is reset with no
# answer): backups go on, the lag shows the gap
fault '{"mode":"reset","rate":1.0}'
on_exit "fault '{\"mode\":\"off\"}'"
err0=$(metric replication_errors_total)
printf 'changed while the replica is down\n' >"$S/sub/p1.txt"
random_file "$S/sub/new.bin" 500000
backup_job
wait_for 30 "bytes behind while unreachable" metric_gt replication_bytes_behind 500000
wait_for 30 "the lag grows" metric_gt replication_lag_seconds 1
lag1=$(metric replication_lag_seconds)
metric_is replication_snapshots_behind 1 || fail "snapshots behind: $(metric replication_snapshots_behind)"
sleep 2
lag2=$(metric replication_lag_seconds)
python3 -c 'import sys; sys.exit(0 if float(sys.argv[2]) >= float(sys.argv[1]) + 1.5 else 1)' "$lag1" "$lag2" ||
        fail "lag did not grow while unreachable: $lag1 then $lag2"
wait_for 30 "errors counted" metric_gt replication_errors_total "${err0:-0}"
metric_is replication_replica_up 0 || fail "replica reported up while its front is down"
log "unreachable: lag $lag1 s then $lag2 s, $(metric replication_bytes_behind) bytes behind"
run tm replicate --status --to "$REPLICA"
assert_rc 0 "replicate --status while the replica is down"
assert_contains "$RUN_OUT" "unreachable" "status names the unreachable replica"

# ---- it comes back and catches up
fault '{"mode":"off"}'
wait_for 60 "the replica caught up" caught_up 2
metric_is replication_replica_up 1 || fail "replica not up after recovery"
log "recovered: lag $(metric replication_lag_seconds) s"
replica_restore_matches "after the outage"
check_ok --read-data
bkd_stop
[[ $BKD_RC -eq 0 ]] || fail "backupd exit $BKD_RC"
pass
