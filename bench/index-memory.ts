/**
 * Measures what the in-memory blob index costs per million blobs (docs/design-notes.md).
 * Run: npx tsx bench/index-memory.ts [millions]
 */
import { randomBytes } from 'node:crypto';
import { BlobIndex } from '../src/repo/index/blob-index.js';

const n = Math.round(Number(process.argv[2] ?? '1') * 1e6);
const before = process.memoryUsage();
const idx = new BlobIndex();
const pack = idx.addPack(randomBytes(32));
const id = Buffer.alloc(32);
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  randomBytes(32).copy(id);
  idx.add(id, { packIndex: pack, offset: i, length: 1, rawLength: 1, type: 0 });
}
const t1 = performance.now();
let found = 0;
for (let i = 0; i < 100_000; i++) if (idx.has(randomBytes(32))) found++;
const t2 = performance.now();
const after = process.memoryUsage();
const mb = (b: number) => (b / 1e6).toFixed(1);
console.log(`${n} blobs: table ${mb(idx.byteSize)} MB (${(idx.byteSize / n).toFixed(0)} B/blob), ` +
  `rss +${mb(after.rss - before.rss)} MB, heap +${mb(after.heapUsed - before.heapUsed)} MB, ` +
  `insert ${((t1 - t0) / n * 1e3).toFixed(2)} us/blob, miss lookup ${((t2 - t1) / 1e5 * 1e3).toFixed(2)} us (${found})`);
