#!/usr/bin/env bash
# bench-load.sh [--out DIR] [--bin DIR] [--build DIR] [--part wrk|big|all] [options]
#
# Load (issue 9, part 6), on 127.0.0.1 only; every process it starts is
# stopped by PID on exit, every mount unmounted.
#
# Part "wrk": tidemark-backupd, tidemark-monitord and tidemark-failoverd on
# one repository, with [auth] tokens (a viewer token for the reads, an
# operator token for the backups), monitord probing backupd, failoverd
# watching a real PostgreSQL 15 primary (one site; --no-pg: a site that
# does not answer, the way tests/integration/security_lib.bash runs it).
# A loop triggers incremental backups through POST /api/v1/backup (a few
# source files changed before each) for the whole time, while
# `wrk -tT -cC -dD --latency` runs against each read endpoint in turn.
# Then: every backup job must have succeeded, and `tidemark check
# --read-data` must pass.
#
# Part "big": a repository with FILES files (default 1,000,000, tiny, laid
# out as tree/aN/bNN/fNNNN: 10 x 100 x 1000) and SNAPSHOTS snapshots
# (default 1000): the first is a real backup of the tree (tm_backup_run),
# the others derived by bench/gen-bigrepo.c (built here against
# BUILD/lib/libtidemark.a), each changing a few leaf directories (see the
# header of gen-bigrepo.c). Then, with the real programs, times and RSS of:
# `tidemark snapshots`; tidemark-fs mounted (ls of the instants, ls -l of a
# 1000-entry directory in the oldest and the newest instant, find over
# whole instants with the filesystem's RSS after each, cp -a of a 1000-file
# and a 100,000-file subtree); `tidemark restore` of one file and of the
# whole snapshot; `tidemark check`. With --restic, restic on the same tree
# (one snapshot): backup, snapshots, restore of one file and of everything,
# check.
#
# Options:
#   --out DIR           output dir (must be empty or absent; default
#                       ${TMPDIR:-/tmp}/tidemark-bench-load-<time>)
#   --bin DIR           tidemark programs (default /work/main/build/bin or $TM_BIN)
#   --build DIR         build dir holding lib/libtidemark.a (default: BIN/..)
#   --part P            wrk, big or all (default all)
#   --duration SECS     each wrk run (default 15)
#   --threads T         wrk threads (default 2)
#   --connections C     wrk connections (default 16)
#   --no-pg             failoverd without PostgreSQL (an unreachable site)
#   --files N           files of the big tree, a multiple of 100000 (default 1000000)
#   --snapshots N       snapshots of the big repository (default 1000)
#   --restic            also run restic on the big tree
#   --big-dir DIR       where the big tree, its repository and the restores go
#                       (default /dev/shm: a tmpfs; creating and deleting 1M
#                       files on this machine's disk takes ~16 min each way);
#                       about 4.5 KiB of memory per file while the tree exists
#   --keep              keep the big tree, repositories and restores
#
# Example: bench/bench-load.sh --bin build-rel/bin --out /tmp/load-$(date +%s) --restic
set -euo pipefail
export LC_ALL=C

OUT=""
BIN=${TM_BIN:-/work/main/build/bin}
BUILD=""
PART=all
DUR=15
WT=2
WC=16
USE_PG=1
NFILES=1000000
NSNAP=1000
RESTIC=0
KEEP=0
BIGDIR=/dev/shm
while [ $# -gt 0 ]; do
  case $1 in
  --out) OUT=$2; shift 2 ;;
  --bin) BIN=$2; shift 2 ;;
  --build) BUILD=$2; shift 2 ;;
  --part) PART=$2; shift 2 ;;
  --duration) DUR=$2; shift 2 ;;
  --threads) WT=$2; shift 2 ;;
  --connections) WC=$2; shift 2 ;;
  --no-pg) USE_PG=0; shift ;;
  --files) NFILES=$2; shift 2 ;;
  --snapshots) NSNAP=$2; shift 2 ;;
  --restic) RESTIC=1; shift ;;
  --big-dir) BIGDIR=$2; shift 2 ;;
  --keep) KEEP=1; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench-load: unknown option $1" >&2; exit 64 ;;
  esac
done
case $PART in wrk | big | all) ;; *) echo "bench-load: --part wrk|big|all" >&2; exit 64 ;; esac
[ $((NFILES % 100000)) = 0 ] && [ "$NFILES" -gt 0 ] ||
  { echo "bench-load: --files must be a positive multiple of 100000" >&2; exit 64; }
BIN=$(cd "$BIN" && pwd)
[ -n "$BUILD" ] || BUILD=$BIN/..
BUILD=$(cd "$BUILD" && pwd)
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
TM="$BIN/tidemark"
for x in tidemark tidemark-backupd tidemark-monitord tidemark-failoverd tidemark-fs; do
  [ -x "$BIN/$x" ] || { echo "bench-load: no $BIN/$x" >&2; exit 1; }
done
# the bench's own Debian packages (not test dependencies: scripts/deps.sh
# does not list them), installed when missing and we are root
BENCH_PKGS=(wrk curl time fuse3 gcc pkg-config python3)
[ "$RESTIC" = 1 ] && BENCH_PKGS+=(restic)
missing=()
for p in "${BENCH_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  echo "bench-load: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
for c in wrk curl python3 /usr/bin/time fusermount3 gcc pkg-config; do
  command -v $c >/dev/null || { echo "bench-load: $c missing (bench/README.md: Load)" >&2; exit 1; }
done
[ -n "$OUT" ] || OUT=${TMPDIR:-/tmp}/tidemark-bench-load-$(date +%s)
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "bench-load: $OUT is not empty" >&2; exit 1
fi
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/bench.log" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# figures as "key value" lines, turned into results.json at the end
fig() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/figures.tsv"; log "  $1 = $2"; }

# ------------------------------------------------------------ cleanup by PID
PIDS=()
MNT=""
G=""
PGDATA=""
cleanup() {
  local p
  if [ -n "$MNT" ] && mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$PGDATA" ] && [ -f "$PGDATA/postmaster.pid" ]; then
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -m fast stop \
      >/dev/null 2>&1 || true
  fi
  if [ "$KEEP" = 0 ]; then
    rm -rf "$G" "$OUT/wrk/repo" "$OUT/wrk/src" "$OUT/wrk/pg"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /usr/bin/time -v into FILE.time; prints "seconds peak_rss_kib" of it
timed() { # NAME CMD...: runs CMD, output in logs/NAME.log
  local name=$1
  shift
  /usr/bin/time -v -o "$OUT/logs/$name.time" "$@" >"$OUT/logs/$name.log" 2>&1
}
time_of() { # NAME -> wall seconds
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0;
    for (i = 1; i <= n; i++) s = s * 60 + t[i]; printf "%.2f\n", s }' "$OUT/logs/$1.time"
}
rss_of() { # NAME -> peak RSS MiB
  awk -F': ' '/Maximum resident set size/ { printf "%.1f\n", $2 / 1024 }' "$OUT/logs/$1.time"
}
status_kib() { # PID FIELD -> kiB from /proc/PID/status
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
now() { date +%s.%N; }
since() { python3 -c "import sys; print('%.3f' % ($(now) - $1))"; }

log "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB, load $(cut -d' ' -f1-3 /proc/loadavg)"
log "tidemark $("$TM" version 2>/dev/null | head -n1) from $BIN, git $(git -C "$SRCDIR" rev-parse --short HEAD 2>/dev/null || echo '?')"

# ================================================================ part 1: wrk
part_wrk() {
  local W=$OUT/wrk
  mkdir -p "$W/src" "$W/state-bkd" "$W/state-mon" "$W/state-fod"
  export TIDEMARK_REPOSITORY=$W/repo TIDEMARK_CATALOG=$W/catalog.db
  export TIDEMARK_PASSWORD="bench-load passphrase"
  printf '%s' "$TIDEMARK_PASSWORD" >"$W/passphrase"
  chmod 600 "$W/passphrase"
  "$TM" -q init --kdf-memory 8192 --kdf-iterations 1
  # a source that takes the backups a moment: 2,000 files, ~40 MB
  python3 - "$W/src" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(20):
    os.makedirs(f"{root}/d{d:02}", exist_ok=True)
    for f in range(100):
        with open(f"{root}/d{d:02}/f{f:03}", "wb") as fh:
            fh.write(os.urandom(4096 + (d * 100 + f) * 17 % 32768))
PY
  "$TM" -q backup --component files --host bench "$W/src"

  local tv to hv ho pgport=1 pgsite
  tv=viewer-$(openssl rand -hex 16)
  to=operator-$(openssl rand -hex 16)
  hv=$(printf %s "$tv" | sha256sum | cut -d' ' -f1)
  ho=$(printf %s "$to" | sha256sum | cut -d' ' -f1)
  local auth="[auth]
token.viewer = viewer:$hv
token.operator = operator:$ho"
  local bport mport fport
  bport=$(free_port)
  mport=$(free_port)
  fport=$(free_port)

  cat >"$W/backupd.conf" <<EOC
# written by bench-load.sh
[repository]
location = $W/repo
password_file = $W/passphrase
catalog = $W/catalog.db
capacity = 10G
[server]
listen = 127.0.0.1:$bport
state_dir = $W/state-bkd
access_log = $W/access-bkd.log
workers = 2
$auth
[component.files]
type = files
paths = $W/src
tier = high
schedule.full = none
schedule.differential = none
schedule.incremental = none
EOC
  printf '%s' "$to" >"$W/operator.token"
  chmod 600 "$W/operator.token" "$W/backupd.conf"
  cat >"$W/monitord.conf" <<EOC
# written by bench-load.sh
[monitor]
listen = 127.0.0.1:$mport
state_dir = $W/state-mon
access_log = $W/access-mon.log
scrape_interval = 2s
$auth
[component.files]
type = files
paths = $W/src
tier = high
[service.backupd]
url = http://127.0.0.1:$bport
tier = high
token_file = $W/operator.token
[check.backupd_health]
type = http
service = backupd
interval = 2s
[check.backup_freshness]
type = freshness
service = backupd
interval = 2s
[alert.backup_stale]
check = backup_freshness
severity = critical
summary = a component has no backup within its RPO
[alert.backupd_down]
check = backupd_health
severity = critical
for = 10s
EOC
  chmod 600 "$W/monitord.conf"

  if [ "$USE_PG" = 1 ] && [ -x /usr/lib/postgresql/15/bin/initdb ] && id postgres >/dev/null 2>&1; then
    pgport=$(free_port)
    PGDATA=$W/pg/data
    mkdir -p "$W/pg"
    chown postgres: "$W/pg"
    runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D "$PGDATA" -U postgres \
      --auth=trust -E UTF8 --locale=C.UTF-8 >"$OUT/logs/initdb.log" 2>&1
    printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = '%s'\nfsync = off\n" \
      "$pgport" "$W/pg" >>"$PGDATA/postgresql.conf"
    runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$PGDATA" -l "$W/pg/log" -w -t 60 \
      start >/dev/null
    pgsite="conninfo = host=127.0.0.1 port=$pgport user=postgres dbname=postgres connect_timeout=2"
    fig wrk.failoverd_site "a real PostgreSQL 15 primary on 127.0.0.1:$pgport"
  else
    USE_PG=0
    pgsite="conninfo = host=127.0.0.1 port=1 user=postgres dbname=postgres connect_timeout=1"
    fig wrk.failoverd_site "unreachable (127.0.0.1:1): --no-pg or no PostgreSQL 15"
  fi
  cat >"$W/failoverd.conf" <<EOC
# written by bench-load.sh
[server]
listen = 127.0.0.1:$fport
access_log = $W/access-fod.log
$auth
[repository]
location = $W/repo
password_file = $W/passphrase
catalog = $W/catalog-fod.db
[failover]
primary = primary
state_dir = $W/state-fod
check_interval = 2s
connect_timeout = 2s
[site.primary]
$pgsite
EOC
  chmod 600 "$W/failoverd.conf"

  local d conf pid
  for d in backupd monitord failoverd; do
    conf=$W/$d.conf
    "$BIN/tidemark-$d" -c "$conf" --port-file "$W/$d.port" 2>>"$OUT/logs/$d.log" &
    pid=$!
    PIDS+=("$pid")
    eval "PID_$d=$pid"
    for ((i = 0; i < 300; i++)); do
      [ -s "$W/$d.port" ] && break
      kill -0 "$pid" 2>/dev/null || { tail -n 20 "$OUT/logs/$d.log" >&2; exit 1; }
      sleep 0.05
    done
    [ -s "$W/$d.port" ] || { echo "bench-load: $d did not listen" >&2; exit 1; }
  done
  local B=http://127.0.0.1:$bport M=http://127.0.0.1:$mport F=http://127.0.0.1:$fport
  log "backupd $B (pid $PID_backupd), monitord $M (pid $PID_monitord), failoverd $F (pid $PID_failoverd)"

  # the backup loop: one incremental backup at a time through the API,
  # a few source files rewritten before each
  rm -f "$W/stop"
  (
    n=0
    while [ ! -e "$W/stop" ]; do
      n=$((n + 1))
      for f in 0 1 2 3 4; do
        head -c $((4096 + RANDOM)) /dev/urandom >"$W/src/d$(printf %02d $((RANDOM % 20)))/f$(printf %03d $((RANDOM % 100)))"
      done
      resp=$(curl -s -X POST -H "Authorization: Bearer $to" -H 'Content-Type: application/json' \
        -d '{"strategy": "incremental", "components": ["files"]}' "$B/api/v1/backup") || true
      id=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["jobs"][0]["job_id"])' "$resp" 2>/dev/null) ||
        { echo "post-failed $resp"; sleep 1; continue; }
      st=""
      for ((k = 0; k < 1200; k++)); do
        st=$(curl -s -H "Authorization: Bearer $to" "$B/api/v1/jobs/$id" |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' 2>/dev/null) || st=""
        case $st in succeeded | failed) break ;; esac
        sleep 0.2
      done
      echo "job $id $st"
    done
  ) >"$W/backup-loop.txt" 2>&1 &
  local loop_pid=$!
  PIDS+=("$loop_pid")
  # wait for the first backup to finish so freshness and lists are warm
  for ((i = 0; i < 600; i++)); do grep -q '^job' "$W/backup-loop.txt" && break; sleep 0.1; done

  local ep url name svc
  : >"$W/wrk-runs.tsv"
  for ep in \
    "backupd /health" "backupd /metrics" "backupd /api/v1/backups" \
    "backupd /api/v1/backups/status" "backupd /api/v1/components" \
    "backupd /api/v1/storage/utilization" \
    "monitord /health" "monitord /metrics" "monitord /api/v1/health" \
    "monitord /api/v1/alerts/active" "monitord /api/v1/sla/metrics" \
    "monitord /api/v1/incidents" "monitord /api/v1/metrics" \
    "failoverd /health" "failoverd /metrics" "failoverd /api/v1/status" \
    "failoverd /api/v1/replication/status" "failoverd /api/v1/recovery/timeline"; do
    read -r svc url <<<"$ep"
    case $svc in backupd) url=$B$url ;; monitord) url=$M$url ;; failoverd) url=$F$url ;; esac
    name=$(printf '%s%s' "$svc" "${ep#* }" | tr '/' '_')
    # a real answer first: the endpoint must serve 200 with the token
    code=$(curl -s -o "$W/$name.body" -w '%{http_code}' -H "Authorization: Bearer $tv" "$url")
    [ "$code" = 200 ] || log "  WARNING: $url answers $code: $(head -c 200 "$W/$name.body")"
    log "wrk -t$WT -c$WC -d${DUR}s --latency -H 'Authorization: Bearer <viewer>' $url"
    wrk -t"$WT" -c"$WC" -d"${DUR}s" --latency -H "Authorization: Bearer $tv" "$url" \
      >"$OUT/logs/wrk-$name.txt" 2>&1
    printf '%s\t%s\t%s\t%s\n' "$svc" "${ep#* }" "$(stat -c %s "$W/$name.body")" \
      "$OUT/logs/wrk-$name.txt" >>"$W/wrk-runs.tsv"
  done
  local d_alive=""
  for d in backupd monitord failoverd; do
    eval "pid=\$PID_$d"
    kill -0 "$pid" 2>/dev/null && d_alive="$d_alive $d"
  done
  fig wrk.daemons_alive_after "${d_alive# }"
  for d in backupd monitord failoverd; do
    eval "pid=\$PID_$d"
    fig "wrk.$d.rss_mib_after" "$(awk '{printf "%.1f", $1 / 1024}' <<<"$(status_kib "$pid" VmRSS)")"
    fig "wrk.$d.hwm_mib" "$(awk '{printf "%.1f", $1 / 1024}' <<<"$(status_kib "$pid" VmHWM)")"
  done
  touch "$W/stop"
  wait "$loop_pid" || true
  fig wrk.backups_succeeded "$(grep -c ' succeeded$' "$W/backup-loop.txt" || true)"
  fig wrk.backups_other "$(grep -vc ' succeeded$' "$W/backup-loop.txt" || true)"
  for d in backupd monitord failoverd; do
    eval "pid=\$PID_$d"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  timed wrk-check "$TM" check --read-data && fig wrk.check_read_data ok ||
    fig wrk.check_read_data "FAILED (logs/wrk-check.log)"
  fig wrk.snapshots "$("$TM" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
  python3 - "$W/wrk-runs.tsv" "$OUT/wrk.json" <<'PY'
import json, re, sys
rows = []
def secs(v):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m.group(2)]
for line in open(sys.argv[1]):
    svc, path, body, f = line.rstrip("\n").split("\t")
    t = open(f).read()
    r = {"service": svc, "path": path, "body_bytes": int(body)}
    m = re.search(r"(\d+) requests in", t); r["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Requests/sec:\s+([\d.]+)", t); r["rps"] = float(m.group(1)) if m else 0
    for p in ("50", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % p, t, re.M)
        r["p" + p + "_ms"] = round(secs(m.group(1)) * 1e3, 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t); r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", t); r["socket_errors"] = m.group(1) if m else ""
    rows.append(r)
json.dump(rows, open(sys.argv[2], "w"), indent=1)
PY
  python3 - "$OUT/wrk.json" >"$OUT/wrk-table.md" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print("| service | endpoint | body bytes | req/s | p50 ms | p99 ms | requests | non-2xx | socket errors |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for r in rows:
    print("| %s | `%s` | %d | %.0f | %s | %s | %d | %d | %s |" % (r["service"], r["path"], r["body_bytes"],
          r["rps"], r["p50_ms"], r["p99_ms"], r["requests"], r["non2xx"], r["socket_errors"] or "0"))
PY
  unset TIDEMARK_REPOSITORY TIDEMARK_CATALOG
}

# ================================================================ part 2: big
part_big() {
  G=$BIGDIR/tidemark-bench-load-$$
  mkdir -p "$G"
  fig big.dir "$G ($(df -PT "$G" | awk 'NR == 2 { print $2 }'))"
  # tiny files take a 4 KiB page (tmpfs) or block each: the tree, then the
  # restore (the tree is deleted first), the repository: 4.5 KiB x FILES x 2
  local need avail
  need=$((9 * NFILES + 2 * 1024 * 1024))
  avail=$(df -Pk "$G" | awk 'NR == 2 { print $4 }')
  fig big.disk_free_gib_before "$((avail / 1024 / 1024))"
  [ "$avail" -gt "$need" ] || { echo "bench-load: $G has ${avail} KiB free, needs $need" >&2; exit 1; }

  log "building gen-bigrepo against $BUILD/lib/libtidemark.a"
  # shellcheck disable=SC2046
  gcc -O2 -std=gnu11 -Wall -Wextra -Werror -I "$SRCDIR/lib/include" -o "$G/gen-bigrepo" \
    "$SRCDIR/bench/gen-bigrepo.c" "$BUILD/lib/libtidemark.a" \
    $(pkg-config --libs libcrypto libzstd sqlite3 libargon2 jansson libmicrohttpd inih libcurl libpq) \
    -lpthread -lm

  local A=$((NFILES / 100000))
  log "making the tree: $A x 100 directories x 1000 files = $NFILES files in $G/src/tree"
  local t0
  t0=$(now)
  python3 - "$G/src/tree" "$A" <<'PY'
import os, sys
root, na = sys.argv[1], int(sys.argv[2])
for a in range(na):
    for b in range(100):
        d = f"{root}/a{a}/b{b:02}"
        os.makedirs(d)
        for f in range(1000):
            fd = os.open(f"{d}/f{f:04}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, f"a{a}/b{b:02}/f{f:04} of the load bench\n".encode())
            os.close(fd)
PY
  fig big.tree_make_seconds "$(since "$t0")"

  export TIDEMARK_REPOSITORY=$G/repo TIDEMARK_CATALOG=$G/catalog.db
  export TIDEMARK_PASSWORD="bench-load passphrase"
  "$TM" -q init --kdf-memory 8192 --kdf-iterations 1
  log "gen-bigrepo: 1 real backup + $((NSNAP - 1)) derived snapshots"
  timed gen "$G/gen-bigrepo" -s "$G/src/tree" -c big -n "$NSNAP" -k 3 -m 4 -t 3600 -S 9
  sed 's/^/    /' "$OUT/logs/gen.log" | grep -v '^    {' >&2 || true
  fig big.gen_seconds "$(time_of gen)"
  fig big.gen_peak_rss_mib "$(rss_of gen)"
  fig big.backup1 "$(grep '^backup1' "$OUT/logs/gen.log")"
  fig big.repo_bytes "$(du -sb "$G/repo" | cut -f1)"
  fig big.catalog_bytes "$(du -sb "$G/catalog.db" | cut -f1)"
  fig big.packs "$(find "$G/repo/data" -type f | wc -l)"

  # ---- restic backs up the same tree now (one snapshot), then the tree goes
  if [ "$RESTIC" = 1 ]; then
    export RESTIC_REPOSITORY=$G/restic RESTIC_PASSWORD=$TIDEMARK_PASSWORD RESTIC_CACHE_DIR=$G/restic-cache
    restic init -q >/dev/null
    timed restic-backup restic backup -q --host bench "$G/src/tree"
    fig big.restic.backup_seconds "$(time_of restic-backup)"
    fig big.restic.backup_peak_rss_mib "$(rss_of restic-backup)"
    fig big.restic.repo_bytes "$(du -sb "$G/restic" | cut -f1)"
  fi
  mkdir -p "$G/keep"
  cp -a "$G/src/tree/a0/b01" "$G/keep/b01"
  cp -a "$G/src/tree/a$((A - 1))/b33/f0333" "$G/keep/f0333"
  t0=$(now)
  rm -rf "$G/src"
  fig big.tree_delete_seconds "$(since "$t0")"

  # ---- list
  timed snapshots "$TM" snapshots
  fig big.snapshots_rows "$(grep -c ' big ' "$OUT/logs/snapshots.log" || true)"
  fig big.snapshots_seconds "$(time_of snapshots)"
  fig big.snapshots_peak_rss_mib "$(rss_of snapshots)"
  timed snapshots-json "$TM" snapshots --json
  fig big.snapshots_json_seconds "$(time_of snapshots-json)"
  local OLD NEW
  OLD=$(python3 -c 'import json,sys; a = json.load(open(sys.argv[1])); print(a[0]["time"][:19] + "Z")' "$OUT/logs/snapshots-json.log")
  NEW=$(python3 -c 'import json,sys; a = json.load(open(sys.argv[1])); print(a[-1]["time"][:19] + "Z")' "$OUT/logs/snapshots-json.log")
  MID=$(python3 -c 'import json,sys; a = json.load(open(sys.argv[1])); print(a[len(a) // 2]["time"][:19] + "Z")' "$OUT/logs/snapshots-json.log")
  fig big.snapshots_count "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$OUT/logs/snapshots-json.log")"
  fig big.oldest "$OLD"
  fig big.newest "$NEW"

  # ---- mount
  MNT=$G/mnt
  mkdir -p "$MNT"
  t0=$(now)
  "$TM" mount "$MNT" -f 2>"$OUT/logs/fs.log" &
  local fspid=$!
  PIDS+=("$fspid")
  for ((i = 0; i < 1200; i++)); do
    [ -e "$MNT/latest" ] && break
    kill -0 "$fspid" 2>/dev/null || { tail "$OUT/logs/fs.log" >&2; exit 1; }
    sleep 0.05
  done
  fig big.mount_visible_seconds "$(since "$t0")"
  rssfs() { awk '{printf "%.1f", $1 / 1024}' <<<"$(status_kib "$fspid" "$1")"; }
  fig big.fs_rss_mib_mounted "$(rssfs VmRSS)"
  t0=$(now)
  fig big.ls_instants_entries "$(ls "$MNT" | wc -l)"
  fig big.ls_instants_seconds "$(since "$t0")"
  local inst
  for inst in "@$OLD" "@$NEW"; do
    t0=$(now)
    n=$(ls -l "$MNT/$inst/big/a0/b00" | tail -n +2 | wc -l)
    fig "big.ls_l_leaf[$inst].entries" "$n"
    fig "big.ls_l_leaf[$inst].seconds" "$(since "$t0")"
  done
  for inst in "@$NEW" "@$OLD" "@$MID" "@$NEW"; do
    t0=$(now)
    n=$(find "$MNT/$inst/" | wc -l)
    fig "big.find[$inst].entries" "$n"
    fig "big.find[$inst].seconds" "$(since "$t0")"
    fig "big.find[$inst].fs_rss_mib_after" "$(rssfs VmRSS)"
  done
  fig big.fs_hwm_mib_after_finds "$(rssfs VmHWM)"
  # the kernel forgets the inodes it no longer caches: does the filesystem
  # give their memory back?
  sync
  echo 2 >/proc/sys/vm/drop_caches
  sleep 2
  fig big.fs_rss_mib_after_drop_caches "$(rssfs VmRSS)"
  t0=$(now)
  cp -a "$MNT/@$OLD/big/a0/b01" "$G/cp-leaf"
  fig big.cp_a_1000_files_seconds "$(since "$t0")"
  t0=$(now)
  cp -a "$MNT/@$NEW/big/a$((A - 1))" "$G/cp-a1"
  fig big.cp_a_100000_files_seconds "$(since "$t0")"
  fig big.cp_a_100000_files_count "$(find "$G/cp-a1" -type f | wc -l)"
  diff -r "$G/keep/b01" "$G/cp-leaf" >/dev/null && fig big.cp_a_leaf_old_equals_source yes ||
    fig big.cp_a_leaf_old_equals_source "no (expected only if a0/b01 never changed: see gen)"
  fig big.fs_rss_mib_after_cp "$(rssfs VmRSS)"
  fig big.fs_hwm_mib_final "$(rssfs VmHWM)"
  rm -rf "$G/cp-leaf" "$G/cp-a1"
  fusermount3 -u "$MNT"
  wait "$fspid" 2>/dev/null || true
  MNT=""

  # ---- restore
  timed restore-one "$TM" restore latest --target "$G/r1" --include "/a$((A - 1))/b33/f0333"
  fig big.restore_one_seconds "$(time_of restore-one)"
  fig big.restore_one_peak_rss_mib "$(rss_of restore-one)"
  cmp -s "$G/r1/a$((A - 1))/b33/f0333" "$G/keep/f0333" && fig big.restore_one_equals_source yes ||
    fig big.restore_one_equals_source "no (changed by a derived snapshot?)"
  timed restore-all nice -n 0 "$TM" restore latest --target "$G/r2"
  fig big.restore_all_seconds "$(time_of restore-all)"
  fig big.restore_all_peak_rss_mib "$(rss_of restore-all)"
  fig big.restore_all_files "$(find "$G/r2" -type f | wc -l)"
  rm -rf "$G/r1" "$G/r2"

  # ---- check
  timed check "$TM" check || true
  fig big.check_exit "$(grep -q 'Exit status: 0' "$OUT/logs/check.time" && echo 0 || echo FAILED)"
  fig big.check_seconds "$(time_of check)"
  fig big.check_peak_rss_mib "$(rss_of check)"

  # ---- restic on the same tree, one snapshot (the tree itself is gone)
  if [ "$RESTIC" = 1 ]; then
    timed restic-snapshots restic snapshots
    fig big.restic.snapshots_seconds "$(time_of restic-snapshots)"
    fig big.restic.snapshots_peak_rss_mib "$(rss_of restic-snapshots)"
    timed restic-restore-one restic restore latest --target "$G/r1" --include "$G/src/tree/a$((A - 1))/b33/f0333"
    fig big.restic.restore_one_seconds "$(time_of restic-restore-one)"
    fig big.restic.restore_one_peak_rss_mib "$(rss_of restic-restore-one)"
    timed restic-check restic check
    fig big.restic.check_seconds "$(time_of restic-check)"
    fig big.restic.check_peak_rss_mib "$(rss_of restic-check)"
    timed restic-restore-all restic restore latest --target "$G/r2"
    fig big.restic.restore_all_seconds "$(time_of restic-restore-all)"
    fig big.restic.restore_all_peak_rss_mib "$(rss_of restic-restore-all)"
    fig big.restic.restore_all_files "$(find "$G/r2" -type f | wc -l)"
    rm -rf "$G/r1" "$G/r2"
  fi
  unset TIDEMARK_REPOSITORY TIDEMARK_CATALOG
}

case $PART in
wrk) part_wrk ;;
big) part_big ;;
all) part_wrk; part_big ;;
esac
python3 - "$OUT/figures.tsv" "$OUT/results.json" <<'PY'
import json, sys
d = {}
for line in open(sys.argv[1]):
    k, v = line.rstrip("\n").split("\t", 1)
    d[k] = v
json.dump(d, open(sys.argv[2], "w"), indent=1, sort_keys=True)
PY
[ -f "$OUT/wrk-table.md" ] && cat "$OUT/wrk-table.md"
log "figures: $OUT/figures.tsv, $OUT/results.json"
