#!/usr/bin/env bash
# The chaos suite: rounds of randomly chosen faults against the real
# programs, each round ending with proof that nothing committed was lost.
#
#     tests/chaos/run.sh [--rounds N] [--seed N] [--max-seconds S]
#                        [--only A,B] [--skip A,B]
#
# One repository (on a small tmpfs), its catalog (on another), a warm tier
# in s3rver behind tests/fake/s3front.py, and a directory replica. Every
# round changes the source a little (a new "generation", whose content
# manifest is kept), then does one of (chosen with the printed seed; --only
# and --skip narrow the draw):
#
#   bkd_kill_backup   tidemark-backupd runs a backup (REST API) and is
#                     killed -9 at a random moment of it;
#   bkd_kill_after    the backup completes, then the daemon is killed -9 at
#                     a random moment of what follows it: retention and
#                     prune, the replication pass, lifecycle moves to warm;
#   cli_kill_prune    `forget --keep-last 3 --prune` killed -9 mid-way;
#   s3_faults         a backup, a lifecycle pass and a restore while the S3
#                     front injects 500s, SlowDown, resets, truncated bodies
#                     or stalls into a share of the requests;
#   disk_full_repo    a backup while the repository's filesystem is full;
#   disk_full_catalog a backup while the catalog's filesystem is full
#                     (both need root for the tmpfs mounts);
#   mon_kill          tidemark-monitord killed -9 while a runbook backs up
#                     through backupd; restarted on its state, the
#                     execution must read interrupted/failed (or succeeded),
#                     the incident store must read back; then backupd is
#                     killed -9 too;
#   pg_primary_lost   the PostgreSQL primary killed -9 mid base backup
#                     (tests/chaos/pg.bash, which says what is checked);
#   fo_kill           tidemark-failoverd killed -9 mid switchover/failback
#                     (tests/chaos/pg.bash).
#
# The last two need root and PostgreSQL 15 (fo_kill also pgbouncer) and are
# left out without them.
#
# Then, with every fault removed and no daemon running: check --read-data
# passes, every listed snapshot restores byte-exact against the generation
# it was taken from, and the replica (once it exists) passes check
# --read-data; after pg_primary_lost, the same for its own repository and
# every base backup (see pg.bash). Anything else counts as data lost. The
# driver prints rounds run and data lost and exits 1 on any loss.
set -euo pipefail
ROUNDS=20
MAX_SECONDS=0
ONLY='' SKIP=''
while (($#)); do
        case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --seed) export TM_TEST_SEED=$2; shift 2 ;;
        --max-seconds) MAX_SECONDS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --skip) SKIP=$2; shift 2 ;;
        -h | --help) sed -n '2,44p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (--rounds N, --seed N, --max-seconds S, --only A,B, --skip A,B)" >&2; exit 2 ;;
        esac
done
[[ $ROUNDS =~ ^[0-9]+$ && $MAX_SECONDS =~ ^[0-9]+$ ]] || { echo "run.sh: --rounds and --max-seconds take a number" >&2; exit 2; }

. "$(dirname "$0")/../integration/lib.sh"
TM_NAME=chaos
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$TM_SRC/tests/fake/s3env.sh"
s3_start
T0=$(date +%s)
# Under the sanitizers a report must not hide among the failures the faults
# cause on purpose (and a daemon's report among its killed runs): each
# process writes its reports to $T/san.PID, checked at the end.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/san"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/san"

# ---------------------------------------------------------------- layout
SCENARIOS=(bkd_kill_backup bkd_kill_after cli_kill_prune s3_faults)
[[ -x $TM_BIN/tidemark-monitord ]] && SCENARIOS+=(mon_kill)
RFS="$T/repofs" CFS="$T/catfs"
mkdir -p "$RFS" "$CFS"
if is_root && mount -t tmpfs -o size=96m tmpfs "$RFS" 2>/dev/null; then
        on_exit "umount -l '$RFS'"
        mount -t tmpfs -o size=8m tmpfs "$CFS" || fail "cannot mount the catalog tmpfs"
        on_exit "umount -l '$CFS'"
        SCENARIOS+=(disk_full_repo disk_full_catalog)
else
        log "not root or no tmpfs: the disk-full scenarios are left out"
fi
# PostgreSQL 15 as the postgres user (root), pgbouncer and failoverd for the
# failover rounds: tests/chaos/pg.bash
if is_root && [[ -x ${PGBIN:=/usr/lib/postgresql/15/bin}/initdb ]] && id postgres >/dev/null 2>&1 &&
        command -v runuser >/dev/null && command -v setpriv >/dev/null; then
        . "$(dirname "$0")/pg.bash"
        SCENARIOS+=(pg_primary_lost)
        if command -v pgbouncer >/dev/null && [[ -x $TM_BIN/tidemark-failoverd ]]; then
                SCENARIOS+=(fo_kill)
        else
                log "no pgbouncer or tidemark-failoverd: fo_kill is left out"
        fi
else
        log "not root or no PostgreSQL 15 at $PGBIN: pg_primary_lost and fo_kill are left out"
fi
if [[ -n $ONLY ]]; then
        only=()
        for sc in ${ONLY//,/ }; do
                [[ " ${SCENARIOS[*]} " == *" $sc "* ]] || fail "--only: '$sc' is not a scenario that can run here (${SCENARIOS[*]})"
                only+=("$sc")
        done
        SCENARIOS=("${only[@]}")
fi
for sc in ${SKIP//,/ }; do
        for i in "${!SCENARIOS[@]}"; do [[ ${SCENARIOS[$i]} != "$sc" ]] || unset "SCENARIOS[$i]"; done
done
SCENARIOS=("${SCENARIOS[@]}")
((${#SCENARIOS[@]})) || fail "no scenario left to run"
log "scenarios: ${SCENARIOS[*]}"
export TIDEMARK_REPOSITORY="$RFS/repo" TIDEMARK_CATALOG="$CFS/catalog.db"
S="$T/src" R="$T/replica"
mkdir -p "$T/state" "$T/man" "$S"
cat >"$T/tidemark.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
[server]
state_dir = $T/state
shutdown_timeout = 1
[retention]
prune = true
[component.files]
type = files
paths = $S
schedule.full = none
schedule.differential = none
schedule.incremental = none
keep_last = 4
[tier.hot]
age = 2s
schedule = every 1s
[tier.warm]
location = s3:http://127.0.0.1:$PORT/backups/warm
[replica]
location = $R
interval = 1s
CONF
export TIDEMARK_CONFIG="$T/tidemark.conf"
tm_init

# The source: 40 small files and two of 1-3 MiB; each generation rewrites
# one large file and a few small ones and adds one.
python3 - "$S" "$TM_SEED" <<'EOF'
import os, random, sys
root, r = sys.argv[1], random.Random(int(sys.argv[2]))
for d in range(4):
    os.makedirs(os.path.join(root, 'd%d' % d))
    for i in range(10):
        with open(os.path.join(root, 'd%d' % d, 'f%02d' % i), 'wb') as f:
            f.write(os.urandom(r.randint(100, 60000)))
for i in range(2):
    with open(os.path.join(root, 'L%d.bin' % i), 'wb') as f:
        f.write(os.urandom(r.randint(1 << 20, 3 << 20)))
EOF

GEN=0
new_generation() {
        GEN=$((GEN + 1))
        python3 - "$S" "$TM_SEED" "$GEN" <<'EOF'
import os, random, sys
root, seed, gen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed * 1000 + gen)
with open(os.path.join(root, 'L%d.bin' % r.randrange(2)), 'wb') as f:
    f.write(os.urandom(r.randint(1 << 20, 3 << 20)))
for _ in range(5):
    p = os.path.join(root, 'd%d' % r.randrange(4), 'f%02d' % r.randrange(10))
    with open(p, 'wb') as f:
        f.write(os.urandom(r.randint(100, 60000)))
with open(os.path.join(root, 'd%d' % r.randrange(4), 'g%04d' % gen), 'wb') as f:
    f.write(os.urandom(r.randint(100, 200000)))
EOF
        content_manifest "$S" "$T/man/$GEN"
}

# ---------------------------------------------------------------- helpers
now_ms() { echo $(($(date +%s%N) / 1000000)); }
rand_ms() { echo $((RANDOM % $1)); } # [0, N) ms
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

bkd_up() { # start the daemon for this round
        rm -f "$T/backupd.port"
        bkd_start "$T/tidemark.conf" 2>/dev/null
}
bkd_kill() {
        kill -9 "$BKD_PID" 2>/dev/null || true
        wait "$BKD_PID" 2>/dev/null || true
}
post_backup() { # STRATEGY [COMPONENT]: queue a backup; sets JOB
        http POST /api/v1/backup -H 'Content-Type: application/json' \
                -d "{\"strategy\":\"$1\",\"components\":[\"${2:-files}\"]}"
        [[ $HTTP_STATUS == 202 ]] || { bkd_kill; fail "POST /api/v1/backup answered $HTTP_STATUS: $HTTP_BODY"; }
        JOB=$(json_get 'd["jobs"][0]["job_id"]' <<<"$HTTP_BODY")
}
job_state() { curl -s "$BKD_URL/api/v1/jobs/$JOB" | json_get 'd["state"]' 2>/dev/null || echo unknown; }
# how long the last observed backup job took (the kill window of the next)
BKD_JOB_MS=1000
strategy() { local s=(full incremental differential); echo "${s[RANDOM % 3]}"; }

# ---------------------------------------------------------------- scenarios
bkd_kill_backup() {
        bkd_up
        post_backup "$(strategy)"
        local d
        d=$(rand_ms $((BKD_JOB_MS + 300)))
        sleep_ms "$d"
        NOTE="killed ${d} ms after the POST, job $JOB was $(job_state)"
        bkd_kill
}

bkd_kill_after() {
        bkd_up
        post_backup "$(strategy)"
        local i s d t0
        t0=$(now_ms)
        # bounded by the clock: a job can wait long behind queued lifecycle
        # jobs (docs/reliability.md), and the round must still end
        for ((i = 0; $(now_ms) - t0 < 30000; i++)); do
                s=$(job_state)
                [[ $s == succeeded || $s == failed || $s == partial ]] && break
                sleep 0.05
        done
        BKD_JOB_MS=$(($(now_ms) - t0))
        d=$(rand_ms 3000)
        sleep_ms "$d"
        NOTE="job $JOB $s, killed ${d} ms later (retention, replication, lifecycle)"
        bkd_kill
}

cli_kill_prune() {
        run tm backup -q "$S"
        "$TM_EXE" forget --keep-last 3 --prune >"$T/prune.out" 2>&1 &
        local pid=$! d
        d=$(rand_ms 600)
        sleep_ms "$d"
        kill -9 "$pid" 2>/dev/null && NOTE="backup rc $RUN_RC; prune killed at ${d} ms" ||
                NOTE="backup rc $RUN_RC; prune finished before ${d} ms"
        wait "$pid" 2>/dev/null || true
}

s3_faults() {
        local modes=(mix mix 500 503 reset truncate stall) m rate
        m=${modes[RANDOM % ${#modes[@]}]}
        rate=0.$((RANDOM % 4 + 1))
        [[ $m != stall ]] || rate=0.05
        fault "{\"mode\":\"$m\",\"rate\":$rate,\"stall_s\":2}"
        run tm backup -q "$S"
        local b=$RUN_RC
        sleep 2 # packs older than 2 s move
        run tm tier run
        local t=$RUN_RC
        rm -rf "$T/fr"
        run tm restore latest --target "$T/fr"
        local r=$RUN_RC
        fault '{"mode":"off"}'
        NOTE="$m at $rate: backup rc $b, tier run rc $t, restore rc $r"
        if ((b == 0 && r == 0)); then
                # a restore that says it succeeded must be right, faults or
                # not (only judged when the backup made "latest" this one)
                local got
                got=$(restored_manifest "$T/fr" latest)
                if ! diff -q "$T/man/$GEN" "$got" >/dev/null; then
                        loss "a restore under S3 faults ($m) exited 0 but is not byte-exact"
                fi
        fi
}

# ---- tidemark-monitord killed -9 while a runbook backs up through backupd
MON_PID='' MON_URL='' MON_RB_MS=3000 MON_INC=''
mon_conf() { # the monitord configuration for this round's backupd
        mkdir -p "$T/mstate"
        cat >"$T/monitor.conf" <<CONF
[monitor]
state_dir = $T/mstate
scrape_interval = 1s
access_log = none
[service.backupd]
url = $BKD_URL
tier = critical
[runbook.chaos_backup]
description = a backup of the files component through backupd, then wait for it
step = http POST backupd /api/v1/backup {"strategy": "incremental", "components": ["files"]}
step = wait_jobs 60s
step = command echo "backed up for {incident_id}"
CONF
}
mon_up() { # start monitord on the state of the earlier rounds; 1 when it does not
        rm -f "$T/mon.port"
        "$TM_BIN/tidemark-monitord" -c "$T/monitor.conf" --listen 127.0.0.1:0 \
                --port-file "$T/mon.port" 2>>"$T/monitord.log" &
        MON_PID=$!
        on_exit "kill -9 $MON_PID 2>/dev/null"
        local i
        for ((i = 0; i < 200; i++)); do
                [[ -s $T/mon.port ]] && break
                kill -0 "$MON_PID" 2>/dev/null || return 1
                sleep 0.05
        done
        [[ -s $T/mon.port ]] || return 1
        MON_URL="http://127.0.0.1:$(cat "$T/mon.port")"
}
mon_kill9() {
        kill -9 "$MON_PID" 2>/dev/null || true
        wait "$MON_PID" 2>/dev/null || true
}
mhttp() { # METHOD PATH [BODY]: sets HTTP_STATUS and HTTP_BODY
        HTTP_STATUS=$(curl -s -o "$T/.m.body" -w '%{http_code}' -X "$1" \
                ${3:+-H 'Content-Type: application/json' --data "$3"} "$MON_URL$2") || HTTP_STATUS=000
        HTTP_BODY=$(cat "$T/.m.body" 2>/dev/null || true)
}
mon_kill() {
        local exe d s i
        bkd_up
        mon_conf
        mon_up || { loss "tidemark-monitord does not start: $(tail -n 3 "$T/monitord.log")"; bkd_kill; return; }
        # an incident for the runbook to write its steps on (one per round:
        # the store keeps growing across the rounds)
        mhttp POST /api/v1/incidents "{\"title\": \"chaos round $ROUND\", \"severity\": \"low\"}"
        [[ $HTTP_STATUS == 201 ]] || { mon_kill9; bkd_kill; fail "POST /api/v1/incidents answered $HTTP_STATUS: $HTTP_BODY"; }
        MON_INC=$(json_get 'd["id"]' <<<"$HTTP_BODY")
        mhttp POST /api/v1/runbooks/execute "{\"runbook\": \"chaos_backup\", \"context\": {\"incident_id\": \"$MON_INC\"}}"
        [[ $HTTP_STATUS == 202 ]] || { mon_kill9; bkd_kill; fail "runbook execute answered $HTTP_STATUS: $HTTP_BODY"; }
        exe=$(json_get 'd["execution_id"]' <<<"$HTTP_BODY")
        d=$(rand_ms $((MON_RB_MS + 300)))
        sleep_ms "$d"
        mhttp GET "/api/v1/runbooks/executions/$exe"
        s=$(json_get 'd["state"]' <<<"$HTTP_BODY" 2>/dev/null || echo "?")
        mon_kill9
        NOTE="monitord killed ${d} ms into runbook execution $exe ($s)"
        # the state of the killed daemon is the next one's
        if ! mon_up; then
                loss "tidemark-monitord does not start after a kill -9: $(tail -n 3 "$T/monitord.log")"
                bkd_kill
                return
        fi
        mhttp GET "/api/v1/runbooks/executions/$exe"
        s=$(json_get 'd["state"]' <<<"$HTTP_BODY" 2>/dev/null || echo "unreadable")
        NOTE+=", after the restart: HTTP $HTTP_STATUS, $s"
        case $s in
        interrupted | failed) ;;
        succeeded)
                # not killed in time: the duration sets the next kill window
                MON_RB_MS=$(json_get 'max(300, int(d["duration_seconds"] * 1000))' <<<"$HTTP_BODY" 2>/dev/null || echo 3000) ;;
        *) loss "runbook execution $exe after monitord's kill -9 and restart: HTTP $HTTP_STATUS, state '$s': $HTTP_BODY" ;;
        esac
        mhttp GET "/api/v1/incidents/$MON_INC"
        if [[ $HTTP_STATUS != 200 ]] || ! json_get 'd["id"]' <<<"$HTTP_BODY" >/dev/null 2>&1; then
                loss "incident $MON_INC unreadable after monitord's kill -9: HTTP $HTTP_STATUS $HTTP_BODY"
        fi
        mhttp GET /api/v1/incidents
        [[ $HTTP_STATUS == 200 ]] && json_get 'd' <<<"$HTTP_BODY" >/dev/null 2>&1 ||
                loss "the incident list is unreadable after monitord's kill -9: HTTP $HTTP_STATUS"
        kill "$MON_PID" 2>/dev/null || true
        i=0
        wait "$MON_PID" 2>/dev/null || i=$?
        ((i == 0)) || { ANOMALIES=$((ANOMALIES + 1)); log "ANOMALY (round $ROUND): monitord exited $i on SIGTERM"; }
        # the backup the runbook started may still run: backupd dies too
        d=$(rand_ms 2000)
        sleep_ms "$d"
        NOTE+="; backupd killed ${d} ms later"
        bkd_kill
}

fill() { # DIR: fill its filesystem (leave a few KiB)
        dd if=/dev/zero of="$1/.chaos-filler" bs=64k 2>/dev/null || true
}

disk_full_common() { # WHAT DIR
        fill "$2"
        run tm backup -q "$S"
        NOTE="backup on a full $1 filesystem: rc $RUN_RC: $(tail -n 1 <<<"$RUN_ERR")"
        if ((RUN_RC != 0)) && [[ $(tail -n 1 <<<"$RUN_ERR") != "tidemark: error: "* ]]; then
                # not a loss, but not the one-line error the house wants
                show_run
                ANOMALIES=$((ANOMALIES + 1))
                log "ANOMALY (round $ROUND): backup on a full $1 filesystem ended without a 'tidemark: error:' line"
        fi
        rm -f "$2/.chaos-filler"
}
disk_full_repo() { disk_full_common repository "$RFS"; }
disk_full_catalog() { disk_full_common catalog "$CFS"; }

# ---------------------------------------------------------------- verification
LOST=0
ANOMALIES=0
loss() {
        LOST=$((LOST + 1))
        log "LOSS (round $ROUND, seed $TM_SEED): $*"
}

# restored_manifest DIR SNAP: the content manifest of the snapshot's copy
# of the source (a snapshot of absolute paths restores under DIR/<path>).
restored_manifest() {
        local d=$1
        [[ -d $1$S ]] && d=$1$S
        content_manifest "$d" "$1.manifest"
        echo "$1.manifest"
}

declare -A SNAP_GEN=()
verify_round() {
        local ids id got
        run tm check --read-data
        if [[ $RUN_RC -ne 0 ]] || ! grep -qi 'no errors were found' <<<"$RUN_OUT$RUN_ERR"; then
                show_run
                loss "check --read-data failed"
        fi
        ids=$(snapshot_ids)
        for id in $ids; do
                [[ -n ${SNAP_GEN[$id]:-} ]] || SNAP_GEN[$id]=$GEN
                rm -rf "$T/vr" "$T/vr.manifest"
                run tm restore "$id" --target "$T/vr"
                if [[ $RUN_RC -ne 0 ]]; then
                        show_run
                        loss "snapshot ${id:0:8} (generation ${SNAP_GEN[$id]}) does not restore"
                        continue
                fi
                got=$(restored_manifest "$T/vr" "$id")
                diff -q "$T/man/${SNAP_GEN[$id]}" "$got" >/dev/null ||
                        loss "snapshot ${id:0:8} does not restore generation ${SNAP_GEN[$id]} byte-exact"
        done
        NSNAP=$(grep -c . <<<"$ids" || true)
        if [[ -f $R/config ]]; then
                run tm --repo "$R" --catalog "$T/replica.db" check --read-data
                if [[ $RUN_RC -ne 0 ]] || ! grep -qi 'no errors were found' <<<"$RUN_OUT$RUN_ERR"; then
                        show_run
                        loss "the replica fails check --read-data"
                fi
        fi
}

# ---------------------------------------------------------------- rounds
declare -A COUNT=()
ROUND=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        if ((MAX_SECONDS > 0 && $(date +%s) - T0 >= MAX_SECONDS)); then
                log "time budget of ${MAX_SECONDS}s spent after $((ROUND - 1)) rounds"
                break
        fi
        new_generation
        sc=${SCENARIOS[RANDOM % ${#SCENARIOS[@]}]}
        COUNT[$sc]=$((${COUNT[$sc]:-0} + 1))
        NOTE=""
        t=$(now_ms)
        "$sc"
        verify_round
        [[ $sc != pg_primary_lost ]] || verify_pg
        # keep the number of snapshots (and the verification time) bounded
        if ((NSNAP > 6)); then
                run tm forget --keep-last 4 --prune
                assert_rc 0 "forget --keep-last 4 --prune (between rounds)"
        fi
        log "round $ROUND/$ROUNDS: $sc: $NOTE; $NSNAP snapshot(s) verified; $(($(now_ms) - t)) ms"
done
ROUND=$((ROUND - 1))
summary=""
for sc in "${!COUNT[@]}"; do summary+=" $sc=${COUNT[$sc]}"; done
log "seed $TM_SEED: $ROUND rounds in $(($(date +%s) - T0)) s ($summary ), data lost: $LOST, anomalies (not losses): $ANOMALIES${FO_OPERATOR:+, fo_kill rounds that needed the operator action: $FO_OPERATOR, standbys rebuilt: $FO_REBUILT}"
for f in "$T"/san.*; do
        [[ -e $f ]] || continue
        head -n 30 "$f" >&2
        fail "a sanitizer report ($f); replay with tests/chaos/run.sh --rounds $ROUNDS --seed $TM_SEED"
done
((LOST == 0)) || fail "$LOST loss(es); replay with tests/chaos/run.sh --rounds $ROUNDS --seed $TM_SEED"
((ROUND > 0)) || fail "no round ran"
pass
