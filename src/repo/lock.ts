/**
 * Repository locks. Backups, restores and checks take shared locks; operations that
 * delete (key removal now, prune later) take exclusive ones. A lock is a small JSON
 * object under locks/ refreshed by a heartbeat; one whose heartbeat stopped (its
 * process died) is stale after LOCK_STALE_MS, or at once when it names a dead
 * process on this very host.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { listAll, type Store } from '../storage/store.js';
import { keys } from './format.js';
import { isAlive } from '../util/tied-child.js';

export type LockKind = 'shared' | 'exclusive';

export interface LockRecord {
  kind: LockKind;
  hostname: string;
  pid: number;
  command: string;
  time: string;
  refreshed: string;
}

const REFRESH_MS = 60_000;
/** Five missed heartbeats: long enough for a stalled network, short enough to recover. */
export const LOCK_STALE_MS = 5 * REFRESH_MS;

export interface HeldLock {
  readonly id: string;
  release(): Promise<void>;
}

export function isStale(rec: LockRecord, now = Date.now()): boolean {
  if (now - Date.parse(rec.refreshed) > LOCK_STALE_MS) return true;
  return rec.hostname === os.hostname() && rec.pid !== process.pid && !isAlive(rec.pid);
}

export async function readLocks(store: Store): Promise<Array<{ id: string; record: LockRecord }>> {
  const out: Array<{ id: string; record: LockRecord }> = [];
  for (const info of await listAll(store, 'locks/')) {
    try {
      const raw = await store.get(info.key);
      out.push({ id: info.key.slice('locks/'.length), record: JSON.parse(Buffer.from(raw).toString()) as LockRecord });
    } catch (err) {
      // A lock deleted between list and get is simply gone; a garbled one is ignored.
      if (!isLifeboatError(err, 'NOT_FOUND') && !(err instanceof SyntaxError)) throw err;
    }
  }
  return out;
}

export async function acquireLock(store: Store, kind: LockKind, command: string): Promise<HeldLock> {
  const id = randomBytes(16).toString('hex');
  const now = new Date().toISOString();
  const record: LockRecord = { kind, hostname: os.hostname(), pid: process.pid, command, time: now, refreshed: now };
  const write = () => store.put(keys.lock(id), Buffer.from(JSON.stringify(record)));
  await write();
  const conflict = (await readLocks(store)).find(
    (l) => l.id !== id && !isStale(l.record) && (kind === 'exclusive' || l.record.kind === 'exclusive'),
  );
  if (conflict) {
    await store.delete(keys.lock(id));
    const r = conflict.record;
    throw new LifeboatError(
      'LOCKED',
      `repository is locked (${r.kind}) by "${r.command}" on ${r.hostname} pid ${r.pid} since ${r.time}`,
      { hint: 'wait for it to finish; if that process is gone, `lifeboat unlock` removes stale locks' },
    );
  }
  let stopped = false;
  let refreshing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    record.refreshed = new Date().toISOString();
    refreshing = write().catch(() => {});
  }, REFRESH_MS);
  timer.unref();
  return {
    id,
    async release() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      // A heartbeat still being written would bring the lock back after the delete.
      await refreshing;
      await store.delete(keys.lock(id));
    },
  };
}

/** Removes stale locks (or all, with `all`); returns how many were removed. */
export async function removeLocks(store: Store, all: boolean): Promise<number> {
  let n = 0;
  for (const l of await readLocks(store)) {
    if (all || isStale(l.record)) {
      await store.delete(keys.lock(l.id));
      n++;
    }
  }
  return n;
}
