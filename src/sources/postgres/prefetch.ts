/**
 * Read-ahead for restore_command. Recovery runs restore_command once per segment and
 * waits for it; each run that reaches Node starts a process, derives the key and
 * opens the repository (~0.3 s). restore_command (recovery-conf.ts) first looks in a
 * spool directory and takes a segment found there with `mv`, without Node.
 *
 * A call that finds nothing in the spool fetches its segment, fetches the next
 * FIRST_SEGMENTS itself, and starts one background fetcher. The fetcher keeps up to
 * SPOOL_SEGMENTS whole archived segments of the timeline in the spool while
 * recovery replays the ones before, so fetching overlaps replay instead of stopping
 * it every few segments (pgBackRest's asynchronous archive-get does the same).
 *
 * The fetcher proves it is still wanted on every round and exits, never lingers:
 * - its lock file (`.fetcher`, its pid) is gone or names another process;
 * - the spool is in a data directory and recovery is over (neither recovery.signal
 *   nor standby.signal is there): it then removes the spool, which no later
 *   recovery of this copy should trust;
 * - the server stopped or died (postmaster.pid gone or naming a dead process): the
 *   spool stays, whole archived segments, for the recovery a restart resumes;
 * - a call on a spool miss recorded a wanted segment (`.wanted`) of another timeline;
 * - the archive has no next segment and recovery took every spooled one (a later
 *   miss starts a new fetcher);
 * - the spool stayed full, or at the end of the archive unchanged, for IDLE_MS
 *   (recovery paused, or the server stopped);
 * - anything fails: the spool is only an optimisation, and the segment's own
 *   restore_command call then fetches it and reports the error.
 * A segment is written under a temporary name and renamed, so `test -f` never sees
 * part of one. Only whole archived segments are spooled (a streamed partial may grow).
 */
import { spawn } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { errno } from '../../errors.js';
import { isAlive } from '../../util/tied-child.js';
import type { Repository } from '../../repo/repository.js';
import { logSource, timelineDir } from './names.js';
import { parseWalName, segmentName } from './wal.js';

/** Segments the background fetcher keeps ready (16 MiB each on disk). */
export const SPOOL_SEGMENTS = 16;
/** Segments a missing call fetches itself, while the fetcher starts. */
export const FIRST_SEGMENTS = 2;
const IDLE_MS = 60_000;
const POLL_MS = 25;
const LOCK = '.fetcher';
const WANTED = '.wanted';
const SEGMENT_NAME = /^[0-9A-F]{24}$/;

/**
 * Moves a prefetched file into place; false when it was not prefetched. Only a
 * segment's name is looked up (the spool holds nothing else): `file` comes from the
 * command line, and `../x` must not move a file from beside the spool.
 */
export async function takePrefetched(dir: string, file: string, dest: string): Promise<boolean> {
  if (!SEGMENT_NAME.test(file)) return false;
  try {
    await fs.rename(path.join(dir, file), dest);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/**
 * Writes `data` as `dir/name`, atomically for `test -f`; false when the spool is gone.
 * With `owner`, also false when the spool's lock no longer names that fetcher: its
 * spool was removed (recovery ended, or a `pg restore --delta` went over the data
 * directory) while it fetched, and the directory there now is another recovery's.
 */
async function spool(dir: string, name: string, data: Uint8Array, owner?: { lock: string; me: string }): Promise<boolean> {
  const tmp = path.join(dir, `${name}.${process.pid}.tmp`);
  try {
    // Exclusive: never through a name planted in the spool (one left by a killed
    // process of the same pid is removed first).
    await fs.rm(tmp, { force: true });
    // Synced before it is named: a spool outlives a crash of the server (or of the
    // machine) for the recovery a restart resumes, and `test -f` cannot tell a
    // segment the crash truncated, which replay would take as the end of WAL.
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (owner && (await readSmall(owner.lock)) !== owner.me) {
      await fs.rm(tmp, { force: true });
      return false;
    }
    await fs.rename(tmp, path.join(dir, name));
    return true;
  } catch (err) {
    await fs.rm(tmp, { force: true });
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Fetches up to `count` archived segments after `file` into the spool; returns how many. */
export async function prefetch(repo: Repository, name: string, file: string, dir: string, count = FIRST_SEGMENTS): Promise<number> {
  const wal = parseWalName(file);
  if (wal.kind !== 'segment' || wal.segno === undefined) return 0;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  let n = 0;
  for (let i = 1n; i <= BigInt(count); i++) {
    const next = segmentName(wal.timeline, wal.segno + i);
    if (existsSync(path.join(dir, next))) continue;
    const data = await repo.getLog(logSource(name), timelineDir(wal.timeline), next);
    if (!data || !(await spool(dir, next, data))) break;
    n++;
  }
  return n;
}

/** Records the segment a call had to fetch itself: the fetcher skips to after it. */
export async function recordWanted(dir: string, file: string): Promise<void> {
  if (!SEGMENT_NAME.test(file)) return;
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `${WANTED}.${process.pid}.tmp`);
  await fs.rm(tmp, { force: true });
  await fs.writeFile(tmp, file, { flag: 'wx', mode: 0o600 });
  await fs.rename(tmp, path.join(dir, WANTED));
}

async function readSmall(file: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(file, 'utf8')).slice(0, 64).trim();
  } catch (err) {
    if (errno(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** True when a fetcher holds the spool's lock and its process is alive. */
export async function fetcherRunning(dir: string): Promise<boolean> {
  const pid = await readSmall(path.join(dir, LOCK));
  return pid !== undefined && isAlive(Number(pid));
}

/**
 * Starts `argv` (this CLI's `pg archive-prefetch …`) detached from restore_command:
 * its own session, no terminal, no pipes PostgreSQL's call would wait on.
 */
export function startFetcher(argv: readonly string[]): void {
  const [cmd, ...args] = argv as [string, ...string[]];
  const child = spawn(cmd, args, { detached: true, stdio: 'ignore' });
  child.on('error', () => {});
  child.unref();
}

/**
 * The server whose data directory holds the spool: `stopped` when postmaster.pid is
 * gone or names a dead process (stopped, crashed, killed), `promoted` when recovery
 * is over (neither recovery.signal nor standby.signal), `unknown` when the spool is
 * not in a data directory (an operator's own --prefetch directory).
 */
async function serverState(dir: string): Promise<'recovering' | 'stopped' | 'promoted' | 'unknown'> {
  const data = path.dirname(dir);
  if (!existsSync(path.join(data, 'PG_VERSION'))) return 'unknown';
  const pid = (await readSmall(path.join(data, 'postmaster.pid')))?.split('\n')[0];
  if (pid === undefined || !isAlive(Number(pid))) return 'stopped';
  if (!existsSync(path.join(data, 'recovery.signal')) && !existsSync(path.join(data, 'standby.signal'))) return 'promoted';
  return 'recovering';
}

/**
 * Waits for `work`, asking `unwanted` every POLL_MS meanwhile: `{ stop }` as soon as
 * it names a reason, without waiting for `work` (whose outcome is then dropped).
 */
async function whileWanted<T>(work: Promise<T>, unwanted: () => Promise<string | undefined>): Promise<{ value: T } | { stop: string }> {
  let settled = false;
  const done = work.then((value) => ({ value }));
  done.then(
    () => (settled = true),
    () => (settled = true),
  );
  const watch = (async (): Promise<{ stop: string } | undefined> => {
    while (!settled) {
      await sleep(POLL_MS);
      if (settled) return undefined;
      const why = await unwanted();
      if (why) return { stop: why };
    }
    return undefined;
  })();
  const first = await Promise.race([done, watch]);
  if (first !== undefined) return first;
  return done;
}

export interface FetcherOptions {
  ahead?: number;
  idleMs?: number;
}

/**
 * The background fetcher (`pg archive-prefetch`): keeps the segments after `after`
 * in the spool until one of the exits listed at the top. Returns why it stopped.
 */
export async function runFetcher(repo: Repository, name: string, after: string, dir: string, opts: FetcherOptions = {}): Promise<string> {
  const ahead = opts.ahead ?? SPOOL_SEGMENTS;
  const idleMs = opts.idleMs ?? IDLE_MS;
  const start = parseWalName(after);
  if (start.kind !== 'segment' || start.segno === undefined) return 'not a segment';
  const lock = path.join(dir, LOCK);
  const me = String(process.pid);
  try {
    await fs.writeFile(lock, me, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if (errno(err) === 'ENOENT') return 'spool gone';
    if (errno(err) !== 'EEXIST') throw err;
    if (await fetcherRunning(dir)) return 'another fetcher runs';
    // A fetcher that died (SIGKILL, a crash) left its lock; one new fetcher takes over.
    await fs.rm(lock, { force: true });
    try {
      await fs.writeFile(lock, me, { flag: 'wx', mode: 0o600 });
    } catch (again) {
      if (errno(again) === 'EEXIST' || errno(again) === 'ENOENT') return 'another fetcher runs';
      throw again;
    }
  }
  const timeline = start.timeline;
  let next = start.segno + 1n;
  let idleSince = Date.now();
  // At the end of the archive nothing is fetched; the spool is left for recovery to
  // finish and removed when it has (a later miss starts a new fetcher for new WAL).
  let ended = false;
  let lastHeld = 0;
  try {
    // Why the fetcher is no longer wanted, if it is not: asked on every round, and
    // every POLL_MS while a fetch is in flight (a store that does not answer must
    // not keep a fetcher alive after its server).
    const unwanted = async (): Promise<string | undefined> => {
      if ((await readSmall(lock)) !== me) return 'lock taken';
      const server = await serverState(dir);
      if (server === 'stopped') return 'server stopped';
      if (server === 'promoted') {
        await fs.rm(dir, { recursive: true, force: true });
        return 'recovery over';
      }
      return undefined;
    };
    for (;;) {
      const why = await unwanted();
      if (why) return why;
      const wantedName = await readSmall(path.join(dir, WANTED));
      const wanted = wantedName && SEGMENT_NAME.test(wantedName) ? parseWalName(wantedName) : undefined;
      if (wanted && wanted.timeline !== timeline) return 'another timeline';
      const names = await fs.readdir(dir).catch((err: unknown) => {
        if (errno(err) === 'ENOENT') return undefined;
        throw err;
      });
      if (!names) return 'spool gone';
      const entries = names.filter((f) => SEGMENT_NAME.test(f) && parseWalName(f).timeline === timeline);
      let held = 0;
      for (const f of entries) {
        const segno = parseWalName(f).segno as bigint;
        // Recovery is past it (a call fetched a later one itself): it will not be asked for.
        if (wanted?.segno !== undefined && segno <= wanted.segno) await fs.rm(path.join(dir, f), { force: true });
        else held++;
      }
      if (wanted?.segno !== undefined && wanted.segno >= next) next = wanted.segno + 1n;
      if (ended && held === 0) return 'end of archive';
      if (held < lastHeld) idleSince = Date.now();
      lastHeld = held;
      if (held >= ahead || ended) {
        if (Date.now() - idleSince > idleMs) return ended ? 'end of archive' : 'idle';
        await sleep(POLL_MS);
        continue;
      }
      const file = segmentName(timeline, next);
      if (!entries.includes(file)) {
        const got = await whileWanted(repo.getLog(logSource(name), timelineDir(timeline), file), unwanted);
        if ('stop' in got) return got.stop;
        const data = got.value;
        if (!data) {
          ended = true;
          continue;
        }
        if (!(await spool(dir, file, data, { lock, me }))) return 'spool gone';
      }
      next++;
      idleSince = Date.now();
    }
  } finally {
    if ((await readSmall(lock).catch(() => undefined)) === me) await fs.rm(lock, { force: true });
  }
}
