#!/usr/bin/env bash
# bench-quick.sh [bench.sh options...]
#
# Same benchmark as bench.sh on a small synthetic dataset (~210 MiB, about a
# minute per tool) for quick iteration.  The dataset is built once from copies
# of /usr/lib (a few trees of Python, git, Perl, PostgreSQL and node files, plus
# a 48 MiB file concatenated from shared libraries) into
# $QUICK_DS (default ${TMPDIR:-/tmp}/tidemark-bench-quick-ds) and reused.
# Not comparable with the full dataset's numbers; use bench.sh for those.
#
# Example: bench/bench-quick.sh --tools tidemark,restic,borg --tidemark build-e/bin/tidemark
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
DS=${QUICK_DS:-${TMPDIR:-/tmp}/tidemark-bench-quick-ds}
BIG_BYTES=${QUICK_BIG_BYTES:-50331648}   # 48 MiB
SOURCES=(
  usr/lib/python3.11
  usr/lib/git-core
  usr/lib/postgresql
  usr/lib/node_modules
  usr/lib/x86_64-linux-gnu/perl
)

if [ ! -f "$DS/.complete" ]; then
  echo "bench-quick: building the quick dataset in $DS" >&2
  rm -rf "$DS"
  mkdir -p "$DS/tree" "$DS/big"
  present=()
  for s in "${SOURCES[@]}"; do [ -d "/$s" ] && present+=("$s"); done
  [ ${#present[@]} -gt 0 ] || { echo "bench-quick: none of the sources exist" >&2; exit 1; }
  tar -C / --sort=name --one-file-system -cf - "${present[@]}" | tar -C "$DS/tree" -xf -
  # same recipe as make-dataset.sh's big file, smaller
  find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -printf '%i\t%p\n' \
    | sort -t$'\t' -k2,2 | awk -F'\t' '!seen[$1]++ { print $2 }' | tr '\n' '\0' \
    | xargs -0 cat 2>/dev/null | head -c "$BIG_BYTES" >"$DS/big/bigfile.bin" || true
  [ "$(stat -c %s "$DS/big/bigfile.bin")" -eq "$BIG_BYTES" ] \
    || { echo "bench-quick: big file too short" >&2; exit 1; }
  echo "bench-quick: dataset $(du -sh "$DS" | cut -f1), $(find "$DS" -type f | wc -l) files" >&2
  touch "$DS/.complete"
fi

exec "$HERE/bench.sh" "$DS" "$@"
