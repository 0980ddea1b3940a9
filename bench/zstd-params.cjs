// zstd parameter sets over 1 MiB pieces of every other file of the bench trees (issue 19,
// docs/performance.md "Chunks at zstd level 3 with smaller match tables"): time and bytes, two rounds.
//   node bench/zstd-params.cjs [set ...]      (sets: l3 l2 l4 l3_h16 l3_c15 l3_h16c15 l3_h15c15 ...)
// SRC_DIRS (space-separated) picks the trees; default /usr/share /usr/lib/x86_64-linux-gnu.
const fs = require('fs'), path = require('path');
const b = require('zstd-napi/binding.js');
const P = b.CParameter;
const pieces = [];
let i = 0;
function walk(d) {
  for (const e of fs.readdirSync(d, { withFileTypes: true })) {
    const f = path.join(d, e.name);
    if (e.isDirectory()) walk(f);
    else if (e.isFile() && (i++ % 2 === 0)) { const data = fs.readFileSync(f); for (let o = 0; o < data.length; o += 1 << 20) pieces.push(data.subarray(o, Math.min(data.length, o + (1 << 20)))); }
  }
}
for (const d of (process.env.SRC_DIRS ?? '/usr/share /usr/lib/x86_64-linux-gnu').split(' ')) walk(d);
const out = Buffer.allocUnsafe(b.compressBound(1 << 20));
const sets = {
  l3: [[P.compressionLevel, 3]],
  l2: [[P.compressionLevel, 2]],
  l3_h16: [[P.compressionLevel, 3], [P.hashLog, 16]],
  l3_c15: [[P.compressionLevel, 3], [P.chainLog, 15]],
  l3_h16c15: [[P.compressionLevel, 3], [P.hashLog, 16], [P.chainLog, 15]],
  l3_mm6: [[P.compressionLevel, 3], [P.minMatch, 6]],
  l3_w20: [[P.compressionLevel, 3], [P.windowLog, 20]],
  l4: [[P.compressionLevel, 4]],
  l3_h15c15: [[P.compressionLevel, 3], [P.hashLog, 15], [P.chainLog, 15]],
  l3_h15c14: [[P.compressionLevel, 3], [P.hashLog, 15], [P.chainLog, 14]],
  l3_h14c14: [[P.compressionLevel, 3], [P.hashLog, 14], [P.chainLog, 14]],
  l3_h16c14: [[P.compressionLevel, 3], [P.hashLog, 16], [P.chainLog, 14]],
  l3_h17c14: [[P.compressionLevel, 3], [P.chainLog, 14]],
};
const which = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(sets);
for (const round of [1, 2]) for (const name of which) {
  const c = new b.CCtx();
  for (const [k, v] of sets[name]) c.setParameter(k, v);
  let bytes = 0, raw = 0; const t = process.hrtime.bigint();
  for (const p of pieces) { const n = c.compress2(out, p); bytes += (n < p.length - (p.length >> 5)) ? n : p.length; raw += p.length; }
  const ms = Number((process.hrtime.bigint() - t) / 1000000n);
  console.log(round, name.padEnd(10), (bytes / 1e6).toFixed(1), 'MB of', (raw / 1e6).toFixed(0), ms, 'ms');
}
