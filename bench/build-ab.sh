#!/usr/bin/env bash
# Two builds of Lifeboat side by side, in the order given (e.g. `old new new old`), on
# the same trees (issue 19, docs/performance.md "A faster host"):
#   STEP=backup: a first backup into a fresh local repository: wall, user, sys, peak RSS, repository size.
#   STEP=delta:  `restore --delta` over TARGET (restore the snapshot there once first),
#                one file of it changed before each run.
# Env: OLD (a checkout's bin/lifeboat.js, built), NEW (default this checkout's),
#      SRC_DIRS (default /usr/share /usr/lib/x86_64-linux-gnu), REPO (STEP=delta: the
#      repository), TARGET (STEP=delta), W (scratch, default /tmp/lb-build-ab).
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
: "${OLD:?set OLD to the other build bin/lifeboat.js}"
NEW=${NEW:-$HERE/bin/lifeboat.js}; W=${W:-/tmp/lb-build-ab}; mkdir -p "$W"
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench}
n=0
for v in "$@"; do
  n=$((n + 1)); L=$NEW; [ "$v" = old ] && L=$OLD
  case ${STEP:-backup} in
    backup)
      r=$W/repo-$n; rm -rf "$r"; sync
      node "$L" init -r "$r" -q
      # shellcheck disable=SC2086
      /usr/bin/time -f "$v first backup: %e s wall %U user %S sys %M KB" node "$L" -r "$r" backup -q --progress none ${SRC_DIRS:-/usr/share /usr/lib/x86_64-linux-gnu} 2>&1 | tail -1
      echo "   repository $(du -sm "$r" | cut -f1) MB"; rm -rf "$r" ;;
    delta)
      : "${REPO:?}" "${TARGET:?}"
      echo x >> "$(find "$TARGET" -type f -size +1k | head -1)"
      /usr/bin/time -f "$v delta restore: %e s wall %U user %S sys %M KB" node "$L" -r "$REPO" --progress none -q restore latest --target "$TARGET" --delta 2>&1 | tail -1 ;;
  esac
done
