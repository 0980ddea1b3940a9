/**
 * The multi-destination store: the conformance suite over two destinations, the
 * write quorum with destinations failing, and reads that fall back when a destination
 * is down or holds bytes that fail the repository's authentication.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { walkTree } from '../../src/engine/browse/tree-walk.js';
import { restore } from '../../src/engine/restore/restorer.js';
import { LifeboatError, isLifeboatError } from '../../src/errors.js';
import { keys } from '../../src/repo/format.js';
import { prune } from '../../src/repo/maintenance/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { listAll, type ObjectInfo, type Store } from '../../src/storage/store.js';
import { storeConformance } from '../../src/storage/testing/suite.js';
import { FaultyStore } from '../../src/storage/wrappers/faulty.js';
import { MultiStore } from '../../src/storage/wrappers/multi.js';
import { cleanupTmp, makeFixture, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

storeConformance('multi(memory, memory)', async () => new MultiStore([new MemoryStore(), new MemoryStore()], { writeQuorum: 2 }));

const down = () => new FaultyStore(new MemoryStore(), { rate: 1, seed: 1, kinds: ['error'] });

/** `inner`, except that listing below `prefix` fails (a bucket policy without ListBucket there, a listing's later page refused). */
function listFails(inner: Store, prefix: string): Store {
  async function* refused(): AsyncIterable<ObjectInfo> {
    yield* [];
    throw new LifeboatError('STORE_UNAVAILABLE', `listing ${prefix} refused`);
  }
  return new Proxy(inner, {
    get(t, p) {
      if (p === 'list') return (pre: string) => (pre.startsWith(prefix) ? refused() : t.list(pre));
      const v: unknown = Reflect.get(t, p);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

describe('MultiStore', () => {
  it('is durable at the quorum and fails below it, leaving out a failed destination', async () => {
    const degraded: string[] = [];
    const twoOfThree = new MultiStore([new MemoryStore(), down(), new MemoryStore()], { writeQuorum: 2, onDegraded: (s) => degraded.push(s.location) });
    await twoOfThree.put('a', Buffer.from('x'));
    await twoOfThree.put('b', Buffer.from('y'));
    expect(degraded).toHaveLength(1); // told once, then left out
    expect(Buffer.from(await twoOfThree.get('a')).toString()).toBe('x');

    const oneOfThree = new MultiStore([new MemoryStore(), down(), down()], { writeQuorum: 2 });
    const err = await oneOfThree.put('a', Buffer.from('x')).catch((e: unknown) => e);
    expect(isLifeboatError(err, 'STORE_UNAVAILABLE')).toBe(true);
    expect(String((err as Error).message)).toMatch(/1 of 3 destinations stored it, 2 needed/);
    expect(() => new MultiStore([new MemoryStore()], { writeQuorum: 2 })).toThrow(/write quorum 2 is not between 1 and 1/);
  });

  it('lists what any destination holds, and refuses deletes that cannot reach every destination', async () => {
    const a = new MemoryStore();
    const b = new MemoryStore();
    await a.put('data/1', Buffer.from('1'));
    await b.put('data/2', Buffer.from('2'));
    const multi = new MultiStore([a, b], { writeQuorum: 1 });
    expect((await listAll(multi, 'data/')).map((o) => o.key).sort()).toEqual(['data/1', 'data/2']);
    const withDown = new MultiStore([a, down()], { writeQuorum: 1 });
    await expect(withDown.delete('data/1')).rejects.toThrow(/not every destination is reachable/);
    expect(await a.stat('data/1')).toBeDefined();
  });

  it('answers "not there" only when every destination said so', async () => {
    const withDown = new MultiStore([down(), new MemoryStore()], { writeQuorum: 1 });
    // The down one may hold it (a WAL segment written while the other was down): a
    // caller that must be sure is told so; one checking before a write is not held up.
    await expect(withDown.stat('data/1', { sure: true })).rejects.toThrow();
    expect(await withDown.stat('data/1')).toBeUndefined();
    expect(await new MultiStore([new MemoryStore(), new MemoryStore()], { writeQuorum: 1 }).stat('data/1')).toBeUndefined();
    // Every write needs every destination: one that answers is believed.
    expect(await new MultiStore([down(), new MemoryStore()], { writeQuorum: 2 }).stat('data/1', { sure: true })).toBeUndefined();
  });

  it('asks a destination found unreachable no more (its retries would slow every call), and still counts it as not answering', async () => {
    let calls = 0;
    const dead = new Proxy(down(), {
      get(t, p) {
        const v: unknown = Reflect.get(t, p);
        if (typeof v !== 'function') return v;
        return (...a: unknown[]) => {
          calls++;
          return (v as (...b: unknown[]) => unknown).apply(t, a);
        };
      },
    });
    const up = new MemoryStore();
    await up.put('data/1', Buffer.from('1'));
    const multi = new MultiStore([dead, up], { writeQuorum: 1 });
    expect((await listAll(multi, 'data/')).map((o) => o.key)).toEqual(['data/1']);
    const asked = calls;
    expect(asked).toBeGreaterThan(0);
    expect((await listAll(multi, 'data/')).map((o) => o.key)).toEqual(['data/1']);
    await expect(multi.stat('data/2', { sure: true })).rejects.toThrow(/could not be listed/);
    expect(Buffer.from(await multi.get('data/1')).toString()).toBe('1');
    expect(calls).toBe(asked);
  });

  it('prune deletes nothing when a destination cannot be listed (its snapshots would look gone)', async () => {
    const src = tmpdir('lb-multi-src-');
    await makeFixture(src);
    const dirs = [tmpdir('lb-multi-a-'), tmpdir('lb-multi-b-')] as const;
    const both = new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 1 });
    await Repository.init(both, 'pw');
    const first = await backup(await Repository.open(both, 'pw'), { paths: [src] });
    // The second backup, of new data, reaches only the first destination (the second was down).
    await fs.writeFile(path.join(src, 'new.bin'), Buffer.alloc(300_000, 7));
    const degraded: string[] = [];
    const secondDown = new MultiStore([new LocalStore(dirs[0]), down()], { writeQuorum: 1, onDegraded: (s) => degraded.push(s.location) });
    const second = await backup(await Repository.open(secondDown, 'pw'), { paths: [src] });
    expect(degraded).toHaveLength(1);
    // The first snapshot is forgotten: the second is the one to keep.
    for (const d of dirs) await new LocalStore(d).delete(keys.snapshot(first.snapshot.id));

    // Now the first destination answers but its snapshot listing fails: the union shows
    // no snapshot, and every pack looks unreferenced.
    const told: string[] = [];
    const blind = new MultiStore([listFails(new LocalStore(dirs[0]), 'snapshots/'), new LocalStore(dirs[1])], { writeQuorum: 1, onDegraded: (_s, e) => told.push(e.message) });
    const repo = await Repository.open(blind, 'pw');
    for (let run = 0; run < 2; run++) {
      const outcome = await prune(repo, { graceMs: 0 }).then((r) => r.deleted, (e: unknown) => e);
      if (typeof outcome === 'number') expect(outcome).toBe(0);
      // Refused: a delete needs every destination, a stat every answer.
      else expect(String(outcome)).toMatch(/could not be listed \(snapshots\/\)/);
    }
    expect(told.join('\n')).toMatch(/could not be listed \(snapshots\/\).*nothing is deleted/);

    // Everything the second snapshot needs is still there, and restores.
    const healthy = await Repository.open(new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 1 }), 'pw');
    await healthy.loadIndex();
    const target = path.join(tmpdir('lb-multi-after-prune-'), 'out');
    await restore(healthy, second.snapshot, { target });
    expect(await snapshotOf(path.join(target, src))).toEqual(await snapshotOf(src));
  });

  it('leaves out a destination that was emptied or replaced, instead of filling it with snapshots it cannot restore', async () => {
    const src = tmpdir('lb-multi-src-');
    await makeFixture(src);
    const dirs = [tmpdir('lb-multi-a-'), tmpdir('lb-multi-b-')] as const;
    await Repository.init(new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 2 }), 'pw');
    await backup(await Repository.open(new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 2 }), 'pw'), { paths: [src] });
    await fs.rm(dirs[1], { recursive: true });
    await fs.mkdir(dirs[1]);

    // Every destination must hold each write: the backup fails, and says why.
    const all = new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 2 });
    const err = await backup(await Repository.open(all, 'pw'), { paths: [src] }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/1 of 2 destinations stored it, 2 needed: holds no repository/);
    // One is enough: the backup is stored, the emptied one is reported and left alone.
    const told: string[] = [];
    const one = new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 1, onDegraded: (s, e) => told.push(`${s.location}: ${e.message}`) });
    await backup(await Repository.open(one, 'pw'), { paths: [src] });
    expect(told).toEqual([`${new LocalStore(dirs[1]).location}: holds no repository (no config, where the other destinations have one): was it emptied or replaced?`]);
    expect(await listAll(new LocalStore(dirs[1]), '')).toEqual([]);
  });

  it('restores from the other destination when one is down or holds damaged packs', async () => {
    const src = tmpdir('lb-multi-src-');
    await makeFixture(src);
    const dirs = [tmpdir('lb-multi-a-'), tmpdir('lb-multi-b-')];
    const both = new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 2 });
    await Repository.init(both, 'pw');
    const { snapshot } = await backup(await Repository.open(both, 'pw'), { paths: [src] });

    // Damage every pack of the first destination: flip a byte in the middle of each.
    const packs = (await listAll(new LocalStore(dirs[0] as string), 'data/')).map((o) => path.join(dirs[0] as string, o.key));
    expect(packs.length).toBeGreaterThan(0);
    for (const p of packs) {
      const bytes = await fs.readFile(p);
      bytes[bytes.length >> 1] = (bytes[bytes.length >> 1] as number) ^ 0xff;
      await fs.writeFile(p, bytes);
    }
    const damagedFirst = new MultiStore(dirs.map((d) => new LocalStore(d)), { writeQuorum: 1 });
    const target = path.join(tmpdir('lb-multi-restore-'), 'out');
    const repo = await Repository.open(damagedFirst, 'pw');
    await repo.loadIndex();
    // Blob by blob through the repository's checked reads (the path of ls, diff, dump
    // and SQLite restores and copy): every file's content comes back intact.
    let blobs = 0;
    for await (const e of walkTree(repo, snapshot.tree)) {
      for (const id of e.node.content ?? []) {
        expect((await repo.loadBlob(Buffer.from(id, 'hex'))).length).toBeGreaterThan(0);
        blobs++;
      }
    }
    expect(blobs).toBeGreaterThan(3);
    // And a whole restore, whose batched pack reads are authenticated in the workers.
    const fromDamaged = path.join(tmpdir('lb-multi-restore-damaged-'), 'out');
    await restore(repo, snapshot, { target: fromDamaged });
    expect(await snapshotOf(path.join(fromDamaged, src))).toEqual(await snapshotOf(src));

    const firstDown = new MultiStore([down(), new LocalStore(dirs[1] as string)], { writeQuorum: 1 });
    const repo2 = await Repository.open(firstDown, 'pw');
    await restore(repo2, snapshot, { target });
    expect(await snapshotOf(path.join(target, src))).toEqual(await snapshotOf(src));
  });
});

