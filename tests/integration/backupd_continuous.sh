#!/usr/bin/env bash
# tidemark-backupd continuous backups (schedule.continuous = on,
# continuous_interval = 2s), a real daemon on 127.0.0.1:
#   1. nothing written: no snapshot at all, however long it runs;
#   2. a file written: a "continuous" snapshot within a few seconds, holding
#      the file; a directory created after the start and a file in it: the
#      next one holds both;
#   3. a burst of writes over 6 s: snapshots at most one per 2 s, never two
#      jobs of the component at once, the last one holding the last write;
#   4. quiet again: no new snapshot; the repository, inside the watched
#      tree, does not feed itself;
#   5. SIGTERM stops the watcher with the daemon; a bad config (continuous
#      on a command component) is refused with its line.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
[[ -r /proc/sys/fs/inotify/max_user_watches ]] || skip "no inotify"

# the repository lives inside the watched tree on purpose (see 4.)
mkdir -p "$T/data/sub" "$T/state"
export TIDEMARK_REPOSITORY=$T/data/.repo
tm_init
printf 'first\n' >"$T/data/sub/one.txt"

cat >"$T/bkd.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
[server]
state_dir = $T/state
access_log = none
[component.live]
type = files
paths = $T/data
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
schedule.continuous = on
continuous_interval = 2s
CONF

count() { # the number of snapshots of component live
        curl -s "$BKD_URL/api/v1/backups?component=live" | json_get 'd["count"]'
}
busy_jobs() { # backup jobs of live queued or running now
        curl -s "$BKD_URL/api/v1/backups/status" |
                json_get 'sum(1 for j in d["running"] + d["queued"] if j["component"] == "live")'
}
settled() { # no job queued or running
        [[ $(busy_jobs) == 0 ]]
}
at_least() { # N: at least N snapshots
        [[ $(count) -ge $1 ]]
}

bkd_start "$T/bkd.conf"
grep -q 'continuous backups, at most one every 2 s' "$T/backupd.log" ||
        fail "the daemon did not log its watcher: $(tail -n 5 "$T/backupd.log")"

# ------------------------------------------------------------ 1. quiet
sleep 5
[[ $(count) == 0 ]] || fail "snapshots with nothing written: $(count)"

# ------------------------------------------------------------ 2. a write
t0=$(date +%s%N)
printf 'second\n' >"$T/data/two.txt"
wait_for 10 "a continuous snapshot after a write" at_least 1
t1=$(date +%s%N)
log "first snapshot $(((t1 - t0) / 1000000)) ms after the write"
wait_for 30 "the job to finish" settled
snaps=$(curl -s "$BKD_URL/api/v1/backups?component=live")
[[ $(printf '%s' "$snaps" | json_get 'd["backups"][0]["strategy"]') == continuous ]] ||
        fail "the snapshot's strategy is not continuous: $snaps"
id=$(printf '%s' "$snaps" | json_get 'd["backups"][0]["id"]')
tm ls "$id" >"$T/ls1" 2>&1 || fail "tidemark ls $id: $(cat "$T/ls1")"
assert_contains "$(cat "$T/ls1")" "two.txt" "the continuous snapshot holds the new file"
assert_contains "$(cat "$T/ls1")" "one.txt" "the continuous snapshot holds the tree"
jobs=$(curl -s "$BKD_URL/api/v1/backups/status")
assert_contains "$jobs" '"trigger":"continuous"' "the job's trigger"

# a directory made after the start is watched
n=$(count)
mkdir "$T/data/newdir"
wait_for 10 "a snapshot after mkdir" at_least $((n + 1))
wait_for 30 "the job to finish" settled
n=$(count)
sleep 2.5 # past the interval: the next write is due at once
printf 'deep\n' >"$T/data/newdir/three.txt"
wait_for 10 "a snapshot after a write in a new directory" at_least $((n + 1))
wait_for 30 "the job to finish" settled
id=$(curl -s "$BKD_URL/api/v1/backups?component=live" | json_get 'd["backups"][0]["id"]')
tm ls "$id" >"$T/ls2" 2>&1 || fail "tidemark ls $id: $(cat "$T/ls2")"
assert_contains "$(cat "$T/ls2")" "newdir/three.txt" "the file in the new directory"

# ------------------------------------------------------------ 3. a burst
# writes every 0.1 s for 6 s: one snapshot at once, then one per 2 s
n=$(count)
t0=$(date +%s%N)
i=0
while (($(date +%s%N) - t0 < 6000000000)); do
        printf 'burst %d\n' "$i" >>"$T/data/sub/burst.txt"
        last="burst $i"
        i=$((i + 1))
        sleep 0.1
done
secs=$((($(date +%s%N) - t0) / 1000000000))
sleep 3 # the last writes are due one interval after the last cut
wait_for 30 "the burst's last job" settled
m=$(count)
log "a ${secs} s burst of $i writes: $((m - n)) snapshot(s)"
((m - n >= 3)) || fail "a ${secs} s burst made $((m - n)) snapshots (expected 3 or more)"
((m - n <= secs / 2 + 2)) ||
        fail "a ${secs} s burst made $((m - n)) snapshots at a 2 s interval (at most $((secs / 2 + 2)))"
# jobs of the component never overlapped, and were at least 2 s apart
python3 - "$T/state/jobs.jsonl" <<'PY' || fail "continuous jobs overlapped or came too often"
import json, sys
jobs = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    jobs[j["id"]] = j
runs = sorted((j["started"], j["finished"]) for j in jobs.values()
              if j["component"] == "live" and j["strategy"] == "continuous")
for (s1, f1), (s2, f2) in zip(runs, runs[1:]):
    if s2 < f1:
        sys.exit("overlap: %s %s" % ((s1, f1), (s2, f2)))
    if s2 - s1 < 1.9e9:
        sys.exit("%.2f s apart" % ((s2 - s1) / 1e9))
PY
# the last snapshot holds the last write
id=$(curl -s "$BKD_URL/api/v1/backups?component=live" | json_get 'd["backups"][0]["id"]')
tm restore "$id" --target "$T/restored" >/dev/null 2>&1 || fail "restore of $id"
[[ $(tail -n 1 "$T/restored/sub/burst.txt") == "$last" ]] ||
        fail "the last snapshot misses the last write"

# ------------------------------------------------------------ 4. quiet again
m=$(count)
sleep 5
[[ $(count) == "$m" ]] || fail "snapshots with nothing written: $m -> $(count)"

# ------------------------------------------------------------ 5. stop, bad config
bkd_stop TERM
[[ $BKD_RC == 0 ]] || fail "backupd exited $BKD_RC on SIGTERM"
grep -q '"stopped"\|stopped' "$T/backupd.log" || fail "no clean stop in the log"

cat >"$T/bad.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
[component.db]
type = command
command = true
schedule.continuous = on
CONF
run "$TM_BIN/tidemark-backupd" -c "$T/bad.conf" --listen 127.0.0.1:0
[[ $RUN_RC != 0 ]] || fail "continuous on a command component was accepted"
assert_contains "$RUN_ERR" "bad.conf:" "the refusal names the file"
assert_contains "$RUN_ERR" "schedule.continuous needs type files" "the refusal says why"
pass
