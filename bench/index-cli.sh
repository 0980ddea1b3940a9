#!/usr/bin/env bash
# A real backup into a large synthetic repository, two builds alternating
# (docs/performance.md, "The filter left in the file above 32 M blobs"):
#
#   REPO=/tmp/lb-ib-100m CACHE=/tmp/lbc100 OLD=/path/to/old/checkout \
#     bash bench/index-cli.sh new old old new
#
# REPO is a repository made by `npx tsx bench/index-memory.ts disk 100 REPO 256` (password
# "bench"); CACHE the LIFEBOAT_CACHE_DIR whose <repository id>/index/blobs.lbidx is its
# cache file (link the bench's REPO-cache/index/blobs.lbidx there to skip the build).
# Before each run, 1 GiB of new random files (SIZE_MB in all, 8 files) is made, so every
# run adds the same amount; /usr/bin/time prints wall, CPU and peak RSS.
set -euo pipefail
: "${REPO:?set REPO}" "${CACHE:?set CACHE}"
HERE=$(cd "$(dirname "$0")/.." && pwd)
SIZE_MB=${SIZE_MB:-1024}
data=$(mktemp -d /tmp/lb-index-cli.XXXXXX)
trap 'rm -rf "$data"' EXIT
for build in "$@"; do
  case $build in
    new) bin=$HERE/bin/lifeboat.js ;;
    old) bin=${OLD:?set OLD to the other checkout}/bin/lifeboat.js ;;
    *) echo "usage: $0 new|old ..." >&2; exit 2 ;;
  esac
  rm -rf "${data:?}"/*
  for f in 1 2 3 4 5 6 7 8; do head -c $((SIZE_MB / 8))M /dev/urandom > "$data/f$f"; done
  sync
  LIFEBOAT_PASSWORD=bench LIFEBOAT_CACHE_DIR=$CACHE /usr/bin/time -f "$build %e s wall, %U user, %S sys, peak %M KB" \
    node "$bin" backup --repo "$REPO" "$data" -q 2>&1 | tail -1
done
