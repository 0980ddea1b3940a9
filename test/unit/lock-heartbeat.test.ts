/**
 * A lock whose heartbeat could not be stored for long enough may be judged stale by
 * another process (a prune may then delete packs this one counts on): nothing is
 * committed under it. The heartbeat is shortened here; the rule is the same.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LifeboatError } from '../../src/errors.js';
import { Readable } from 'node:stream';
import { backup } from '../../src/engine/backup/archiver.js';
import { backupStream } from '../../src/engine/backup/stream.js';
import { acquireLock, lockTiming, type LockRecord } from '../../src/repo/lock.js';
import { migrate } from '../../src/repo/maintenance/migrate.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { listAll, type PutOptions } from '../../src/storage/store.js';
import { cleanupTmp, tmpdir } from '../helpers.js';
import { sleep } from '../safety-helpers.js';

const REFRESH = 200; // lost after 4 intervals without a stored heartbeat: 800 ms
const PAST_LOST = 1_000;
const normal = lockTiming.refreshMs;

afterEach(() => {
  lockTiming.refreshMs = normal;
});
afterAll(cleanupTmp);

/** A store whose lock writes can be made to fail (a network that drops them). */
class LockWritesFail extends MemoryStore {
  failing = false;
  /** While set, lock writes wait for it before they land (requests that hang, then all succeed at once). */
  gate: Promise<void> | undefined;
  override async put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void> {
    if (this.failing && key.startsWith('locks/')) throw new LifeboatError('STORE_UNAVAILABLE', 'connection reset (test)');
    if (this.gate && key.startsWith('locks/')) await this.gate;
    return super.put(key, data, opts);
  }
}

async function refreshedOf(store: MemoryStore, id: string): Promise<string> {
  return (JSON.parse(Buffer.from(await store.get(`locks/${id}`)).toString()) as LockRecord).refreshed;
}

describe('a lock heartbeat', () => {
  it('held past several intervals while its heartbeats are stored: still held', async () => {
    lockTiming.refreshMs = REFRESH;
    const store = new LockWritesFail();
    const lock = await acquireLock(store, 'shared', 'backup /x');
    const first = await refreshedOf(store, lock.id);
    await sleep(PAST_LOST);
    expect(await refreshedOf(store, lock.id)).not.toBe(first);
    expect(() => lock.assertHeld()).not.toThrow();
    await lock.release();
  });

  it('not stored for four intervals: lost, and it stays lost once heartbeats are stored again', async () => {
    lockTiming.refreshMs = REFRESH;
    const store = new LockWritesFail();
    const lock = await acquireLock(store, 'shared', 'backup /x');
    store.failing = true;
    await sleep(PAST_LOST);
    expect(() => lock.assertHeld()).toThrow(/^the repository lock of "backup \/x" went \d+ s without a stored heartbeat: connection reset \(test\); another process may have taken it for stale, so nothing was committed$/);
    store.failing = false;
    const stale = await refreshedOf(store, lock.id);
    while ((await refreshedOf(store, lock.id)) === stale) await sleep(REFRESH / 4);
    // Stored again, but another process may have acted in the gap.
    expect(() => lock.assertHeld()).toThrow(/without a stored heartbeat/);
    await lock.release();
  });

  it('written by requests that hang and then land: lost, since the stored heartbeat was old all the while', async () => {
    lockTiming.refreshMs = REFRESH;
    const store = new LockWritesFail();
    const lock = await acquireLock(store, 'shared', 'backup /x');
    let open = () => {};
    store.gate = new Promise<void>((r) => (open = r));
    await sleep(PAST_LOST);
    // Everything that hung lands at once, and heartbeats land promptly again: the
    // stored one was old all the while, however often writes had begun.
    store.gate = undefined;
    open();
    const before = await refreshedOf(store, lock.id);
    for (let i = 0; i < 2; i++) {
      const last = await refreshedOf(store, lock.id);
      while ((await refreshedOf(store, lock.id)) === last) await sleep(REFRESH / 4);
    }
    expect(await refreshedOf(store, lock.id)).not.toBe(before);
    expect(() => lock.assertHeld()).toThrow(/without a stored heartbeat/);
    await lock.release();
  });
});

describe('a backup under a lost lock', () => {
  async function run(kind: 'files' | 'stream', failing: boolean) {
    lockTiming.refreshMs = REFRESH;
    const store = new LockWritesFail();
    const repo = await Repository.init(store, 'pw');
    // The backup's last step before it commits: the lock's heartbeats fail meanwhile (or not).
    const beforeSnapshot = async () => {
      store.failing = failing;
      await sleep(PAST_LOST);
      store.failing = false;
      return {};
    };
    if (kind === 'stream') return { result: backupStream(repo, Readable.from([Buffer.from('a dump\n')]), { path: '/dump/a', source: { kind: 'test' }, beforeSnapshot }), repo };
    const src = tmpdir('lb-lock-');
    await fs.writeFile(path.join(src, 'a.txt'), 'a file\n');
    return { result: backup(repo, { paths: [src], threads: 1, beforeSnapshot }), repo };
  }

  for (const kind of ['files', 'stream'] as const) {
    it(`saves no snapshot and says why (${kind})`, async () => {
      const { result, repo } = await run(kind, true);
      await expect(result).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringMatching(/^the repository lock of "backup .*" went \d+ s without a stored heartbeat/) });
      expect(await repo.listSnapshots()).toEqual([]);
    }, 60_000);
  }

  it('commits when the heartbeats are stored all along', async () => {
    const { result, repo } = await run('files', false);
    await result;
    expect(await repo.listSnapshots()).toHaveLength(1);
  }, 60_000);
});

describe('a migration under a lost lock', () => {
  it('stops before it deletes or rewrites anything more, and a later run finishes it', async () => {
    lockTiming.refreshMs = REFRESH;
    const store = new LockWritesFail();
    const repo = await Repository.init(store, 'pw', { version: 1 });
    const src = tmpdir('lb-lock-');
    await fs.writeFile(path.join(src, 'a.txt'), 'a file\n');
    await backup(repo, { paths: [src], threads: 1 });
    const names = async (prefix: string) => (await listAll(store, prefix)).map((o) => o.key).sort();
    const before = async () => ({ index: await names('index/'), snapshots: await names('snapshots/') });
    const v1 = await before();
    // The event loop held for longer than a lock may go without a heartbeat, right
    // after the new index file is written and before the old one would be deleted.
    const hold = (s: string) => {
      if (s === 'index') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, PAST_LOST);
    };
    await expect(migrate(store, 'pw', { onStep: hold })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringMatching(/lock of "migrate" went \d+ s without a stored heartbeat/) });
    const after = await before();
    // The old index files and snapshots are all still there (a new index file was added).
    for (const k of v1.index) expect(after.index).toContain(k);
    expect(after.snapshots).toEqual(v1.snapshots);
    // Run again (at the normal heartbeat, so a loaded machine cannot lose it): it completes.
    lockTiming.refreshMs = normal;
    await migrate(store, 'pw');
    const done = await Repository.open(store, 'pw');
    expect(await done.listSnapshots()).toHaveLength(1);
  }, 60_000);
});
