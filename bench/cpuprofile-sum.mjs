// Self time per function and file in each .cpuprofile of a directory (node --cpu-prof writes one per thread).
// Usage: node bench/cpuprofile-sum.mjs DIR [TOP]
import { readFileSync, readdirSync } from 'node:fs';
const dir = process.argv[2]; const top = +(process.argv[3] ?? 25);
for (const f of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
  const p = JSON.parse(readFileSync(`${dir}/${f}`, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas; let total = 0;
  for (let i = 0; i < p.samples.length; i++) { const n = byId.get(p.samples[i]); const d = dt[i] ?? 0; total += d;
    const cf = n.callFrame; const k = `${cf.functionName || '(anon)'} ${(cf.url || '').replace(/^.*\/(src|dist|node_modules)\//, '$1/')}:${cf.lineNumber + 1}`;
    self.set(k, (self.get(k) ?? 0) + d); }
  console.log(`== ${f}: ${(total / 1e6).toFixed(2)} s sampled`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(v / 1e3).toFixed(0).padStart(7)} ms ${(100 * v / total).toFixed(1).padStart(5)}%  ${k}`);
}
