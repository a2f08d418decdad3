#!/usr/bin/env bash
# backup --stdin: a stream becomes one file of the snapshot.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

head -c 5000000 /dev/urandom | tee "$T/src" | tm backup --stdin --stdin-filename db.sql >"$T/out" 2>"$T/err" ||
        fail "backup --stdin failed: $(cat "$T/err")"
log "backup --stdin: $(cat "$T/out")"
grep -qE '^snapshot [0-9a-f]{8} saved' "$T/out" || fail "backup --stdin output: $(cat "$T/out")"
[[ $(stat -c %s "$T/src") -eq 5000000 ]] || fail "test setup: tee wrote $(stat -c %s "$T/src") bytes"

run tm ls latest
assert_rc 0 "ls latest"
[[ $RUN_OUT == "/db.sql" ]] || fail "ls latest should show exactly /db.sql, got: $RUN_OUT"
comp=$(tm snapshots --json | json_get 'd[-1]["component"]')
[[ $comp == stdin ]] || fail "component of a --stdin backup should default to 'stdin', got '$comp'"

restore_ok latest "$T/r"
cmp "$T/src" "$T/r/db.sql" || fail "restored db.sql differs from the stream"
[[ $(find "$T/r" -mindepth 1 | wc -l) -eq 1 ]] || fail "restore wrote more than db.sql: $(find "$T/r")"

# An empty stream and a named component.
tm backup --stdin --stdin-filename empty.dump --component database </dev/null >/dev/null 2>"$T/err" ||
        fail "backup --stdin of an empty stream failed: $(cat "$T/err")"
run tm ls latest --component database
assert_rc 0 "ls --component database"
[[ $RUN_OUT == "/empty.dump" ]] || fail "ls of the empty stream snapshot: $RUN_OUT"
restore_ok latest "$T/r2" --component database
[[ -f $T/r2/empty.dump && ! -s $T/r2/empty.dump ]] || fail "empty.dump not restored as an empty file"

# The same stream again adds (almost) nothing.
before=$(repo_data_bytes)
tm backup --stdin --stdin-filename db.sql <"$T/src" >/dev/null || fail "second backup --stdin"
after=$(repo_data_bytes)
((after - before < 64 * 1024)) || fail "the same stream again added $((after - before)) bytes"

# --stdin without --stdin-filename is an error.
assert_fails_cleanly "--stdin without --stdin-filename" tm backup --stdin </dev/null
check_ok --read-data
pass
