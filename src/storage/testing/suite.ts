/**
 * The Store conformance suite. Every backend and wrapper runs it (restic's
 * backend/test suite is the model): put/get/stat/list/delete semantics, create-only
 * puts, ranged reads, missing objects, and listing more than one page.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../errors.js';
import { listAll, type Store } from '../store.js';

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

    it('rejects keys that could escape the store', async () => {
      for (const bad of ['../x', '/abs', 'a//b', 'a/./b', '']) {
        await expect(store.put(bad, Buffer.from('x'))).rejects.toThrow(/invalid store key/);
      }
    });
  });
}
