#!/usr/bin/env bash
# The S3 backend against s3rver behind tests/fake/s3front.py (which verifies
# every SigV4 signature, itself checked against AWS's published examples
# first, and injects faults): the backend contract in C
# (tests/unit/test_backend_s3.c: put/get/ranges/head/list pagination over
# 1050 objects/remove/put_new/multipart, a wrong secret -> EACCES, batches
# that succeed through 10% injected 500/503/reset/truncate faults, retry
# exhaustion and stalls), then the CLI end to end on an S3 repository:
# init, backup, restore byte-exact, check --read-data, also through 10%
# mixed faults; a wrong secret is refused and named as such; the repository
# mounts (FUSE) and reads byte-exact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$TM_SRC/tests/fake/s3env.sh"
UNIT="$TM_BIN/../tests/test_backend_s3"
[[ -x $UNIT ]] || skip "no $UNIT (build the test_backend_s3 target)"

# the front is the test oracle for signatures: check it against AWS's examples
run python3 "$FAKE/s3front.py" --self-test
assert_rc 0 "s3front --self-test"

s3_start

# ---- the backend contract, in C
run env TM_S3_TEST_ENDPOINT="http://127.0.0.1:$PORT" TM_S3_TEST_BUCKET=backups \
        TM_S3_TEST_PREFIX="it-$TM_SEED" TM_TEST_SEED="$TM_SEED" "$UNIT"
if [[ $RUN_RC -ne 0 ]] || grep -q SKIPPED <<<"$RUN_OUT$RUN_ERR"; then
        show_run
        fail "backend contract against s3front+s3rver"
fi
log "contract: $(grep -c '\[       OK \]' <<<"$RUN_OUT") tests passed"
grep -E 'requests, .* retries' <<<"$RUN_OUT$RUN_ERR" | while read -r l; do log "  $l"; done

# ---- the CLI on an S3 repository
export TIDEMARK_REPOSITORY="s3:http://127.0.0.1:$PORT/backups/repo"
tm_init
S="$T/src"
mkdir -p "$S/sub/deeper"
random_file "$S/big.bin" $((9 * 1024 * 1024))
random_file "$S/sub/mid.bin" 300000
printf 'hello s3\n' >"$S/sub/deeper/small.txt"
: >"$S/empty"
for i in $(seq 1 40); do printf 'file %d\n' "$i" >"$S/sub/f$i.txt"; done
backup_ok "$S"
# nothing on local disk: the repository lives in the bucket
[[ -d $T/s3data/backups/repo || -n $(find "$T/s3data" -path '*repo*' -print -quit) ]] ||
        fail "no repository objects in s3rver's store"
run tm restore latest --target "$T/out"
assert_rc 0 "restore from S3"
content_manifest "$S" "$T/want"
R="$T/out$S"
[[ -d $R ]] || R="$T/out"
content_manifest "$R" "$T/got"
assert_files_equal "$T/want" "$T/got" "restore from S3 is byte-exact"
# requests a walk and a restore cost: trees come with their pack, the
# blobs of small files close together in a pack in one ranged read
S3="$T/src3"
for d in $(seq 1 60); do
        mkdir -p "$S3/d$d"
        for i in 1 2 3 4 5; do printf 'dir %d file %d\n' "$d" "$i" >"$S3/d$d/f$i.txt"; done
done
backup_ok "$S3"
q0=$(front_stat requests)
run tm ls latest
assert_rc 0 "ls of 61 directories"
q1=$(front_stat requests)
log "ls of 61 directories: $((q1 - q0)) requests"
((q1 - q0 < 20)) || fail "ls of 61 directories took $((q1 - q0)) requests (one per tree?)"
run tm restore latest --target "$T/out3"
assert_rc 0 "restore of 300 small files"
q2=$(front_stat requests)
log "restore of 61 directories, 300 small files: $((q2 - q1)) requests"
((q2 - q1 < 40)) || fail "restore of 300 small files took $((q2 - q1)) requests"
content_manifest "$S3" "$T/want3"
R="$T/out3$S3"
[[ -d $R ]] || R="$T/out3"
content_manifest "$R" "$T/got3"
assert_files_equal "$T/want3" "$T/got3" "restore of 300 small files is byte-exact"

# the location given with -r rather than the environment
URL=$TIDEMARK_REPOSITORY
TIDEMARK_REPOSITORY=$T/elsewhere check_ok -r "$URL" --read-data
run tm -r "$URL" snapshots
assert_rc 0 "snapshots with -r"

# ---- the CLI through 10% failing requests (500, 503, resets, truncated
# answers): backup, restore and check still succeed, byte-exact
S2="$T/src2"
mkdir -p "$S2/d"
random_file "$S2/a.bin" $((6 * 1024 * 1024))
random_file "$S2/d/b.bin" 700000
for i in $(seq 1 60); do printf 'faulty %d\n' "$i" >"$S2/d/g$i.txt"; done
stats_faults() { front_stat faults; }
f0=$(stats_faults)
fault '{"mode":"mix","rate":0.1}'
on_exit "fault '{\"mode\":\"off\"}'"
nretry=0
count_retries() { nretry=$((nretry + $(grep -c 'retry [0-9]* of' <<<"$RUN_ERR" || true))); }
backup_ok "$S2"
count_retries
run tm restore latest --target "$T/out2"
assert_rc 0 "restore through faults"
count_retries
content_manifest "$S2" "$T/want2"
R2="$T/out2$S2"
[[ -d $R2 ]] || R2="$T/out2"
content_manifest "$R2" "$T/got2"
assert_files_equal "$T/want2" "$T/got2" "restore through faults is byte-exact"
check_ok --read-data
count_retries
fault '{"mode":"off"}'
nfault=$(($(stats_faults) - f0))
log "through 10% faults: $nfault faults injected, $nretry retries logged"
# a fault on a PUT's empty answer cannot be truncated, so retries <= faults;
# but faults happened, some must have been retried
((nretry <= nfault)) || fail "more retries ($nretry) than injected faults ($nfault)"
((nfault < 3 || nretry > 0)) || fail "no retry was logged for $nfault injected faults"

# a wrong secret is refused by the front with a clear one-line error
AWS_SECRET_ACCESS_KEY=wrong run tm snapshots
[[ $RUN_RC -ne 0 ]] || fail "a wrong secret was accepted"
log "wrong secret: $RUN_ERR"
assert_contains "$RUN_ERR" "refused access: check its credentials" "a wrong secret is named as such"
assert_not_contains "$RUN_ERR" "passphrase" "a wrong secret is not a wrong passphrase"

# ---- mount the S3 repository (every instant as a directory), when FUSE can run here
if [[ $(id -u) -eq 0 && -c /dev/fuse ]] && command -v fusermount3 >/dev/null &&
        [[ -x $TM_BIN/tidemark-fs ]]; then
        M="$T/mnt"
        mkdir -p "$M"
        fuse_mount_bg "$M" "$T/fs.log" "$TM_EXE" mount "$M" -f
        cmp "$M/latest/$(basename "$S")/big.bin" "$S/big.bin" 2>/dev/null ||
                cmp "$M/latest/big.bin" "$S/big.bin" ||
                { ls -R "$M/latest" | head -20 >&2; fail "read through the mount of an S3 repository"; }
        fuse_teardown "$M"
        log "mount of the S3 repository: byte-exact"
else
        log "mount part not run (needs root, /dev/fuse, fusermount3)"
fi
grep -q '"rejected": [1-9]' <(python3 -c 'import json,sys,urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))))' "http://127.0.0.1:$PORT/__stats") ||
        fail "the front rejected no signature"
pass
