#!/usr/bin/env bash
# bench-backupd.sh [--out DIR] [--bin DIR] [options]
#
# tidemark-backupd under load (issue 4), on 127.0.0.1 only:
#   1. a repository with N real snapshots (default 1,000: a loop of
#      `tidemark backup` of a tiny directory whose one file changes each time,
#      spread over K components, cheap KDF);
#   2. tidemark-backupd against it (free loopback port, no retention, no
#      schedules), then `wrk -tT -cC -dD --latency` on GET /api/v1/backups and
#      on GET /health: requests/s and p50/p75/p90/p99 latency;
#   3. the slowdown of a real backup: `tidemark backup` of a ~520 MiB dataset
#      (read in place, never modified) into a fresh repository, alone, then
#      while two wrk processes hammer /health and /api/v1/backups; runs are
#      interleaved (alone, loaded, alone, loaded, ...) so that a noisy
#      neighbour hurts both alike. The page cache is WARM: the dataset is read
#      once before the first run and fits in RAM.
# Prints a table, writes OUT/results.json. Every process it starts is killed
# by PID on exit.
#
# Options:
#   --out DIR          output dir (must be empty or absent; default
#                      ${TMPDIR:-/tmp}/tidemark-bench-backupd-<time>)
#   --bin DIR          directory holding tidemark and tidemark-backupd
#                      (default /work/main/build/bin or $TM_BIN)
#   --snapshots N      snapshots in the catalog (default 1000)
#   --components K     components they are spread over (default 10)
#   --duration SECS    each wrk run (default 20)
#   --threads T        wrk threads (default 2)
#   --connections C    wrk connections (default 16)
#   --runs R           backup runs alone and under load, each (default 3)
#   --data PATHS       comma-separated dataset paths for the slowdown part
#                      (default: /work/bench-data/ds/tree/usr/{share,include,
#                      lib/python3,lib/python3.11}, ~520 MiB, ~41k files)
#   --access-log WHAT  backupd access_log: `file` (default, OUT/access.log:
#                      the realistic setting), `none`
#   --pace H:B         pace the load during the loaded backups instead of
#                      saturating: about H req/s on /health and B req/s on
#                      /api/v1/backups (a per-connection delay() in a wrk Lua
#                      script: a ceiling, the achieved rates are reported)
#   --reuse DIR        take the N-snapshot repository and catalog from an
#                      earlier run's OUT (DIR/repo, DIR/catalog.db: kept by
#                      every run, ~10 MB) instead of making them (~4.5 min)
#   --keep             also keep the big backups' repositories
#
# Example: bench/bench-backupd.sh --bin build/bin --out /work/bench-data/bkd-$(date +%s)
set -euo pipefail
export LC_ALL=C

OUT=""
BIN=${TM_BIN:-/work/main/build/bin}
NSNAP=1000
NCOMP=10
DUR=20
WT=2
WC=16
RUNS=3
DS=/work/bench-data/ds/tree/usr
DATA="$DS/share,$DS/include,$DS/lib/python3,$DS/lib/python3.11"
ACCESS="file"
KEEP=0
REUSE=""
PACE=""
while [ $# -gt 0 ]; do
  case $1 in
  --out) OUT=$2; shift 2 ;;
  --bin) BIN=$2; shift 2 ;;
  --snapshots) NSNAP=$2; shift 2 ;;
  --components) NCOMP=$2; shift 2 ;;
  --duration) DUR=$2; shift 2 ;;
  --threads) WT=$2; shift 2 ;;
  --connections) WC=$2; shift 2 ;;
  --runs) RUNS=$2; shift 2 ;;
  --data) DATA=$2; shift 2 ;;
  --access-log) ACCESS=$2; shift 2 ;;
  --reuse) REUSE=$2; shift 2 ;;
  --pace) PACE=$2; shift 2 ;;
  --keep) KEEP=1; shift ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "bench-backupd: unknown option $1" >&2; exit 64 ;;
  esac
done
BIN=$(cd "$BIN" && pwd)
TM="$BIN/tidemark"
BKD="$BIN/tidemark-backupd"
for x in "$TM" "$BKD"; do [ -x "$x" ] || { echo "bench-backupd: no $x" >&2; exit 1; }; done
for c in wrk curl python3; do
  command -v $c >/dev/null || { echo "bench-backupd: $c missing (apt-get install $c)" >&2; exit 1; }
done
IFS=, read -r -a DATA_PATHS <<<"$DATA"
for p in "${DATA_PATHS[@]}"; do [ -d "$p" ] || { echo "bench-backupd: no dataset dir $p" >&2; exit 1; }; done
[ -n "$OUT" ] || OUT=${TMPDIR:-/tmp}/tidemark-bench-backupd-$(date +%s)
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
  echo "bench-backupd: $OUT is not empty" >&2; exit 1
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------ cleanup by PID
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # the N-snapshot repository is small and kept (--reuse)
  if [ "$KEEP" = 0 ]; then rm -rf "$OUT/bigrepo"-* "$OUT"/bigcat-*.db; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export TIDEMARK_PASSWORD="bench-backupd passphrase"
export TIDEMARK_REPOSITORY="$OUT/repo"
export TIDEMARK_CATALOG="$OUT/catalog.db"
unset TIDEMARK_PASSWORD_FILE
KDF=(--kdf-memory 8192 --kdf-iterations 1)

# ------------------------------------------------------------ 1. N snapshots
log "machine: $(nproc) cores, $(uname -r); tidemark $("$TM" version 2>/dev/null | head -n1)"
mkdir -p "$OUT/tiny/etc"
t0=$(date +%s.%N)
if [ -n "$REUSE" ]; then
  log "copying the repository and catalog of $REUSE"
  cp -a "$REUSE/repo" "$OUT/repo"
  cp -a "$REUSE/catalog.db" "$OUT/catalog.db"
  NSNAP=$("$TM" snapshots --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
else
  log "creating $NSNAP snapshots over $NCOMP components in $OUT/repo"
  "$TM" -q init "${KDF[@]}"
fi
for ((i = 0; i < NSNAP && ${#REUSE} == 0; i++)); do
  # a changing file, so every snapshot holds new (tiny) data
  printf 'snapshot %d of the bench\n' "$i" >"$OUT/tiny/etc/config.txt"
  strat=incremental
  [ $((i % 7)) = 0 ] && strat=full
  "$TM" -q backup --component "c$((i % NCOMP))" --strategy $strat --host bench "$OUT/tiny" \
    || { echo "bench-backupd: backup $i failed" >&2; exit 1; }
  [ $(((i + 1) % 250)) = 0 ] && log "  $((i + 1)) snapshots"
done
t1=$(date +%s.%N)
SNAP_SECS=$(python3 -c "print(round($t1 - $t0, 1))")
log "created $NSNAP snapshots in ${SNAP_SECS} s"

# ------------------------------------------------------------ 2. the daemon
mkdir -p "$OUT/state"
case $ACCESS in
file) ACCESS_LOG="$OUT/access.log" ;;
none) ACCESS_LOG=none ;;
*) echo "bench-backupd: --access-log file|none" >&2; exit 64 ;;
esac
{
  printf '# written by bench-backupd.sh: no tokens (open API), no schedules, no retention\n'
  printf '[repository]\nlocation = %s\ncatalog = %s\n' "$TIDEMARK_REPOSITORY" "$TIDEMARK_CATALOG"
  printf '[server]\nstate_dir = %s\naccess_log = %s\n' "$OUT/state" "$ACCESS_LOG"
  for ((c = 0; c < NCOMP; c++)); do
    printf '[component.c%d]\ntype = files\npaths = %s\ntier = standard\n' "$c" "$OUT/tiny"
    printf 'schedule.full = none\nschedule.differential = none\nschedule.incremental = none\n'
  done
} >"$OUT/backupd.conf"
"$BKD" -c "$OUT/backupd.conf" --listen 127.0.0.1:0 --port-file "$OUT/backupd.port" \
  2>>"$OUT/backupd.log" &
BKD_PID=$!
PIDS+=("$BKD_PID")
for ((i = 0; i < 200; i++)); do
  [ -s "$OUT/backupd.port" ] && break
  kill -0 "$BKD_PID" 2>/dev/null || { tail -n 20 "$OUT/backupd.log" >&2; exit 1; }
  sleep 0.05
done
[ -s "$OUT/backupd.port" ] || { echo "bench-backupd: backupd did not listen" >&2; exit 1; }
URL="http://127.0.0.1:$(cat "$OUT/backupd.port")"
log "backupd pid $BKD_PID on $URL"
# warm up and check what is served: all N snapshots, healthy
curl -sf "$URL/api/v1/backups" >"$OUT/backups.json"
COUNT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["count"])' "$OUT/backups.json")
[ "$COUNT" = "$NSNAP" ] || { echo "bench-backupd: the API lists $COUNT backups, not $NSNAP" >&2; exit 1; }
LIST_BYTES=$(stat -c %s "$OUT/backups.json")
curl -sf "$URL/health" >"$OUT/health.json"
log "GET /api/v1/backups: $COUNT backups, $LIST_BYTES bytes; /health: $(cat "$OUT/health.json")"

cpu_ticks() { # PID: utime + stime, in clock ticks
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
for ep in backups health; do
  path=/api/v1/backups
  [ $ep = health ] && path=/health
  log "wrk -t$WT -c$WC -d${DUR}s --latency $URL$path"
  c0=$(cpu_ticks "$BKD_PID")
  wrk -t"$WT" -c"$WC" -d"${DUR}s" --latency "$URL$path" >"$OUT/wrk-$ep.txt" 2>&1 &
  w=$!
  PIDS+=("$w")
  wait "$w"
  # the daemon's CPU seconds (user + system) during the run
  echo $((($(cpu_ticks "$BKD_PID") - c0))) "$(getconf CLK_TCK)" >"$OUT/cpu-$ep.txt"
  sed 's/^/    /' "$OUT/wrk-$ep.txt" >&2
done
kill -0 "$BKD_PID" || { echo "bench-backupd: backupd died under load" >&2; exit 1; }

# ------------------------------------------------------------ 3. backup slowdown
log "dataset: ${DATA_PATHS[*]}"
DATA_BYTES=$(find "${DATA_PATHS[@]}" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
DATA_FILES=$(find "${DATA_PATHS[@]}" -type f | wc -l)
log "  $DATA_FILES files, $DATA_BYTES bytes; warming the page cache"
find "${DATA_PATHS[@]}" -type f -print0 | xargs -0 cat >/dev/null 2>&1 || true

# one timed backup into a fresh repository: sets RES to "wall user sys"
# (not run in a subshell, so that the trap knows the backup's PID)
big_backup() { # TAG
  local repo="$OUT/bigrepo-$1" cat="$OUT/bigcat-$1.db" tf="$OUT/time-$1.txt"
  rm -rf "$repo" "$cat"
  TIDEMARK_REPOSITORY=$repo TIDEMARK_CATALOG=$cat "$TM" -q init "${KDF[@]}"
  TIDEMARK_REPOSITORY=$repo TIDEMARK_CATALOG=$cat /usr/bin/time -f '%e %U %S' -o "$tf" \
    "$TM" -q backup --component ds --host bench "${DATA_PATHS[@]}" &
  local b=$!
  PIDS+=("$b")
  wait "$b" || { echo "bench-backupd: backup $1 failed" >&2; exit 1; }
  [ "$KEEP" = 1 ] || rm -rf "$repo" "$cat"
  RES=$(tail -n 1 "$tf")
}
: >"$OUT/slowdown.txt"
# the load: saturating by default; with --pace, each connection waits
# C * 1000 / rate ms after each response (wrk's delay() hook)
LOAD_H=(); LOAD_B=()
if [ -n "$PACE" ]; then
  printf 'local d = tonumber(os.getenv("WRK_DELAY_MS"))\nfunction delay() return d end\n' >"$OUT/pace.lua"
  dh=$(python3 -c "print(max(1, round($WC * 1000 / ${PACE%%:*})))")
  db=$(python3 -c "print(max(1, round($WC * 1000 / ${PACE##*:})))")
  LOAD_H=(env WRK_DELAY_MS="$dh" wrk -s "$OUT/pace.lua")
  LOAD_B=(env WRK_DELAY_MS="$db" wrk -s "$OUT/pace.lua")
  log "paced load: per-connection delay ${dh} ms on /health, ${db} ms on /api/v1/backups"
else
  LOAD_H=(wrk); LOAD_B=(wrk)
fi
for ((r = 1; r <= RUNS; r++)); do
  big_backup "alone-$r"
  log "  run $r alone:  wall user sys = $RES"
  echo "alone $r $RES" >>"$OUT/slowdown.txt"
  # the load: both endpoints at once, for longer than any backup; stopped
  # (by PID) as soon as the backup ends
  "${LOAD_H[@]}" -t"$WT" -c"$WC" -d600s --latency "$URL/health" >"$OUT/wrk-load-health-$r.txt" 2>&1 &
  w1=$!
  "${LOAD_B[@]}" -t"$WT" -c"$WC" -d600s --latency "$URL/api/v1/backups" >"$OUT/wrk-load-backups-$r.txt" 2>&1 &
  w2=$!
  PIDS+=("$w1" "$w2")
  sleep 1
  big_backup "loaded-$r"
  # SIGINT: wrk prints its summary on it
  kill -INT "$w1" "$w2" 2>/dev/null || true
  wait "$w1" "$w2" 2>/dev/null || true
  log "  run $r loaded: wall user sys = $RES"
  echo "loaded $r $RES" >>"$OUT/slowdown.txt"
done
kill -0 "$BKD_PID" || { echo "bench-backupd: backupd died under load" >&2; exit 1; }
kill -TERM "$BKD_PID"
wait "$BKD_PID" 2>/dev/null || true

# ------------------------------------------------------------ report
python3 - "$OUT" <<PY
import json, re, statistics, sys, os
out = sys.argv[1]
UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}

def dur_ms(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s.strip())
    return float(m.group(1)) * UNIT[m.group(2)] if m else None

def parse_wrk(path):
    t = open(path).read()
    r = {"file": os.path.basename(path)}
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in ([\d.]+\w+),", t)
    r["requests"] = int(m.group(1)) if m else None
    for p in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % p, t, re.M)
        r["p" + p + "_ms"] = dur_ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    r["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", t)
    r["socket_errors"] = m.group(1).strip() if m else ""
    try:
        ticks, hz = open(path.replace("/wrk-", "/cpu-")).read().split()
        r["daemon_cpu_s"] = int(ticks) / int(hz)
        r["daemon_cpu_us_per_req"] = 1e6 * r["daemon_cpu_s"] / r["requests"]
    except (OSError, ValueError, TypeError, ZeroDivisionError):
        pass
    return r

targets = {"backups_p99_ms": 20.0, "health_rps": 5000.0, "slowdown_pct": 10.0}
res = {
    "machine": {"cores": os.cpu_count(), "kernel": os.uname().release},
    "config": {"snapshots": $NSNAP, "components": $NCOMP, "wrk": "-t$WT -c$WC -d${DUR}s --latency",
               "access_log": "$ACCESS", "cache": "warm", "load": "${PACE:-saturating}", "runs": $RUNS,
               "dataset": "$DATA", "dataset_bytes": $DATA_BYTES, "dataset_files": $DATA_FILES,
               "list_response_bytes": $LIST_BYTES, "snapshot_creation_s": $SNAP_SECS},
    "wrk": {"backups": parse_wrk(out + "/wrk-backups.txt"), "health": parse_wrk(out + "/wrk-health.txt")},
    "targets": targets,
}
runs = {"alone": [], "loaded": []}
for line in open(out + "/slowdown.txt"):
    kind, n, wall, user, sys_ = line.split()
    runs[kind].append({"run": int(n), "wall_s": float(wall), "user_s": float(user), "sys_s": float(sys_)})
ratios = [l["wall_s"] / a["wall_s"] for a, l in zip(runs["alone"], runs["loaded"])]
load = [{"run": i + 1, "health": parse_wrk("%s/wrk-load-health-%d.txt" % (out, i + 1)),
         "backups": parse_wrk("%s/wrk-load-backups-%d.txt" % (out, i + 1))} for i in range(len(ratios))]
res["slowdown"] = {"alone": runs["alone"], "loaded": runs["loaded"], "ratios": ratios,
                   "median_ratio": statistics.median(ratios),
                   "median_alone_s": statistics.median(r["wall_s"] for r in runs["alone"]),
                   "median_loaded_s": statistics.median(r["wall_s"] for r in runs["loaded"]),
                   "load_during_backup": load}
b, h, s = res["wrk"]["backups"], res["wrk"]["health"], res["slowdown"]
slow_pct = (s["median_ratio"] - 1) * 100
res["verdict"] = {"backups_p99": b["p99_ms"] is not None and b["p99_ms"] < 20,
                  "health_rps": h["rps"] is not None and h["rps"] >= 5000,
                  "slowdown": slow_pct <= 10}
json.dump(res, open(out + "/results.json", "w"), indent=2)

def f(x, d=2):
    return "-" if x is None else ("%.*f" % (d, x))
ok = lambda v: "PASS" if v else "MISS"
print()
print("tidemark-backupd under wrk %s, %d snapshots, %d cores, access log %s" %
      (res["config"]["wrk"], $NSNAP, os.cpu_count(), "$ACCESS"))
print("| endpoint | req/s | p50 ms | p75 ms | p90 ms | p99 ms | non-2xx | daemon CPU us/req | target | |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
print("| GET /api/v1/backups (%d B) | %s | %s | %s | %s | %s | %d | %s | p99 < 20 ms | %s |" %
      ($LIST_BYTES, f(b["rps"], 0), f(b["p50_ms"]), f(b["p75_ms"]), f(b["p90_ms"]), f(b["p99_ms"]),
       b["non_2xx"], f(b.get("daemon_cpu_us_per_req"), 0), ok(res["verdict"]["backups_p99"])))
print("| GET /health | %s | %s | %s | %s | %s | %d | %s | >= 5000 req/s | %s |" %
      (f(h["rps"], 0), f(h["p50_ms"]), f(h["p75_ms"]), f(h["p90_ms"]), f(h["p99_ms"]),
       h["non_2xx"], f(h.get("daemon_cpu_us_per_req"), 0), ok(res["verdict"]["health_rps"])))
print()
print("backup of %.0f MiB (%d files), warm cache, %d runs each, interleaved, load %s:" %
      ($DATA_BYTES / 2**20, $DATA_FILES, len(ratios), "${PACE:-saturating}"))
print("| run | alone s | loaded s | ratio | alone CPU s | loaded CPU s | load: /health req/s | load: /backups req/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for a, l, r, ld in zip(runs["alone"], runs["loaded"], ratios, load):
    print("| %d | %.2f | %.2f | %.3f | %.2f | %.2f | %s | %s |" % (a["run"], a["wall_s"], l["wall_s"], r,
          a["user_s"] + a["sys_s"], l["user_s"] + l["sys_s"],
          f(ld["health"]["rps"], 0), f(ld["backups"]["rps"], 0)))
print("| median | %.2f | %.2f | **%.3f** (%+.0f%%; target <= +10%%: %s) | | | | |" %
      (s["median_alone_s"], s["median_loaded_s"], s["median_ratio"], slow_pct, ok(res["verdict"]["slowdown"])))
print()
print("results: %s/results.json" % out)
PY
