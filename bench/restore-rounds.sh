#!/usr/bin/env bash
# One full restore of `latest` per tool, in the order given (e.g. `after restic before
# before restic after`), each into a new directory that is removed (and synced) after:
# wall, user, system, peak RSS and the 1-minute load as the step started (issue 19).
# Env: LBREPO, RREPO (repositories, LIFEBOAT_PASSWORD / RESTIC_PASSWORD set), AFTER and
# BEFORE (the lifeboat.js of each build), OUT (scratch directory).
set -euo pipefail
: "${LBREPO:?}" "${RREPO:?}" "${OUT:?}"
AFTER=${AFTER:-bin/lifeboat.js}
for tool in "$@"; do
  rm -rf "$OUT/out-$tool"; sync
  load=$(cut -d' ' -f1 /proc/loadavg)
  case $tool in
    restic) cmd=(restic -r "$RREPO" -q restore latest --target "$OUT/out-$tool") ;;
    before) cmd=(node "${BEFORE:?}" -r "$LBREPO" --progress none -q restore latest --target "$OUT/out-$tool") ;;
    after) cmd=(node "$AFTER" -r "$LBREPO" --progress none -q restore latest --target "$OUT/out-$tool") ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "$tool %e s wall %U user %S sys %M KB load $load" "${cmd[@]}" 2>&1 | tail -1
  rm -rf "$OUT/out-$tool"; sync
done
