# shellcheck shell=bash
#
# The PostgreSQL scenarios of the chaos suite, sourced by tests/chaos/run.sh
# when PostgreSQL 15 can run here (root, the postgres user):
#
#   pg_primary_lost  tidemark-backupd with a postgres component (base backup
#                    + WAL stream, its own repository under $T/pg) takes a
#                    base backup while rows are written; the primary is
#                    killed -9 at a random moment of it, then restarted. The
#                    job must end (failed, or succeeded when the kill came
#                    after it), the stream must store every acknowledged
#                    row, and then, with no daemon running: check
#                    --read-data passes on that repository and every listed
#                    base backup restores, starts (replaying the stored
#                    WAL) and holds every acknowledged row.
#   fo_kill          tidemark-failoverd (alpha + its streaming standby beta,
#                    pgbouncer in front, from tests/integration/
#                    failover_env.bash; [failover] automatic = on) is
#                    killed -9 at a random moment of a planned switchover
#                    (or of a failback, when beta is the primary), then
#                    restarted on its state (the programs it ran, a hook
#                    or pg_ctl, are killed with it, as systemd's
#                    KillMode=control-group does). Sampled every ~100 ms from the
#                    switchover on: never two writable primaries; once the
#                    daemon has settled (30 s) at least one writable
#                    primary, else the operator action of
#                    docs/reliability.md is taken and counted; every
#                    acknowledged row on the primary.
#                    TM_CHAOS_FO_KILL_AFTER=STEP (fence, stop-old-primary,
#                    promote, ...) kills right after that step of the
#                    job's log instead of at a random moment.
#
# Lazily set up on the first round that draws them; a broken setup fails
# the run (it is not a round's fault).

. "$TM_SRC/tests/integration/failover_env.bash"
# failover_env.bash unsets the repository environment of the files rounds
export TIDEMARK_REPOSITORY="$RFS/repo" TIDEMARK_CATALOG="$CFS/catalog.db"
export TIDEMARK_PASSWORD="correct horse battery staple"
# the servers and the restore_command must not see the files repository
as_pg() {
        runuser -u postgres -- env -u TIDEMARK_PASSWORD -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG \
                -u TIDEMARK_CONFIG -u ASAN_OPTIONS -u UBSAN_OPTIONS "$@"
}
PG_T="$T/pg" FO_T="$T/fo"
chmod 755 "$T"

# the write load: one row per transaction on PORT, each acknowledged id
# appended to FILE; ids continue from the file; stops when FILE.stop exists
writer_start() { # PORT FILE
        rm -f "$2.stop"
        touch "$2"
        (
                i=$(($(tail -n 1 "$2" 2>/dev/null || echo 0) + 1))
                while [[ ! -e $2.stop ]]; do
                        if psql_at "$1" -c "INSERT INTO t (id) VALUES ($i)" >/dev/null 2>&1; then
                                echo "$i" >>"$2"
                        fi
                        i=$((i + 1))
                        sleep 0.02
                done
        ) &
        WRITER_PID=$!
        on_exit "touch '$2.stop'; kill $WRITER_PID 2>/dev/null"
}
writer_stop() { # FILE
        touch "$1.stop"
        wait "$WRITER_PID" 2>/dev/null || true
}
# missing_rows PORT FILE: the acknowledged ids not on the server (up to 5)
missing_rows() {
        psql_at "$1" -c "SELECT id FROM t" | LC_ALL=C sort >"$2.have" || { echo "(cannot read table t)"; return; }
        LC_ALL=C sort "$2" | LC_ALL=C comm -23 - "$2.have" | head -5 | tr '\n' ' '
}
pg_is_up() { psql_at "$1" -c "SELECT 1" >/dev/null 2>&1; }
# writable PORT: a primary that accepts writes (not in recovery, not fenced)
writable() {
        [[ $(psql_at "$1" -c "SELECT NOT pg_is_in_recovery() AND current_setting('default_transaction_read_only') = 'off'" 2>/dev/null) == t ]]
}

# ================================================================ pg_primary_lost
PGL_READY=0 PGL_MS=3000 PGL_PORT=''
pgtm() { # the CLI on the postgres repository, as postgres
        as_pg "$TM_EXE" -r "$PG_T/repo" --password-file "$PG_T/pass" \
                --catalog "$PG_T/catalog-cli.db" "$@"
}
pgl_setup() {
        mkdir -p "$PG_T"
        chown postgres: "$PG_T"
        as_pg mkdir -p "$PG_T/sock" "$PG_T/state"
        printf '%s' "chaos pg passphrase" >"$PG_T/pass"
        chown postgres: "$PG_T/pass"
        chmod 600 "$PG_T/pass"
        run pgtm init "${TM_KDF_ARGS[@]}"
        assert_rc 0 "init of the postgres repository"
        PGL_PORT=$(free_port)
        as_pg "$PGBIN/initdb" -D "$PG_T/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
                >"$PG_T/initdb.log" 2>&1 || fail "initdb: $(tail -5 "$PG_T/initdb.log")"
        # fsync off: a kill -9 of the server keeps the page cache, and the
        # machine is shared
        cat >>"$PG_T/primary/postgresql.conf" <<EOC
listen_addresses = '127.0.0.1'
port = $PGL_PORT
unix_socket_directories = '$PG_T/sock'
wal_level = replica
max_wal_senders = 4
fsync = off
EOC
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$PG_T/primary' -m immediate stop"
        pgl_primary_start || fail "the chaos primary did not start: $(tail -5 "$PG_T/primary.log")"
        psql_at "$PGL_PORT" -c "CREATE TABLE t (id bigint PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())"
        # some bulk, so that a base backup lasts long enough to be hit
        psql_at "$PGL_PORT" -c "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM generate_series(1, 300000) g"
        cat >"$PG_T/bkd.conf" <<CONF
[repository]
location = $PG_T/repo
catalog = $PG_T/catalog-bkd.db
password_file = $PG_T/pass
[server]
state_dir = $PG_T/state
access_log = none
shutdown_timeout = 5
[component.database]
type = postgres
host = $PG_T/sock
port = $PGL_PORT
user = postgres
slot = tm_chaos
staging = $PG_T
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
schedule.continuous = on
CONF
        PGL_READY=1
}
pgl_primary_start() { # after a kill -9 the orphaned backends take a moment to go
        local i
        for ((i = 0; i < 60; i++)); do
                as_pg "$PGBIN/pg_ctl" -D "$PG_T/primary" -l "$PG_T/primary.log" -w -t 60 start \
                        >/dev/null 2>&1 && return 0
                sleep 0.5
        done
        return 1
}
pgl_bkd_up() {
        local pw=$TIDEMARK_PASSWORD
        unset TIDEMARK_PASSWORD
        bkd_start "$PG_T/bkd.conf" 2>/dev/null
        export TIDEMARK_PASSWORD=$pw
}
pgl_metric() { curl -s "$BKD_URL/metrics" | awk -v n="$1" '$1 ~ "^"n"\\{" && $1 ~ /component="database"/ {print $2}'; }
pgl_stream_up() { [[ $(pgl_metric pg_wal_stream_up) == 1 ]]; }
# the WAL up to the last acknowledged row is in the repository
pgl_wal_stored() {
        local last
        last=$(psql_at "$PGL_PORT" -c "SELECT extract(epoch FROM max(ts)) FROM t") || return 1
        # as root, while the daemon (root) writes the repository
        run env -u TIDEMARK_PASSWORD -u TIDEMARK_CONFIG "$TM_EXE" -r "$PG_T/repo" --password-file "$PG_T/pass" \
                --catalog "$PG_T/catalog-root.db" --json wal-status --component database
        # no base backup yet: nothing is recoverable, nothing to wait for
        [[ $RUN_RC -ne 0 && $RUN_ERR == *"has no PostgreSQL base backup"* ]] && return 0
        [[ $RUN_RC -eq 0 ]] && python3 - "$RUN_OUT" "$last" <<'EOF'
import datetime, json, sys
w = json.loads(sys.argv[1])["windows"]
if not w:
    sys.exit(0)  # no base backup yet: nothing is recoverable, nothing to wait for
latest = datetime.datetime.strptime(w[-1]["latest"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
sys.exit(0 if latest.replace(tzinfo=datetime.timezone.utc).timestamp() >= float(sys.argv[2]) - 1e-6 else 1)
EOF
}
pgl_job_final() {
        PGL_STATE=$(job_state)
        [[ $PGL_STATE != queued && $PGL_STATE != running && $PGL_STATE != unknown ]]
}

pg_primary_lost() {
        local d d2 pid n0 i
        ((PGL_READY)) || pgl_setup
        pg_is_up "$PGL_PORT" || pgl_primary_start || fail "the chaos primary does not start: $(tail -5 "$PG_T/primary.log")"
        pgl_bkd_up
        wait_for 60 "the daemon's WAL stream" pgl_stream_up
        writer_start "$PGL_PORT" "$PG_T/acked"
        sleep 0.3
        post_backup full database
        d=$(rand_ms $((PGL_MS + 300)))
        sleep_ms "$d"
        pid=$(head -n 1 "$PG_T/primary/postmaster.pid" 2>/dev/null || echo)
        [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null
        PGL_STATE=$(job_state)
        NOTE="primary killed -9 ${d} ms into base backup job $JOB ($PGL_STATE)"
        # a kill after the end: the next window is shorter
        [[ $PGL_STATE != succeeded ]] || PGL_MS=$((d * 3 / 4 + 100))
        d2=$(rand_ms 3000)
        sleep_ms "$d2"
        pgl_primary_start || fail "the chaos primary does not restart: $(tail -5 "$PG_T/primary.log")"
        NOTE+=", restarted ${d2} ms later"
        for ((i = 0; i < 120; i++)); do pgl_job_final && break; sleep 0.5; done
        if ! pgl_job_final; then
                loss "base backup job $JOB still '$PGL_STATE' 60 s after the primary came back"
        fi
        NOTE+=", job $PGL_STATE"
        # rows go on after the restart and must all reach the repository
        n0=$(wc -l <"$PG_T/acked")
        for ((i = 0; i < 100; i++)); do (($(wc -l <"$PG_T/acked") > n0 + 10)) && break; sleep 0.1; done
        writer_stop "$PG_T/acked"
        if ! wait_for_quiet 90 pgl_wal_stored; then
                loss "the WAL of the last acknowledged row did not reach the repository within 90 s of the primary's restart ($(pgl_metric pg_wal_stream_errors_total) stream errors)"
        fi
        bkd_stop TERM
        ((BKD_RC == 0)) || { ANOMALIES=$((ANOMALIES + 1)); log "ANOMALY (round $ROUND): backupd exited $BKD_RC on SIGTERM"; }
}
wait_for_quiet() { # SECONDS CMD...: like wait_for, bound by the clock, without failing
        local end=$(($(date +%s) + $1))
        shift
        while (($(date +%s) < end)); do "$@" && return 0; sleep 0.2; done
        "$@"
}

# after every pg_primary_lost round: the repository's invariants, and every
# listed base backup restored, started and checked for every acknowledged row
verify_pg() {
        local ids id port miss n=0
        ((PGL_READY)) || return 0
        chown -R postgres: "$PG_T/repo"
        run pgtm check --read-data
        if [[ $RUN_RC -ne 0 ]] || ! grep -qi 'no errors were found' <<<"$RUN_OUT$RUN_ERR"; then
                show_run
                loss "check --read-data failed on the postgres repository"
        fi
        run pgtm --json snapshots --component database
        ids=$(json_get '"\n".join(s["id"] for s in d)' <<<"$RUN_OUT" 2>/dev/null) ||
                { show_run; loss "cannot list the base backups"; return; }
        for id in $ids; do
                n=$((n + 1))
                rm -rf "$PG_T/r"
                run pgtm restore "$id" --component database --target "$PG_T/r"
                if [[ $RUN_RC -ne 0 ]]; then
                        show_run
                        loss "base backup ${id:0:8} does not restore"
                        continue
                fi
                port=$(free_port)
                if ! as_pg "$PGBIN/pg_ctl" -D "$PG_T/r" -l "$PG_T/r.log" -w -t 120 \
                        -o "-p $port -c archive_mode=off -c unix_socket_directories='$PG_T/sock'" start >/dev/null 2>&1; then
                        loss "base backup ${id:0:8} restored but the server does not start: $(tail -n 5 "$PG_T/r.log")"
                        continue
                fi
                wait_for_quiet 60 eval "[[ \$(psql_at $port -c 'SELECT pg_is_in_recovery()' 2>/dev/null) == f ]]" ||
                        loss "base backup ${id:0:8}: the restored server never promoted: $(tail -n 5 "$PG_T/r.log")"
                miss=$(missing_rows "$port" "$PG_T/acked")
                [[ -z $miss ]] || loss "base backup ${id:0:8} restored without acknowledged rows: $miss"
                as_pg "$PGBIN/pg_ctl" -D "$PG_T/r" -m immediate stop >/dev/null 2>&1 || true
        done
        NOTE+="; $n base backup(s) restored with all $(wc -l <"$PG_T/acked") rows"
        if ((n > 2)); then
                run pgtm forget --component database --keep-last 2 --prune
                assert_rc 0 "forget --component database --keep-last 2 --prune (between rounds)"
        fi
        rm -rf "$PG_T/r"
}

# ================================================================ fo_kill
FO_READY=0 FO_PID=''
declare -A FO_MS=([failover]=4000 [failback]=12000)
fo_setup() {
        local T=$FO_T
        mkdir -p "$T"
        fo_cluster
        # automatic failover on; the daemon itself is started by fo_up (its
        # pid is the daemon's: setpriv execs)
        FO_PGBIN=$T/pgbin fo_config "automatic = on
failure_threshold = 3"
        # the daemon's PostgreSQL programs; with TM_CHAOS_FO_KILL_AFTER=fence
        # its "pg_ctl stop" waits 5 s, so that the kill lands between the
        # fence and the stop (the ~100 ms gap is too short to hit by polling)
        mkdir -p "$T/pgbin"
        ln -sf "$PGBIN"/* "$T/pgbin/"
        rm -f "$T/pgbin/pg_ctl"
        cat >"$T/pgbin/pg_ctl" <<EOC
#!/bin/sh
case " \$* " in *" stop "*) [ "${TM_CHAOS_FO_KILL_AFTER:-}" != fence ] || sleep 5 ;; esac
exec '$PGBIN/pg_ctl' "\$@"
EOC
        chmod 755 "$T/pgbin/pg_ctl"
        on_exit '[[ -z $FO_PID ]] || kill -9 $FO_PID 2>/dev/null || true'
        FO_READY=1
}
fo_up() {
        rm -f "$FO_T/state/port"
        setpriv --reuid=postgres --regid=postgres --init-groups env -u TIDEMARK_PASSWORD \
                -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG -u TIDEMARK_CONFIG "$FOD" \
                -c "$FO_T/tidemark.conf" --listen 127.0.0.1:0 --port-file "$FO_T/state/port" \
                >>"$FO_T/failoverd.log" 2>&1 &
        FO_PID=$!
        local i
        for ((i = 0; i < 200; i++)); do
                [[ -s $FO_T/state/port ]] && break
                kill -0 "$FO_PID" 2>/dev/null || return 1
                sleep 0.05
        done
        [[ -s $FO_T/state/port ]] || return 1
        API="http://127.0.0.1:$(cat "$FO_T/state/port")"
}
# the daemon and what it runs (a hook, pg_ctl): systemd's default
# KillMode=control-group ends them with a crashed daemon
fo_kill9() {
        [[ -z $FO_PID ]] || pkill -9 -P "$FO_PID" 2>/dev/null || true
        kill -9 "$FO_PID" 2>/dev/null || true
        wait "$FO_PID" 2>/dev/null || true
        FO_PID=
}
fo_in() { local T=$FO_T; "$@"; } # the helpers of failover_env.bash use $T
fo_api() { fo_in api "$@"; }
fo_writables() { # the writable sites, space-separated
        local w=""
        writable "$P_ALPHA" && w+="alpha "
        writable "$P_BETA" && w+="beta "
        echo "$w"
}
# the sampler: the set of writable sites every ~100 ms into FILE
sampler_start() {
        rm -f "$1.stop"
        (
                while [[ ! -e $1.stop ]]; do
                        echo "$(date +%s.%N) $(fo_writables)" >>"$1"
                        sleep 0.1
                done
        ) &
        SAMPLER_PID=$!
        on_exit "touch '$1.stop'; kill $SAMPLER_PID 2>/dev/null"
}
sampler_stop() {
        touch "$1.stop"
        wait "$SAMPLER_PID" 2>/dev/null || true
}
# streaming SITE: is it a standby streaming from the other site?
streaming() {
        local p=$P_ALPHA
        [[ $1 == beta ]] && p=$P_BETA
        [[ $(psql_at "$p" -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null) == streaming ]]
}
fo_job_final() {
        fo_api GET "/api/v1/jobs/$1"
        FO_STATE=$(jq_ "$BODY" 'd["state"]' 2>/dev/null || echo "?")
        [[ $FO_STATE == succeeded || $FO_STATE == failed || $FO_STATE == interrupted ]]
}

fo_kill() {
        local w op body job d t0 i miss act=""
        ((FO_READY)) || fo_setup
        fo_up || fail "failoverd does not start: $(tail -n 5 "$FO_T/failoverd.log")"
        w=$(fo_writables)
        case $w in
        "alpha ") op=failover body='{"target_site": "beta", "reason": "chaos"}' ;;
        "beta ") op=failback body='{"reason": "chaos"}' ;;
        *) fo_kill9; fail "fo_kill: the cluster is not in a state to start a round (writable: '$w')" ;;
        esac
        # the standby must stream before a planned switchover
        # (a failback rejoins alpha itself)
        [[ $op == failback ]] || wait_for_quiet 60 streaming beta ||
                { fo_kill9; fail "fo_kill: beta is not a streaming standby of alpha"; }
        : >"$FO_T/samples"
        sampler_start "$FO_T/samples"
        fo_in load_start "$(($(tail -n 1 "$FO_T/acked.all" 2>/dev/null || echo 0) + 1))"
        sleep 0.5
        # nothing slow (python) between the POST and the kill
        local n0 step
        n0=$(wc -l <"$FO_T/failoverd.log")
        t0=$(now_ms)
        CODE=$(curl -s -o "$FO_T/.post" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
                --data "$body" "$API/api/v1/$op") || CODE=000
        if [[ -n ${TM_CHAOS_FO_KILL_AFTER:-} ]]; then
                # a replay of one kill point: right after step X of the job
                for ((i = 0; i < 3000; i++)); do
                        tail -n +"$((n0 + 1))" "$FO_T/failoverd.log" |
                                grep -q "\"msg\":\"step $TM_CHAOS_FO_KILL_AFTER \(succeeded\|failed\|skipped\)" && break
                        sleep 0.01
                done
                d=$(($(now_ms) - t0))
        else
                d=$(rand_ms $((FO_MS[$op] + 300)))
                i=$((d - ($(now_ms) - t0)))
                ((i <= 0)) || sleep_ms "$i"
        fi
        fo_kill9
        [[ $CODE == 202 ]] || fail "POST /api/v1/$op answered $CODE: $(cat "$FO_T/.post")"
        [[ $(cat "$FO_T/.post") =~ \"job_id\":([0-9]+) ]] || fail "POST /api/v1/$op: no job id in $(cat "$FO_T/.post")"
        job=${BASH_REMATCH[1]}
        step=$(tail -n +"$((n0 + 1))" "$FO_T/failoverd.log" | grep -o '"msg":"\(step\|job\) [^"]*' | tail -n 1 | cut -c8-80)
        NOTE="$op (${w% }->) job $job killed -9 at ${d} ms, last logged: ${step:-nothing}"
        # the hook or pg_ctl the daemon ran may still be running: let them end
        sleep 1
        fo_up || { loss "failoverd does not start after a kill -9: $(tail -n 5 "$FO_T/failoverd.log")"; return; }
        fo_job_final "$job"
        NOTE+="; after the restart the job is $FO_STATE"
        # finished before the kill: the next window of this kind is shorter
        [[ $FO_STATE != succeeded ]] || FO_MS[$op]=$((d * 3 / 4 + 100))
        if [[ $FO_STATE != succeeded && $FO_STATE != failed && $FO_STATE != interrupted ]]; then
                # the job's record, not data: an anomaly (docs/reliability.md)
                ANOMALIES=$((ANOMALIES + 1))
                log "ANOMALY (round $ROUND): $op job $job after failoverd's kill -9 and restart: HTTP $CODE, state '$FO_STATE': $BODY"
        fi
        # the daemon settles: its automatic failover may finish the job
        for ((i = 0; i < 30; i++)); do [[ -n $(fo_writables) ]] && break; sleep 1; done
        w=$(fo_writables)
        if [[ -z $w ]]; then
                # the operator action (docs/reliability.md): unfence the site
                # failoverd says is the primary, or start it if it is down
                fo_api GET /api/v1/status
                act=$(jq_ "$BODY" 'd["active_site"]' 2>/dev/null || echo alpha)
                fo_operator_action "$act"
                FO_OPERATOR=$((FO_OPERATOR + 1))
                w=$(fo_writables)
                NOTE+=", no writable primary 30 s after the restart: operator action on $act"
        fi
        fo_in load_stop
        cat "$FO_T/acked" >>"$FO_T/acked.all"
        sampler_stop "$FO_T/samples"
        if grep -q 'alpha beta' "$FO_T/samples"; then
                loss "two writable primaries at once during $op job $job: $(grep -m 3 'alpha beta' "$FO_T/samples" | tr '\n' ';')"
        fi
        case $w in
        "alpha " | "beta ")
                local p=$P_ALPHA
                [[ $w == "beta " ]] && p=$P_BETA
                miss=$(missing_rows "$p" "$FO_T/acked.all")
                [[ -z $miss ]] || loss "acknowledged rows missing on the primary $w after $op job $job: $miss"
                NOTE+=", primary ${w% }, all $(wc -l <"$FO_T/acked.all") rows"
                ;;
        "") loss "no writable primary after $op job $job, the daemon's restart and the operator action" ;;
        *) ;; # two: counted above
        esac
        fo_ready_next
        fo_kill9
}

# fo_operator_action SITE: make SITE the writable primary again
fo_operator_action() {
        local p=$P_ALPHA dir=$FO_T/alpha
        [[ $1 == beta ]] && p=$P_BETA dir=$FO_T/beta
        if ! pg_is_up "$p"; then
                as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 60 start >/dev/null 2>&1 || true
        fi
        if [[ $(psql_at "$p" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == t ]]; then
                psql_at "$p" -c "SELECT pg_promote(true, 60)" >/dev/null 2>&1 || true
        fi
        psql_at "$p" -c "ALTER SYSTEM RESET default_transaction_read_only" >/dev/null 2>&1 &&
                psql_at "$p" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
        wait_for_quiet 20 writable "$p" || true
        log "operator action (round $ROUND): $1 made the writable primary again"
}

# leave the next round a primary and a streaming standby: a failback (the
# daemon's own rejoin) when beta is the primary is the next round's job;
# when alpha is, beta must stream from it, else it is rebuilt
fo_ready_next() {
        local w
        w=$(fo_writables)
        [[ $w == "beta " ]] && return 0
        if [[ $w == "alpha " ]] && ! wait_for_quiet 10 streaming beta; then
                log "fo_kill: beta is rebuilt as a standby of alpha (pg_basebackup)"
                as_pg "$PGBIN/pg_ctl" -D "$FO_T/beta" -m immediate stop >/dev/null 2>&1 || true
                rm -rf "$FO_T/beta"
                psql_at "$P_ALPHA" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active" >/dev/null 2>&1 || true
                as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P_ALPHA" -U postgres -D "$FO_T/beta" -R \
                        -X stream -c fast -C -S standby1 >"$FO_T/basebackup.log" 2>&1 ||
                        fail "pg_basebackup: $(tail -5 "$FO_T/basebackup.log")"
                sed -i '/^port = /d' "$FO_T/beta/postgresql.auto.conf" 2>/dev/null || true
                echo "port = $P_BETA" >>"$FO_T/beta/postgresql.conf"
                as_pg "$PGBIN/pg_ctl" -D "$FO_T/beta" -l "$FO_T/beta.log" -w -t 60 start >/dev/null ||
                        fail "beta did not start: $(tail -5 "$FO_T/beta.log")"
                FO_REBUILT=$((FO_REBUILT + 1))
        fi
}
FO_OPERATOR=0 FO_REBUILT=0
