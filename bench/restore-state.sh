#!/usr/bin/env bash
# Is a restore slow because of the restorer or because of the disk's state? (issue 19,
# docs/performance.md "A faster host"). Two ways to put restic's and Lifeboat's restores
# in the same state, alternating in the order given:
#   MODE=slot  bash bench/restore-state.sh real wrap wrap real
#     ../shared/bench/fs-anchors.sh with TOOLS=lifeboat; "wrap" runs Lifeboat for every
#     step but the restore, which restic does (of RREPO) into the same target.
#   MODE=after bash bench/restore-state.sh lb restic restic lb
#     a fresh copy of the trees, Lifeboat's three backups of it, then one restore by
#     the tool named (restic's of RREPO), into a new directory.
# RREPO: a restic repository holding the same trees (SRC_DIRS), RESTIC_PASSWORD=bench.
set -uo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
: "${RREPO:?a restic repository of the same trees}"
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
LB="node $HERE/bin/lifeboat.js"
W=${BENCH_DIR:-/tmp/lb-restore-state}; mkdir -p "$W"
wrap=$W/lb-but-restic-restores.sh
cat > "$wrap" <<WRAP
#!/usr/bin/env bash
if [ "\$1" = restore ]; then exec restic -r "$RREPO" -q restore latest --target "\${@: -1}"; fi
exec $LB "\$@"
WRAP
chmod +x "$wrap"
if [ "${MODE:-slot}" = slot ]; then
  for v in "$@"; do
    cmd=$LB; [ "$v" = wrap ] && cmd=$wrap
    echo "== $v"; BENCH_DIR=$W TOOLS=lifeboat LB="$cmd" bash "${SHARED_BENCH:-$HERE/../shared/bench}/fs-anchors.sh" | grep restore
    rm -rf "$W/src" "$W/repo-lifeboat" "$W/out-lifeboat"; sync; sleep 3
  done
  exit
fi
[ -d "$W/base" ] || { mkdir -p "$W/base"; for d in ${SRC_DIRS:-/usr/share /usr/lib/x86_64-linux-gnu}; do cp -a "$d" "$W/base/"; done; }
for t in "$@"; do
  rm -rf "$W/src" "$W/repo" "$W"/out-*; cp -a "$W/base" "$W/src"; sync
  $LB init -r "$W/repo" -q
  for i in 1 2 3; do $LB -r "$W/repo" backup -q --progress none "$W/src" >/dev/null; done
  case $t in
    lb) cmd=($LB -r "$W/repo" --progress none -q restore latest --target "$W/out-lifeboat") ;;
    restic) cmd=(restic -r "$RREPO" -q restore latest --target "$W/out-restic") ;;
  esac
  /usr/bin/time -f "$t restore: %e s wall %U user %S sys %M KB" "${cmd[@]}" 2>&1 | tail -1
done
rm -rf "$W/src" "$W/repo" "$W"/out-*
