#!/usr/bin/env bash
# What declaring a graph costs a SQLite backup and a drill: a memory graph of NODES
# nodes and 3×NODES edges (edges indexed on both ends, as the quickstart's are), backed
# up with and without its graph declared (ROUNDS times each, alternating), then drilled.
# Usage: bash bench/graph-sqlite.sh        (NODES=1000000 ROUNDS=3 BENCH_DIR=/tmp/lb-graph-bench)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
NODES=${NODES:-1000000}
ROUNDS=${ROUNDS:-3}
D=${BENCH_DIR:-/tmp/lb-graph-bench}
rm -rf "$D" && mkdir -p "$D"
[ -f "$HERE/dist/cli/main.js" ] || (cd "$HERE" && npx tsc -p .)
export LIFEBOAT_PASSWORD=bench
node -e "
const D = require('$HERE/node_modules/better-sqlite3'); const db = new D('$D/g.db');
db.pragma('journal_mode = WAL');
db.exec('CREATE TABLE nodes (id INTEGER PRIMARY KEY, label TEXT NOT NULL); CREATE TABLE edges (id INTEGER PRIMARY KEY, src INTEGER NOT NULL, dst INTEGER NOT NULL, weight REAL NOT NULL)');
const n = db.prepare('INSERT INTO nodes (label) VALUES (?)'), e = db.prepare('INSERT INTO edges (src, dst, weight) VALUES (?, ?, ?)');
db.transaction(() => { for (let i = 1; i <= $NODES; i++) n.run('memory ' + i); for (let i = 0; i < 3 * $NODES; i++) e.run(i % $NODES + 1, (i * 7919) % $NODES + 1, (i % 100) / 100); })();
db.exec('CREATE INDEX edges_src ON edges (src); CREATE INDEX edges_dst ON edges (dst)'); db.close();"
cat > "$D/with.yaml" <<YAML
repositories: { main: { stores: ["$D/repo"] } }
sources:
  g:
    kind: sqlite
    path: "$D/g.db"
    graph:
      nodes: [{ table: nodes, key: id }]
      edges: [{ table: edges, from: src, to: dst }]
      queries:
        - { name: neighbours, sql: "SELECT n.label, e.weight FROM edges e JOIN nodes n ON n.id = e.dst WHERE e.src = 4242 ORDER BY e.weight DESC" }
        - { name: two-hops, sql: "SELECT count(DISTINCT e2.dst) FROM edges e1 JOIN edges e2 ON e2.src = e1.dst WHERE e1.src = 4242" }
YAML
printf 'repositories: { main: { stores: ["%s/repo"] } }\n' "$D" > "$D/without.yaml"
L="node $HERE/bin/lifeboat.js"
$L -r "$D/repo" init >/dev/null
$L -r "$D/repo" sqlite backup "$D/g.db" --name g >/dev/null   # first backup stores the data; the timed ones add nothing
echo "database: $(du -h "$D/g.db" | cut -f1), $NODES nodes, $((3 * NODES)) edges"
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(date +%s.%N) - $s" | bc; }
for i in $(seq "$ROUNDS"); do
  echo "backup without graph: $(t $L --config "$D/without.yaml" -r "$D/repo" sqlite backup "$D/g.db" --name g) s"
  echo "backup with graph:    $(t $L --config "$D/with.yaml" -r "$D/repo" sqlite backup "$D/g.db" --name g) s"
done
$L --config "$D/with.yaml" -r "$D/repo" --json snapshots | node -e "const s = JSON.parse(require('fs').readFileSync(0, 'utf8')).at(-1).consistency.graph; console.log('recorded:', JSON.stringify({ nodes: s.nodes, edges: s.edges, dangling: s.dangling, queries: s.queries }))"
s=$(date +%s.%N); $L -r "$D/repo" drill --source g; echo "drill: $(echo "$(date +%s.%N) - $s" | bc) s"
