#!/usr/bin/env bash
# Every file tidemark creates that holds keys, credentials, metadata or
# logs is private (issue 9, item 7): under umask 000, so that only the
# modes tidemark asks for count, run the CLI (init, key add, backup,
# snapshots, check, forget --prune, restore) and each daemon (a job, the
# audit log, the access log), then look at everything they created: the
# repository (config, keys, packs, indexes, snapshots), the catalog and its
# WAL, the state directory, the logs. Files must be 0600 (no group or other
# bits), directories 0700. Restored files keep their original modes: that
# is checked apart.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v curl >/dev/null || skip "curl missing"
. "$(dirname "$0")/security_lib.bash"
umask 000

mkdir -p "$T/src/sub"
printf 'world readable on purpose\n' >"$T/src/public.txt"
chmod 644 "$T/src/public.txt"
random_file "$T/src/sub/blob.bin" 300000
tm_init
printf 'another passphrase\n' >"$T/pw2"
TIDEMARK_NEW_PASSWORD_FILE=$T/pw2 run tm key add
assert_rc 0 "key add"
backup_ok --component files "$T/src"
backup_ok --component files "$T/src"
run tm snapshots
assert_rc 0 snapshots
check_ok --read-data
run tm forget --keep-last 1 --prune
assert_rc 0 "forget --prune"
restore_ok latest "$T/restored"

for d in "${SEC_DAEMONS[@]}"; do
        sec_conf "$d" "$T/$d.conf"
        sed -i "s|^access_log = .*|access_log = $T/logs-$d/access.log|" "$T/$d.conf"
        mkdir -p "$T/logs-$d"
        chmod 700 "$T/logs-$d"
        rm -rf "$T/state-$d"
        sec_start "$d" "$T/$d.conf"
        if [[ $d == tidemark-backupd ]]; then
                out=$(curl -s -H "Authorization: Bearer $TOKEN_OPERATOR" -d '{"strategy": "full", "components": ["files"]}' \
                        "http://127.0.0.1:$SEC_PORT/api/v1/backup")
                job=$(json_get 'd["jobs"][0]["job_id"]' <<<"$out") || fail "backup: $out"
                wait_for 30 "job $job" bash -c "curl -s -H 'Authorization: Bearer $TOKEN_VIEWER' http://127.0.0.1:$SEC_PORT/api/v1/jobs/$job | grep -q '\"state\":\"succeeded\"'"
        fi
        # a refused mutation is audited too
        while read -r method pattern role flags; do
                [[ $method == GET ]] && continue
                curl -s -o /dev/null -X "$method" -d '{}' "http://127.0.0.1:$SEC_PORT${pattern//\{*\}/x}"
        done < <(sec_routes "$d")
        sec_stop
done

# everything created, except the restored tree (original modes) and the
# test's own inputs
bad=$(find "$T" -mindepth 1 \
        \( -path "$T/restored" -o -path "$T/src" -o -path "$T/pw2" -o -name '*.conf' \
           -o -name '*.port' -o -path "$T/tidemark-*.log" -o -name '.run.*' -o -name '.http.*' \) -prune -o \
        \( -type f -perm /077 -printf 'file %m %p\n' \) -o \( -type d -perm /077 -printf 'dir %m %p\n' \))
count=$(find "$T" -mindepth 1 \( -path "$T/restored" -o -path "$T/src" \) -prune -o -print | wc -l)
if [[ -n $bad ]]; then
        printf '%s\n' "$bad" >&2
        fail "$(grep -c . <<<"$bad") files or directories open to group or others"
fi
for f in "$TIDEMARK_REPOSITORY/config" "$TIDEMARK_CATALOG"; do
        [[ -e $f ]] || fail "$f missing (the test would check nothing)"
done
[[ $(find "$TIDEMARK_REPOSITORY/keys" -type f | wc -l) -eq 2 ]] || fail "expected two key files"
for d in "${SEC_DAEMONS[@]}"; do
        [[ -n $(find "$T/state-$d" -type f) ]] || fail "$d created no state to check"
        [[ -s $T/logs-$d/access.log ]] || fail "$d wrote no access log"
done
log "ok: $count files and directories, all private (umask 000)"

# restore reproduces the original modes, not 0600
[[ $(stat -c %a "$T/restored/public.txt" 2>/dev/null || stat -c %a "$T/restored/${T#/}/src/public.txt") == 644 ]] ||
        fail "restore did not keep the original mode 644"
pass
