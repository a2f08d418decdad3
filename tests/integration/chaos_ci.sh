#!/usr/bin/env bash
# The bounded form of the chaos suite (tests/chaos/run.sh) for CI: a few
# rounds within a time budget, fewer under the sanitizers (everything is
# several times slower there). The seed is printed; replay a failure with
# tests/chaos/run.sh --rounds N --seed SEED. The long form is run by hand
# (docs/reliability.md). The PostgreSQL rounds (pg_primary_lost, fo_kill:
# a cluster set up on first use, rounds of 15 s to 2 min) do not fit the
# budget and are left to the long form; mon_kill (about 20 s) is in the draw.
set -euo pipefail
src=${TM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${TM_BIN:-$src/build/bin}
rounds=${TM_CHAOS_ROUNDS:-6}
budget=${TM_CHAOS_SECONDS:-45}
if grep -qE '^TM_SANITIZE:[A-Z]*=.+' "$bin/../CMakeCache.txt" 2>/dev/null; then
        rounds=${TM_CHAOS_ROUNDS:-3}
        budget=${TM_CHAOS_SECONDS:-40}
fi
exec bash "$src/tests/chaos/run.sh" --rounds "$rounds" --max-seconds "$budget" \
        --skip pg_primary_lost,fo_kill
