#!/usr/bin/env bash
# bench-pg.sh [options]
#
# PostgreSQL continuous backup: tidemark against pg_basebackup and pgBackRest
# on the same cluster, in the same run (see bench/README.md, "PostgreSQL").
# Needs root (PostgreSQL runs as the postgres user), PostgreSQL 15 in
# /usr/lib/postgresql/15/bin, pgbackrest, curl.
#
#   1. initdb a cluster on loopback (archive_command = pgBackRest's
#      archive-push, so that its backups work), start tidemark-backupd with a
#      postgres component whose WAL it streams from a slot, then
#      `pgbench -i -s SCALE` (~800 MB at 50) and a checkpoint;
#   2. base backup, page cache dropped before each: pg_basebackup -Fp -X none
#      to local disk, tidemark (POST /api/v1/backup), pgBackRest --type=full
#      (compress-type=zst, process-max=2): seconds and repository growth;
#      then a second tidemark base backup of the unchanged database;
#   3. a light day: `pgbench -R 20 -T LIGHT` (~1,200 transactions at 60 s),
#      a checkpoint, then a second tidemark base backup and a pgBackRest
#      --type=incr: what each adds to its repository;
#   4. WAL ingest: unthrottled `pgbench -c 4 -T LOAD` while dr_rpo_seconds
#      of the daemon is sampled every second: max and median, WAL generated.
#
# Options:
#   --scale N      pgbench scale (default 50)
#   --light S      seconds of the light day (default 60)
#   --load S       seconds of the unthrottled load (default 60)
#   --out DIR      work and output dir (default: ${TMPDIR:-/tmp}/tidemark-bench-pg-<UTC time>)
#   --tidemark-bin DIR  directory holding tidemark and tidemark-backupd
#                  (default /work/main/build/bin, or $TIDEMARK_BIN_DIR)
#   --no-drop      do not drop the page cache
# Prints a markdown table (also in OUT/results.md). Exit status: 0 ran to
# the end (targets missed or not), 1 setup error or a command failed.
set -uo pipefail
export LC_ALL=C

SCALE=50
LIGHT=60
LOAD=60
OUT=
BIN_DIR=${TIDEMARK_BIN_DIR:-/work/main/build/bin}
DROP=1
PGBIN=/usr/lib/postgresql/15/bin

die() { echo "bench-pg: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-1}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --scale) SCALE=${2:?}; shift 2 ;;
    --light) LIGHT=${2:?}; shift 2 ;;
    --load) LOAD=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --tidemark-bin) BIN_DIR=${2:?}; shift 2 ;;
    --no-drop) DROP=0; shift ;;
    -h|--help) usage 0 ;;
    *) usage ;;
  esac
done
[ "$(id -u)" -eq 0 ] || die "needs root (PostgreSQL runs as postgres)"
[ -x "$PGBIN/initdb" ] || die "no PostgreSQL 15 at $PGBIN"
command -v pgbackrest >/dev/null || die "no pgbackrest"
command -v curl >/dev/null || die "no curl"
[ -x "$BIN_DIR/tidemark" ] && [ -x "$BIN_DIR/tidemark-backupd" ] || die "no tidemark binaries in $BIN_DIR"
OUT=${OUT:-${TMPDIR:-/tmp}/tidemark-bench-pg-$(date -u +%Y%m%dT%H%M%SZ)}
[ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ] && die "$OUT is not empty"
mkdir -p "$OUT" && chown postgres: "$OUT" && chmod 755 "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)

as_pg() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
du_b() { du -sb "$1" 2>/dev/null | cut -f1; }
mb() { python3 -c "import sys; print('%.1f' % (int(sys.argv[1]) / 1e6))" "$1"; }
drop() { [ "$DROP" = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null || true; }
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  as_pg "$PGBIN/pg_ctl" -D "$OUT/pgdata" -m immediate stop >/dev/null 2>&1
}
trap cleanup EXIT

PORT=$(free_port)
SOCK=$OUT/sock
as_pg mkdir -p "$SOCK" "$OUT/pgbr" "$OUT/pgbr-log" "$OUT/pgbr-lock" "$OUT/pgbr-spool"
cat >"$OUT/pgbackrest.conf" <<EOF
[global]
repo1-path=$OUT/pgbr
compress-type=zst
process-max=2
start-fast=y
log-level-console=warn
log-path=$OUT/pgbr-log
lock-path=$OUT/pgbr-lock
spool-path=$OUT/pgbr-spool
[bench]
pg1-path=$OUT/pgdata
pg1-port=$PORT
pg1-socket-path=$SOCK
EOF
chmod 644 "$OUT/pgbackrest.conf"
BR=(pgbackrest --config="$OUT/pgbackrest.conf" --stanza=bench)

echo "bench-pg: cluster in $OUT/pgdata on port $PORT" >&2
as_pg "$PGBIN/initdb" -D "$OUT/pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$OUT/initdb.log" 2>&1 || die "initdb failed"
cat >>"$OUT/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = 'pgbackrest --config=$OUT/pgbackrest.conf --stanza=bench archive-push %p'
max_wal_size = 4GB
EOF
as_pg "$PGBIN/pg_ctl" -D "$OUT/pgdata" -l "$OUT/pg.log" -w start >/dev/null || die "PostgreSQL did not start"
psql_() { as_pg "$PGBIN/psql" -X -A -t -q -h "$SOCK" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
as_pg "${BR[@]}" stanza-create >"$OUT/pgbr-stanza.log" 2>&1 || die "pgbackrest stanza-create: $(tail -3 "$OUT/pgbr-stanza.log")"

# tidemark: a repository and the daemon, streaming from the start
export TIDEMARK_PASSWORD=bench
"$BIN_DIR/tidemark" -r "$OUT/tm-repo" --catalog "$OUT/tm-cli.db" init >/dev/null || die "tidemark init failed"
mkdir -p "$OUT/bkd-state"
cat >"$OUT/bkd.conf" <<EOF
[repository]
location = $OUT/tm-repo
catalog = $OUT/tm-bkd.db
[server]
state_dir = $OUT/bkd-state
access_log = none
workers = 1
[component.database]
type = postgres
host = $SOCK
port = $PORT
user = postgres
slot = tidemark_bench
staging = $OUT
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
schedule.continuous = on
EOF
"$BIN_DIR/tidemark-backupd" -c "$OUT/bkd.conf" --listen 127.0.0.1:0 --port-file "$OUT/bkd.port" 2>"$OUT/bkd.log" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$OUT/bkd.port" ] && break; sleep 0.1; done
[ -s "$OUT/bkd.port" ] || die "backupd did not start: $(tail -3 "$OUT/bkd.log")"
BKD=http://127.0.0.1:$(cat "$OUT/bkd.port")
metric() { curl -s "$BKD/metrics" | awk -v n="$1" '$1 ~ "^"n"\\{" && $1 ~ /component="database"/ {print $2; exit}'; }
caught_up() { # the stream has all the server's WAL
  for _ in $(seq 1 600); do
    [ "$(metric pg_wal_stream_lag_bytes)" = 0 ] && return 0
    sleep 0.5
  done
  echo "bench-pg: warning: the WAL stream did not catch up" >&2
}
tm_backup() { # a base backup through the daemon; prints the job's result JSON
  local job state
  job=$(curl -s -X POST "$BKD/api/v1/backup" -H 'Content-Type: application/json' \
    -d '{"strategy":"full","components":["database"]}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["job_id"])') || die "POST /api/v1/backup failed"
  while :; do
    state=$(curl -s "$BKD/api/v1/jobs/$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
    case $state in queued|running) sleep 0.2 ;; succeeded) break ;; *) die "tidemark base backup: $state: $(curl -s "$BKD/api/v1/jobs/$job")" ;; esac
  done
}

echo "bench-pg: pgbench -i -s $SCALE" >&2
as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -i -s "$SCALE" -q postgres >"$OUT/pgbench-init.log" 2>&1 || die "pgbench -i failed"
psql_ -c CHECKPOINT
DBSIZE=$(psql_ -c "SELECT sum(pg_database_size(oid)) FROM pg_database")
caught_up

# ---- 2. base backups
drop; t0=$(now)
as_pg "$PGBIN/pg_basebackup" -h "$SOCK" -p "$PORT" -U postgres -D "$OUT/pgbb" -Fp -X none -c fast >"$OUT/pgbb.log" 2>&1 || die "pg_basebackup failed"
T_PGBB=$(secs "$t0" "$(now)"); S_PGBB=$(du_b "$OUT/pgbb")
rm -rf "$OUT/pgbb"
caught_up
R0=$(du_b "$OUT/tm-repo")
drop; t0=$(now)
tm_backup
T_TM1=$(secs "$t0" "$(now)"); R1=$(du_b "$OUT/tm-repo")
caught_up
# the same again, nothing changed: what a second base backup of an
# unchanged database adds (the issue's "< 5%")
tm_backup
R1b=$(du_b "$OUT/tm-repo")
caught_up
B0=$(du_b "$OUT/pgbr/backup")
drop; t0=$(now)
as_pg "${BR[@]}" --type=full backup >"$OUT/pgbr-full.log" 2>&1 || die "pgbackrest full: $(tail -3 "$OUT/pgbr-full.log")"
T_BR1=$(secs "$t0" "$(now)"); B1=$(du_b "$OUT/pgbr/backup")

# ---- 3. a light day
echo "bench-pg: pgbench -R 20 -T $LIGHT" >&2
as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -R 20 -T "$LIGHT" postgres >"$OUT/pgbench-light.log" 2>&1 || die "pgbench -R failed"
TX_LIGHT=$(awk '/number of transactions actually processed/ {print $NF}' "$OUT/pgbench-light.log" | cut -d/ -f1)
psql_ -c CHECKPOINT
caught_up
R2a=$(du_b "$OUT/tm-repo")
t0=$(now)
tm_backup
T_TM2=$(secs "$t0" "$(now)"); R2=$(du_b "$OUT/tm-repo")
t0=$(now)
as_pg "${BR[@]}" --type=incr backup >"$OUT/pgbr-incr.log" 2>&1 || die "pgbackrest incr: $(tail -3 "$OUT/pgbr-incr.log")"
T_BR2=$(secs "$t0" "$(now)"); B2=$(du_b "$OUT/pgbr/backup")

# ---- 4. WAL ingest under load
echo "bench-pg: pgbench -c 4 -T $LOAD, sampling dr_rpo_seconds" >&2
caught_up
L0=$(psql_ -c "SELECT pg_current_wal_lsn()")
: >"$OUT/rpo.txt"
( while :; do m=$(metric dr_rpo_seconds); [ -n "$m" ] && echo "$m" >>"$OUT/rpo.txt"; sleep 1; done ) &
SAMPLER=$!
PIDS+=($SAMPLER)
as_pg "$PGBIN/pgbench" -h "$SOCK" -p "$PORT" -U postgres -c 4 -j 2 -T "$LOAD" postgres >"$OUT/pgbench-load.log" 2>&1 || die "pgbench -c 4 failed"
TPS=$(awk '/^tps/ {print $3; exit}' "$OUT/pgbench-load.log")
L1=$(psql_ -c "SELECT pg_current_wal_lsn()")
WAL_MB=$(psql_ -c "SELECT round(pg_wal_lsn_diff('$L1', '$L0') / 1e6, 1)")
sleep 2
kill "$SAMPLER" 2>/dev/null
read -r RPO_MAX RPO_MED N_RPO < <(python3 -c "import statistics,sys; v=[float(x) for x in open(sys.argv[1]) if x.strip()]; print('%.2f %.2f %d' % (max(v), statistics.median(v), len(v)) if v else 'nan nan 0')" "$OUT/rpo.txt")
ERRS=$(metric pg_wal_stream_errors_total)

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2f' % (a/b) if b else 'n/a')" "$1" "$2"; }
TM_ADD1=$((R1 - R0)); BR_ADD1=$((B1 - B0)); TM_ADD2=$((R2 - R2a)); BR_ADD2=$((B2 - B1))
TM_ADD0=$((R1b - R1))
yes_no() { python3 -c "import sys; print('met' if eval(sys.argv[1]) else 'MISSED')" "$1"; }
{
  echo "## PostgreSQL benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, pgbench scale $SCALE, databases $(mb "$DBSIZE") MB)"
  echo
  echo "| step | pg_basebackup | tidemark | pgBackRest (zst, process-max=2) | tidemark / pgBackRest |"
  echo "|---|---|---|---|---|"
  echo "| base backup, s | $T_PGBB | $T_TM1 | $T_BR1 | $(ratio "$T_TM1" "$T_BR1") |"
  echo "| base backup, MB stored | $(mb "$S_PGBB") | $(mb "$TM_ADD1") | $(mb "$BR_ADD1") | $(ratio "$TM_ADD1" "$BR_ADD1") |"
  echo "| second tidemark base backup, unchanged database: MB added | | $(mb "$TM_ADD0") ($(python3 -c "import sys; print('%.2f' % (100 * int(sys.argv[1]) / int(sys.argv[2])))" "$TM_ADD0" "$TM_ADD1") %) | | |"
  echo "| after -R 20 -T $LIGHT ($TX_LIGHT tx): second backup, s | | $T_TM2 | $T_BR2 (incr) | $(ratio "$T_TM2" "$T_BR2") |"
  echo "| second backup, MB added | | $(mb "$TM_ADD2") | $(mb "$BR_ADD2") (incr) | $(ratio "$TM_ADD2" "$BR_ADD2") |"
  echo
  echo "WAL ingest under pgbench -c 4 -T $LOAD: $TPS tps, $WAL_MB MB of WAL; dr_rpo_seconds over $N_RPO samples: max $RPO_MAX s, median $RPO_MED s; stream errors $ERRS."
  echo
  echo "Targets: base backup no slower than pgBackRest: $(yes_no "$T_TM1 <= $T_BR1"); second backup <= 1/4 of pgBackRest's incremental: $(yes_no "$TM_ADD2 * 4 <= $BR_ADD2"); RPO < 5 s throughout: $(yes_no "$RPO_MAX < 5")."
} | tee "$OUT/results.md"
