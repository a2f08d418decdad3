#!/usr/bin/env bash
# key add / list / remove / passwd.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

P1=$TIDEMARK_PASSWORD
P2="second passphrase"
P3="third passphrase"
mkdir -p "$T/src" && printf 'x\n' >"$T/src/f"
backup_ok "$T/src"

# key_json PASS: key list --json with PASS
key_json() { TIDEMARK_PASSWORD=$1 tm key list --json; }
key_count() { key_json "$1" | json_get 'len(d)'; }
# current_key PASS / other_key PASS: ids from key list --json
current_key() { key_json "$1" | json_get '[k["id"] for k in d if k.get("current")][0]'; }
other_key() { key_json "$1" | json_get '[k["id"] for k in d if not k.get("current")][0]'; }
opens() { TIDEMARK_PASSWORD=$1 tm snapshots >/dev/null 2>&1; }

log "key list --json: $(key_json "$P1")"
[[ $(key_count "$P1") -eq 1 ]] || fail "a new repository should have 1 key"
run tm key list
assert_rc 0 "key list"

run env TIDEMARK_NEW_PASSWORD="$P2" "$TM_EXE" key add
assert_rc 0 "key add"
log "key add: $RUN_OUT"
[[ $(key_count "$P1") -eq 2 ]] || fail "after key add, key list should show 2 keys: $(key_json "$P1")"
opens "$P1" || fail "the first passphrase no longer opens the repository"
opens "$P2" || fail "the added passphrase does not open the repository"
k1=$(current_key "$P1")
k2=$(current_key "$P2")
[[ -n $k1 && -n $k2 && $k1 != "$k2" ]] || fail "current key ids: '$k1' (P1) '$k2' (P2)"
[[ $(other_key "$P1") == "$k2" ]] || fail "P1's other key should be $k2"

# Added through a file too.
printf '%s\n' "$P3" >"$T/p3"
run tm key add --new-password-file "$T/p3"
assert_rc 0 "key add --new-password-file"
opens "$P3" || fail "the passphrase added from a file (newline stripped) does not open"
k3=$(current_key "$P3")
run tm key remove "$k3"
assert_rc 0 "key remove (added from file)"
opens "$P3" && fail "removed key still opens"

# Remove the other key.
run tm key remove "$k2"
assert_rc 0 "key remove of the other key"
[[ $(key_count "$P1") -eq 1 ]] || fail "after key remove, 1 key should be left: $(key_json "$P1")"
opens "$P2" && fail "the removed passphrase still opens the repository"
opens "$P1" || fail "P1 stopped working after removing another key"

# Removing the key in use is refused.
assert_fails_cleanly "key remove of the key in use" tm key remove "$k1"
opens "$P1" || fail "the key in use was removed"

# key passwd: P1 -> P2
run env TIDEMARK_NEW_PASSWORD="$P2" "$TM_EXE" key passwd
assert_rc 0 "key passwd"
log "key passwd: $RUN_OUT"
opens "$P1" && fail "the old passphrase still opens after key passwd"
opens "$P2" || fail "the new passphrase does not open after key passwd"
[[ $(key_count "$P2") -eq 1 ]] || fail "key passwd should leave 1 key: $(key_json "$P2")"

# Errors: unknown key id, key add with no new passphrase (no terminal).
assert_fails_cleanly "key remove of an unknown id" env TIDEMARK_PASSWORD="$P2" "$TM_EXE" key remove 0000000000000000000000000000000000000000000000000000000000000000
assert_fails_cleanly "key add without a new passphrase" env TIDEMARK_PASSWORD="$P2" "$TM_EXE" key add </dev/null

TIDEMARK_PASSWORD=$P2 check_ok --read-data
restore_ok_p2() { TIDEMARK_PASSWORD=$P2 restore_ok "$@"; }
restore_ok_p2 latest "$T/r"
cmp "$T/src/f" "$T/r/f" || fail "restore after key changes"
pass
