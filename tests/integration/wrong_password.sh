#!/usr/bin/env bash
# A wrong passphrase: exit 1, one line on stderr, and the repository is left
# byte-for-byte as it was (no new files, nothing touched), whatever command.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

mkdir -p "$T/src"
printf 'data\n' >"$T/src/f"
backup_ok "$T/src"
good=$TIDEMARK_PASSWORD

fp_before=$(repo_fingerprint)
find "$TIDEMARK_REPOSITORY" -printf '%p %s %T@ %m\n' | LC_ALL=C sort >"$T/listing.before"

export TIDEMARK_PASSWORD="not the password"
check_wrong() { # WHAT CMD...
        local what=$1
        shift
        run "$@"
        assert_rc 1 "$what with a wrong passphrase"
        assert_error_line "$what with a wrong passphrase"
        # It should say what is wrong (the passphrase) and where.
        if ! grep -qiE 'pass(word|phrase)|key' <<<"$RUN_ERR"; then
                show_run
                fail "$what: the error does not say the passphrase is wrong"
        fi
        log "ok: $what -> $RUN_ERR"
        find "$TIDEMARK_REPOSITORY" -printf '%p %s %T@ %m\n' | LC_ALL=C sort >"$T/listing.after"
        assert_files_equal "$T/listing.before" "$T/listing.after" "$what with a wrong passphrase changed the repository"
}
check_wrong snapshots tm snapshots
check_wrong backup tm backup "$T/src"
check_wrong "backup --stdin" tm backup --stdin --stdin-filename x </dev/null
check_wrong ls tm ls latest
check_wrong restore tm restore latest --target "$T/r"
check_wrong check tm check --read-data
check_wrong forget tm forget --keep-last 1 --prune
check_wrong prune tm prune
check_wrong stats tm stats
check_wrong "key list" tm key list
TIDEMARK_NEW_PASSWORD=x check_wrong "key add" tm key add
TIDEMARK_NEW_PASSWORD=x check_wrong "key passwd" tm key passwd
check_wrong "repair index" tm repair index
[[ ! -e $T/r ]] || [[ -z $(ls -A "$T/r") ]] || fail "restore with a wrong passphrase wrote into the target"

# Same through a password file (with a trailing newline).
unset TIDEMARK_PASSWORD
printf 'still wrong\n' >"$T/pwfile"
check_wrong "--password-file" tm --password-file "$T/pwfile" snapshots
TIDEMARK_PASSWORD_FILE="$T/pwfile" check_wrong "TIDEMARK_PASSWORD_FILE" tm snapshots

fp_after=$(repo_fingerprint)
[[ $fp_before == "$fp_after" ]] || fail "repository fingerprint changed"

# The right passphrase (also from a file, newline stripped) still works.
printf '%s\n' "$good" >"$T/pwgood"
run tm --password-file "$T/pwgood" snapshots
assert_rc 0 "snapshots with the right passphrase from --password-file"
TIDEMARK_PASSWORD=$good check_ok
pass
