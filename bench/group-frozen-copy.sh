#!/usr/bin/env bash
# How long a files member copied while frozen (no snapshot hook) holds writes:
# `lifeboat group backup` of a group whose one member is a tree of FILES files of 16 KiB
# (default 2000, ~31 MiB), freeze/thaw /bin/true. Capture 1 copies everything; capture 2
# finds nothing changed; capture 3 after rewriting 10% of the files. Prints copy_ms (the
# copy's part of the hold) and hold_ms for each.
# Usage: npm run build && bash bench/group-frozen-copy.sh   (BENCH_DIR, FILES)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
D=${BENCH_DIR:-/tmp/lb-frozen-copy-bench}
N=${FILES:-2000}
rm -rf "$D" && mkdir -p "$D/tree"
export LIFEBOAT_PASSWORD=bench
LB="node $HERE/bin/lifeboat.js"
$LB init -r "$D/repo" >/dev/null
node -e "const fs=require('fs'),c=require('crypto');for(let i=0;i<+process.argv[2];i++)fs.writeFileSync(process.argv[1]+'/f'+i,c.randomBytes(16384))" "$D/tree" "$N"
cat > "$D/lifeboat.yaml" <<YAML
repositories:
  main: { stores: [$D/repo] }
sources:
  docs: { kind: files, paths: [tree] }
groups:
  g: { members: [docs], freeze: [/bin/true], thaw: [/bin/true], max_hold: 10min }
YAML
show() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const p=JSON.parse(s);console.log('$1: copy '+p.members[0].position.copy_ms.toFixed(1)+' ms, hold '+p.hold_ms.toFixed(1)+' ms')})"; }
$LB --config "$D/lifeboat.yaml" --json group backup g | show "capture 1 (all $N files new)"
$LB --config "$D/lifeboat.yaml" --json group backup g | show "capture 2 (nothing changed)"
node -e "const fs=require('fs'),c=require('crypto');for(let i=0;i<+process.argv[2];i+=10)fs.writeFileSync(process.argv[1]+'/f'+i,c.randomBytes(16384))" "$D/tree" "$N"
$LB --config "$D/lifeboat.yaml" --json group backup g | show "capture 3 (10% rewritten)"
rm -rf "$D"
