#!/usr/bin/env bash
# Does the scan running ahead of a backup (for progress totals) slow the backup?
# Backs up DIR (default /usr/share, read in place) into a fresh repository with
# `--progress json` (so progress, and with it the scan, is on) and with
# `--progress json --no-scan`, alternating, ROUNDS times (default 2); prints wall
# and CPU seconds and max RSS of each run from /usr/bin/time -v.
# Usage: bench/progress-scan.sh [DIR] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/usr/share}
rounds=${2:-2}
work=$(mktemp -d /tmp/lb-progress-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export LIFEBOAT_PASSWORD=bench
run() { # label, extra flags...
  local label=$1; shift
  rm -rf "$work/repo"
  node bin/lifeboat.js -r "$work/repo" init >/dev/null
  sync
  /usr/bin/time -v node bin/lifeboat.js -r "$work/repo" --progress json backup "$@" "$dir" >/dev/null 2>"$work/err" || true
  local wall user sys rss lines
  wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/err")
  user=$(sed -n 's/.*User time (seconds): //p' "$work/err")
  sys=$(sed -n 's/.*System time (seconds): //p' "$work/err")
  rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/err")
  lines=$(grep -c '^{"type":"progress"' "$work/err" || true)
  printf '%-8s wall %-8s cpu %6.2f s (user %s, sys %s)  max RSS %s KiB  %s progress lines  load %s\n' \
    "$label" "$wall" "$(echo "$user + $sys" | bc)" "$user" "$sys" "$rss" "$lines" "$(cut -d' ' -f1 /proc/loadavg)"
}
echo "backup of $dir ($(find "$dir" -type f 2>/dev/null | wc -l) files, $(du -sh "$dir" 2>/dev/null | cut -f1)), $(nproc) cores"
# Warm the page cache first, so the first run is not the only one reading from disk.
tar -cf - "$dir" 2>/dev/null | cat >/dev/null
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run scan; run no-scan --no-scan; else run no-scan --no-scan; run scan; fi
done
