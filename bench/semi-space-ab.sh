#!/usr/bin/env bash
# The main thread's young generation: `node` against `node --max-semi-space-size=$SEMI`
# (default 2) on a first backup, an unchanged backup and a restore of the same tree, in
# the order ORDER gives (default "base semi semi base"), a fresh local repository each.
# Prints wall time, user+system CPU and peak RSS per step (/usr/bin/time).
# Usage: bash bench/semi-space-ab.sh            (SRC="/usr/share /usr/lib/x86_64-linux-gnu")
#        SEMI=4 ORDER="semi base" SRC=/some/tree bash bench/semi-space-ab.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
LB="$HERE/bin/lifeboat.js"
SRC=${SRC:-/usr/share /usr/lib/x86_64-linux-gnu}
W=${BENCH_DIR:-/tmp/lb-semi}
export LIFEBOAT_PASSWORD=bench
mkdir -p "$W"
step() { # variant name args...
  local v=$1 name=$2; shift 2
  local flags=()
  [ "$v" = semi ] && flags=(--max-semi-space-size="${SEMI:-2}")
  /usr/bin/time -f "$v $name %e s %U+%S cpu %M KB" node "${flags[@]}" "$LB" "$@" 2>&1 >/dev/null | tail -1
}
for v in ${ORDER:-base semi semi base}; do
  R="$W/repo-$v"; O="$W/out-$v"
  rm -rf "$R" "$O"; sync
  node "$LB" -r "$R" init >/dev/null
  # shellcheck disable=SC2086
  step "$v" initial -r "$R" backup -q $SRC
  # shellcheck disable=SC2086
  step "$v" unchanged -r "$R" backup -q $SRC
  sync
  step "$v" restore -r "$R" restore latest --target "$O"
  rm -rf "$O" "$R"; sync
done
