/**
 * The sweep lock: one prune at a time deletes packs. Marking may run in several prunes
 * at once (a retiring list only withholds packs from deduplication), but two sweeps
 * working from different views of the repository could each keep a different copy of
 * a blob and delete the other. The lock is one object, `locks/sweep`, created only if
 * absent, refreshed like every lock and stale after the same LOCK_STALE_MS, so a prune
 * killed mid-sweep blocks others for minutes, not forever (`lifeboat unlock` clears a
 * stale one at once). It has the shape of a shared lock, so backups are not stopped
 * and an exclusive operation waits for it.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { isLifeboatError } from '../../errors.js';
import type { Store } from '../../storage/store.js';
import { keys } from '../format.js';
import { isStale, LOCK_STALE_MS, type LockRecord } from '../lock.js';

export const SWEEP_LOCK_ID = 'sweep';
const KEY = keys.lock(SWEEP_LOCK_ID);
/** Five heartbeats per stale period, as for other locks. */
const REFRESH_MS = LOCK_STALE_MS / 5;

interface SweepRecord extends LockRecord {
  /** Random: tells this holder's lock from a successor's after a takeover. */
  owner: string;
}

export interface SweepLock {
  /** False once another prune took the lock over (this one stopped refreshing for too long). */
  held(): Promise<boolean>;
  release(): Promise<void>;
}

async function read(store: Store): Promise<{ raw: Buffer; record: SweepRecord } | undefined> {
  try {
    const raw = Buffer.from(await store.get(KEY));
    return { raw, record: JSON.parse(raw.toString()) as SweepRecord };
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return undefined;
    if (err instanceof SyntaxError) return undefined; // garbled: treated as absent below
    throw err;
  }
}

/**
 * Takes the sweep lock, or returns why not (another prune holds it). A stale lock is
 * taken over: removed only if it still holds the bytes judged stale, then created
 * again if absent, so two prunes that find the same stale lock do not both win.
 */
export async function acquireSweepLock(store: Store, command: string): Promise<SweepLock | { busy: string }> {
  const owner = randomBytes(16).toString('hex');
  const time = new Date().toISOString();
  const record: SweepRecord = { kind: 'shared', hostname: os.hostname(), pid: process.pid, command, time, refreshed: time, owner };
  const create = async (): Promise<boolean> => {
    try {
      await store.put(KEY, Buffer.from(JSON.stringify(record)), { ifAbsent: true });
      return true;
    } catch (err) {
      if (isLifeboatError(err, 'ALREADY_EXISTS')) return false;
      throw err;
    }
  };
  let won = await create();
  if (!won) {
    const seen = await read(store);
    if (seen && !isStale(seen.record)) {
      const r = seen.record;
      return { busy: `another prune is sweeping ("${r.command}" on ${r.hostname} pid ${r.pid} since ${r.time})` };
    }
    const again = await read(store);
    if (!seen || (again && again.raw.equals(seen.raw))) await store.delete(KEY);
    won = await create();
    if (!won) return { busy: 'another prune took over a stale sweep lock at the same moment' };
  }
  let lost = false;
  let refreshing: Promise<void> = Promise.resolve();
  const refresh = async (): Promise<void> => {
    const cur = await read(store);
    if (cur?.record.owner !== owner) {
      lost = true;
      return;
    }
    record.refreshed = new Date().toISOString();
    await store.put(KEY, Buffer.from(JSON.stringify(record)));
  };
  const timer = setInterval(() => {
    refreshing = refresh().catch(() => {});
  }, REFRESH_MS);
  timer.unref();
  let released = false;
  return {
    async held() {
      if (lost) return false;
      const cur = await read(store);
      lost = cur?.record.owner !== owner;
      return !lost;
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await refreshing;
      const cur = await read(store);
      if (cur?.record.owner === owner) await store.delete(KEY);
    },
  };
}
