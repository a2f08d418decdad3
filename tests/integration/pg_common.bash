# Helpers of the PostgreSQL integration tests (pg_*.sh), sourced after
# lib.sh. Not a test itself (the test glob is *.sh).

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

as_pg() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Skip unless PostgreSQL 15 can run here; set up $T for the postgres user, a
# passphrase file and $TMW: tidemark with the repository options on its
# command line (as a site sets archive_command / restore_command), run as
# postgres; then init the repository.
pg_setup() {
        [[ -x $PGBIN/initdb ]] || skip "no PostgreSQL 15 at $PGBIN"
        [[ $(id -u) -eq 0 ]] || skip "needs root to run PostgreSQL as the postgres user"
        id postgres >/dev/null 2>&1 || skip "no postgres user"
        command -v runuser >/dev/null || skip "no runuser"
        tm_setup
        chown postgres: "$T"
        chmod 755 "$T"
        printf '%s' "pg test passphrase" >"$T/pass"
        chown postgres: "$T/pass"
        chmod 600 "$T/pass"
        TMW="$T/tm.sh"
        cat >"$TMW" <<EOF
#!/bin/sh
exec env -u TIDEMARK_PASSWORD -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG TMPDIR="$T" \\
    "$TM_EXE" -r "$T/repo" --password-file "$T/pass" --catalog "$T/catalog-pg.db" "\$@"
EOF
        chmod 755 "$TMW"
        run as_pg "$TMW" init "${TM_KDF_ARGS[@]}"
        assert_rc 0 "init"
        as_pg mkdir -p "$T/sock"
}

# pg_primary DIR PORT [postgresql.conf lines...]: initdb and start a server.
pg_primary() {
        local dir=$1 port=$2
        shift 2
        as_pg "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
                >"$dir.initdb.log" 2>&1 || fail "initdb: $(tail -5 "$dir.initdb.log")"
        {
                echo "listen_addresses = '127.0.0.1'"
                echo "port = $port"
                echo "unix_socket_directories = '$T/sock'"
                echo "wal_level = replica"
                echo "max_wal_senders = 4"
                printf '%s\n' "$@"
        } >>"$dir/postgresql.conf"
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$dir' -m immediate stop"
        as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 60 start >/dev/null ||
                fail "server in $dir did not start: $(tail -5 "$dir.log")"
}

psql_at() {
        local port=$1
        shift
        as_pg "$PGBIN/psql" -X -A -t -q -h "$T/sock" -p "$port" -U postgres -d postgres \
                -v ON_ERROR_STOP=1 "$@"
}

# An epoch (seconds, fractional) plus an offset, as an ISO-8601 UTC instant.
epoch_iso() {
        python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(float(sys.argv[1]) + float(sys.argv[2]), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))" "$1" "$2"
}

# pg_recovers DIR EXPECT WHAT: start a server on the PGDATA in DIR (no
# archiving), wait for it to promote, check that table t holds exactly the
# ids EXPECT (comma-separated), stop it.
pg_recovers() {
        local dir=$1 expect=$2 what=$3 port got
        port=$(free_port)
        on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$dir' -m immediate stop"
        as_pg env HOME="$T" "$PGBIN/pg_ctl" -D "$dir" -l "$dir.log" -w -t 120 \
                -o "-p $port -c archive_mode=off -c unix_socket_directories='$T/sock'" start >/dev/null ||
                fail "$what: the server did not start: $(tail -20 "$dir.log")"
        for _ in $(seq 1 300); do
                [[ $(psql_at "$port" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && break
                sleep 0.2
        done
        [[ $(psql_at "$port" -c "SELECT pg_is_in_recovery()") == f ]] ||
                fail "$what: the server never promoted: $(tail -20 "$dir.log")"
        got=$(psql_at "$port" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
        [[ $got == "$expect" ]] || fail "$what: rows '$got', expected '$expect'; $(tail -20 "$dir.log")"
        log "$what: exactly rows $got"
        as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast stop >/dev/null
}

# stream_start CONNINFO: run tidemark wal-stream (slot tidemark_test) in the
# background as postgres; STREAM_PID is the streamer itself (setpriv execs,
# runuser would stay its parent), its log $T/stream<N>.log.
STREAM_PID=
N_STARTS=0
stream_start() {
        N_STARTS=$((N_STARTS + 1))
        setpriv --reuid=postgres --regid=postgres --init-groups "$TMW" -v wal-stream \
                --postgres "$1" --slot tidemark_test >"$T/stream$N_STARTS.log" 2>&1 &
        STREAM_PID=$!
        [[ $N_STARTS -gt 1 ]] || on_exit '[[ -z $STREAM_PID ]] || kill -9 $STREAM_PID 2>/dev/null || true'
        wait_for 20 "the streamer to start" grep -qs "streaming WAL from" "$T/stream$N_STARTS.log"
}

# wal_stored_until EPOCH: the last recoverable window reaches EPOCH (seconds).
wal_stored_until() {
        run as_pg "$TMW" --json wal-status --component database
        [[ $RUN_RC -eq 0 ]] && python3 - "$RUN_OUT" "$1" <<'EOF'
import datetime, json, sys
w = json.loads(sys.argv[1])["windows"]
latest = datetime.datetime.strptime(w[-1]["latest"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
sys.exit(0 if latest.replace(tzinfo=datetime.timezone.utc).timestamp() >= float(sys.argv[2]) - 1e-6 else 1)
EOF
}
