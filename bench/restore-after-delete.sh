#!/usr/bin/env bash
# A restore right after a large deletion, or some seconds after it (issue 19,
# docs/performance.md "A faster host"): before each restore a copy of DELETE_DIR is made
# and removed, then DELAY seconds pass. Arguments are TOOL:DELAY (tool lb or restic),
# e.g. `lb:0 restic:0 restic:70 lb:70`.
# Env: LBREPO and RREPO (repositories of the same trees), OUT (target, removed before
# each run), DELETE_DIR (default /usr/share); LIFEBOAT_PASSWORD / RESTIC_PASSWORD.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
: "${LBREPO:?}" "${RREPO:?}" "${OUT:?}"
for spec in "$@"; do
  tool=${spec%:*}; delay=${spec#*:}
  rm -rf "$OUT"; sync
  cp -a "${DELETE_DIR:-/usr/share}" "$OUT.junk"; rm -rf "$OUT.junk"; sync
  sleep "$delay"
  case $tool in
    lb) cmd=(node "$HERE/bin/lifeboat.js" -r "$LBREPO" --progress none -q restore latest --target "$OUT") ;;
    restic) cmd=(restic -r "$RREPO" -q restore latest --target "$OUT") ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "$tool after ${delay}s: %e s wall %U user %S sys %M KB" "${cmd[@]}" 2>&1 | tail -1
done
rm -rf "$OUT"
