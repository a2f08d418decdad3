# Sourced by the S3 integration tests (after tests/integration/lib.sh and
# tm_setup): s3_start [FRONT ARGS...] installs s3rver if needed, starts it
# and tests/fake/s3front.py in front of it on free loopback ports, and sets
# S3PORT (s3rver), PORT (the front), S3DATA (s3rver's directory) and the
# AWS credentials; both are stopped when the test exits. fault MODEJSON and
# front_stat KEY talk to the front's admin paths.
FAKE="$TM_SRC/tests/fake"

s3_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

s3_wait_port() {
        local i
        for i in $(seq 1 100); do
                python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$1" 2>/dev/null && return 0
                sleep 0.1
        done
        return 1
}

s3_start() {
        local rc=0 i
        command -v node >/dev/null || skip "node missing (scripts/deps.sh installs nodejs npm)"
        bash "$FAKE/setup.sh" || rc=$?
        [[ $rc -eq 0 ]] || { [[ $rc -eq 77 ]] && skip "s3rver could not be installed"; fail "setup.sh: rc $rc"; }
        S3PORT=$(s3_free_port)
        S3DATA="$T/s3data"
        mkdir -p "$S3DATA"
        node --openssl-legacy-provider "$FAKE/node_modules/s3rver/bin/s3rver.js" -d "$S3DATA" \
                -a 127.0.0.1 -p "$S3PORT" --silent --configure-bucket backups >"$T/s3rver.log" 2>&1 &
        on_exit "kill $!"
        s3_wait_port "$S3PORT" || { cat "$T/s3rver.log" >&2; fail "s3rver did not start"; }
        python3 "$FAKE/s3front.py" --upstream "http://127.0.0.1:$S3PORT" --port-file "$T/front.port" \
                --seed "$TM_SEED" "$@" >"$T/front.log" 2>&1 &
        on_exit "kill $!"
        for i in $(seq 1 100); do [[ -s $T/front.port ]] && break; sleep 0.1; done
        [[ -s $T/front.port ]] || { cat "$T/front.log" >&2; fail "s3front did not start"; }
        PORT=$(cat "$T/front.port")
        export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
        unset AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_CA_BUNDLE TIDEMARK_S3_STORAGE_CLASS
        log "s3rver on $S3PORT, s3front on $PORT"
}

fault() { python3 -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST")).read()' "http://127.0.0.1:$PORT/__fault" "$1"; }

front_stat() { python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))[sys.argv[2]])' "http://127.0.0.1:$PORT/__stats" "$1"; }

# s3_objects PREFIX: number of objects s3rver holds under backups/PREFIX
s3_objects() { find "$S3DATA/backups/$1" -name '*._S3rver_object' 2>/dev/null | wc -l; }
