#!/usr/bin/env bash
# A repository entirely on S3 (s3rver behind tests/fake/s3front.py) with 10%
# of requests failing at random (500, 503 SlowDown, connection resets,
# truncated answers): a 1 GiB backup and its restore complete, byte-exact
# (every restored byte is compared, so check reads no data again). Under the sanitizer build (TM_BIN in
# build-asan) the data is 128 MiB, to stay within the CI budget; set
# TM_S3_FAULT_MIB to choose.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$TM_SRC/tests/fake/s3env.sh"
s3_start
MIB=${TM_S3_FAULT_MIB:-1024}
[[ -n ${TM_S3_FAULT_MIB:-} || $TM_BIN != *asan* ]] || MIB=128
avail=$(df -Pm "$T" | awk 'NR==2 {print $4}')
[[ $avail -gt $((MIB * 4)) ]] || skip "needs $((MIB * 4)) MiB free in $T (has $avail)"
export TIDEMARK_REPOSITORY="s3:http://127.0.0.1:$PORT/backups/faulty"
tm_init

S="$T/src"
mkdir -p "$S/d"
big=$((MIB * 3 / 4))
random_file "$S/big.bin" $((big * 1024 * 1024))
for i in $(seq 1 8); do random_file "$S/d/m$i.bin" $(((MIB - big) * 1024 * 1024 / 8)); done
for i in $(seq 1 50); do printf 'small %d\n' "$i" >"$S/d/s$i.txt"; done
log "$MIB MiB of data"

f0=$(front_stat faults)
fault '{"mode":"mix","rate":0.1}'
on_exit "fault '{\"mode\":\"off\"}'"
t0=$(date +%s)
backup_ok "$S"
t1=$(date +%s)
run tm restore latest --target "$T/out"
assert_rc 0 "restore through 10% faults"
t2=$(date +%s)
R="$T/out"
[[ -f $R/big.bin ]] || R=$(dirname "$(find "$T/out" -name big.bin -print -quit)")
for f in big.bin $(cd "$S" && find d -type f); do
        cmp "$S/$f" "$R/$f" || fail "$f restored through faults differs"
done
check_ok
fault '{"mode":"off"}'
log "backup $((t1 - t0)) s, restore $((t2 - t1)) s, $(($(front_stat faults) - f0)) faults injected"
pass
