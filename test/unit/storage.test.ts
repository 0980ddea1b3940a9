import { randomBytes } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listAll, putFile, type Store } from '../../src/storage/store.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { storeConformance } from '../../src/storage/testing/suite.js';
import { AppendOnlyStore } from '../../src/storage/wrappers/append-only.js';
import { MultiStore } from '../../src/storage/wrappers/multi.js';
import { RetryStore } from '../../src/storage/wrappers/retry.js';
import { ThrottleStore } from '../../src/storage/wrappers/throttle.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

storeConformance('memory', async () => new MemoryStore());
storeConformance(
  'local',
  async () => new LocalStore(tmpdir()),
  async (store) => rmSync(store.location.slice('local:'.length), { recursive: true, force: true }),
);

// The wrappers around a store that has putFile and a staging directory (around
// memory, in store-wrappers.test.ts, they take the fallback that reads the file).
const localRoot = (s: LocalStore) => s.location.slice('local:'.length);
const removeAll = async () => cleanupTmp();
storeConformance('retry(local)', async () => new RetryStore(new LocalStore(tmpdir()), { sleep: async () => {} }), removeAll);
storeConformance('throttle(local)', async () => new ThrottleStore(new LocalStore(tmpdir()), { upload: 1 << 30 }), removeAll);
storeConformance('multi(local, local)', async () => new MultiStore([new LocalStore(tmpdir()), new LocalStore(tmpdir())], { writeQuorum: 2 }), removeAll);
storeConformance('append-only(retry(local))', async () => new AppendOnlyStore(new RetryStore(new LocalStore(tmpdir()))), removeAll, { appendOnly: true });

describe('local store putFile', () => {
  it('links a file from its staging directory into place: the object is that very file, not a copy', async () => {
    const store = new LocalStore(tmpdir());
    const wrapped: Store = new RetryStore(store);
    const staging = await wrapped.stagingDir?.();
    expect(staging).toBe(path.join(localRoot(store), 'tmp'));
    const src = path.join(staging as string, `${randomBytes(12).toString('hex')}.tmp`);
    const data = randomBytes(1 << 20);
    await fs.writeFile(src, data, { flag: 'wx' });
    await putFile(wrapped, 'data/ab/pack', { path: src, size: data.length }, { ifAbsent: true });
    const [a, b] = await Promise.all([fs.stat(src), fs.stat(path.join(localRoot(store), 'data', 'ab', 'pack'))]);
    expect(b.ino).toBe(a.ino);
    expect(b.nlink).toBe(2);
    // Nothing of the store's own is left in tmp/ (only the caller's file).
    expect(await fs.readdir(staging as string)).toEqual([path.basename(src)]);
  });

  it('leaves nothing in tmp/ when the key exists (create-only) or the file is refused', async () => {
    const store = new LocalStore(tmpdir());
    const staging = await store.stagingDir();
    const src = path.join(staging, 'x.tmp');
    await fs.writeFile(src, 'abc');
    await store.put('data/ab/pack', Buffer.from('old'));
    await expect(store.putFile('data/ab/pack', { path: src, size: 3 }, { ifAbsent: true })).rejects.toThrow(/already exists/);
    await expect(store.putFile('data/ab/other', { path: src, size: 4 })).rejects.toThrow();
    expect(await fs.readdir(staging)).toEqual(['x.tmp']);
    expect((await store.get('data/ab/pack')).toString()).toBe('old');
  });
});

describe('local store temporary files', () => {
  it('sweeps those left by dead writers (older than a day) on the first write, and only those', async () => {
    const root = tmpdir();
    await fs.mkdir(path.join(root, 'tmp'), { recursive: true });
    const old = path.join(root, 'tmp', 'dead.tmp');
    const fresh = path.join(root, 'tmp', 'live.tmp');
    await fs.writeFile(old, 'left by kill -9');
    await fs.writeFile(fresh, 'being written right now');
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000;
    await fs.utimes(old, twoDaysAgo, twoDaysAgo);
    const store = new LocalStore(root);
    await store.put('config', Buffer.from('{}'));
    await expect(fs.stat(old)).rejects.toThrow();
    expect(await fs.readFile(fresh, 'utf8')).toBe('being written right now');
    expect((await listAll(store, '')).map((o) => o.key)).toEqual(['config']);
  });

  it('sweeps the spill directory of a dead backup (packs not yet stored) after a day, and no other directory', async () => {
    const root = tmpdir();
    const tmp = path.join(root, 'tmp');
    const dead = path.join(tmp, 'a1.spill');
    const live = path.join(tmp, 'b2.spill');
    const other = path.join(tmp, 'c3');
    for (const d of [dead, live, other]) {
      await fs.mkdir(d, { recursive: true });
      await fs.writeFile(path.join(d, 'p.tmp'), 'pack bytes');
    }
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000;
    for (const d of [dead, other]) await fs.utimes(d, twoDaysAgo, twoDaysAgo);
    const store = new LocalStore(root);
    expect((await listAll(store, '')).map((o) => o.key)).toEqual([]);
    await store.put('config', Buffer.from('{}'));
    await expect(fs.stat(dead)).rejects.toThrow();
    expect(await fs.readdir(live)).toEqual(['p.tmp']);
    expect(await fs.readdir(other)).toEqual(['p.tmp']);
  });
});
