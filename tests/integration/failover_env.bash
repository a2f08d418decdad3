# shellcheck shell=bash
#
# Shared by the failover_*.sh tests (not a test itself: the glob takes
# *.sh): a real PostgreSQL 15 primary ("alpha") and a streaming standby
# ("beta") made by pg_basebackup, pgbouncer in front of them, and
# tidemark-failoverd running as postgres with the pgbouncer hook from
# contrib/hooks. Everything on 127.0.0.1 with free ports.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[[ -x $PGBIN/initdb ]] || skip "no PostgreSQL 15 at $PGBIN"
[[ $(id -u) -eq 0 ]] || skip "needs root to run PostgreSQL as the postgres user"
id postgres >/dev/null 2>&1 || skip "no postgres user"
command -v runuser >/dev/null || skip "no runuser"
command -v pgbouncer >/dev/null || skip "no pgbouncer"
FOD="$TM_BIN/tidemark-failoverd"
[[ -x $FOD ]] || skip "no tidemark-failoverd at $FOD"

# the daemon would take tm_setup's repository for its own ([repository]
# falls back to the environment): these tests configure none
unset TIDEMARK_REPOSITORY TIDEMARK_PASSWORD TIDEMARK_CATALOG

as_pg() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# psql_at PORT ARGS...: a superuser session on a node
psql_at() {
        local port=$1
        shift
        as_pg "$PGBIN/psql" -X -A -t -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
                -v ON_ERROR_STOP=1 "$@"
}
# pgb ARGS...: a client session through pgbouncer (database "app")
pgb() {
        as_pg "$PGBIN/psql" -X -A -t -q -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d app \
                -v ON_ERROR_STOP=1 "$@"
}

# fo_archiving_primary PASSPHRASE: a repository in $T/repo (the tidemark
# wrapper $TMW runs as postgres with it) and a lone primary alpha on
# $P_ALPHA archiving into it, with a table t (id, ts); for the PITR and
# drill tests, which need no standby.
fo_archiving_primary() {
        printf '%s' "$1" >"$T/pass"
        chown postgres: "$T/pass"
        chmod 600 "$T/pass"
        TMW="$T/tm.sh"
        cat >"$TMW" <<EOC
#!/bin/sh
exec env -u TIDEMARK_PASSWORD -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG TMPDIR="$T" \\
    "$TM_EXE" -r "$T/repo" --password-file "$T/pass" --catalog "$T/catalog-pg.db" "\$@"
EOC
        chmod 755 "$TMW"
        run as_pg "$TMW" init "${TM_KDF_ARGS[@]}"
        assert_rc 0 "init"
        P_ALPHA=$(free_port)
        as_pg mkdir "$T/sock" "$T/state"
        as_pg "$PGBIN/initdb" -D "$T/alpha" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
                >"$T/initdb.log" 2>&1 || fail "initdb: $(tail -5 "$T/initdb.log")"
        cat >>"$T/alpha/postgresql.conf" <<EOC
listen_addresses = '127.0.0.1'
port = $P_ALPHA
unix_socket_directories = '$T/sock'
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '$TMW -q wal-push %p'
fsync = off
EOC
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/alpha' -m immediate stop"
        as_pg "$PGBIN/pg_ctl" -D "$T/alpha" -l "$T/alpha.log" -w -t 60 start >/dev/null ||
                fail "alpha did not start: $(tail -5 "$T/alpha.log")"
        psql_at "$P_ALPHA" -c "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())"
}

# fo_pgbouncer_conf PORT: pgbouncer's files in $T/pgb (as postgres, trusting
# loopback, postgres is its admin, listening on $PGB_PORT), its database
# "app" on the server at PORT.
fo_pgbouncer_conf() {
        printf '"postgres" ""\n' | as_pg tee "$T/pgb/users.txt" >/dev/null
        as_pg tee "$T/pgb/pgbouncer.ini" >/dev/null <<EOC
[databases]
app = host=127.0.0.1 port=$1 dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $T/pgb/users.txt
admin_users = postgres
pool_mode = transaction
server_connect_timeout = 2
server_login_retry = 1
query_wait_timeout = 10
pidfile = $T/pgb/pgbouncer.pid
logfile = $T/pgb/pgbouncer.log
EOC
}

# fo_switch_hook: $T/switch.sh, the pgbouncer hook of contrib/hooks with its
# settings (in a wrapper: inih reads lines of at most 198 bytes)
fo_switch_hook() {
        cat >"$T/switch.sh" <<EOC
#!/bin/sh
export PGBOUNCER_INI='$T/pgb/pgbouncer.ini' PGBOUNCER_DATABASE=app
export PGBOUNCER_ADMIN='host=127.0.0.1 port=$PGB_PORT user=postgres dbname=pgbouncer'
exec '$TM_SRC/contrib/hooks/pgbouncer-switch.sh'
EOC
        chmod 755 "$T/switch.sh"
}

# fo_cluster: start alpha (primary) and beta (its standby), pgbouncer.
fo_cluster() {
        chown postgres: "$T"
        chmod 755 "$T"
        P_ALPHA=$(free_port)
        P_BETA=$(free_port)
        PGB_PORT=$(free_port)
        as_pg mkdir "$T/sock" "$T/pgb" "$T/state"
        as_pg "$PGBIN/initdb" -D "$T/alpha" -U postgres --auth=trust --data-checksums -E UTF8 \
                --locale=C.UTF-8 >"$T/initdb.log" 2>&1 || fail "initdb: $(tail -5 "$T/initdb.log")"
        cat >>"$T/alpha/postgresql.conf" <<EOC
listen_addresses = '127.0.0.1'
port = $P_ALPHA
unix_socket_directories = '$T/sock'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_log_hints = on
hot_standby = on
wal_keep_size = '256MB'
fsync = off
EOC
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/alpha' -m immediate stop"
        as_pg "$PGBIN/pg_ctl" -D "$T/alpha" -l "$T/alpha.log" -w -t 60 start >/dev/null ||
                fail "alpha did not start: $(tail -5 "$T/alpha.log")"
        as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$P_ALPHA" -U postgres -D "$T/beta" -R \
                -X stream -c fast -C -S standby1 >"$T/basebackup.log" 2>&1 ||
                fail "pg_basebackup: $(tail -5 "$T/basebackup.log")"
        echo "port = $P_BETA" >>"$T/beta/postgresql.conf"
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/beta' -m immediate stop"
        as_pg "$PGBIN/pg_ctl" -D "$T/beta" -l "$T/beta.log" -w -t 60 start >/dev/null ||
                fail "beta did not start: $(tail -5 "$T/beta.log")"
        psql_at "$P_ALPHA" -c "CREATE TABLE t (id bigint PRIMARY KEY, site_port int NOT NULL DEFAULT inet_server_port())"

        fo_pgbouncer_conf "$P_ALPHA"
        as_pg pgbouncer -d "$T/pgb/pgbouncer.ini" >/dev/null 2>&1 ||
                fail "pgbouncer did not start: $(tail -5 "$T/pgb/pgbouncer.log")"
        on_exit "kill \$(cat '$T/pgb/pgbouncer.pid')"
        for _ in $(seq 1 50); do pgb -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
        [[ $(pgb -c "SELECT inet_server_port()") == "$P_ALPHA" ]] || fail "pgbouncer does not reach alpha"
}

# fo_config [EXTRA_FAILOVER_KEYS [EXTRA_SECTIONS]]: the daemon's
# configuration, $T/tidemark.conf (its PostgreSQL programs from FO_PGBIN,
# default $PGBIN), and the wrapper of its pgbouncer hook.
fo_config() {
        cat >"$T/tidemark.conf" <<EOC
[server]
access_log = $T/state/access.log

[failover]
primary = alpha
service_tier = critical
pg_bin = ${FO_PGBIN:-$PGBIN}
state_dir = $T/state
check_interval = 1s
connect_timeout = 2s
catchup_timeout = 60s
${1:-}

[site.alpha]
conninfo = host=127.0.0.1 port=$P_ALPHA user=postgres dbname=postgres
pgdata = $T/alpha
auto_failover = on

[site.beta]
conninfo = host=127.0.0.1 port=$P_BETA user=postgres dbname=postgres
pgdata = $T/beta
auto_failover = on

[hook.switch-traffic]
command = $T/switch.sh
timeout = 20s

${2:-}
EOC
        fo_switch_hook
        chown postgres: "$T/tidemark.conf"
}

# fo_start [EXTRA_FAILOVER_KEYS [EXTRA_SECTIONS]]: write the config and
# start the daemon.
fo_start() {
        fo_config "$@"
        # runuser does not pass SIGTERM on: the daemon writes its own pid
        as_pg sh -c 'echo $$ >"$1"; exec "$2" -c "$3" --listen 127.0.0.1:0 --port-file "$4"' sh \
                "$T/state/fod.pid" "$FOD" "$T/tidemark.conf" "$T/state/port" \
                >"$T/failoverd.log" 2>&1 &
        on_exit "kill \$(cat '$T/state/fod.pid'); sleep 0.5"
        for _ in $(seq 1 100); do [[ -s $T/state/port ]] && break; sleep 0.1; done
        [[ -s $T/state/port ]] || fail "failoverd did not start: $(tail -5 "$T/failoverd.log")"
        API="http://127.0.0.1:$(cat "$T/state/port")"
}

# api METHOD PATH [BODY]: sets CODE and BODY
api() {
        local out
        out=$(curl -s -o "$T/.api" -w '%{http_code}' -X "$1" ${3:+-H 'Content-Type: application/json' --data "$3"} "$API$2") || out=000
        CODE=$out
        BODY=$(cat "$T/.api" 2>/dev/null || true)
}

# expect_code WANT WHAT
expect_code() {
        [[ $CODE == "$1" ]] || fail "$2: expected HTTP $1, got $CODE: $BODY"
        log "ok: $2 -> $CODE $BODY" 
}

jq_() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {"d": d}))' "$1" "$2"; }

# wait_job ID [SECONDS]: poll until the job is final; JOB holds its JSON
wait_job() {
        local i
        for ((i = 0; i < ${2:-90} * 5; i++)); do
                api GET "/api/v1/jobs/$1"
                [[ $CODE == 200 ]] || fail "job $1: HTTP $CODE $BODY"
                case $(jq_ "$BODY" 'd["state"]') in succeeded | failed) JOB=$BODY; return 0 ;; esac
                sleep 0.2
        done
        fail "job $1 did not finish: $BODY"
}

# the write load: one row per transaction through pgbouncer, each
# acknowledged id appended to $T/acked; stops when $T/stop exists
load_start() {
        rm -f "$T/stop"
        : >"$T/acked"
        (
                i=${1:-1}
                while [[ ! -e $T/stop ]]; do
                        if pgb -c "INSERT INTO t (id) VALUES ($i)" >/dev/null 2>&1; then
                                echo "$i" >>"$T/acked"
                        fi
                        i=$((i + 1))
                        sleep 0.02
                done
        ) &
        LOAD_PID=$!
        on_exit "touch '$T/stop'; kill $LOAD_PID 2>/dev/null"
}
load_stop() {
        touch "$T/stop"
        wait "$LOAD_PID" || true
}

# every acknowledged id is on the node at PORT
check_no_loss() {
        local missing
        psql_at "$1" -c "SELECT id FROM t" | LC_ALL=C sort >"$T/have"
        missing=$(LC_ALL=C sort "$T/acked" | LC_ALL=C comm -23 - "$T/have" | head -5)
        [[ -z $missing ]] || fail "$2: acknowledged rows missing: $missing"
        log "ok: $2: all $(wc -l <"$T/acked") acknowledged rows present"
}

# fo_stop: stop the daemon (SIGTERM) and fail on any sanitizer report
fo_stop() {
        local pid
        pid=$(cat "$T/state/fod.pid")
        kill "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        ! kill -0 "$pid" 2>/dev/null || fail "failoverd did not stop on SIGTERM"
        if grep -q "Sanitizer" "$T/failoverd.log"; then
                fail "sanitizer report: $(grep -A30 Sanitizer "$T/failoverd.log" | head -40)"
        fi
}
