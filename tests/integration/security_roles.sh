#!/usr/bin/env bash
# The token and role matrix covers every route (issue 9, item 7). For each
# daemon this tree builds, its route table is read from its sources (the
# table the dispatcher serves) and checked against:
#   1. policy: only /health, /metrics, /docs and /docs/openapi.json are open;
#      every other route needs at least viewer, and every route that is not
#      a GET needs at least operator;
#   2. the OpenAPI document the daemon serves names exactly the same
#      operations (so the published API has no route the matrix misses);
#   3. the live daemon: every route called with no token, a wrong token, and
#      a viewer, operator and admin token answers 401 / 403 exactly when the
#      route's role is above the caller's, and never otherwise.
# A daemon that lands later (failoverd, monitord) is covered as soon as it is
# built: nothing here names a route.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$(dirname "$0")/security_lib.bash"
((${#SEC_DAEMONS[@]})) || skip "no daemon built"
tm_init
rank() { case $1 in none) echo 0 ;; viewer) echo 1 ;; operator) echo 2 ;; admin) echo 3 ;; *) fail "unknown role '$1'" ;; esac; }
OPEN_ROUTES=" /health /metrics /docs /docs/openapi.json "

total=0
for d in "${SEC_DAEMONS[@]}"; do
        mapfile -t routes < <(sec_routes "$d")
        ((${#routes[@]} >= 3)) || fail "$d: found only ${#routes[@]} routes in ${SEC_SRCDIR[$d]}/*.c"
        for r in "${routes[@]}"; do
                read -r method pattern role flags <<<"$r"
                if [[ $OPEN_ROUTES == *" $pattern "* ]]; then
                        [[ $method == GET && $role == none ]] || fail "$d: $method $pattern should be an open GET"
                else
                        (($(rank "$role") >= 1)) || fail "$d: $method $pattern is open to anyone"
                        [[ $method == GET ]] || (($(rank "$role") >= 2)) ||
                                fail "$d: $method $pattern changes state but a $role may call it"
                fi
        done

        sec_conf "$d" "$T/$d.conf"
        sec_start "$d" "$T/$d.conf"
        url="http://127.0.0.1:$SEC_PORT"
        curl -sf "$url/docs/openapi.json" >"$T/$d.openapi.json" || fail "$d serves no /docs/openapi.json"
        python3 - "$T/$d.openapi.json" "${routes[@]}" <<'PY' || fail "$d: route table and OpenAPI differ"
import json, sys
doc = json.load(open(sys.argv[1]))
api = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops
       if m in ("get", "post", "put", "delete", "patch")}
table = {tuple(r.split()[:2]) for r in sys.argv[2:]}
# the document need not describe itself
table -= {("GET", "/docs"), ("GET", "/docs/openapi.json")}
api -= {("GET", "/docs"), ("GET", "/docs/openapi.json")}
for m, p in sorted(table - api):
    print(f"in the route table, not in the OpenAPI document: {m} {p}", file=sys.stderr)
for m, p in sorted(api - table):
    print(f"in the OpenAPI document, not in the route table: {m} {p}", file=sys.stderr)
sys.exit(table != api)
PY
        for r in "${routes[@]}"; do
                read -r method pattern role flags <<<"$r"
                path=$(sed -E 's/\{[^}]+\}/x/g' <<<"$pattern")
                need=$(rank "$role")
                for who in none wrong viewer operator admin; do
                        args=()
                        case $who in
                        none) ;;
                        wrong) args=(-H "Authorization: Bearer not-a-token") ;;
                        viewer) args=(-H "Authorization: Bearer $TOKEN_VIEWER") ;;
                        operator) args=(-H "Authorization: Bearer $TOKEN_OPERATOR") ;;
                        admin) args=(-H "Authorization: Bearer $TOKEN_ADMIN") ;;
                        esac
                        # a body that validates nowhere: a permitted call stops at 400
                        [[ $method == GET ]] || args+=(-H 'Content-Type: application/json' -d '{"x-role-matrix": 1}')
                        status=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 -X "$method" "${args[@]}" "$url$path")
                        total=$((total + 1))
                        case $who in
                        wrong) want=401 ;;
                        none) ((need == 0)) && want=ok || want=401 ;;
                        *) (($(rank "$who") >= need)) && want=ok || want=403 ;;
                        esac
                        if [[ $want == ok ]]; then
                                [[ $status != 401 && $status != 403 && $status != 000 ]] ||
                                        fail "$d: $method $path as $who (route needs $role): got $status $(cat "$T/body")"
                        else
                                [[ $status == "$want" ]] ||
                                        fail "$d: $method $path as $who (route needs $role): want $want, got $status $(cat "$T/body")"
                                grep -q '"error"' "$T/body" || fail "$d: $method $path as $who: no JSON error"
                        fi
                done
        done
        sec_stop
        log "ok: $d: ${#routes[@]} routes x 5 callers as the table says; the OpenAPI document matches"
done
log "$total requests checked"
pass
