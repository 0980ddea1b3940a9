/**
 * PackWriter with a spill directory (issue 19): packs are written to files as blobs come,
 * possibly many adds at once, and stored from the file. The stored packs must be named by
 * the SHA-256 of their bytes, with every blob where the index says, and a write that fails
 * must fail the writer and leave no file behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fsp, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../src/errors.js';
import { BLOB_DATA, BLOB_TREE, PACK_TARGET_SIZE } from '../../src/repo/format.js';
import type { PackWriter } from '../../src/repo/pack/pack-writer.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { listAll } from '../../src/storage/store.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function spillDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'lb-pw-spill-'));
  dirs.push(d);
  return d;
}

/** A repository in memory and a pack writer spilling to a fresh directory. */
async function spilling(): Promise<{ store: MemoryStore; repo: Repository; dir: string; writer: PackWriter }> {
  const store = new MemoryStore();
  const repo = await Repository.init(store, 'pw');
  const dir = spillDir();
  return { store, repo, dir, writer: repo.newPackWriter({ spillDir: dir }) };
}

/**
 * Wraps the next file opened through fs.promises (and only it): its first close runs
 * `first` instead, given the real close, which later closes call directly.
 */
function onFirstOpenedClose(first: (close: () => Promise<void>) => Promise<void>): void {
  const open = fsp.open;
  fsp.open = async (...args: Parameters<typeof open>) => {
    fsp.open = open;
    const fh = await open(...args);
    const close = fh.close.bind(fh);
    fh.close = () => {
      fh.close = close;
      return first(close);
    };
    return fh;
  };
}

describe('PackWriter with a spill directory', () => {
  it('stores packs named by their bytes, each blob readable, when many adds run at once; leaves the directory empty', async () => {
    const { store, dir, writer } = await spilling();
    // ~40 MiB of data blobs (more than two packs) and small trees, all added at once.
    const blobs = Array.from({ length: 40 }, (_, i) => randomBytes(1024 * 1024 + i));
    const trees = Array.from({ length: 200 }, (_, i) => Buffer.from(JSON.stringify({ nodes: [{ name: `f${i}`, type: 'file' }] })));
    const ids = await Promise.all([...blobs.map((b) => writer.addPlain(BLOB_DATA, b)), ...trees.map((t) => writer.addPlain(BLOB_TREE, t))]);
    await writer.flush();
    await writer.settle();

    const packs = await listAll(store, 'data/');
    expect(packs.length).toBeGreaterThanOrEqual(Math.ceil((40 * 1024 * 1024) / PACK_TARGET_SIZE));
    for (const p of packs) {
      const bytes = await store.get(p.key);
      expect(path.basename(p.key)).toBe(createHash('sha256').update(bytes).digest('hex'));
    }
    // Through a fresh repository object: only what the stored index files say.
    const again = await Repository.open(store, 'pw');
    await again.loadIndex();
    for (const [i, b] of [...blobs, ...trees].entries()) expect((await again.loadBlob(ids[i]!)).equals(b), `blob ${i}`).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a write that fails fails the writer, and settle() leaves no pack file', async () => {
    const { repo, dir, writer } = await spilling();
    await writer.addPlain(BLOB_DATA, randomBytes(4096));
    expect(readdirSync(dir)).toHaveLength(1);
    // The directory is gone: the next pack's file cannot be made (a disk that fails).
    const other = repo.newPackWriter({ spillDir: path.join(dir, 'missing') });
    const err = await other.addPlain(BLOB_DATA, randomBytes(4096)).then(() => undefined, (e: unknown) => e);
    expect(isLifeboatError(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/writing a pack in .*missing/);
    await expect(other.flush()).rejects.toBe(err);
    await writer.settle();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a close that fails (the first report of a failed write, on NFS or under a quota) stores nothing and fails the writer as NO_SPACE', async () => {
    const { store, dir, writer } = await spilling();
    // The pack file's first close fails; the cleanup's close is real.
    onFirstOpenedClose(() => Promise.reject(Object.assign(new Error('EDQUOT: disk quota exceeded, close'), { code: 'EDQUOT' })));
    await writer.addPlain(BLOB_DATA, randomBytes(4096));
    const err = await writer.flush().then(() => undefined, (e: unknown) => e);
    expect(isLifeboatError(err, 'NO_SPACE'), String(err)).toBe(true);
    expect((err as Error).message).not.toMatch(/\n/);
    await writer.settle();
    expect(await listAll(store, 'data/')).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('settle() waits for a pack being finished and refuses blobs added after it', async () => {
    const { store, dir, writer } = await spilling();
    // More than a pack, not awaited: the first is being finished when settle() starts,
    // the rest is an open pack. The first pack's close waits (a bounded number of turns:
    // correct code is waiting for it meanwhile) until the open pack's file is gone, so
    // a settle() that did not wait for it would return before it is stored.
    onFirstOpenedClose(async (close) => {
      for (let i = 0; i < 5000 && readdirSync(dir).length > 1; i++) await new Promise((resolve) => setImmediate(resolve));
      return close();
    });
    const adds = Array.from({ length: 20 }, () => writer.addPlain(BLOB_DATA, randomBytes(1024 * 1024)));
    await writer.settle();
    expect(readdirSync(dir)).toEqual([]);
    await Promise.allSettled(adds);
    const after = await writer.addPlain(BLOB_TREE, Buffer.from('{"nodes":[1]}')).then(() => undefined, (e: unknown) => e);
    expect(isLifeboatError(after, 'FAILED')).toBe(true);
    // Every pack that was finished is stored whole; nothing is left in the directory.
    for (const p of await listAll(store, 'data/')) {
      expect(path.basename(p.key)).toBe(createHash('sha256').update(await store.get(p.key)).digest('hex'));
    }
    expect((await listAll(store, 'data/')).length).toBeGreaterThanOrEqual(1);
    expect(readdirSync(dir)).toEqual([]);
  });
});
