/**
 * The Store conformance suite. Every backend and wrapper runs it (restic's
 * backend/test suite is the model): put/get/stat/list/delete semantics, create-only
 * puts, ranged reads, missing objects, listing more than one page, and putFile (the
 * store's own, or the fallback that reads the file).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../errors.js';
import { listAll, putFile, type LocalFile, type Store } from '../store.js';

/** A new file of `data` in `dir`, named as a staging directory's files must be. */
async function tempFile(dir: string, data: Uint8Array): Promise<LocalFile> {
  const p = path.join(dir, `${randomBytes(12).toString('hex')}.tmp`);
  await fs.writeFile(p, data, { flag: 'wx', mode: 0o600 });
  return { path: p, size: data.length };
}

export interface SuiteOptions {
  /** How many objects the listing test writes (backends paginate at 1000). */
  listCount?: number;
  /**
   * The store may only add (the append-only wrapper): the replace and delete tests
   * check that it refuses with PERMISSION and keeps the object instead.
   */
  appendOnly?: boolean;
}

export function storeConformance(
  name: string,
  open: () => Promise<Store>,
  cleanup: (store: Store) => Promise<void> = async () => {},
  opts: SuiteOptions = {},
): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await cleanup(store);
      await store.close();
    });

    it('stores and returns bytes exactly', async () => {
      const data = randomBytes(100_000);
      await store.put('data/ab/abcdef', data);
      expect(Buffer.from(await store.get('data/ab/abcdef')).equals(data)).toBe(true);
      expect(await store.stat('data/ab/abcdef')).toEqual({ key: 'data/ab/abcdef', size: data.length });
    });

    it('stores empty objects', async () => {
      await store.put('locks/empty', new Uint8Array(0));
      expect((await store.get('locks/empty')).length).toBe(0);
    });

    it('reads ranges, and refuses ranges past the end', async () => {
      const data = randomBytes(4096);
      await store.put('data/00/r', data);
      const part = await store.get('data/00/r', { offset: 1000, length: 100 });
      expect(Buffer.from(part).equals(data.subarray(1000, 1100))).toBe(true);
      await expect(store.get('data/00/r', { offset: 4000, length: 200 })).rejects.toSatisfy(
        (e: unknown) => isLifeboatError(e, 'CORRUPT'),
      );
    });

    it('raises NOT_FOUND for a missing object and stat says undefined', async () => {
      await expect(store.get('snapshots/missing')).rejects.toSatisfy((e: unknown) =>
        isLifeboatError(e, 'NOT_FOUND'),
      );
      expect(await store.stat('snapshots/missing')).toBeUndefined();
    });

    it('replaces objects without ifAbsent, refuses with it', async () => {
      await store.put('config', Buffer.from('one'));
      if (opts.appendOnly) {
        await expect(store.put('config', Buffer.from('two'))).rejects.toSatisfy((e: unknown) =>
          isLifeboatError(e, 'PERMISSION'),
        );
        await store.put('config', Buffer.from('one')); // identical bytes: an idempotent retry
      } else {
        await store.put('config', Buffer.from('two'));
      }
      const kept = opts.appendOnly ? 'one' : 'two';
      expect(Buffer.from(await store.get('config')).toString()).toBe(kept);
      await expect(store.put('config', Buffer.from('three'), { ifAbsent: true })).rejects.toSatisfy(
        (e: unknown) => isLifeboatError(e, 'ALREADY_EXISTS'),
      );
      expect(Buffer.from(await store.get('config')).toString()).toBe(kept);
      await store.put('keys/new', Buffer.from('k'), { ifAbsent: true });
      expect(Buffer.from(await store.get('keys/new')).toString()).toBe('k');
    });

    it('deletes idempotently', async () => {
      await store.put('index/x', Buffer.from('x'));
      if (opts.appendOnly) {
        await expect(store.delete('index/x')).rejects.toSatisfy((e: unknown) => isLifeboatError(e, 'PERMISSION'));
        expect(await store.stat('index/x')).toEqual({ key: 'index/x', size: 1 });
        return;
      }
      await store.delete('index/x');
      await store.delete('index/x');
      expect(await store.stat('index/x')).toBeUndefined();
    });

    it('lists by prefix, across nested keys and beyond one page', async () => {
      const n = opts.listCount ?? 1100;
      const keys: string[] = [];
      for (let i = 0; i < n; i++) {
        const id = randomBytes(8).toString('hex');
        keys.push(`data/${id.slice(0, 2)}/${id}`);
      }
      for (let i = 0; i < keys.length; i += 50) {
        await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, Buffer.from(k))));
      }
      await store.put('snapshots/s1', Buffer.from('s'));
      const listed = await listAll(store, 'data/');
      expect(listed.map((o) => o.key).sort()).toEqual([...keys].sort());
      expect(listed.every((o) => o.size === o.key.length)).toBe(true);
      expect((await listAll(store, 'snapshots/')).map((o) => o.key)).toEqual(['snapshots/s1']);
      expect(await listAll(store, 'nothing/')).toEqual([]);
    });

    it('stores a file (putFile) exactly as put would, and leaves the file as it was', async () => {
      // From the store's staging directory (a local store links it) and from elsewhere.
      const dirs = [(await store.stagingDir?.()) ?? os.tmpdir(), os.tmpdir()];
      for (const [i, dir] of dirs.entries()) {
        const key = `data/ef/file${i}`;
        const data = randomBytes(300_000 + i);
        const file = await tempFile(dir, data);
        const otherData = randomBytes(1000);
        const other = await tempFile(dir, otherData);
        try {
          await putFile(store, key, file);
          expect(Buffer.from(await store.get(key)).equals(data)).toBe(true);
          expect(await store.stat(key)).toEqual({ key, size: data.length });
          expect((await fs.readFile(file.path)).equals(data)).toBe(true);
          await expect(putFile(store, key, other, { ifAbsent: true })).rejects.toSatisfy((e: unknown) => isLifeboatError(e, 'ALREADY_EXISTS'));
          expect(Buffer.from(await store.get(key)).equals(data)).toBe(true);
          await putFile(store, key, file); // the same bytes again: an idempotent retry
          if (opts.appendOnly) {
            await expect(putFile(store, key, other)).rejects.toSatisfy((e: unknown) => isLifeboatError(e, 'PERMISSION'));
          } else {
            await putFile(store, key, other);
            expect(await store.stat(key)).toEqual({ key, size: 1000 });
          }
          if (i === 1) {
            // A file from outside the staging directory is copied: changing it in place
            // afterwards does not change the object.
            for (const f of [file, other]) await fs.writeFile(f.path, Buffer.alloc(f.size));
            expect(Buffer.from(await store.get(key)).equals(opts.appendOnly ? data : otherData)).toBe(true);
          }
          // The files being stored, still there, are never listed as objects.
          expect((await listAll(store, '')).every((o) => o.key.startsWith('data/ef/file'))).toBe(true);
        } finally {
          await fs.rm(file.path, { force: true });
          await fs.rm(other.path, { force: true });
        }
      }
      expect((await listAll(store, '')).map((o) => o.key).sort()).toEqual(['data/ef/file0', 'data/ef/file1']);
    });

    it('refuses to putFile what is not the regular file of the size written', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'lb-suite-'));
      try {
        const file = await tempFile(dir, randomBytes(5000));
        await expect(putFile(store, 'data/ef/short', { path: file.path, size: 5001 })).rejects.toThrow();
        const link = path.join(dir, 'link.tmp');
        await fs.symlink(file.path, link);
        await expect(putFile(store, 'data/ef/link', { path: link, size: 5000 })).rejects.toThrow();
        expect(await listAll(store, 'data/')).toEqual([]);
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });

    it('rejects keys that could escape the store', async () => {
      for (const bad of ['../x', '/abs', 'a//b', 'a/./b', '']) {
        await expect(store.put(bad, Buffer.from('x'))).rejects.toThrow(/invalid store key/);
      }
    });
  });
}
