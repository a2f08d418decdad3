#!/usr/bin/env bash
# Replication of a tiered repository (hot local, warm and cold on s3rver
# behind tests/fake/s3front.py, which answers InvalidObjectState for GLACIER
# objects until a restore request and a delay): packs are read where the
# lifecycle put them; a pack that reached GLACIER before it was replicated
# is thawed, the pass stops before the index files (the replica holds no
# snapshot it could not restore), and a later pass completes; the replica,
# a plain directory, passes check --read-data and restores byte-exact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$TM_SRC/tests/fake/s3env.sh"
s3_start --restore-delay 2

cat >"$T/tidemark.conf" <<CONF
[tier.hot]
age = 1s
[tier.warm]
location = s3:http://127.0.0.1:$PORT/backups/warm
age = 3s
[tier.cold]
location = s3:http://127.0.0.1:$PORT/backups/cold
thaw_poll = 1s
CONF
export TIDEMARK_CONFIG="$T/tidemark.conf"
R="$T/replica"
tm_init
mkdir -p "$T/a/sub"
random_file "$T/a/big.bin" 2000000
printf 'hello tiers\n' >"$T/a/sub/small.txt"
backup_ok "$T/a"
sleep 2
run tm tier run
assert_rc 0 "tier run (hot -> warm)"
sleep 3
run tm tier run
assert_rc 0 "tier run (warm -> cold)"
[[ $(s3_objects cold/data) -ge 1 ]] || fail "no pack reached the cold tier"
[[ -z $(find "$T/repo/data" -type f) ]] || fail "packs left in the hot tier"

run tm replicate --once --to "$R"
assert_rc 1 "a pass that meets a GLACIER pack"
assert_contains "$RUN_ERR" "waits for archived packs to thaw" "the pass says why"
[[ -z $(find "$R/index" "$R/snapshots" -type f 2>/dev/null) ]] ||
        fail "index files or snapshots were copied before every pack had landed"
[[ $(front_stat restores) -ge 1 ]] || fail "no restore request reached the front"

replicate_quietly() { tm replicate --once --to "$R" >/dev/null 2>&1; }
wait_for 30 "the pass after the thaw" replicate_quietly
run tm replicate --status --to "$R" --json
assert_rc 0 "status"
[[ $(json_get 'd["snapshots_behind"], d["objects_behind"]' <<<"$RUN_OUT") == "(0, 0)" ]] ||
        fail "not caught up: $RUN_OUT"

# the replica is a plain repository: read it without the primary's tiers
unset TIDEMARK_CONFIG
export TIDEMARK_REPOSITORY="$R" TIDEMARK_CATALOG="$T/replica-catalog.db"
check_ok --read-data
restore_ok latest "$T/out"
content_manifest "$T/a" "$T/want"
content_manifest "$T/out" "$T/got"
assert_files_equal "$T/want" "$T/got" "restore from the replica is byte-exact"
pass
