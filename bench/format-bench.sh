#!/usr/bin/env bash
# Repository format 2 against format 1: the same file benchmark (../shared/bench/fs-anchors.sh:
# initial backup, unchanged re-backup, changed backup, full restore) run with the
# Lifeboat of OLD_REV (format 1, default 084d61b, the last release before format 2)
# and with this checkout, alternating ROUNDS times (default 2) on the same data.
# Usage: bash bench/format-bench.sh        (BENCH_DIR=/tmp/lb-format-bench by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OLD_REV=${OLD_REV:-084d61b}
OLD=${OLD_DIR:-/tmp/lb-format1-$OLD_REV}
if [ ! -f "$OLD/dist/cli/main.js" ]; then
  rm -rf "$OLD"
  git -C "$HERE" worktree add -f --detach "$OLD" "$OLD_REV" >/dev/null
  ln -sfn "$HERE/node_modules" "$OLD/node_modules"
  (cd "$OLD" && npx tsc -p tsconfig.json)
fi
[ -f "$HERE/dist/cli/main.js" ] || (cd "$HERE" && npx tsc -p .)
export BENCH_DIR=${BENCH_DIR:-/tmp/lb-format-bench}
SHARED=${SHARED_BENCH:-$HERE/../shared/bench}
mkdir -p "$BENCH_DIR"
for round in $(seq "${ROUNDS:-2}"); do
  for which in format1 format2; do
    lb=$HERE/bin/lifeboat.js; [ "$which" = format1 ] && lb=$OLD/bin/lifeboat.js
    echo "# round $round: $which ($lb)"
    TOOLS=lifeboat LB="node $lb" bash "$SHARED/fs-anchors.sh" | sed "s/^lifeboat /$which/"
  done
done
