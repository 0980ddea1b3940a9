#!/usr/bin/env bash
# Peak memory of a first backup and a full restore, Lifeboat and restic side by side
# on the same data, in alternating order (ABBA...) so neither always runs on the disk
# the other just filled. One row per tool and step: wall seconds, user+sys CPU seconds,
# peak RSS (/usr/bin/time's maximum resident set), repository size, the 1-minute load
# average when the step started (the machine may be shared: RSS and CPU are the steady
# figures, wall time is not).
# Usage: LB="node bin/lifeboat.js" bash bench/mem-bench.sh DATA_DIR [ROUNDS]
# Env: TOOLS (default "restic lifeboat"), LB_ENV (extra env for lifeboat, e.g.
# "MALLOC_ARENA_MAX=2"), LB_ARGS (extra backup flags), BENCH_DIR (default /tmp/lb-mem).
set -euo pipefail
: "${LB:?set LB to the lifeboat command}"
DATA=${1:?data directory}; ROUNDS=${2:-2}
W=${BENCH_DIR:-/tmp/lb-mem}; mkdir -p "$W"
export RESTIC_PASSWORD=bench LIFEBOAT_PASSWORD=bench RESTIC_CACHE_DIR=$W/restic-cache
t() { # t TOOL STEP CMD...
  local tool=$1 step=$2; shift 2
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "%e %M %U %S" -o "$W/time.txt" "$@" >"$W/$tool-$step.log" 2>&1 || { echo "$tool $step FAILED (see $W/$tool-$step.log)"; tail -5 "$W/$tool-$step.log"; return 1; }
  read -r secs kb usr sys < <(tail -1 "$W/time.txt")
  printf '%-9s %-8s %7.2fs wall %6.2fs cpu (%5.2f+%5.2f) %5dMB peak  repo %5sMB  load %s\n' "$tool" "$step" "$secs" "$(echo "$usr + $sys" | bc)" "$usr" "$sys" $((kb/1024)) "$(du -sm "$W/repo-$tool" | cut -f1)" "$load"
}
one() {
  local tool=$1
  rm -rf "$W/repo-$tool" "$W/out-$tool" "$W/restic-cache"; sync
  case $tool in
    restic)
      restic -r "$W/repo-restic" init >/dev/null
      t restic backup restic -r "$W/repo-restic" backup "$DATA"
      t restic restore restic -r "$W/repo-restic" restore latest --target "$W/out-restic" ;;
    lifeboat)
      # shellcheck disable=SC2086
      env ${LB_ENV:-} $LB init --repo "$W/repo-lifeboat" >/dev/null
      # shellcheck disable=SC2086
      t lifeboat backup env ${LB_ENV:-} $LB backup --repo "$W/repo-lifeboat" ${LB_ARGS:-} "$DATA"
      # shellcheck disable=SC2086
      t lifeboat restore env ${LB_ENV:-} $LB restore --repo "$W/repo-lifeboat" latest --target "$W/out-lifeboat" ;;
  esac
  rm -rf "$W/out-$tool"; sync
}
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then order=${TOOLS:-"restic lifeboat"}; else order=$(echo ${TOOLS:-"restic lifeboat"} | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}'); fi
  for tool in $order; do one "$tool"; done
done
