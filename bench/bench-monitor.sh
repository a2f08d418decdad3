#!/usr/bin/env bash
# Benchmark of tidemark-monitord (not a test): with N checks (default 200)
# at a 1 s interval against a real backupd on loopback (health probes and
# metric checks), measure
#   1. monitord's CPU use over a steady window, in % of one core (target < 5 %);
#   2. the time from a condition starting to its alert reaching a loopback
#      webhook (target < 2 s): a metric check on a file-backed value that the
#      script flips, repeated R times (default 5).
# Peer: the usual stack for the same job, Prometheus + Alertmanager (Debian's),
# on the same condition and the same webhook, at its tightest settings
# (scrape and evaluation every 1 s, group_wait 0 s), when both are installed.
# Usage: bench/bench-monitor.sh [BUILD_BIN] ; env N, R, WINDOW (s, default 20)
set -euo pipefail
BIN=${1:-build/bin}
N=${N:-200}
R=${R:-5}
WINDOW=${WINDOW:-20}
W=$(mktemp -d /tmp/tm-bench-monitor.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# the condition: a tiny HTTP service whose /metrics says flag 0 or 1 (from a file)
cat >"$W/flag.py" <<'PY'
import http.server, sys, time, json
W = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        v = open(W + "/flag").read().strip()
        body = ("# HELP bench_flag the condition\n# TYPE bench_flag gauge\nbench_flag %s\n" % v).encode()
        self.send_response(200); self.send_header("Content-Type", "text/plain"); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        b = json.loads(self.rfile.read(n))
        with open(W + "/received", "a") as f:
            f.write("%.6f %s %s\n" % (time.time(), self.path, b.get("status")))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H)
s.serve_forever()
PY
echo 0 >"$W/flag"
FP=$(free_port)
python3 "$W/flag.py" "$W" "$FP" &
PIDS+=($!)

# a real backupd for the health probes
export TIDEMARK_REPOSITORY="$W/repo" TIDEMARK_PASSWORD=bench TIDEMARK_CATALOG="$W/catalog.db"
"$BIN/tidemark" init --kdf-memory 8192 --kdf-iterations 1 >/dev/null
mkdir -p "$W/data"
printf '[repository]\nlocation = %s\ncatalog = %s\n[server]\nstate_dir = %s/bstate\naccess_log = none\n[component.d]\ntype = files\npaths = %s/data\nschedule.full = none\nschedule.differential = none\nschedule.incremental = none\n' \
  "$TIDEMARK_REPOSITORY" "$TIDEMARK_CATALOG" "$W" "$W" >"$W/b.conf"
"$BIN/tidemark-backupd" -c "$W/b.conf" --listen 127.0.0.1:0 --port-file "$W/b.port" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$W/b.port" ] && break; sleep 0.1; done
BP=$(cat "$W/b.port")

{
  printf '[monitor]\nstate_dir = %s/mstate\naccess_log = none\nscrape_interval = 5s\nworkers = 4\n' "$W"
  printf '[service.backupd]\nurl = http://127.0.0.1:%s\n[service.flag]\nurl = http://127.0.0.1:%s\nscrape = off\n' "$BP" "$FP"
  for i in $(seq 1 $((N - 1))); do
    if [ $((i % 2)) = 0 ]; then
      printf '[check.h%d]\ntype = http\nservice = backupd\ninterval = 1s\ntimeout = 1s\n' "$i"
    else
      printf '[check.h%d]\ntype = metric\nservice = backupd\nmetric = backup_jobs_queued\nop = >\nthreshold = 1000\ninterval = 1s\ntimeout = 1s\n' "$i"
    fi
  done
  printf '[check.flag]\ntype = metric\nservice = flag\nmetric = bench_flag\nop = >\nthreshold = 0\ninterval = 1s\n'
  printf '[alert.flag]\ncheck = flag\nseverity = warning\nchannels = hook\n[channel.hook]\ntype = webhook\nurl = http://127.0.0.1:%s/hook\n' "$FP"
} >"$W/m.conf"
"$BIN/tidemark-monitord" -c "$W/m.conf" --listen 127.0.0.1:0 --port-file "$W/m.port" 2>"$W/m.log" &
MON=$!
PIDS+=($MON)
for _ in $(seq 100); do [ -s "$W/m.port" ] && break; sleep 0.1; done
sleep 3

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
t0=$(ticks $MON); s0=$(date +%s.%N)
sleep "$WINDOW"
t1=$(ticks $MON); s1=$(date +%s.%N)
runs=$(curl -s "http://127.0.0.1:$(cat "$W/m.port")/metrics" | awk '/^monitor_check_runs_total/ {s += $2} END {print s}')
CPU=$(python3 -c "print('%.2f' % (100.0 * ($t1 - $t0) / $HZ / ($s1 - $s0)))")
echo "checks: $N at 1 s; monitord CPU over ${WINDOW} s: ${CPU} % of one core (target < 5 %); $runs check runs since start"

lat=()
for r in $(seq "$R"); do
  : >"$W/received"
  sleep 1.3
  start=$(date +%s.%N)
  echo 1 >"$W/flag"
  for _ in $(seq 100); do grep -q "/hook firing" "$W/received" 2>/dev/null && break; sleep 0.05; done
  got=$(awk '/\/hook firing/ {print $1; exit}' "$W/received")
  lat+=("$(python3 -c "print('%.3f' % ($got - $start))")")
  echo 0 >"$W/flag"
  for _ in $(seq 100); do grep -q "/hook resolved" "$W/received" 2>/dev/null && break; sleep 0.05; done
done
echo "monitord: condition -> webhook latency over $R runs (s): ${lat[*]} (target < 2 s)"
python3 -c "import sys; v = sorted(map(float, sys.argv[1:])); print('monitord: max %.3f s, median %.3f s' % (v[-1], v[len(v)//2]))" "${lat[@]}"
kill "$MON" 2>/dev/null || true

AM=$(command -v prometheus-alertmanager || true)
if [ -z "$AM" ] || ! command -v prometheus >/dev/null; then
  echo "peer: prometheus and prometheus-alertmanager not both installed, not measured"
  exit 0
fi
PP=$(free_port)
AP=$(free_port)
cat >"$W/am.yml" <<CONF
route: {receiver: hook, group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:$FP/am", send_resolved: true}]
CONF
printf 'groups:\n  - name: bench\n    rules:\n      - alert: flag\n        expr: bench_flag > 0\n' >"$W/rules.yml"
cat >"$W/prom.yml" <<CONF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yml]
alerting: {alertmanagers: [{static_configs: [{targets: ["127.0.0.1:$AP"]}]}]}
scrape_configs: [{job_name: flag, static_configs: [{targets: ["127.0.0.1:$FP"]}]}]
CONF
"$AM" --config.file="$W/am.yml" --storage.path="$W/am" --web.listen-address="127.0.0.1:$AP" --cluster.listen-address= >"$W/am.log" 2>&1 &
PIDS+=($!)
prometheus --config.file="$W/prom.yml" --storage.tsdb.path="$W/prom" --web.listen-address="127.0.0.1:$PP" >"$W/prom.log" 2>&1 &
PIDS+=($!)
sleep 8
plat=()
for r in $(seq "$R"); do
  : >"$W/received"
  sleep 1.3
  start=$(date +%s.%N)
  echo 1 >"$W/flag"
  for _ in $(seq 600); do grep -q "/am firing" "$W/received" 2>/dev/null && break; sleep 0.05; done
  got=$(awk '/\/am firing/ {print $1; exit}' "$W/received")
  [ -n "$got" ] || { echo "peer: no alert from Alertmanager in 30 s"; exit 0; }
  plat+=("$(python3 -c "print('%.3f' % ($got - $start))")")
  echo 0 >"$W/flag"
  for _ in $(seq 600); do grep -q "/am resolved" "$W/received" 2>/dev/null && break; sleep 0.05; done
done
echo "Prometheus + Alertmanager: condition -> webhook latency over $R runs (s): ${plat[*]}"
python3 -c "import sys; v = sorted(map(float, sys.argv[1:])); print('peer: max %.3f s, median %.3f s' % (v[-1], v[len(v)//2]))" "${plat[@]}"
