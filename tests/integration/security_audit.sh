#!/usr/bin/env bash
# The audit log covers every mutation (issue 9, item 7). For each daemon this
# tree builds:
#   1. every route of its table that is not a GET carries TM_HTTP_AUDIT;
#   2. live: each such route called by a caller it refuses (viewer: 403),
#      by no one (401) and by an admin adds exactly one audit entry each,
#      naming the method, the path, the status and the principal; reads add
#      none;
#   3. the log verifies (tidemark audit verify) and a forged entry does not.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$(dirname "$0")/security_lib.bash"
((${#SEC_DAEMONS[@]})) || skip "no daemon built"
tm_init
lines() { if [[ -f $1 ]]; then grep -c '' "$1" || true; else echo 0; fi; }

for d in "${SEC_DAEMONS[@]}"; do
        mapfile -t routes < <(sec_routes "$d")
        mutating=0
        for r in "${routes[@]}"; do
                read -r method pattern role flags <<<"$r"
                [[ $method == GET ]] && continue
                mutating=$((mutating + 1))
                [[ $flags == *TM_HTTP_AUDIT* ]] || fail "$d: $method $pattern changes state but is not audited"
        done
        ((mutating > 0)) || fail "$d: no mutating route found in its table"

        audit=$T/audit-$d.log
        sec_conf "$d" "$T/$d.conf"
        sed -i "s|^\[server\]|[server]\naudit_log = $audit|" "$T/$d.conf"
        sec_start "$d" "$T/$d.conf"
        url="http://127.0.0.1:$SEC_PORT"
        for r in "${routes[@]}"; do
                read -r method pattern role flags <<<"$r"
                path=$(sed -E 's/\{[^}]+\}/x/g' <<<"$pattern")
                before=$(lines "$audit")
                if [[ $method == GET ]]; then
                        curl -s -o /dev/null -H "Authorization: Bearer $TOKEN_ADMIN" "$url$path"
                        [[ $(lines "$audit") == "$before" ]] || fail "$d: GET $path wrote an audit entry"
                        continue
                fi
                for who in nobody viewer admin; do
                        args=(-H 'Content-Type: application/json' -d '{"x-audit-probe": 1}')
                        case $who in
                        viewer) args+=(-H "Authorization: Bearer $TOKEN_VIEWER") ;;
                        admin) args+=(-H "Authorization: Bearer $TOKEN_ADMIN") ;;
                        esac
                        status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 -X "$method" "${args[@]}" "$url$path")
                        after=$(lines "$audit")
                        [[ $after == $((before + 1)) ]] ||
                                fail "$d: $method $path by $who ($status): $((after - before)) audit entries, want 1"
                        tail -n 1 "$audit" | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
m, p, st, who = sys.argv[1:5]
want_principal = {"nobody": "anonymous", "viewer": "v", "admin": "a"}[who]
bad = [k for k, v in (("method", m), ("path", p), ("status", int(st)), ("principal", want_principal)) if e.get(k) != v]
if bad:
    sys.exit(f"audit entry {e} is wrong in {bad}")
' "$method" "$path" "$status" "$who" || fail "$d: $method $path by $who: audit entry"
                        before=$after
                done
        done
        sec_stop
        run tm audit verify "$audit"
        assert_rc 0 "$d: audit verify"
        log "ok: $d: $mutating mutating routes, each attempt audited; $RUN_OUT"
        # a forged principal in the first entry breaks the chain
        sed -i '1s/"principal":"anonymous"/"principal":"a"/' "$audit"
        run tm audit verify "$audit"
        [[ $RUN_RC != 0 ]] || fail "$d: a forged audit entry verified"
done
pass
