#!/usr/bin/env bash
# tidemark-backupd with a postgres component (type = postgres) and a real
# PostgreSQL 15 on loopback: POST /api/v1/backup takes a base backup; with
# schedule.continuous = on the daemon streams the WAL from the component's
# slot, dr_rpo_seconds{component} stays under 5 s while rows are written
# (60 s under the sanitizers, whose stores of a 16 MiB .partial are ~10x
# slower: the target itself is measured by bench/bench-pg.sh) and
# pg_wal_stream_up is 1; a restart of the server breaks the stream,
# which is counted and restarted by itself; a restore @T of what the daemon
# stored holds exactly the rows committed at or before T. SIGTERM stops the
# stream with the daemon. A postgres component with paths is refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_common.bash"
command -v curl >/dev/null || skip "curl missing"

pg_setup
PORT=$(free_port)
pg_primary "$T/primary" "$PORT"
psql1() { psql_at "$PORT" "$@"; }
psql1 -c "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())"
psql1 -c "INSERT INTO t (id) VALUES (1)"
mkdir -p "$T/state"

cat >"$T/bkd.conf" <<CONF
[repository]
location = $T/repo
catalog = $T/catalog-bkd.db
password_file = $T/pass
[server]
state_dir = $T/state
access_log = none
[component.database]
type = postgres
host = $T/sock
port = $PORT
user = postgres
slot = tm_bkd
staging = $T
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
schedule.continuous = on
CONF
unset TIDEMARK_PASSWORD
bkd_start "$T/bkd.conf"
wait_for 20 "the daemon's WAL stream" grep -q "streaming WAL from" "$T/backupd.log"

metric() { # NAME: its value for component database
        curl -s "$BKD_URL/metrics" | awk -v n="$1" '$1 ~ "^"n"\\{" && $1 ~ /component="database"/ {print $2}'
}

run curl -s -X POST "$BKD_URL/api/v1/backup" -H "Content-Type: application/json" \
        -d '{"strategy": "full", "components": ["database"]}'
assert_rc 0 "POST /api/v1/backup"
job=$(printf '%s' "$RUN_OUT" | json_get 'd["jobs"][0]["job_id"]')
job_state() { curl -s "$BKD_URL/api/v1/jobs/$job" | json_get 'd["state"]'; }
job_done() { local s; s=$(job_state); [[ $s != queued && $s != running ]]; }
wait_for 60 "the base backup job" job_done
[[ $(job_state) == succeeded ]] || fail "base backup job: $(curl -s "$BKD_URL/api/v1/jobs/$job"); $(tail -5 "$T/backupd.log")"
run curl -s "$BKD_URL/api/v1/backups?component=database"
assert_contains "$RUN_OUT" '"count":1' "one base backup listed"

for i in $(seq 2 10); do
        psql1 -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.1
done
sleep 1.5
RPO_MAX=5
[[ $TM_BIN == *asan* || $TM_BIN == *sanit* ]] && RPO_MAX=60
rpo=$(metric dr_rpo_seconds)
up=$(metric pg_wal_stream_up)
log "dr_rpo_seconds $rpo, pg_wal_stream_up $up"
[[ -n $rpo ]] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$rpo" "$RPO_MAX" ||
        fail "dr_rpo_seconds '$rpo' is not under $RPO_MAX s: $(curl -s "$BKD_URL/metrics" | grep -E 'rpo|pg_wal')"
[[ $up == 1 ]] || fail "pg_wal_stream_up is '$up'"

# the server restarts: the stream breaks, is counted, and comes back
as_pg "$PGBIN/pg_ctl" -D "$T/primary" -m fast -w restart -l "$T/primary.log" >/dev/null
errors_counted() { [[ $(metric pg_wal_stream_errors_total) != 0 ]]; }
stream_up() { [[ $(metric pg_wal_stream_up) == 1 ]]; }
wait_for 30 "the stream error to be counted" errors_counted
wait_for 30 "the stream to come back" stream_up
for i in $(seq 11 14); do
        psql1 -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.1
done
ts_k=$(psql1 -c "SELECT extract(epoch FROM ts) FROM t WHERE id = 12")
TARGET=$(epoch_iso "$ts_k" 0.05)
expect=$(psql1 -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts <= '$TARGET'")
[[ $expect == "$(seq -s, 1 12)" ]] || fail "test setup: rows at or before T are '$expect'"
last=$(psql1 -c "SELECT extract(epoch FROM max(ts)) FROM t")
# as root, while the daemon (root) keeps writing into the repository
stored() {
        run "$TM_EXE" -r "$T/repo" --password-file "$T/pass" --catalog "$T/catalog-root.db" \
                --json wal-status --component database
        [[ $RUN_RC -eq 0 ]] && python3 - "$RUN_OUT" "$last" <<'EOF'
import datetime, json, sys
w = json.loads(sys.argv[1])["windows"]
latest = datetime.datetime.strptime(w[-1]["latest"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
sys.exit(0 if latest.replace(tzinfo=datetime.timezone.utc).timestamp() >= float(sys.argv[2]) - 1e-6 else 1)
EOF
}
wait_for 60 "the WAL up to the last commit in the repository" stored
# SIGTERM stops the stream with the daemon; then the repository is the
# server's alone
bkd_stop TERM
[[ $BKD_RC -eq 0 ]] || fail "backupd exited $BKD_RC on SIGTERM: $(tail -5 "$T/backupd.log")"
chown -R postgres: "$T/repo"
run as_pg "$TMW" restore --component database "@$TARGET" --target "$T/r1"
assert_rc 0 "restore @T"
pg_recovers "$T/r1" "$expect" "restored @T from the daemon's base backup and stream"

cat >"$T/bad.conf" <<CONF
[repository]
location = $T/repo
[component.database]
type = postgres
paths = /srv
CONF
run "$TM_BIN/tidemark-backupd" -c "$T/bad.conf" --check-config
assert_rc 2 "a postgres component with paths"
assert_contains "$RUN_ERR" "bad.conf:" "the refusal names the file"
assert_contains "$RUN_ERR" "of type postgres takes no paths" "the refusal says why"
pass
