#!/usr/bin/env bash
# The fuzzing campaign of docs/reliability.md "## Fuzzing": run each libFuzzer
# target until it has burnt CPU_SECS of CPU time (not wall time: the machine is
# shared, so libFuzzer's own -max_total_time, which counts wall seconds, says
# little), then merge what it found back into tests/fuzz/corpus/<target>
# keeping only inputs that add coverage.
#
#   make fuzz                                  # builds build-fuzz
#   tests/fuzz/campaign.sh [target...]         # default: every fuzz_*.c
#   tests/fuzz/campaign.sh --table             # results as a markdown table
#
# Environment: CPU_SECS (600; or the number in the file $OUT/cpu_secs, read
# when a target starts, so a running campaign can be re-budgeted), MAX_WALL (cap in wall seconds, 7200), LANES
# (targets run side by side, 1), OUT (/tmp/tm-fuzz-campaign), BUILD
# (build-fuzz), MERGE (1: merge new coverage into the source corpus).
# One line per target is appended to $OUT/results.tsv:
#   target cpu_s wall_s execs corpus_files corpus_kb crashes
set -euo pipefail
SELF=$(readlink -f "$0")
cd "$(dirname "$SELF")/../.."
ROOT=$PWD
CPU_SECS=${CPU_SECS:-600}
MAX_WALL=${MAX_WALL:-7200}
LANES=${LANES:-1}
OUT=${OUT:-/tmp/tm-fuzz-campaign}
BUILD=${BUILD:-build-fuzz}
MERGE=${MERGE:-1}
TCK=$(getconf CLK_TCK)

# CPU seconds (user + system, all threads) of a live process.
cpu_of() {
        awk -v t="$TCK" '{ sub(/^.*\) /, ""); print int(($12 + $13) / t) }' \
            "/proc/$1/stat" 2>/dev/null || echo -1
}

run_one() {
        # a target may run in several rounds: each gets its own directory
        # and its own results line, and starts from the merged corpus
        local t=$1 bin="$ROOT/$BUILD/tests/fuzz/fuzz_$1" dir="$OUT/$1.$(date +%s)"
        local seeds="$ROOT/tests/fuzz/corpus/$1" pid cpu=0 start now execs

        [ -r "$OUT/cpu_secs" ] && CPU_SECS=$(cat "$OUT/cpu_secs")
        [ -x "$bin" ] || { echo "campaign: no fuzzer '$bin' (make fuzz)" >&2; return 1; }
        mkdir -p "$dir/corpus" "$dir/artifacts"
        [ -d "$seeds" ] && cp "$seeds"/* "$dir/corpus/" 2>/dev/null || true
        start=$(date +%s)
        nice -n 19 "$bin" -print_final_stats=1 -max_total_time="$MAX_WALL" \
            -rss_limit_mb=2048 -timeout=25 -artifact_prefix="$dir/artifacts/" \
            "$dir/corpus" >"$dir/log" 2>&1 &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
                cpu=$(cpu_of "$pid")
                if [ "$cpu" -ge "$CPU_SECS" ]; then
                        kill -INT "$pid" 2>/dev/null || true
                        break
                fi
                sleep 5
        done
        wait "$pid" || true
        now=$(date +%s)
        execs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$dir/log" | tail -1)
        local crashes
        crashes=$(find "$dir/artifacts" -type f | wc -l)
        if [ "$MERGE" = 1 ] && [ "$crashes" = 0 ]; then
                mkdir -p "$seeds"
                "$bin" -merge=1 -rss_limit_mb=2048 "$seeds" "$dir/corpus" >"$dir/merge.log" 2>&1
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$cpu" "$((now - start))" \
            "${execs:-?}" "$(find "$seeds" -type f | wc -l)" \
            "$(du -sk "$seeds" | cut -f1)" "$crashes" >>"$OUT/results.tsv"
        echo "campaign: $t cpu=${cpu}s wall=$((now - start))s execs=${execs:-?} crashes=$crashes"
}

# The figures of docs/reliability.md: rounds of a target summed.
table() {
        echo "| target | CPU s | wall s | execs | corpus files | corpus KiB | crashes |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' '{ cpu[$1] += $2; wall[$1] += $3; ex[$1] += $4; cr[$1] += $7
                      if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
                    END { for (i = 0; i < n; i++) { t = order[i]
                                  printf "%s\t%d\t%d\t%d\t%d\n", t, cpu[t], wall[t], ex[t], cr[t] } }' \
            "$OUT/results.tsv" | sort | while IFS=$'\t' read -r t cpu wall ex cr; do
                d=tests/fuzz/corpus/$t
                printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" "$cpu" "$wall" "$ex" \
                    "$(find "$d" -type f | wc -l)" "$(du -s --apparent-size -k "$d" | cut -f1)" "$cr"
        done
}

if [ "${1:-}" = --table ]; then
        table
        exit
fi
if [ "${1:-}" = --one ]; then
        run_one "$2"
        exit
fi
mkdir -p "$OUT"
if [ $# = 0 ]; then
        set -- $(cd tests/fuzz && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi
printf '%s\n' "$@" | xargs -P "$LANES" -n 1 "$SELF" --one
