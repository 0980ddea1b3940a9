/**
 * The on-disk blob index (src/repo/index/disk-index.ts) and its cache file as a
 * repository loads it (index-cache.ts): lookups, misses that never read a page,
 * damaged and stale files rebuilt, packs missing from data/ never offered.
 */
import { randomBytes } from 'node:crypto';
import { openSync, readSync, rmSync, statSync, writeSync, closeSync, existsSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BLOB_DATA, BLOB_TREE, keys } from '../../src/repo/format.js';
import { cacheMacKey, DiskIndex, PAGE, type DiskEntry } from '../../src/repo/index/disk-index.js';
import { DiskIndexBuilder } from '../../src/repo/index/disk-index-build.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { PackEntry } from '../../src/repo/pack/pack.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

const repoId = randomBytes(32);
const macKey = cacheMacKey(randomBytes(32));

function flipByte(file: string, at: number): void {
  const fd = openSync(file, 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x55;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

/** The file opened with the sample's repository and key; its refusal fails the test. */
function opened(file: string, cachePages?: number): DiskIndex {
  const d = DiskIndex.open(file, repoId, macKey, cachePages === undefined ? {} : { cachePages });
  if (typeof d === 'string') throw new Error(d);
  return d;
}

function buildSample(dir: string, n: number, bucketBytes: number) {
  // A filter window of 8 blocks: the filter is written in many windows.
  const b = new DiskIndexBuilder(dir, { repoId, macKey, bucketBytes, filterWindow: 8 });
  const packs = Array.from({ length: 300 }, () => randomBytes(32));
  packs.forEach((p, h) => expect(b.addPack(p)).toBe(h));
  const ids = Array.from({ length: n }, () => randomBytes(32));
  // Ids sharing their first bytes (ties of the sort's numeric key, and runs across pages).
  for (let i = 0; i < 300; i++) ids[i]!.writeUInt32BE(0x12345678, 0);
  for (let i = 300; i < 320; i++) ids[i]!.fill(0xab, 0, 20);
  ids.forEach((id, i) => b.addEntry(id, i % 300, i % 7 === 0, i, i + 1, i + 2));
  // Blobs stored twice: both copies are found.
  for (let i = 0; i < 100; i++) b.addEntry(ids[i]!, (i + 1) % 300, false, 7, 8, 9);
  const sources = [randomBytes(32), randomBytes(32)];
  for (const s of sources) b.addSource(s);
  const file = path.join(dir, 'blobs.lbidx');
  b.finish(file);
  return { file, packs, ids, sources };
}

describe('DiskIndex', () => {
  it('finds every entry and every copy, packs by id and by handle, and answers misses from memory', () => {
    const dir = tmpdir();
    // Tiny buckets: the sort splits them by range, as it would for skewed ids.
    const { file, packs, ids, sources } = buildSample(dir, 30_000, 4096);
    const d = opened(file, 64);
    expect(d.entryCount).toBe(30_100);
    ids.forEach((id, i) => {
      const seen: DiskEntry[] = [];
      d.lookup(id, (e) => seen.push(e));
      const want: DiskEntry[] = [{ handle: i % 300, tree: i % 7 === 0, offset: i, length: i + 1, rawLength: i + 2 }];
      if (i < 100) want.push({ handle: (i + 1) % 300, tree: false, offset: 7, length: 8, rawLength: 9 });
      const order = (a: DiskEntry, b: DiskEntry) => a.offset - b.offset || a.handle - b.handle;
      expect(seen.sort(order)).toEqual(want.sort(order));
    });
    packs.forEach((p, h) => {
      const found: number[] = [];
      d.findPack(p, (x) => found.push(x));
      expect(found).toEqual([h]);
      expect(d.packId(h).equals(p)).toBe(true);
    });
    const notThere: number[] = [];
    d.findPack(randomBytes(32), (x) => notThere.push(x));
    expect(notThere).toEqual([]);
    for (const s of sources) expect(d.coversSource(s)).toBe(true);
    expect(d.coversSource(randomBytes(32))).toBe(false);
    // Misses: the filter answers nearly all of them without reading a page.
    const before = d.pageReads;
    let found = 0;
    for (let i = 0; i < 20_000; i++) d.lookup(randomBytes(32), () => found++);
    expect(found).toBe(0);
    expect(d.pageReads - before).toBeLessThan(20_000 * 0.08);
    // Held in memory: a few bytes per blob plus the bounded page cache.
    expect(d.memoryBytes - 64 * PAGE).toBeLessThan(30_100 * 2);
    d.close();
  });

  it('sorts a bucket split again and again (ids crowded under one first byte, as only a crafted index makes them)', () => {
    const dir = tmpdir();
    const b = new DiskIndexBuilder(dir, { repoId, macKey, bucketBytes: 4096, filterWindow: 2 });
    b.addPack(randomBytes(32));
    const ids = Array.from({ length: 3000 }, () => {
      const id = randomBytes(32);
      id[0] = 7;
      return id;
    });
    // and some at the very start of the range, where a split's first part begins.
    for (let i = 0; i < 200; i++) ids[i]!.fill(0, 0, 4);
    ids.forEach((id, i) => b.addEntry(id, 0, false, i, 1, 1));
    const file = path.join(dir, 'blobs.lbidx');
    b.finish(file);
    const d = opened(file, 64);
    expect(d.entryCount).toBe(3000);
    ids.forEach((id, i) => {
      const seen: DiskEntry[] = [];
      d.lookup(id, (e) => seen.push(e));
      expect(seen.map((e) => e.offset), `id ${i}`).toContain(i);
    });
    d.close();
  });

  it('refuses a file whose metadata was changed, or of another key or repository', () => {
    const dir = tmpdir();
    const { file } = buildSample(dir, 2000, 1 << 20);
    expect(typeof DiskIndex.open(file, repoId, cacheMacKey(randomBytes(32)))).toBe('string');
    expect(typeof DiskIndex.open(file, randomBytes(32), macKey)).toBe('string');
    flipByte(file, statSync(file).size - 3);
    expect(DiskIndex.open(file, repoId, macKey)).toBe('does not authenticate');
    expect(DiskIndex.open(path.join(dir, 'nope'), repoId, macKey)).toBe('missing');
  });

  it('reads the filter from the file when it is larger than may be held: the same answers, its bits authenticated at open and checked at each read', () => {
    const dir = tmpdir();
    const { file, ids } = buildSample(dir, 30_000, 1 << 20);
    const held = opened(file, 64);
    // A limit below this filter (471 blocks, 30 KB): left in the file, authenticated at
    // open through windows of one page (8 of them, the last partial), read 512 bytes a lookup.
    const onDisk = (f: string) => {
      const d = DiskIndex.open(f, repoId, macKey, { cachePages: 64, filterInMemoryMax: 1000, window: PAGE });
      if (typeof d === 'string') throw new Error(d);
      return d;
    };
    const read = onDisk(file);
    expect(held.memoryBytes - read.memoryBytes).toBeGreaterThan(30_000 - PAGE - 64);
    const lookups = (d: DiskIndex, id: Buffer) => {
      const seen: number[] = [];
      d.lookup(id, (e) => seen.push(e.offset));
      return seen.sort((a, b) => a - b);
    };
    for (const id of ids) expect(lookups(read, id)).toEqual(lookups(held, id));
    let hits = 0;
    const pagesBefore = read.pageReads;
    for (let i = 0; i < 20_000; i++) {
      const id = randomBytes(32);
      expect(read.mayContain(id)).toBe(held.mayContain(id));
      read.lookup(id, () => hits++);
    }
    expect(hits).toBe(0);
    expect(read.filterReads).toBeGreaterThanOrEqual(ids.length + 20_000);
    expect(held.filterReads).toBe(0);
    expect(read.pageReads - pagesBefore).toBeLessThan(20_000 * 0.08);
    held.close();
    // (the fences and check values that follow the filter: entry, lookup and pack pages)
    const after = Math.ceil(30_100 / 85) * 12 + Math.ceil(300 / 113) * 12 + Math.ceil(300 / 128) * 4;
    const filterByte = statSync(file).size - after - 100;
    // A filter byte changed after open: the lookup that reads its page stops with the
    // damage named, and the file is removed (the next run builds it again).
    flipByte(file, filterByte);
    expect(() => ids.forEach((id) => read.lookup(id, () => {}))).toThrow(/local index cache .* is damaged \(filter part \d+\)/);
    expect(existsSync(file)).toBe(false);
    read.close();
    // Changed before open: refused, held or not.
    const again = buildSample(tmpdir(), 30_000, 1 << 20);
    flipByte(again.file, filterByte);
    expect(DiskIndex.open(again.file, repoId, macKey, { cachePages: 64, filterInMemoryMax: 1000, window: PAGE })).toBe('does not authenticate');
    expect(DiskIndex.open(again.file, repoId, macKey, { cachePages: 64 })).toBe('does not authenticate');
  });

  it('fails a lookup on a damaged page and removes the file', () => {
    const dir = tmpdir();
    const { file, ids } = buildSample(dir, 2000, 1 << 20);
    flipByte(file, PAGE + 100); // the first entry page
    const d = opened(file);
    expect(() => ids.forEach((id) => d.lookup(id, () => {}))).toThrow(/local index cache .* is damaged/);
    expect(existsSync(file)).toBe(false);
    d.close();
  });
});

// ---- as a repository loads it -------------------------------------------------------

const envBefore = process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS;
afterEach(() => {
  if (envBefore === undefined) delete process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS;
  else process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS = envBefore;
  delete process.env.LIFEBOAT_INDEX_FILTER_MAX_BYTES;
});

async function addIndexFile(repo: Repository, packs: number, perPack: number): Promise<{ ids: Buffer[]; packIds: Buffer[]; key: string }> {
  const before = new Set((await listKeys(repo, 'index/')));
  const ids: Buffer[] = [];
  const packIds: Buffer[] = [];
  const indexed = [];
  for (let p = 0; p < packs; p++) {
    const packId = randomBytes(32);
    packIds.push(packId);
    await repo.store.put(keys.pack(packId.toString('hex')), Buffer.alloc(1));
    const entries: PackEntry[] = [];
    for (let i = 0; i < perPack; i++) {
      const id = randomBytes(32);
      ids.push(id);
      entries.push({ type: i === 0 ? BLOB_TREE : BLOB_DATA, id, offset: i * 10, length: 10, rawLength: 20 });
    }
    indexed.push({ packId, entries });
  }
  await repo.writeIndex(indexed);
  const key = (await listKeys(repo, 'index/')).find((k) => !before.has(k))!;
  return { ids, packIds, key };
}

async function listKeys(repo: Repository, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of repo.store.list(prefix)) out.push(o.key);
  return out;
}

/** A repository of `packs` packs of `perPack` blobs in one index file, kept on disk above `minBlobs`, and its cache directory. */
async function indexedRepo(minBlobs: number, packs: number, perPack: number) {
  process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS = String(minBlobs);
  const store = new MemoryStore();
  const a = await addIndexFile(await Repository.init(store, 'pw'), packs, perPack);
  return { store, a, dir: path.join(tmpdir(), 'cache', 'index') };
}

async function openWithCache(store: MemoryStore, dir: string): Promise<Repository> {
  const r = await Repository.open(store, 'pw');
  r.indexCacheDir = dir;
  await r.loadIndex();
  return r;
}

describe('the index cache of a repository', () => {
  it('keeps a large index on disk, private; finds new index files; rebuilds a stale or damaged file', async () => {
    process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS = '1000';
    const store = new MemoryStore();
    const writer = await Repository.init(store, 'pw');
    const a = await addIndexFile(writer, 20, 100);
    const b = await addIndexFile(writer, 20, 100);
    const dir = path.join(tmpdir(), 'cache', 'index');
    const file = path.join(dir, 'blobs.lbidx');

    const r1 = await openWithCache(store, dir);
    expect(r1.index.disk).toBeDefined();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const id of [...a.ids, ...b.ids]) expect(r1.index.has(id)).toBe(true);
    for (let i = 0; i < 1000; i++) expect(r1.index.has(randomBytes(32))).toBe(false);
    const loc = r1.index.get(a.ids[1]!)!;
    expect(r1.index.packId(loc.packIndex).equals(a.packIds[0]!)).toBe(true);
    expect(loc).toMatchObject({ offset: 10, length: 10, rawLength: 20, type: BLOB_DATA });
    expect(r1.index.get(a.ids[0]!)?.type).toBe(BLOB_TREE);
    expect(r1.index.hasPack(b.packIds[3]!.toString('hex'))).toBe(true);
    const inode = statSync(file).ino;
    r1.releaseDiskIndex();

    // A new index file: used from memory, the cache file is not rebuilt for it.
    const c = await addIndexFile(writer, 2, 10);
    const r2 = await openWithCache(store, dir);
    expect(statSync(file).ino).toBe(inode);
    for (const id of [...a.ids, ...c.ids]) expect(r2.index.has(id)).toBe(true);
    r2.releaseDiskIndex();

    // A pack missing from data/ is never offered for deduplication.
    await store.delete(keys.pack(a.packIds[5]!.toString('hex')));
    const r3 = await openWithCache(store, dir);
    expect(r3.index.has(a.ids[5 * 100 + 3]!)).toBe(false);
    expect(r3.index.get(a.ids[5 * 100 + 3]!)).toBeUndefined();
    expect(r3.index.has(a.ids[6 * 100 + 3]!)).toBe(true);
    r3.releaseDiskIndex();

    // An index file the cache was built from is gone (a prune rewrote it): rebuilt without it.
    await store.delete(b.key);
    const r4 = await openWithCache(store, dir);
    expect(statSync(file).ino).not.toBe(inode);
    expect(r4.index.has(b.ids[0]!)).toBe(false);
    expect(r4.index.has(a.ids[0]!)).toBe(true);
    expect(r4.index.has(c.ids[0]!)).toBe(true);
    r4.releaseDiskIndex();

    // Damaged metadata: rebuilt.
    flipByte(file, statSync(file).size - 1);
    const r5 = await openWithCache(store, dir);
    for (const id of a.ids.slice(600)) expect(r5.index.has(id)).toBe(true); // (pack 5 was deleted above)
    r5.releaseDiskIndex();
    expect(DiskIndex.open(file, Buffer.from(writer.config.id, 'hex'), cacheMacKey(writer.key.idKey))).toBeInstanceOf(DiskIndex);

    // A file of version 1 (an older Lifeboat's: its filter blocks chosen by other bytes): refused, rebuilt.
    const v1 = openSync(file, 'r+');
    writeSync(v1, Buffer.from([1, 0, 0, 0]), 0, 4, 4);
    closeSync(v1);
    expect(DiskIndex.open(file, Buffer.from(writer.config.id, 'hex'), cacheMacKey(writer.key.idKey))).toBe('not a cache file of this version');
    const before = statSync(file).ino;
    const r6 = await openWithCache(store, dir);
    expect(statSync(file).ino).not.toBe(before);
    for (const id of a.ids.slice(600)) expect(r6.index.has(id)).toBe(true);
    for (let i = 0; i < 1000; i++) expect(r6.index.has(randomBytes(32))).toBe(false);
    r6.releaseDiskIndex();

    // Two processes' worth of loads at once each get a whole file.
    rmSync(file);
    const [x, y] = await Promise.all([openWithCache(store, dir), openWithCache(store, dir)]);
    for (const r of [x, y]) expect(r.index.has(a.ids[42]!)).toBe(true);
  });

  it('leaves the filter in the file above LIFEBOAT_INDEX_FILTER_MAX_BYTES, with the same answers', async () => {
    const { store, a, dir } = await indexedRepo(1000, 20, 100);
    const held = await openWithCache(store, dir);
    process.env.LIFEBOAT_INDEX_FILTER_MAX_BYTES = '0';
    const left = await openWithCache(store, dir);
    // The first load built the file with its filter held; the second opened it and left
    // it in the file: every lookup reads it there.
    for (const id of a.ids) expect(left.index.has(id)).toBe(true);
    const probes = Array.from({ length: 2000 }, () => randomBytes(32));
    for (const id of probes) expect(left.index.has(id)).toBe(held.index.has(id));
    expect(left.index.disk!.filterReads).toBeGreaterThanOrEqual(a.ids.length + probes.length);
    expect(held.index.disk!.filterReads).toBe(0);
    held.releaseDiskIndex();
    left.releaseDiskIndex();
  });

  it('keeps a small repository in memory', async () => {
    const { store, a, dir } = await indexedRepo(1_000_000, 2, 10);
    const r = await openWithCache(store, dir);
    expect(r.index.disk).toBeUndefined();
    expect(r.index.has(a.ids[0]!)).toBe(true);
    expect(existsSync(path.join(dir, 'blobs.lbidx'))).toBe(false);
  });

  it('does not deduplicate against a retiring pack on disk', async () => {
    process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS = '10';
    const store = new MemoryStore();
    const writer = await Repository.init(store, 'pw');
    const a = await addIndexFile(writer, 3, 10);
    await writer.saveRetiring({ time: new Date().toISOString(), hostname: 'h', packs: [a.packIds[1]!.toString('hex')] });
    const r = await openWithCache(store, path.join(tmpdir(), 'cache', 'index'));
    expect(r.index.disk).toBeDefined();
    expect(r.index.has(a.ids[0]!)).toBe(true);
    expect(r.index.has(a.ids[12]!)).toBe(false);
    expect(r.index.get(a.ids[12]!)).toBeDefined(); // still readable by snapshots that have it
  });
});
