#!/usr/bin/env bash
# One fuzz.* ctest: replay the committed corpus through a libFuzzer target,
# and with TM_FUZZ_SECONDS=N (CI sets 30) also fuzz it for N seconds. The
# fuzzer works on a copy of the corpus: the source tree is never written.
# A crash leaves its input in $TMPDIR/tm-fuzz-<target>.XXXXXX, named in the
# output.
#   run-target.sh FUZZER CORPUS_DIR
set -euo pipefail
bin=$1 corpus=$2
secs=${TM_FUZZ_SECONDS:-0}
name=$(basename "$bin")

case $secs in
'' | *[!0-9]*)
        echo "run-target: TM_FUZZ_SECONDS must be a number of seconds, not '$secs'" >&2
        exit 2
        ;;
esac
if [ "$secs" = 0 ]; then
        exec "$bin" -runs=0 "$corpus"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/tm-$name.XXXXXX")
mkdir "$work/corpus"
cp "$corpus"/* "$work/corpus/"
if "$bin" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/log" || true
        rm -rf "$work"
        exit 0
fi
tail -n 60 "$work/log"
echo "run-target: $name failed; the input and the log are in $work" >&2
exit 1
