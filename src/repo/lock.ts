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
  /**
   * Throws unless every heartbeat since the lock was taken was stored in time. Others
   * judge a lock by its last stored heartbeat: one missed for long enough is stale to
   * them, and a prune may then delete what this process still counts on (packs its
   * snapshot will name). Call it just before committing (saving a snapshot).
   */
  assertHeld(): void;
  release(): Promise<void>;
}

/**
 * The heartbeat's interval. A test may shorten it; others still judge staleness by
 * LOCK_STALE_MS. A lock counts as lost once no heartbeat was stored for four intervals,
 * one interval before others may call it stale (a margin for the clocks of two hosts).
 */
export const lockTiming = { refreshMs: REFRESH_MS };

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
  // When the stored heartbeat's write began, on the monotonic clock (a step of the wall
  // clock is not a gap).
  let storedStart = performance.now();
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
  let inFlight = false;
  const refreshMs = lockTiming.refreshMs;
  const lostAfter = 4 * refreshMs;
  // Others read the heartbeat that is stored, which names when its write began. So the
  // age they may see is measured from that start until the next write lands (not until
  // it begins: a write can hang for minutes and land later), and one write at a time.
  let longestGap = 0;
  let lastError: unknown;
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    const started = performance.now();
    record.refreshed = new Date().toISOString();
    refreshing = write().then(
      () => {
        longestGap = Math.max(longestGap, performance.now() - storedStart);
        storedStart = started;
      },
      (err: unknown) => {
        lastError = err;
      },
    );
    void refreshing.finally(() => (inFlight = false));
  }, refreshMs);
  timer.unref();
  return {
    id,
    assertHeld() {
      const gap = Math.max(longestGap, performance.now() - storedStart);
      if (gap <= lostAfter) return;
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new LifeboatError('STORE_UNAVAILABLE', `the repository lock of "${command}" went ${Math.round(gap / 1000)} s without a stored heartbeat${why}; another process may have taken it for stale, so nothing was committed`, {
        hint: 'check the connection to the repository, then run it again (what it stored so far is reused, or removed by the next prune)',
      });
    },
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
