#!/usr/bin/env bash
# pgBackRest and Lifeboat in alternating order (ABBA by default) on the same pgbench
# steps: ../shared/bench/pg-anchors.sh for pgBackRest, bench/pg-bench.sh for Lifeboat.
# After each run it prints what PostgreSQL's own log says of the replay: how many
# segments restore_command brought, the startup process's redo time, and the
# end-of-recovery checkpoint, so replay can be compared per segment (the load's tps,
# and so the WAL to replay, differs between runs).
# Usage: bash bench/pg-rounds.sh
#        ORDER="pgbr lb old lb old pgbr" OLD=/path/to/older/checkout bash bench/pg-rounds.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
command -v pgbackrest >/dev/null || { apt-get update -qq && apt-get install -y -qq pgbackrest >/dev/null; }
for t in ${ORDER:-pgbr lb lb pgbr}; do
  echo "=== $t $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  case $t in
    pgbr) bash "${SHARED_BENCH:-$HERE/../shared/bench}/pg-anchors.sh"; d=/tmp/lb-pgbench ;;
    lb) bash "$HERE/bench/pg-bench.sh"; d=/tmp/lb-pgbench-lifeboat ;;
    old) bash "$OLD/bench/pg-bench.sh"; d=/tmp/lb-pgbench-lifeboat ;;
  esac
  echo "segments restored: $(grep -c 'restored log file' "$d/pg2.log"); $(grep -o 'redo done.*' "$d/pg2.log")"
  grep -o 'checkpoint complete.*total=[0-9.]* s' "$d/pg2.log" | sed -n 1p
done
