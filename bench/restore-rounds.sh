#!/usr/bin/env bash
# One full restore of `latest` per tool, in the order given (e.g. `after restic before
# before restic after`), each into a new directory that is removed (and synced) after:
# wall, user, system, peak RSS and the 1-minute load as the step started (issue 19).
# Env: LBREPO, RREPO (repositories, LIFEBOAT_PASSWORD / RESTIC_PASSWORD set), AFTER and
# BEFORE (the lifeboat.js of each build), OUT (scratch directory), KEEP=1 (each restore
# goes to a directory of its own, all removed only at the end).
# Why KEEP: on a filesystem without a journal (this machine's ext4), creating a file
# skips every inode deleted in the last 60 s (360 s while its inode table block is
# dirty) at the front of its group, one buffer-cache look-up each, so a restore right
# after a large deletion spends a third of its CPU in the kernel's recently_deleted()
# (perf, docs/performance.md); with KEEP no run follows a deletion.
set -euo pipefail
: "${LBREPO:?}" "${RREPO:?}" "${OUT:?}"
AFTER=${AFTER:-bin/lifeboat.js}
n=0
for tool in "$@"; do
  n=$((n + 1))
  dir=$OUT/out-$tool; [ -n "${KEEP:-}" ] && dir=$OUT/out-$n-$tool
  rm -rf "$dir"; sync
  load=$(cut -d' ' -f1 /proc/loadavg)
  case $tool in
    restic) cmd=(restic -r "$RREPO" -q restore latest --target "$dir") ;;
    before) cmd=(node "${BEFORE:?}" -r "$LBREPO" --progress none -q restore latest --target "$dir") ;;
    after) cmd=(node "$AFTER" -r "$LBREPO" --progress none -q restore latest --target "$dir") ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "$tool %e s wall %U user %S sys %M KB load $load" "${cmd[@]}" 2>&1 | tail -1
  if [ -z "${KEEP:-}" ]; then rm -rf "$dir"; fi
  sync
done
if [ -n "${KEEP:-}" ]; then rm -rf "$OUT"/out-*; sync; fi
