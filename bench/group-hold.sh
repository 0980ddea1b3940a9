#!/usr/bin/env bash
# The write hold of `lifeboat group backup` (freeze start to thaw end) for a group of a
# PostgreSQL, a SQLite and a Redis member, idle, ROUNDS times (default 30): the machine's
# PostgreSQL on 127.0.0.1:5432 and Redis on 6379 (it must keep a replication backlog:
# repl_backlog_active:1), a scratch SQLite file in WAL mode. freeze and thaw are
# /bin/true, so the hold is two process starts plus the three position reads.
# Under load, at a chosen data size: bench/group-hold-load.mjs.
# Usage: bash bench/group-hold.sh     (BENCH_DIR=/tmp/lb-group-bench by default)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${BENCH_DIR:-/tmp/lb-group-bench}
rm -rf "$D" && mkdir -p "$D"
export LIFEBOAT_PASSWORD=bench
LB="node $HERE/bin/lifeboat.js"
$LB init -r "$D/repo" >/dev/null
node -e "const D=require('better-sqlite3');const db=new D(process.argv[1]);db.pragma('journal_mode=WAL');db.exec('create table t(x)');db.prepare('insert into t values (1)').run();" "$D/meta.db"
cat > "$D/lifeboat.yaml" <<YAML
repositories:
  main: { stores: [$D/repo] }
sources:
  warm: { kind: postgres, dsn: "postgresql://postgres@127.0.0.1:5432/postgres" }
  hot: { kind: redis, url: "redis://127.0.0.1:6379" }
  meta: { kind: sqlite, path: meta.db }
groups:
  tiers: { members: [hot, warm, meta], freeze: [/bin/true], thaw: [/bin/true], max_hold: 1s }
YAML
for i in $(seq "${ROUNDS:-30}"); do
  $LB --config "$D/lifeboat.yaml" --json group backup tiers | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>console.log(JSON.parse(s).hold_ms))"
done | sort -n | awk '{a[NR]=$1} END {printf "hold over %d captures: min %.1f ms, median %.1f ms, p90 %.1f ms, max %.1f ms\n", NR, a[1], a[int((NR+1)/2)], a[int(NR*0.9)], a[NR]}'
