#!/usr/bin/env bash
# Every public header compiles on its own (self-contained), with -Werror.
set -euo pipefail
SRC=${1:?source dir}; CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
for h in "$SRC"/lib/include/tidemark/*.h; do
  name=$(basename "$h")
  printf '#include <tidemark/%s>\n#include <tidemark/%s>\n' "$name" "$name" > "$tmp/t.c"
  if ! $CC -std=gnu11 -Wall -Wextra -Werror -fsyntax-only -I"$SRC/lib/include" \
       $(pkg-config --cflags jansson 2>/dev/null) "$tmp/t.c" 2> "$tmp/err"; then
    echo "header $name is not self-contained:"; cat "$tmp/err"; fail=1
  fi
done
[ $fail -eq 0 ] && echo "all public headers are self-contained"
exit $fail
