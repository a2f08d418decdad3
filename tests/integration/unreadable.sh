#!/usr/bin/env bash
# A file (and a directory) the backup cannot read: a warning naming each,
# the backup goes on and commits, exit 3, the snapshot has the other files.
# Root reads anything, so the backup runs as `nobody`.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
is_root || skip "needs root (to run the backup as nobody)"
id nobody >/dev/null 2>&1 || skip "no user nobody"
chmod 0777 "$T" # nobody creates the repository and the catalog here
runuser -u nobody -- test -x "$TM_EXE" || skip "nobody cannot execute $TM_EXE"

as_nobody() {
        runuser -u nobody -- env TIDEMARK_REPOSITORY="$TIDEMARK_REPOSITORY" \
                TIDEMARK_PASSWORD="$TIDEMARK_PASSWORD" TIDEMARK_CATALOG="$TIDEMARK_CATALOG" \
                HOME="$T" timeout -k 10 "$TM_CMD_TIMEOUT" "$TM_EXE" "$@"
}

S="$T/src"
mkdir -p "$S/sub" "$S/secretdir"
printf 'readable\n' >"$S/ok.txt"
printf 'also readable\n' >"$S/sub/ok2.txt"
random_file "$S/sub/ok3.bin" 300000
printf 'top secret\n' >"$S/secret.txt"
printf 'hidden\n' >"$S/secretdir/inside.txt"
printf 'after\n' >"$S/zz-after.txt" # sorts after the unreadable ones
chown -R nobody "$S"
chown root:root "$S/secret.txt" "$S/secretdir"
chmod 000 "$S/secret.txt"
chmod 0700 "$S/secretdir"
runuser -u nobody -- cat "$S/secret.txt" >/dev/null 2>&1 && skip "nobody can read a mode 000 file here"

run as_nobody init "${TM_KDF_ARGS[@]}"
assert_rc 0 "init as nobody"

run as_nobody backup "$S"
log "backup as nobody: exit $RUN_RC"$'\n'"stdout: $RUN_OUT"$'\n'"stderr: $RUN_ERR"
assert_rc 3 "backup with an unreadable file"
assert_contains "$RUN_ERR" "secret.txt" "the warning names the unreadable file"
assert_contains "$RUN_ERR" "secretdir" "the warning names the unreadable directory"
assert_not_contains "$RUN_ERR" "ok.txt" "no warning about readable files"
[[ $RUN_OUT =~ snapshot\ [0-9a-f]{8}\ saved ]] || fail "exit 3 but no 'snapshot ... saved' line: $RUN_OUT"

run as_nobody ls latest
assert_rc 0 "ls latest"
for p in /ok.txt /sub/ok2.txt /sub/ok3.bin /zz-after.txt; do
        grep -qxF "$p" <<<"$RUN_OUT" || fail "snapshot lacks $p; ls: $RUN_OUT"
done
grep -qxF /secretdir/inside.txt <<<"$RUN_OUT" && fail "snapshot lists the unreadable /secretdir/inside.txt"

# Root restores it (the repository belongs to nobody; root can read it).
restore_ok latest "$T/r"
for p in ok.txt sub/ok2.txt sub/ok3.bin zz-after.txt; do
        cmp "$S/$p" "$T/r/$p" || fail "restored $p differs"
done
if [[ -e $T/r/secret.txt ]]; then
        [[ ! -s $T/r/secret.txt ]] || fail "restored secret.txt has content nobody could read: $(cat "$T/r/secret.txt")"
        log "NOTE: secret.txt is in the snapshot as an empty file"
fi
run as_nobody check --read-data
assert_rc 0 "check"
pass
