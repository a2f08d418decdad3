#!/usr/bin/env bash
# TLS on every service when configured, and certificate reload on SIGHUP
# (issue 9, item 7). For each daemon this tree builds:
#   1. with tls_cert/tls_key it serves HTTPS only: curl verifying against
#      certificate A succeeds, plain HTTP on the same port gets no answer;
#   2. the files are replaced by certificate B (another key, another
#      subject) and the daemon gets SIGHUP: same process, same port, and
#      now curl verifying against B succeeds while A fails;
#   3. a broken pair followed by SIGHUP is refused with a log line and B
#      stays in service.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
command -v openssl >/dev/null || skip "openssl missing"
. "$(dirname "$0")/security_lib.bash"
((${#SEC_DAEMONS[@]})) || skip "no daemon built"
tm_init

mkcert() { # NAME: a self-signed certificate for 127.0.0.1 in $T/NAME.{crt,key}
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
                -subj "/CN=tidemark-$1" -addext subjectAltName=IP:127.0.0.1 \
                -keyout "$T/$1.key" -out "$T/$1.crt" 2>/dev/null
}
mkcert alpha
mkcert beta

# get CA: GET /health over HTTPS, verifying the server against CA
get() { curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$1" "https://127.0.0.1:$SEC_PORT/health"; }

for d in "${SEC_DAEMONS[@]}"; do
        sec_gap "$d" tls && continue
        cp "$T/alpha.crt" "$T/tls.crt"
        cp "$T/alpha.key" "$T/tls.key"
        sec_conf "$d" "$T/$d.conf"
        sed -i "s|^\[server\]|[server]\ntls_cert = $T/tls.crt\ntls_key = $T/tls.key|" "$T/$d.conf"
        sec_start "$d" "$T/$d.conf"
        pid=$SEC_PID port=$SEC_PORT

        [[ $(get "$T/alpha.crt") == 200 ]] || fail "$d: HTTPS with certificate A"
        if curl -s --max-time 5 -o /dev/null "http://127.0.0.1:$port/health"; then
                fail "$d: plain HTTP answered on the TLS port"
        fi
        log "ok: $d serves HTTPS only"

        cp "$T/beta.crt" "$T/tls.crt"
        cp "$T/beta.key" "$T/tls.key"
        [[ $(get "$T/alpha.crt") == 200 ]] || fail "$d: replaced files took effect before SIGHUP"
        kill -HUP "$pid"
        # the reload is done in the daemon's signal loop: poll
        wait_for 10 "$d serving certificate B" bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert '$T/beta.crt' https://127.0.0.1:$port/health) == 200 ]]"
        kill -0 "$pid" 2>/dev/null || fail "$d died on SIGHUP"
        [[ $(cat "$T/$d.port") == "$port" ]] || fail "$d: port changed"
        if [[ $(get "$T/alpha.crt" 2>/dev/null) == 200 ]]; then
                fail "$d: still presents certificate A after the reload"
        fi
        log "ok: $d reloaded its certificate on SIGHUP, same pid $pid and port $port"

        printf 'not a certificate\n' >"$T/tls.crt"
        kill -HUP "$pid"
        wait_for 10 "$d logging the refused pair" grep -q "do not load" "$T/$d.log"
        [[ $(get "$T/beta.crt") == 200 ]] || fail "$d: stopped serving B after a broken pair"
        kill -0 "$pid" 2>/dev/null || fail "$d died on a broken pair"
        log "ok: $d kept certificate B when the new pair was broken"
        sec_stop
done
if grep -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$T"/*.log >&2; then
        fail "sanitizer reports in a daemon log"
fi
pass
