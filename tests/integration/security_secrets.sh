#!/usr/bin/env bash
# Secrets never appear in logs, /metrics, HTTP answers, error messages or
# core files (issue 9, item 7). Known secrets go in through every door
# tidemark has (the [secrets] section, a *_file, the environment, the
# repository passphrase, bearer tokens, the TLS key), then every output is
# searched for them:
#   1. each daemon with debug logging: every route of its table called with
#      no token, each role's token, and a wrong token that is itself a
#      secret; /metrics, /docs, errors (bad JSON, 404, 401, 403, 413); a
#      backup job; then its log, access log, audit log, state files and
#      every answer are grepped;
#   2. the CLI at -vv, with the right and a wrong passphrase, and a config
#      error on the line after a secret;
#   3. core files: a control process holding a secret dumps a core that
#      contains it (so the search can find one), a daemon killed by SIGQUIT
#      in the same conditions leaves none, and its core limit is 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$(dirname "$0")/security_lib.bash"
((${#SEC_DAEMONS[@]})) || skip "no daemon built"

PASSWORD="repo-passphrase-$RANDOM$RANDOM-zq"
export TIDEMARK_PASSWORD=$PASSWORD
tm_init
S_AWS_KEY="AKIASECRETKEY$RANDOM$RANDOM"
S_AWS_SECRET="aws-secret-$RANDOM$RANDOM-xk"
S_PG="pg-password-$RANDOM$RANDOM-qv"
S_SLACK="https://hooks.slack.example/services/T0/B0/slack$RANDOM$RANDOM"
S_PGHOST="pghost-$RANDOM$RANDOM.internal"
printf '%s\n' "$S_PG" >"$T/pg-password"
chmod 600 "$T/pg-password"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=tidemark -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$T/tls.key" -out "$T/tls.crt" 2>/dev/null
# the private key's base64 body (its longest line) is a secret too
S_TLS=$(grep -v -- ----- "$T/tls.key" | awk '{ print length, $0 }' | sort -rn | head -n1 | cut -d' ' -f2)
WRONG_TOKEN="wrong-token-$RANDOM$RANDOM-secret"
SECRETS=("$PASSWORD" "$S_AWS_KEY" "$S_AWS_SECRET" "$S_PG" "$S_SLACK" "$S_PGHOST" "$S_TLS"
         "$TOKEN_VIEWER" "$TOKEN_OPERATOR" "$TOKEN_ADMIN" "$WRONG_TOKEN")
mkdir -p "$T/src" "$T/answers"
printf 'some data\n' >"$T/src/file.txt"

export AWS_ACCESS_KEY_ID=$S_AWS_KEY SLACK_WEBHOOK_URL=$S_SLACK POSTGRES_HOST=$S_PGHOST
n=0
for d in "${SEC_DAEMONS[@]}"; do
        sec_conf "$d" "$T/$d.conf" "[secrets]
aws_secret_access_key = $S_AWS_SECRET
postgres_password_file = $T/pg-password"
        scheme=https
        if sec_gap "$d" tls; then
                scheme=http
        else
                sed -i "s|^\[server\]|[server]\ntls_cert = $T/tls.crt\ntls_key = $T/tls.key|" "$T/$d.conf"
        fi
        mkdir -p "$T/cwd-$d"
        (cd "$T/cwd-$d" && exec "$TM_BIN/$d" -v -c "$T/$d.conf" --listen 127.0.0.1:0 \
                --port-file "$T/$d.port" 2>>"$T/$d.log") &
        SEC_PID=$!
        on_exit "kill -9 $SEC_PID"
        wait_for 15 "$d listening" test -s "$T/$d.port"
        port=$(cat "$T/$d.port")
        url="$scheme://127.0.0.1:$port"
        call() { # METHOD PATH [CURL ARGS]: one request, its answer saved
                local m=$1 p=$2
                shift 2
                n=$((n + 1))
                curl -sk -D "$T/answers/$n.head" -o "$T/answers/$n.body" --max-time 30 -X "$m" "$@" "$url$p" || true
        }
        while read -r method pattern role flags; do
                path=$(sed -E 's/\{[^}]+\}/x/g' <<<"$pattern")
                for tok in "" "$TOKEN_VIEWER" "$TOKEN_ADMIN" "$WRONG_TOKEN"; do
                        args=()
                        [[ -z $tok ]] || args=(-H "Authorization: Bearer $tok")
                        if [[ $method == GET ]]; then
                                call GET "$path" "${args[@]}"
                        else
                                call "$method" "$path" "${args[@]}" -H 'Content-Type: application/json' -d '{not json'
                        fi
                done
        done < <(sec_routes "$d")
        call GET /no/such/route -H "Authorization: Bearer $TOKEN_ADMIN"
        call POST /api/v1/backup -H "Authorization: Bearer $TOKEN_OPERATOR" --data-binary @<(head -c 100000 /dev/zero)
        if [[ $d == tidemark-backupd ]]; then
                # a real job, so its log lines and history are searched too
                call POST /api/v1/backup -H "Authorization: Bearer $TOKEN_OPERATOR" \
                        -d '{"strategy": "full", "components": ["files"]}'
                job=$(json_get 'd["jobs"][0]["job_id"]' <"$T/answers/$n.body")
                wait_for 30 "backup job $job" bash -c "curl -sk -H 'Authorization: Bearer $TOKEN_VIEWER' $url/api/v1/jobs/$job | grep -q '\"state\":\"succeeded\"'"
        fi
        log "$d: $n requests answered; searching its outputs"

        # core files: this daemon, SIGQUIT, cores allowed by the shell
        if sec_gap "$d" harden; then
                kill -TERM "$SEC_PID"
                wait "$SEC_PID" 2>/dev/null || true
        else
                grep -E '^Max core file size +0 +0 ' "/proc/$SEC_PID/limits" >/dev/null ||
                        fail "$d: core limit is not 0: $(grep core "/proc/$SEC_PID/limits")"
                kill -QUIT "$SEC_PID"
                wait "$SEC_PID" 2>/dev/null || true
                cores=$(find "$T/cwd-$d" -name 'core*' | head -n1)
                [[ -z $cores ]] || { sec_grep_secrets "$cores"; fail "$d left a core file $cores"; }
                log "ok: $d has core limit 0 and left no core on SIGQUIT"
        fi
        sec_grep_secrets "$T/$d.log" "$T/access-$d.log" "$T/answers"/* "$T/state-$d"/* "$T/catalog-$d.db"
        log "ok: no secret in $d's log, access log, audit log, state or $n answers"
done

# the control: with the same core settings a process that is not hardened
# dumps a core holding its secrets; the search finds them there
if (ulimit -c unlimited) 2>/dev/null; then
        mkdir -p "$T/cwd-control"
        (cd "$T/cwd-control" && ulimit -c unlimited &&
                exec python3 -c 'import os, signal, sys; s = sys.argv[1] * 50; os.kill(os.getpid(), signal.SIGQUIT)' \
                "$PASSWORD") 2>/dev/null || true
        core=$(find "$T/cwd-control" -name 'core*' | head -n1)
        if [[ -n $core ]]; then
                grep -aqF -- "$PASSWORD" "$core" || fail "control core does not hold its secret: the search is blind"
                log "ok: control: an unhardened process dumps $(stat -c %s "$core") bytes holding the secret"
        else
                log "this machine writes no core files (core_pattern $(cat /proc/sys/kernel/core_pattern)): control skipped"
        fi
fi

# the CLI: verbose, right and wrong passphrase, a config error after a secret
run tm -vv snapshots
assert_rc 0 "snapshots"
sec_grep_secrets "$T/.run.out" "$T/.run.err"
TIDEMARK_PASSWORD="$PASSWORD-wrong" run tm -vv snapshots
[[ $RUN_RC != 0 ]] || fail "a wrong passphrase opened the repository"
sec_grep_secrets "$T/.run.out" "$T/.run.err"
printf '[secrets]\naws_secret_access_key = %s\npostgres_password = %s\nnot_a_key = %s\n' \
        "$S_AWS_SECRET" "$S_PG" "$S_SLACK" >"$T/bad.conf"
run "$TM_BIN/${SEC_DAEMONS[0]}" -c "$T/bad.conf" --check-config
[[ $RUN_RC != 0 ]] || fail "a config with an unknown key passed --check-config"
assert_contains "$RUN_ERR" "bad.conf:4" "config error names the line"
sec_grep_secrets "$T/.run.out" "$T/.run.err"
log "ok: CLI and config errors carry no secret"
pass
