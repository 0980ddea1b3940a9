#!/usr/bin/env bash
# A stream backup's peak RSS (issue 19): `lifeboat sqlite backup` of a 160 MB SQLite
# database of incompressible 64 KiB rows into a fresh local repository, two builds
# alternating (new old old new ...), /usr/bin/time for each.
#   OLD=/path/to/older/checkout bash bench/sqlite-backup-mem.sh [rounds]
set -euo pipefail
NEW=$(cd "$(dirname "$0")/.." && pwd); : "${OLD:?set OLD to an older checkout (built)}"
W=${BENCH_DIR:-/tmp/lb-sqlite-mem}; mkdir -p "$W"; export LIFEBOAT_PASSWORD=bench
if [ ! -f "$W/big.db" ]; then
  python3 -c "
import sqlite3
c = sqlite3.connect('$W/big.db'); c.execute('pragma journal_mode=wal'); c.execute('create table t(id integer primary key, b blob)')
c.executemany('insert into t(b) values(randomblob(65536))', [()] * 2500); c.commit()"
fi
for r in $(seq 1 "${1:-3}"); do
  if [ $((r % 2)) -eq 1 ]; then order="new old"; else order="old new"; fi
  for v in $order; do
    if [ "$v" = new ]; then B=$NEW; else B=$OLD; fi
    rm -rf "$W/repo"; node "$B/bin/lifeboat.js" init --repo "$W/repo" -q
    /usr/bin/time -f "$v %e s wall, %U s user, %S s system, %M KB peak" node "$B/bin/lifeboat.js" -r "$W/repo" sqlite backup "$W/big.db" -q
  done
done
