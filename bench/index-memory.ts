/**
 * Measures what the blob index costs per million blobs (docs/design-notes.md).
 *
 *   npx tsx bench/index-memory.ts [millions]
 *       the in-memory table: bytes per blob, insert, hit and miss lookups
 *   npx tsx bench/index-memory.ts disk <millions> <repo dir> [blobs per pack]
 *       a local repository of that many synthetic blobs (index files and empty packs,
 *       built once, streamed), then in fresh processes: building the on-disk index
 *       (first open), opening it again, and a backup's index work for 1 GB of new
 *       data at 1 MiB chunks (1024 misses, then 1024 adds), plus lookup rates (misses,
 *       hits cold and with a warm page cache). Each phase prints its peak RSS.
 *   npx tsx bench/index-memory.ts compare <millions> <repo dir>   (after `disk`)
 *       today's table and the on-disk index on the same entries and ids, alternating
 *       PACKS_PER_INDEX_FILE (default: 256k blobs a file) sets the index files' size.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobIndex } from '../src/repo/index/blob-index.js';
import { Repository } from '../src/repo/repository.js';
import { LocalStore } from '../src/storage/local/local-store.js';
import { addSyntheticIndex } from '../test/helpers/synthetic-index.js';

const mb = (b: number) => (b / 1e6).toFixed(1);
const peakMB = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);
const ns = (ms: number, n: number) => ((ms * 1e6) / n).toFixed(0);

function memoryTable(n: number): void {
  const before = process.memoryUsage();
  const idx = new BlobIndex();
  const pack = idx.addPack(randomBytes(32));
  const ids = Buffer.allocUnsafe(32 * Math.min(n, 1_000_000));
  const id = Buffer.alloc(32);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    randomBytes(32).copy(id);
    if (i < 1_000_000) id.copy(ids, i * 32);
    idx.add(id, { packIndex: pack, offset: i, length: 1, rawLength: 1, type: 0 });
  }
  const t1 = performance.now();
  const probes = Buffer.allocUnsafe(32 * 1_000_000);
  for (let i = 0; i < 1_000_000; i++) randomBytes(32).copy(probes, i * 32);
  const t2 = performance.now();
  let found = 0;
  for (let i = 0; i < 1_000_000; i++) if (idx.has(probes.subarray(i * 32, i * 32 + 32))) found++;
  const t3 = performance.now();
  const hits = Math.min(n, 1_000_000);
  for (let i = 0; i < hits; i++) if (idx.has(ids.subarray(i * 32, i * 32 + 32))) found++;
  const t4 = performance.now();
  const after = process.memoryUsage();
  console.log(`memory table, ${n} blobs: table ${mb(idx.byteSize)} MB (${(idx.byteSize / n).toFixed(0)} B/blob), ` +
    `rss +${mb(after.rss - before.rss)} MB, peak RSS ${peakMB()} MB, insert ${ns(t1 - t0, n)} ns/blob, ` +
    `miss ${ns(t3 - t2, 1e6)} ns, hit ${ns(t4 - t3, hits)} ns (${found - hits} false)`);
}

async function openRepo(dir: string): Promise<Repository> {
  return Repository.open(new LocalStore(dir), 'bench');
}

/** One phase in this process (run by the parent in a fresh child). */
async function phase(name: string, dir: string, millions: number, perPack: number): Promise<void> {
  const cacheDir = path.join(dir, '..', `${path.basename(dir)}-cache`, 'index');
  if (name === 'gen') {
    if (!existsSync(dir)) {
      await Repository.init(new LocalStore(dir), 'bench');
    }
    const repo = await openRepo(dir);
    const n = Math.round(millions * 1e6);
    const t0 = performance.now();
    let last = 0;
    addSyntheticIndex(repo, dir, { blobs: n, blobsPerPack: perPack, packsPerIndexFile: Number(process.env.PACKS_PER_INDEX_FILE ?? Math.max(1, Math.floor(262_144 / perPack))), progress: (d) => {
      if (d - last >= 10_000_000) console.error(`  ${d} blobs`), (last = d);
    } });
    console.log(`generated ${n} blobs (${perPack} a pack) in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${peakMB()} MB`);
    return;
  }
  const repo = await openRepo(dir);
  repo.indexCacheDir = cacheDir;
  repo.onWarning = (m) => console.error(`warning: ${m}`);
  const t0 = performance.now();
  await repo.loadIndex();
  const t1 = performance.now();
  const disk = repo.index.disk;
  if (!disk) throw new Error('the index was not put on disk');
  const file = path.join(cacheDir, 'blobs.lbidx');
  console.log(`${name}: loadIndex ${((t1 - t0) / 1000).toFixed(1)} s, ${disk.entryCount} blobs, ${disk.packCount} packs, ` +
    `cache file ${mb(statSync(file).size)} MB, in memory ${mb(disk.memoryBytes)} MB (incl. ${mb(2048 * 4096)} MB page cache), peak RSS ${peakMB()} MB`);
  if (name === 'compare') return compare(repo, disk, await sampleFromCache(dir));
  if (name !== 'lookup') return;
  // A backup adding 1 GB at 1 MiB chunks: each new chunk is looked up, then added.
  const pack = repo.index.addPack(randomBytes(32));
  for (let i = 0; i < 1024; i++) {
    const id = randomBytes(32);
    if (repo.index.has(id)) throw new Error('a random id was found');
    repo.index.add(id, { packIndex: pack, offset: i, length: 1, rawLength: 1, type: 0 });
  }
  await repo.indexOrphanPacks();
  console.log(`  backup of 1 GB (1024 new chunks) + orphan check: peak RSS ${peakMB()} MB`);
  // Lookup rates.
  const probes = Buffer.allocUnsafe(32 * 1_000_000);
  for (let i = 0; i < 1_000_000; i++) randomBytes(32).copy(probes, i * 32);
  const reads0 = disk.pageReads;
  let t = performance.now();
  let found = 0;
  for (let i = 0; i < 1_000_000; i++) if (repo.index.has(probes.subarray(i * 32, i * 32 + 32))) found++;
  const miss = performance.now() - t;
  const missReads = disk.pageReads - reads0;
  const sample = await sampleFromCache(dir);
  t = performance.now();
  for (const id of sample) if (repo.index.has(id)) found++;
  const cold = performance.now() - t;
  const hot = sample.slice(0, 1000);
  for (const id of hot) repo.index.has(id);
  t = performance.now();
  for (let r = 0; r < 100; r++) for (const id of hot) if (repo.index.has(id)) found++;
  const warm = performance.now() - t;
  console.log(`  lookups: miss ${ns(miss, 1e6)} ns (${(missReads / 1e4).toFixed(2)}% read a page), hit ${ns(cold, sample.length)} ns cold, ` +
    `${ns(warm, 100 * hot.length)} ns in the page cache (${found - sample.length - 100 * hot.length} false); peak RSS ${peakMB()} MB`);
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  if (mode === 'phase') {
    const [name, dir, millions, perPack] = rest as [string, string, string, string];
    await phase(name, dir, Number(millions), Number(perPack));
    return;
  }
  if (mode === 'compare') {
    const dir = path.resolve(rest[1] ?? '');
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'phase', 'compare', dir, rest[0] ?? '10', '256'], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    return;
  }
  if (mode !== 'disk') {
    memoryTable(Math.round(Number(mode ?? '1') * 1e6));
    return;
  }
  const millions = Number(rest[0] ?? '10');
  const dir = path.resolve(rest[1] ?? `/tmp/lb-index-bench-${millions}m`);
  const perPack = Number(rest[2] ?? '256');
  const self = fileURLToPath(import.meta.url);
  const run = (name: string) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', self, 'phase', name, dir, String(millions), String(perPack)], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`phase ${name} failed`);
  };
  if (!existsSync(path.join(dir, 'config'))) {
    mkdirSync(path.dirname(dir), { recursive: true });
    run('gen');
  }
  rmSync(path.join(path.dirname(dir), `${path.basename(dir)}-cache`), { recursive: true, force: true });
  run('build');
  run('open');
  run('lookup');
}

/**
 * Today's in-memory table filled with the same entries (from the cache file), then
 * the same misses and hits against both, alternating, three rounds: fair on a shared
 * machine whose load changes from minute to minute.
 */
function compare(repo: Repository, disk: NonNullable<Repository['index']['disk']>, sample: Buffer[]): void {
  const table = new BlobIndex();
  const packs: number[] = [];
  disk.forEachPack((id) => packs.push(table.addPack(id)));
  disk.forEachRecord((r) => {
    const h = r.readUInt32LE(32);
    table.add(r.subarray(0, 32), { packIndex: packs[(h & 0x7fffffff) >>> 0]!, offset: r.readUInt32LE(36), length: r.readUInt32LE(40), rawLength: r.readUInt32LE(44), type: h & 0x80000000 ? 1 : 0 });
  });
  console.log(`  in-memory table of the same ${table.size} blobs: ${mb(table.byteSize)} MB; peak RSS now ${peakMB()} MB`);
  const probes = Array.from({ length: 200_000 }, () => randomBytes(32));
  const time = (f: (id: Buffer) => boolean, ids: Buffer[]) => {
    const t = performance.now();
    let n = 0;
    for (const id of ids) if (f(id)) n++;
    return { ns: ((performance.now() - t) * 1e6) / ids.length, n };
  };
  for (let round = 1; round <= 3; round++) {
    const tm = time((id) => table.has(id), probes);
    const dm = time((id) => repo.index.has(id), probes);
    const th = time((id) => table.has(id), sample);
    const dh = time((id) => repo.index.has(id), sample);
    const hot = sample.slice(0, 2000);
    const hotRounds = Array.from({ length: 20 }, () => hot).flat();
    time((id) => repo.index.has(id), hot);
    const thw = time((id) => table.has(id), hotRounds);
    const dhw = time((id) => repo.index.has(id), hotRounds);
    console.log(`  round ${round}: miss table ${tm.ns.toFixed(0)} ns, disk ${dm.ns.toFixed(0)} ns (${tm.n + dm.n} found); ` +
      `hit table ${th.ns.toFixed(0)} ns, disk cold ${dh.ns.toFixed(0)} ns (${th.n}/${dh.n} of ${sample.length}); ` +
      `hit in page cache: table ${thw.ns.toFixed(0)} ns, disk ${dhw.ns.toFixed(0)} ns`);
  }
}

/** Ids known to be stored: one record of random entry pages of the cache file (read directly). */
async function sampleFromCache(dir: string): Promise<Buffer[]> {
  const { openSync, readSync, closeSync } = await import('node:fs');
  const file = path.join(dir, '..', `${path.basename(dir)}-cache`, 'index', 'blobs.lbidx');
  const fd = openSync(file, 'r');
  const out: Buffer[] = [];
  const size = statSync(file).size;
  for (let i = 0; i < 100_000; i++) {
    const page = 1 + Math.floor(Math.random() * Math.min(1e9, (size / 4096) * 0.5));
    const b = Buffer.alloc(32);
    readSync(fd, b, 0, 32, page * 4096 + 42 * 48); // a record in the middle of the page, as most are
    if (b.some((x) => x !== 0)) out.push(b);
  }
  closeSync(fd);
  return out;
}

await main();
