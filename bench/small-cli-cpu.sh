#!/usr/bin/env bash
# The CPU a backup of five small new files and its restore cost, two builds alternating
# (docs/performance.md, "Where the test suite's time goes", 2026-12-05):
#
#   bash bench/small-cli-cpu.sh RUNS A/bin/lifeboat.js B/bin/lifeboat.js
#
# Each run: `init` a fresh repository, change one file, `backup` and `restore` it, each
# under /usr/bin/time; prints the median user+system CPU-s per build and step.
set -euo pipefail
N=${1:?runs}; A=${2:?build A}; B=${3:?build B}
T=$(mktemp -d /tmp/lb-small-cpu.XXXXXX)
trap 'rm -rf "$T"' EXIT
export LIFEBOAT_PASSWORD=pw LIFEBOAT_TEST_KDF=fast
mkdir "$T/data"
for i in 1 2 3 4 5; do head -c 20000 /dev/urandom > "$T/data/f$i"; done
for i in $(seq "$N"); do
  for L in A B; do
    bin=$A; [ "$L" = B ] && bin=$B
    r=$T/r-$L-$i
    node "$bin" init --repo "$r" -q
    echo "run $i $L" >> "$T/data/f1"
    /usr/bin/time -f "%U %S" -o "$T/t" node "$bin" backup "$T/data" --repo "$r" -q
    echo "$L backup $(awk '{print $1+$2}' "$T/t")" >> "$T/res"
    /usr/bin/time -f "%U %S" -o "$T/t" node "$bin" restore latest --target "$T/out-$L-$i" --repo "$r" -q
    echo "$L restore $(awk '{print $1+$2}' "$T/t")" >> "$T/res"
  done
done
for L in A B; do
  for c in backup restore; do
    echo "$L $c median $(awk -v L="$L" -v c="$c" '$1==L && $2==c {print $3}' "$T/res" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}') CPU-s"
  done
done
