#!/usr/bin/env bash
# CPU seconds the SQLite replicator uses, idle and under a writer (docs/performance.md,
# "SQLite replication proof"). Give another build's bin/lifeboat.js to compare versions:
#   bash bench/sqlite-replicator-cpu.sh [CLI] [RATE] [SECONDS]
# Prints the replicator's user+system seconds over SECONDS idle, then over SECONDS of
# a writer committing RATE one-row transactions a second (test/fixtures/sqlite-app.mjs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLI=${1:-$ROOT/bin/lifeboat.js}
RATE=${2:-1000}
SECS=${3:-20}
D=$(mktemp -d /tmp/lb-cpu.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$D"' EXIT
export LIFEBOAT_PASSWORD=bench LIFEBOAT_TEST_KDF=fast
node "$CLI" init -r "$D/repo" -q
node "$ROOT/test/fixtures/sqlite-app.mjs" "$D/app.db" 100 > /dev/null
node "$CLI" -r "$D/repo" -q sqlite replicate "$D/app.db" --name app > /dev/null 2>&1 &
PID=$!
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
hz=$(getconf CLK_TCK)
sleep 3
t0=$(ticks); sleep "$SECS"; t1=$(ticks)
node "$ROOT/test/fixtures/sqlite-app.mjs" "$D/app.db" $((RATE * SECS)) "$RATE" > /dev/null
t2=$(ticks)
echo "idle ${SECS}s: $(echo "scale=2; ($t1 - $t0) / $hz" | bc) cpu-s; ${RATE} commits/s for ${SECS}s: $(echo "scale=2; ($t2 - $t1) / $hz" | bc) cpu-s"
