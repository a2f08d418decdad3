#!/usr/bin/env bash
# The main job on the embedded default: a local repository and SQLite catalog
# under ./demo/. Backs up a sample tree, changes it, backs it up again, then
# shows the snapshots, what changed, a restore and a verification. Then it
# runs tidemark-backupd on the same repository (with ./demo/tidemark.conf,
# which it writes) on 127.0.0.1 and a free port that it prints, triggers a
# backup through the API exactly as the spec's curl does, shows the status
# and the backups, and lets a continuous backup catch a change. Then
# tidemark-failoverd starts on the same repository (no [site.NAME]: the
# embedded default has no PostgreSQL replication, so it serves status,
# recovery and drills, not failover), and tidemark-monitord watches both
# and itself: each /health, the aggregate, an incident, a runbook, SLA. It
# ends with the time-travel filesystem mounted at ./demo/mnt: the mount and
# the three daemons stay up until Ctrl-C (or SIGTERM), then the mount goes
# and each daemon gets SIGTERM. With DEMO_NO_WAIT=1, or when stdin is not a
# terminal, all stop right after showing the mount.
set -euo pipefail
BIN=${1:-build/bin}
TM="$BIN/tidemark"
DEMO=${DEMO_DIR:-$PWD/demo}
MNT="$DEMO/mnt"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# The filesystem process (tidemark mount -f, which becomes tidemark-fs) by
# PID: whatever ends the demo, the mount goes with it.
FS_PID=
unmount() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$FS_PID" ]; then
    for _ in $(seq 50); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$FS_PID" 2>/dev/null || true
    wait "$FS_PID" 2>/dev/null || true
    FS_PID=
  fi
}
# tidemark-backupd by PID, stopped the way an operator would: SIGTERM lets a
# running job finish. (A Ctrl-C in the terminal reaches it too: it stops the
# same way on SIGINT.)
BKD_PID=
stop_backupd() {
  if [ -n "$BKD_PID" ]; then
    how=
    kill -TERM "$BKD_PID" 2>/dev/null && how=" (SIGTERM)"
    wait "$BKD_PID" 2>/dev/null || true
    BKD_PID=
    echo "tidemark-backupd stopped$how"
  fi
}
FOD_PID=
stop_failoverd() {
  if [ -n "$FOD_PID" ]; then
    kill -TERM "$FOD_PID" 2>/dev/null || true
    wait "$FOD_PID" 2>/dev/null || true
    FOD_PID=
    echo "tidemark-failoverd stopped"
  fi
}
MON_PID=
stop_monitord() {
  if [ -n "$MON_PID" ]; then
    kill -TERM "$MON_PID" 2>/dev/null || true
    wait "$MON_PID" 2>/dev/null || true
    MON_PID=
    echo "tidemark-monitord stopped"
  fi
}
trap 'unmount; stop_monitord; stop_failoverd; stop_backupd' EXIT
trap 'echo; unmount; echo "unmounted ${MNT#"$PWD"/}"; stop_monitord; stop_failoverd; stop_backupd; exit 0' INT TERM

# a mount left over from an earlier demo would stop rm -rf
if mountpoint -q "$MNT" 2>/dev/null; then
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
export TIDEMARK_REPOSITORY="$DEMO/repo"
export TIDEMARK_CATALOG="$DEMO/catalog.db"
export TIDEMARK_PASSWORD_FILE="$DEMO/passphrase"
head -c 24 /dev/urandom | base64 > "$TIDEMARK_PASSWORD_FILE"
chmod 600 "$TIDEMARK_PASSWORD_FILE"

say "a sample platform: plugins and configuration"
SRC="$DEMO/source/plugins"
mkdir -p "$SRC"
for p in auth billing search; do
  mkdir -p "$SRC/$p/lib" "$SRC/$p/conf"
  cp -r /usr/share/doc/bash "$SRC/$p/docs" 2>/dev/null || true
  head -c $((2 * 1024 * 1024)) /dev/urandom > "$SRC/$p/lib/$p.so"
  printf 'name = %s\nversion = 1.0\n' "$p" > "$SRC/$p/conf/plugin.toml"
done
ln -s auth/conf/plugin.toml "$SRC/default.toml"
cp "$SRC/auth/lib/auth.so" "$SRC/auth/lib/auth-copy.so" # deduplicated
find "$SRC" -type f | wc -l | xargs printf '%s files\n'

say "create the repository"
run "$TM" init

say "first backup"
run "$TM" backup --component plugins --tag demo "$SRC"
cp -a "$SRC" "$DEMO/source-at-first-backup"

say "the plugins change: an upgrade, a removal, a new plugin"
sleep 1
printf 'name = auth\nversion = 2.0\n' > "$SRC/auth/conf/plugin.toml"
head -c 65536 /dev/urandom >> "$SRC/billing/lib/billing.so"
rm -rf "$SRC/search"
mkdir -p "$SRC/metrics/conf" && printf 'name = metrics\n' > "$SRC/metrics/conf/plugin.toml"

say "second backup (incremental: only changed files are read)"
run "$TM" backup --component plugins "$SRC"

say "the snapshots"
run "$TM" snapshots

FIRST=$("$TM" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"][:8])')
say "what changed between them"
run "$TM" diff "$FIRST" latest

say "restore the first snapshot and compare it with the tree as it was"
run "$TM" restore "$FIRST" --target "$DEMO/restore"
if diff -r "$DEMO/source-at-first-backup" "$DEMO/restore" >/dev/null; then
  echo "restored tree is identical to the source at the first backup"
else
  echo "restored tree differs from the source!" >&2
  exit 1
fi

say "restore one file at an instant: the state of the first snapshot's time"
T=$("$TM" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["time"][:19])')
run "$TM" restore "@$T" --include auth/conf/plugin.toml --target "$DEMO/one-file"
cat "$DEMO/one-file/auth/conf/plugin.toml"

say "verify every byte in the repository"
run "$TM" check --read-data

say "statistics"
run "$TM" stats

say "tidemark-backupd: the backup orchestrator on the same repository"
BKD="$BIN/tidemark-backupd"
CONF="$DEMO/tidemark.conf"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"
cat > "$CONF" <<CONF
# written by scripts/demo.sh: see contrib/tidemark.conf and docs/configuration.md
[repository]
location = $TIDEMARK_REPOSITORY
password_file = $TIDEMARK_PASSWORD_FILE
catalog = $TIDEMARK_CATALOG

[server]
listen = 127.0.0.1:$PORT
state_dir = $DEMO/backupd-state
access_log = $DEMO/backupd-access.log

[component.plugins]
type = files
paths = $SRC
tier = high
keep_last = 10
# the spec's defaults: full weekly, differential daily, incremental every 4h;
# and a snapshot at most every 2 s while something changes
schedule.continuous = on
continuous_interval = 2s
CONF
echo "${CONF#"$PWD"/}:"
sed 's/^/    /' "$CONF"
printf '$ %s\n' "$BKD -c ${CONF#"$PWD"/} --port-file ${DEMO#"$PWD"/}/backupd.port 2>${DEMO#"$PWD"/}/backupd.log &"
"$BKD" -c "$CONF" --port-file "$DEMO/backupd.port" </dev/null 2>>"$DEMO/backupd.log" &
BKD_PID=$!
for _ in $(seq 100); do
  [ -s "$DEMO/backupd.port" ] && break
  kill -0 "$BKD_PID" 2>/dev/null || { BKD_PID=; tail -n 5 "$DEMO/backupd.log" >&2; echo "tidemark-backupd failed to start" >&2; exit 1; }
  sleep 0.1
done
[ -s "$DEMO/backupd.port" ] || { echo "tidemark-backupd did not listen in 10 s" >&2; exit 1; }
PORT=$(cat "$DEMO/backupd.port")
URL="http://127.0.0.1:$PORT"
echo "tidemark-backupd (pid $BKD_PID) serves $URL  (API documentation: $URL/docs, log: ${DEMO#"$PWD"/}/backupd.log)"

# jobs queued or running now
busy() { curl -s "$URL/api/v1/backups/status" | python3 -c 'import json,sys; d = json.load(sys.stdin); print(len(d["running"]) + len(d["queued"]))'; }
backup_count() { curl -s "$URL/api/v1/backups" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'; }
wait_idle() {
  for _ in $(seq 300); do [ "$(busy)" = 0 ] && return 0; sleep 0.2; done
  echo "the daemon's jobs did not finish in 60 s" >&2; exit 1
}

say "trigger a backup through the API (the spec's curl)"
printf '$ %s\n' "curl -X POST $URL/api/v1/backup -H \"Content-Type: application/json\" -d '{\"strategy\": \"full\", \"components\": [\"plugins\"]}'"
curl -X POST "$URL/api/v1/backup" -H "Content-Type: application/json" -d '{"strategy": "full", "components": ["plugins"]}'
echo
wait_idle

say "running and recent jobs"
printf '$ %s\n' "curl -s $URL/api/v1/backups/status | python3 -m json.tool"
curl -s "$URL/api/v1/backups/status" | python3 -m json.tool

say "a change while the daemon watches: a continuous backup follows within seconds"
BEFORE=$(backup_count)
printf '$ %s\n' "printf 'name = auth\\nversion = 2.1\\n' > ${SRC#"$PWD"/}/auth/conf/plugin.toml"
printf 'name = auth\nversion = 2.1\n' > "$SRC/auth/conf/plugin.toml"
for _ in $(seq 100); do [ "$(backup_count)" -gt "$BEFORE" ] && break; sleep 0.1; done
[ "$(backup_count)" -gt "$BEFORE" ] || { echo "no continuous backup after 10 s" >&2; exit 1; }
wait_idle

say "the backups, newest first"
printf '$ %s\n' "curl -s $URL/api/v1/backups  # summarised:"
curl -s "$URL/api/v1/backups" | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("%d backups" % d["count"])
for b in d["backups"]:
    print("  %-40s %-10s %-13s %s" % (b["name"], b["component"], b["strategy"], b["time"]))'

# start_daemon NAME PIDVAR ARGS...: run a daemon in the background with its
# log in demo/NAME.log and wait for its --port-file (demo/NAME.port)
start_daemon() {
  local name=$1 var=$2 pid
  shift 2
  rm -f "$DEMO/$name.port"
  printf '$ %s\n' "${*#"$PWD"/} --port-file ${DEMO#"$PWD"/}/$name.port 2>${DEMO#"$PWD"/}/$name.log &"
  "$@" --port-file "$DEMO/$name.port" </dev/null 2>>"$DEMO/$name.log" &
  pid=$!
  printf -v "$var" '%s' "$pid"
  for _ in $(seq 100); do
    [ -s "$DEMO/$name.port" ] && return 0
    kill -0 "$pid" 2>/dev/null || { printf -v "$var" ''; tail -n 5 "$DEMO/$name.log" >&2; echo "$name failed to start" >&2; exit 1; }
    sleep 0.1
  done
  echo "$name did not listen in 10 s" >&2
  exit 1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "tidemark-failoverd: the DR orchestrator on the same repository"
FOD="$BIN/tidemark-failoverd"
FCONF="$DEMO/failoverd.conf"
cat > "$FCONF" <<CONF
# written by scripts/demo.sh: see docs/disaster-recovery.md. No [site.NAME]:
# the embedded default has no PostgreSQL replication, so failover and
# failback are off; status, the recovery timeline, point-in-time recovery
# and dry-run drills work on the repository.
[repository]
location = $TIDEMARK_REPOSITORY
password_file = $TIDEMARK_PASSWORD_FILE

[server]
listen = 127.0.0.1:0
access_log = $DEMO/failoverd-access.log

[failover]
state_dir = $DEMO/failoverd-state
CONF
echo "${FCONF#"$PWD"/}:"
sed 's/^/    /' "$FCONF"
start_daemon failoverd FOD_PID "$FOD" -c "$FCONF"
FURL="http://127.0.0.1:$(cat "$DEMO/failoverd.port")"
echo "tidemark-failoverd (pid $FOD_PID) serves $FURL  (API documentation: $FURL/docs)"
grep -o '"msg":"[^"]*no \[site.NAME\][^"]*"' "$DEMO/failoverd.log" || true

say "the recovery timeline from the repository (the spec's curl)"
printf '$ %s\n' "curl -s \"$FURL/api/v1/recovery/timeline\"  # summarised:"
curl -s "$FURL/api/v1/recovery/timeline" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for name, c in d["components"].items():
    print("  %s: %d recovery points, newest %s" % (name, len(c["points"]), c["points"][-1]["time"] if c["points"] else "-"))'

say "tidemark-monitord: monitoring and business continuity, wired to backupd, failoverd and itself"
MON="$BIN/tidemark-monitord"
MCONF="$DEMO/monitord.conf"
# monitord watches its own /health too, so its port is chosen here
MPORT=$(free_port)
MURL="http://127.0.0.1:$MPORT"
cat > "$MCONF" <<CONF
# written by scripts/demo.sh: see docs/monitoring.md and docs/business-continuity.md
[monitor]
listen = 127.0.0.1:$MPORT
state_dir = $DEMO/monitord-state
access_log = $DEMO/monitord-access.log
scrape_interval = 2s

[component.plugins]
type = files
paths = $SRC
tier = high

[service.backupd]
url = $URL
tier = high

[service.failoverd]
url = $FURL
tier = critical

[service.monitord]
url = $MURL
tier = high

[check.backupd_health]
type = http
service = backupd
interval = 2s

[check.failoverd_health]
type = http
service = failoverd
interval = 2s

[check.monitord_health]
type = http
service = monitord
interval = 2s

[check.backup_freshness]
type = freshness
service = backupd
interval = 2s

[check.storage_utilization]
type = metric
service = backupd
metric = backup_storage_utilization_percent
op = >
threshold = 85
interval = 10s

[alert.backup_stale]
check = backup_freshness
severity = critical
summary = a component has no backup within its RPO
runbook = backup_failing

[alert.backupd_down]
check = backupd_health
severity = critical
for = 10s

[alert.failoverd_down]
check = failoverd_health
severity = critical
for = 10s
CONF
cat "$(dirname "$0")/../contrib/runbooks/backup_failing.conf" >> "$MCONF"
echo "${MCONF#"$PWD"/}: [monitor], three services, five checks, three alerts, contrib/runbooks/backup_failing.conf"
start_daemon monitord MON_PID "$MON" -c "$MCONF"
echo "tidemark-monitord (pid $MON_PID) serves $MURL  (API documentation: $MURL/docs)"

say "each service's own health"
for u in "$URL" "$FURL" "$MURL"; do
  printf '$ %s\n' "curl -s $u/health"
  curl -s "$u/health"
  echo
done

# the first probes run at start-up, every 2 s after: wait for all three
services_up() {
  curl -s "$MURL/api/v1/health" | python3 -c '
import json, sys
d = json.load(sys.stdin)["services"]
sys.exit(0 if len(d) == 3 and all(s["status"] == "up" for s in d.values()) else 1)'
}
for _ in $(seq 100); do services_up && break; sleep 0.2; done

say "system health (the spec's curl): backupd, failoverd and monitord up"
printf '$ %s\n' "curl -s $MURL/api/v1/health | python3 -m json.tool"
curl -s "$MURL/api/v1/health" | python3 -m json.tool
services_up || { echo "monitord does not see all three services up" >&2; exit 1; }

say "a dry-run failover drill (the spec's curl): what a real one would need"
printf '$ %s\n' "curl -X POST $FURL/api/v1/test/failover -H \"Content-Type: application/json\" -d '{\"scope\": \"database_failover\", \"dry_run\": true}'"
curl -s -X POST "$FURL/api/v1/test/failover" -H "Content-Type: application/json" \
  -d '{"scope": "database_failover", "dry_run": true}' | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("  ready: %s, estimated RTO %.0f s against a target of %.0f s" % (d["ready"], d["estimated_rto_seconds"], d["rto_target_seconds"]))
for c in d["checks"]:
    print("  %-4s %-20s %s" % ("ok" if c["ok"] else "FAIL", c["check"], c["detail"]))'

say "report an incident (the spec's curl)"
printf '$ %s\n' "curl -X POST $MURL/api/v1/incidents -H \"Content-Type: application/json\" -d '{\"title\": \"Database connectivity issues\", \"severity\": \"high\", \"affected_services\": [\"user-management\", \"authentication\"]}'"
INC=$(curl -s -X POST "$MURL/api/v1/incidents" -H "Content-Type: application/json" \
  -d '{"title": "Database connectivity issues", "severity": "high", "affected_services": ["user-management", "authentication"]}' |
  python3 -c 'import json,sys; d = json.load(sys.stdin); print(d["id"])')
echo "opened $INC"

say "trigger a runbook on it (the spec's curl): a full backup through backupd, then a freshness check"
printf '$ %s\n' "curl -X POST $MURL/api/v1/runbooks/execute -H \"Content-Type: application/json\" -d '{\"runbook\": \"backup_failing\", \"context\": {\"incident_id\": \"$INC\"}}'"
EXE=$(curl -s -X POST "$MURL/api/v1/runbooks/execute" -H "Content-Type: application/json" \
  -d "{\"runbook\": \"backup_failing\", \"context\": {\"incident_id\": \"$INC\"}}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["execution_id"])')
for _ in $(seq 300); do
  STATE=$(curl -s "$MURL/api/v1/runbooks/executions/$EXE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$STATE" != running ] && [ "$STATE" != queued ] && break
  sleep 0.2
done
echo "runbook execution $EXE: $STATE"
printf '$ %s\n' "curl -s $MURL/api/v1/incidents/$INC  # its timeline:"
curl -s "$MURL/api/v1/incidents/$INC" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for e in d["timeline"]:
    print("  %s  %-9s %s" % (e["time"], e["kind"], e["message"]))'
curl -s -X POST "$MURL/api/v1/incidents/$INC/acknowledge" >/dev/null
curl -s -X POST "$MURL/api/v1/incidents/$INC/resolve" -H "Content-Type: application/json" -d '{"message": "backups verified"}' >/dev/null
echo "$INC acknowledged and resolved"

say "SLA from the health probes (the spec's curl), 1 h window"
printf '$ %s\n' "curl -s $MURL/api/v1/sla/metrics"
curl -s "$MURL/api/v1/sla/metrics" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for name, s in d["services"].items():
    w = s["windows"].get("1h")
    if w:
        print("  %s (%s, target %.2f %%): %.3f %% over %d probes, p95 %.1f ms, downtime budget left %.0f s"
              % (name, s["tier"], s["target_percent"], w["availability_percent"], w["probes"],
                 w["p95_response_ms"], w["downtime_budget_left_seconds"]))'

say "active alerts (the spec's curl)"
printf '$ %s\n' "curl -s $MURL/api/v1/alerts/active"
curl -s "$MURL/api/v1/alerts/active"
echo

say "every instant as a directory: the time-travel filesystem at ${MNT#"$PWD"/}"
mkdir -p "$MNT"
printf '$ %s\n' "$TM mount ${MNT#"$PWD"/} -f &"
"$TM" mount "$MNT" -f </dev/null &
FS_PID=$!
for _ in $(seq 100); do
  [ -e "$MNT/latest" ] && break
  kill -0 "$FS_PID" 2>/dev/null || { echo "tidemark mount failed" >&2; exit 1; }
  sleep 0.1
done
[ -e "$MNT/latest" ] || { echo "the mount did not come up in 10 s" >&2; exit 1; }
M=${MNT#"$PWD"/}
run ls "$M"
INSTANTS=()
for e in "$MNT"/@*; do INSTANTS+=("${e##*/}"); done
run ls "$M/${INSTANTS[0]}/plugins"
run ls "$M/${INSTANTS[${#INSTANTS[@]} - 1]}/plugins"
run cat "$M/${INSTANTS[0]}/plugins/auth/conf/plugin.toml"
run cat "$M/${INSTANTS[${#INSTANTS[@]} - 1]}/plugins/auth/conf/plugin.toml"

say "done: repository in $TIDEMARK_REPOSITORY, catalog in $TIDEMARK_CATALOG"
if [ "${DEMO_NO_WAIT:-0}" = 1 ] || [ ! -t 0 ]; then
  unmount
  echo "unmounted $M"
  stop_monitord
  stop_failoverd
  stop_backupd
  exit 0
fi
echo "the repository stays mounted at $M (try: ls $M/latest/plugins, ls $M/.history/plugins);"
echo "tidemark-backupd keeps serving $URL (try: curl $URL/api/v1/backups/status);"
echo "tidemark-failoverd keeps serving $FURL (try: curl $FURL/api/v1/status);"
echo "tidemark-monitord keeps serving $MURL (try: curl $MURL/api/v1/health);"
echo "press Ctrl-C to unmount and stop"
# wait returns early on a signal; the INT/TERM trap unmounts and exits
while kill -0 "$FS_PID" 2>/dev/null; do wait "$FS_PID" || true; done
FS_PID=
echo "the filesystem stopped (unmounted from outside)"
