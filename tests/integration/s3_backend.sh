#!/usr/bin/env bash
# The S3 backend against s3rver behind tests/fake/s3front.py (which verifies
# every SigV4 signature, itself checked against AWS's published examples
# first, and injects faults): the backend contract in C
# (tests/unit/test_backend_s3.c: put/get/ranges/head/list pagination over
# 1050 objects/remove/put_new/multipart, a wrong secret -> EACCES, batches
# that succeed through 10% injected 500/503/reset/truncate faults, retry
# exhaustion and stalls), then the CLI end to end on an S3 repository:
# init, backup, restore byte-exact, check --read-data, also through 10%
# mixed faults; a wrong secret is refused.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
command -v node >/dev/null || skip "node missing (scripts/deps.sh installs nodejs npm)"
FAKE="$TM_SRC/tests/fake"
rc=0
bash "$FAKE/setup.sh" || rc=$?
[[ $rc -eq 0 ]] || { [[ $rc -eq 77 ]] && skip "s3rver could not be installed"; fail "setup.sh: rc $rc"; }
UNIT="$TM_BIN/../tests/test_backend_s3"
[[ -x $UNIT ]] || skip "no $UNIT (build the test_backend_s3 target)"

# the front is the test oracle for signatures: check it against AWS's examples
run python3 "$FAKE/s3front.py" --self-test
assert_rc 0 "s3front --self-test"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
        local i
        for i in $(seq 1 100); do
                python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$1" 2>/dev/null && return 0
                sleep 0.1
        done
        return 1
}

# ---- s3rver, then the front
S3PORT=$(free_port)
mkdir -p "$T/s3data"
node --openssl-legacy-provider "$FAKE/node_modules/s3rver/bin/s3rver.js" -d "$T/s3data" \
        -a 127.0.0.1 -p "$S3PORT" --silent --configure-bucket backups >"$T/s3rver.log" 2>&1 &
S3PID=$!
on_exit "kill $S3PID"
wait_port "$S3PORT" || { cat "$T/s3rver.log" >&2; fail "s3rver did not start"; }
python3 "$FAKE/s3front.py" --upstream "http://127.0.0.1:$S3PORT" --port-file "$T/front.port" \
        --seed "$TM_SEED" >"$T/front.log" 2>&1 &
FPID=$!
on_exit "kill $FPID"
for _ in $(seq 1 100); do [[ -s $T/front.port ]] && break; sleep 0.1; done
[[ -s $T/front.port ]] || { cat "$T/front.log" >&2; fail "s3front did not start"; }
PORT=$(cat "$T/front.port")
log "s3rver on $S3PORT, s3front on $PORT"

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
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
unset AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION AWS_CA_BUNDLE
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
# the location given with -r rather than the environment
URL=$TIDEMARK_REPOSITORY
TIDEMARK_REPOSITORY=$T/elsewhere check_ok -r "$URL" --read-data
run tm -r "$URL" snapshots
assert_rc 0 "snapshots with -r"

# ---- the CLI through 10% failing requests (500, 503, resets, truncated
# answers): backup, restore and check still succeed, byte-exact
fault() { python3 -c 'import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method="POST")).read()' "http://127.0.0.1:$PORT/__fault" "$1"; }
S2="$T/src2"
mkdir -p "$S2/d"
random_file "$S2/a.bin" $((6 * 1024 * 1024))
random_file "$S2/d/b.bin" 700000
for i in $(seq 1 60); do printf 'faulty %d\n' "$i" >"$S2/d/g$i.txt"; done
stats_faults() { python3 -c 'import json,sys,urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))["faults"])' "http://127.0.0.1:$PORT/__stats"; }
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
grep -q '"rejected": [1-9]' <(python3 -c 'import json,sys,urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))))' "http://127.0.0.1:$PORT/__stats") ||
        fail "the front rejected no signature"
pass
