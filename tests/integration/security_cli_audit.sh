#!/usr/bin/env bash
# The audit log covers every mutation, the CLI's too (issue 9, item 7): with
# a config naming an audit_log, each command that changes the repository (or
# writes a restore) appends one entry to the chain the daemons write; reads
# and dry runs append none; a conninfo password never reaches the log; a log
# that cannot be opened stops the command before it changes anything; and
# tidemark-backupd and the CLI appending to one log leave an intact chain.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$(dirname "$0")/security_lib.bash"
tm_init
audit=$T/audit.log
lines() { if [[ -f $1 ]]; then grep -c '' "$1" || true; else echo 0; fi; }

sec_conf tidemark-backupd "$T/tm.conf"
sed -i "s|^\[server\]|[server]\naudit_log = $audit|" "$T/tm.conf"
export TIDEMARK_CONFIG=$T/tm.conf
mkdir -p "$T/src"
printf 'one\n' >"$T/src/a"

# audited COUNT WHAT CMD...: CMD succeeds and adds COUNT entries
audited() {
        local want=$1 what=$2 before
        shift 2
        before=$(lines "$audit")
        run tm "$@"
        assert_rc 0 "$what"
        [[ $(lines "$audit") == $((before + want)) ]] ||
                fail "$what: $(($(lines "$audit") - before)) audit entries, want $want"
        if ((want)); then
                tail -n 1 "$audit" | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
cmd = sys.argv[1]
assert e["service"] == "cli" and e["path"] == cmd and e["status"] == 0 and e["result"] == "ok", e
assert "@" in e["principal"] and e["method"] == "CLI" and isinstance(e["args"], list), e
' "$1" || fail "$what: entry $(tail -n 1 "$audit")"
        fi
}
audited 1 "backup" backup "$T/src"
audited 0 "snapshots" snapshots
audited 0 "check" check
audited 0 "key list" key list
printf 'second key\n' >"$T/pw2"
audited 1 "key add" key add --new-password-file "$T/pw2"
printf 'two\n' >"$T/src/b"
audited 1 "second backup" backup "$T/src"
audited 0 "forget --dry-run" forget --keep-last 1 --dry-run
audited 1 "forget" forget --keep-last 1
audited 1 "prune" prune
audited 1 "restore" restore latest --target "$T/out"

# a failed mutation is recorded with its status; a conninfo password is masked
before=$(lines "$audit")
run tm backup --postgres "host=127.0.0.1 port=1 user=x password=s3cr3t-pw connect_timeout=2"
[[ $RUN_RC != 0 ]] || fail "a backup of an unreachable server succeeded"
[[ $(lines "$audit") == $((before + 1)) ]] || fail "the failed backup was not audited"
tail -n 1 "$audit" | grep -q '"result":"failed"' || fail "failed backup entry: $(tail -n 1 "$audit")"
grep -q 's3cr3t-pw' "$audit" && fail "the conninfo password reached the audit log"
tail -n 1 "$audit" | grep -qF 'password=***' || fail "password not masked: $(tail -n 1 "$audit")"

# an audit log that cannot be opened: the command does nothing
snaps=$(snapshot_count)
sed "s|^audit_log = .*|audit_log = $T/no/such/dir/audit.log|" "$T/tm.conf" >"$T/broken.conf"
run env TIDEMARK_CONFIG="$T/broken.conf" "$TM_EXE" backup "$T/src"
assert_rc 1 "backup with an unwritable audit log"
assert_error_line "backup with an unwritable audit log"
assert_contains "$RUN_ERR" "audit log" "the error names the audit log"
[[ $(snapshot_count) == "$snaps" ]] || fail "the refused backup still made a snapshot"

# backupd and the CLI share the log: entries interleave, the chain holds
sec_start tidemark-backupd "$T/tm.conf"
url="http://127.0.0.1:$SEC_PORT"
for i in 1 2 3; do
        printf 'gen %s\n' "$i" >"$T/src/c"
        curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN_ADMIN" \
                -H 'Content-Type: application/json' -d '{"strategy": "full", "components": ["files"]}' \
                "$url/api/v1/backup" || fail "POST /api/v1/backup"
        run tm backup "$T/src"
        assert_rc 0 "backup beside the daemon ($i)"
done
sec_stop
grep -q '"service":"backupd"' "$audit" || fail "backupd wrote no entry"
run tm audit verify "$audit"
assert_rc 0 "the shared audit log verifies"
log "ok: $RUN_OUT"
pass
