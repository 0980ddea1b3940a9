#!/usr/bin/env bash
# Lifeboat vs restic vs borg on the same real files, in one run (docs/performance.md).
# Installs the anchors from Debian when missing. Starts from an empty BENCH_DIR so no
# tool pays for deleting another's output (ext4 with `discard` makes that costly).
# Usage: bash bench/fs-bench.sh        (BENCH_DIR=/tmp/lb-bench-run by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
command -v restic >/dev/null && command -v borg >/dev/null || { apt-get update -qq && apt-get install -y -qq restic borgbackup >/dev/null; }
[ -f "$HERE/dist/cli/main.js" ] || (cd "$HERE" && npx tsc -p .)
export BENCH_DIR=${BENCH_DIR:-/tmp/lb-bench-run}
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"; sync; sleep 2
SHARED=${SHARED_BENCH:-$HERE/../shared/bench}
TOOLS=${TOOLS:-"restic borg lifeboat"} LB="node $HERE/bin/lifeboat.js" bash "$SHARED/fs-anchors.sh"
