/**
 * Rebuilds a SQLite database as of a moment: the newest snapshot at or before it,
 * then every transaction of that snapshot's generation seen by then, page by page.
 * The result is written in a private directory beside the target, must pass
 * `PRAGMA integrity_check` and `foreign_key_check`, and only then takes the target's
 * name (without replacing anything: an existing target is refused up front). All of
 * it relative to the output directory's descriptor (util/safe-fs.ts).
 *
 * Memory: one segment (at most 32 MiB stored) and its page map at a time.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { relisting } from '../../engine/txn-history.js';
import { frameInfo, FRAME_HEADER_SIZE } from './wal.js';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import type { ProgressFn } from '../../engine/progress.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { openSafeDir, type OpenedDir } from '../../engine/restore/target.js';
import { linkAt, lstatAt, mkdirOpenAt, removeAt } from '../../util/safe-fs.js';
import { copyTables, openDefensive } from './select-tables.js';
import { logSource } from './backup.js';
import { DIVERGED, segmentsOf, transactionsAfter, trustedUntil } from './history.js';
import { chainFrom, comparePos, type Commit, type Position, type SegmentName } from './segment.js';
import { requireSqlitePoint, sqlitePoint } from './point.js';
import type { Located } from './locate.js';

export interface SqliteRestoreOptions {
  name: string;
  output: string;
  /** Restore as of this moment; default: the newest transaction stored. */
  time?: Date;
  /**
   * Or exactly up to this position of a generation (a group point's, locate.ts): the
   * newest snapshot of that generation at or before it, and its transactions up to
   * it. Fails (ARCHIVE_BEHIND) when the stored history does not reach it.
   */
  position?: Located;
  /** Only these tables (with their indexes and triggers) go into the output. */
  tables?: string[];
  onProgress?: ProgressFn;
}

export interface SqliteRestoreResult {
  output: string;
  snapshot: Snapshot;
  generation?: string;
  /** Transactions replayed on top of the snapshot. */
  commits: number;
  segments: number;
  /** When the newest restored transaction was first seen (the snapshot's time if none). */
  restoredTo: Date;
  /** Rows foreign_key_check reports (the source held them too: SQLite enforces foreign keys only when asked). */
  foreignKeyViolations: number;
  bytes: number;
  tables?: string[];
  durationMs: number;
}

interface Candidate {
  snapshot: Snapshot;
  generation?: string;
  names: SegmentName[];
  /** Set when the generation was found to diverge from the database: replay stops there. */
  trusted?: Position | null;
  /** How far (in time) this candidate reaches towards the target. */
  reach: number;
}

export async function sqliteRestore(repo: Repository, opts: SqliteRestoreOptions): Promise<SqliteRestoreResult> {
  const started = Date.now();
  const output = path.resolve(opts.output);
  // The output's directory, opened once: every later step is relative to it, so a
  // directory on the way swapped for a symlink cannot redirect the result.
  const dir = await refuseExisting(output);
  const name = path.basename(output);
  let work: number | undefined;
  const workName = `.lifeboat-restore-${randomBytes(6).toString('hex')}`;
  try {
    const lock = await acquireLock(repo.store, 'shared', `sqlite restore ${opts.name}`);
    try {
      const source = await resolveName(repo, opts.name);
      const base = opts.position ? await baseFor(repo, source, opts.position) : await choose(repo, source, opts.time);
      // After the snapshot is chosen: its index files were stored before it, so a snapshot
      // that lands while this restore starts is never chosen without the index naming its blobs.
      await repo.loadIndex();
      // SQLite works by path (and adds -journal files beside): it works in a private
      // directory made here (0700), named through our descriptor of it.
      work = mkdirOpenAt(dir.fd, workName, 0o700);
      const tmp = `/proc/self/fd/${work}/restored.db`;
      const c = requireSqlitePoint(base.snapshot);
      const bytes = await writeImage(repo, base.snapshot, tmp, opts.onProgress);
      const replay = base.generation
        ? await replayFrames(repo, logSource(source), base.generation, c.position as Position, base.names, tmp, opts.time, base.trusted, opts.position?.position)
        : { commits: 0, segments: 0, lastTime: undefined, last: undefined };
      if (opts.position) reachedExactly(source, opts.position, c.position as Position, replay.last);
      let result = 'restored.db';
      if (opts.tables?.length) {
        result = 'tables.db';
        copyTables(tmp, `/proc/self/fd/${work}/${result}`, opts.tables);
      }
      const foreignKeyViolations = verify(`/proc/self/fd/${work}/${result}`);
      // link(2), not rename: it never replaces what appeared under the name meanwhile.
      try {
        linkAt(work, result, dir.fd, name);
      } catch (err) {
        if (errno(err) === 'EEXIST') {
          throw new LifeboatError('TARGET_EXISTS', `${output} appeared during the restore and was left alone`, { hint: 'restore to a new path' });
        }
        throw err;
      }
      return {
        output,
        snapshot: base.snapshot,
        ...(base.generation ? { generation: base.generation } : {}),
        commits: replay.commits,
        segments: replay.segments,
        restoredTo: new Date(replay.lastTime ?? Date.parse(base.snapshot.time)),
        foreignKeyViolations,
        bytes,
        ...(opts.tables?.length ? { tables: opts.tables } : {}),
        durationMs: Date.now() - started,
      };
    } finally {
      await lock.release();
    }
  } finally {
    if (work !== undefined) closeSync(work);
    try {
      removeAt(dir.fd, workName);
    } catch {
      // Best effort: a leftover private directory holds nothing under the output's name.
    }
    closeSync(dir.fd);
  }
}

/**
 * Opens the output's directory (refusing one others can write without the sticky
 * bit, target.ts) and refuses an output that exists, with its -wal/-shm/-journal:
 * SQLite restores never replace a database (restore to a new path, then swap it in
 * with the application stopped).
 */
async function refuseExisting(output: string): Promise<OpenedDir> {
  if (!(await fs.lstat(path.dirname(output)).then(() => true, () => false))) {
    throw new LifeboatError('USAGE', `the directory of ${output} does not exist`, { hint: 'create it first, or restore elsewhere' });
  }
  const dir = openSafeDir(path.dirname(output));
  const name = path.basename(output);
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    if (lstatAt(dir.fd, name + suffix)) {
      closeSync(dir.fd);
      throw new LifeboatError('TARGET_EXISTS', `${output}${suffix} already exists; nothing was written`, {
        hint: 'restore to a new path, then swap it in with the application stopped',
      });
    }
  }
  return dir;
}

function sqliteSnapshots(all: Snapshot[], name: string): Snapshot[] {
  return all.filter((s) => s.source.kind === 'sqlite' && s.source.name === name);
}

/** The name as given, or without its extension (`memory.db` for a source named `memory`). */
export async function resolveName(repo: Repository, name: string): Promise<string> {
  const all = await repo.listSnapshots();
  if (sqliteSnapshots(all, name).length > 0) return name;
  const bare = path.parse(name).name;
  if (bare !== name && sqliteSnapshots(all, bare).length > 0) return bare;
  throw new LifeboatError('NOT_FOUND', `no SQLite backups named "${name}" in this repository`, {
    hint: '`lifeboat snapshots` lists them; the name is --name, or the file name without extension',
  });
}

/**
 * The snapshot that gets closest to the target: for a replicated generation, how far
 * its segments reach (capped at the target); for a plain snapshot, its own time.
 */
async function choose(repo: Repository, name: string, time: Date | undefined): Promise<Candidate> {
  const target = time?.getTime() ?? Infinity;
  const snaps = sqliteSnapshots(await repo.listSnapshots(), name).filter((s) => Date.parse(s.time) <= target);
  if (snaps.length === 0) {
    const earliest = sqliteSnapshots(await repo.listSnapshots(), name).sort((a, b) => Date.parse(a.time) - Date.parse(b.time))[0];
    throw new LifeboatError('NOT_FOUND', `no backup of "${name}" at or before ${time?.toISOString() ?? 'now'}`, {
      hint: earliest ? `the earliest restorable moment is ${earliest.time}` : 'back it up first',
    });
  }
  const logs = await repo.listLogs(logSource(name));
  const trust = new Map<string, Position | null | undefined>();
  let best: Candidate | undefined;
  for (const s of snaps.sort((a, b) => Date.parse(b.time) - Date.parse(a.time))) {
    const c = sqlitePoint(s);
    const gen = c?.generation;
    const names = gen ? segmentsOf(logs, gen) : [];
    if (gen && !trust.has(gen)) trust.set(gen, logs.some((l) => l.timeline === gen && l.file === DIVERGED) ? await trustedUntil(repo, logSource(name), gen) : undefined);
    const trusted = gen ? trust.get(gen) : undefined;
    let reach = Date.parse(s.time);
    if (gen && c?.position) {
      for (const n of chainFrom(c.position, names).chain) {
        if (trusted === null || (trusted && comparePos(n.start, trusted) >= 0)) break;
        reach = Math.max(reach, Math.min(n.lastTime, target));
      }
    }
    const cand: Candidate = { snapshot: s, ...(gen ? { generation: gen } : {}), names, ...(trusted !== undefined ? { trusted } : {}), reach };
    if (!best || cand.reach > best.reach || (cand.reach === best.reach && Date.parse(s.time) > Date.parse(best.snapshot.time))) best = cand;
  }
  return best as Candidate;
}

/**
 * The base for a restore exactly to `at`: the newest snapshot of its generation at or
 * before it whose chain of segments reaches it without a gap (and, for a generation
 * found to diverge, only up to its last verified position). ARCHIVE_BEHIND otherwise.
 * Also what a group restore's plan checks before it starts anything.
 */
export async function baseFor(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string, at: Located): Promise<Candidate> {
  const bases = sqliteSnapshots(await repo.listSnapshots(), name)
    .map((s) => ({ s, c: sqlitePoint(s) }))
    .filter(({ c }) => c?.generation === at.generation && c.position && comparePos(c.position, at.position) <= 0)
    .sort((a, b) => comparePos(b.c?.position as Position, a.c?.position as Position));
  // The log in each look: "does not reach" is looked for in a second listing (engine/txn-history.ts).
  const found = await relisting(() => baseIn(repo, name, at, bases), (r) => !('snapshot' in r));
  if ('snapshot' in found) return found;
  const where = `generation ${at.generation}, cycle ${at.position.cycle}, frame ${at.position.frame}`;
  throw new LifeboatError('ARCHIVE_BEHIND', `the stored history of SQLite "${name}" does not reach ${where}`, {
    hint: found.bases === 0 ? `no snapshot of that generation is at or before it (forgotten?); \`lifeboat snapshots\` lists them` : 'a log segment before it is missing (forgotten or not shipped); `lifeboat check` reports gaps',
  });
}

async function baseIn(
  repo: Pick<Repository, 'listLogs' | 'getLog'>,
  name: string,
  at: Located,
  bases: ReadonlyArray<{ s: Snapshot; c: ReturnType<typeof sqlitePoint> }>,
): Promise<Candidate | { bases: number }> {
  const logs = await repo.listLogs(logSource(name));
  const names = segmentsOf(logs, at.generation);
  const trusted = logs.some((l) => l.timeline === at.generation && l.file === DIVERGED) ? await trustedUntil(repo, logSource(name), at.generation) : undefined;
  const where = `generation ${at.generation}, cycle ${at.position.cycle}, frame ${at.position.frame}`;
  if (trusted === null || (trusted !== undefined && comparePos(at.position, trusted) > 0)) {
    throw new LifeboatError('ARCHIVE_BEHIND', `the stored history of SQLite "${name}" is not trusted up to ${where} (the replicator found it diverged from the database)`, {
      hint: 'restore an earlier point; `lifeboat sqlite replicate` started a new generation',
    });
  }
  for (const { s, c } of bases) {
    const from = c?.position as Position;
    let reach = from;
    for (const n of chainFrom(from, names).chain) {
      reach = n.end;
      if (comparePos(reach, at.position) >= 0) break;
    }
    if (comparePos(reach, at.position) >= 0) return { snapshot: s, generation: at.generation, names, ...(trusted !== undefined ? { trusted } : {}), reach: Infinity };
  }
  return { bases: bases.length };
}

/** The replay ended exactly at the position asked for (frame 0 of a cycle: the end of the one before). */
function reachedExactly(name: string, at: Located, base: Position, last: Position | undefined): void {
  const end = last ?? base;
  if (comparePos(end, at.position) === 0) return;
  if (at.position.frame === 0 && comparePos(end, at.position) < 0) return;
  throw new LifeboatError('ARCHIVE_BEHIND', `the stored history of SQLite "${name}" ends at cycle ${end.cycle}, frame ${end.frame}, not at cycle ${at.position.cycle}, frame ${at.position.frame}`, {
    hint: 'no commit is stored at that position: a segment is missing, or the position is not a commit',
  });
}

async function writeImage(repo: Repository, snapshot: Snapshot, file: string, onProgress?: ProgressFn): Promise<number> {
  const at = snapshot.paths[0] ?? '';
  const found = await resolvePath(repo, snapshot.tree, at);
  if (!('node' in found) || found.node.type !== 'file') {
    throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} holds no database file at ${at}`);
  }
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  return restoreStream(repo, found.node, out, onProgress ? { onProgress } : {});
}

/**
 * Applies the generation's transactions after `from`, up to `until` and never past
 * `trusted` (a generation found to diverge from the database), to the file. Within a
 * segment only the last version of each page is written, in page order.
 */
async function replayFrames(
  repo: Repository,
  source: string,
  generation: string,
  from: Position,
  names: SegmentName[],
  file: string,
  until: Date | undefined,
  trusted: Position | null | undefined,
  upTo?: Position,
): Promise<{ commits: number; segments: number; lastTime: number | undefined; last: Position | undefined }> {
  const limit = until?.getTime() ?? Infinity;
  const keep = (c: Commit) =>
    c.time <= limit && (upTo === undefined || comparePos(c, upTo) <= 0) && (trusted === undefined || (trusted !== null && comparePos(c, trusted) <= 0));
  let last: Position | undefined;
  const fh = await fs.open(file, 'r+');
  let commits = 0;
  let segments = 0;
  let lastTime: number | undefined;
  let pageSize = 0;
  let dbPages = 0;
  try {
    for await (const t of transactionsAfter(repo, source, generation, from, names, keep)) {
      pageSize = t.pageSize;
      const frameSize = FRAME_HEADER_SIZE + pageSize;
      const latest = new Map<number, number>(); // page number -> offset of its newest frame
      for (let o = 0; o < t.frames.length; o += frameSize) latest.set(frameInfo(t.frames, o).pgno, o);
      await writePages(fh, t.frames, latest, pageSize);
      dbPages = frameInfo(t.frames, t.frames.length - frameSize).dbPages;
      lastTime = (t.commits[t.commits.length - 1] as Commit).time;
      last = t.commits[t.commits.length - 1] as Commit;
      commits += t.commits.length;
      segments++;
    }
    if (dbPages > 0) await fh.truncate(dbPages * pageSize);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { commits, segments, lastTime, last: last && { cycle: last.cycle, frame: last.frame } };
}

async function writePages(fh: fs.FileHandle, frames: Buffer, latest: Map<number, number>, pageSize: number): Promise<void> {
  const pages = [...latest.keys()].sort((a, b) => a - b);
  for (const pgno of pages) {
    const o = (latest.get(pgno) as number) + FRAME_HEADER_SIZE;
    await fh.write(frames, o, pageSize, (pgno - 1) * pageSize);
  }
  latest.clear();
}

/**
 * The restored file must pass integrity_check before it takes the target's name.
 * foreign_key_check is run and reported, not enforced: SQLite does not enforce
 * foreign keys unless asked, so a source may hold violations, and the restore must
 * give back what the source held (replaying pages cannot add a violation).
 */
function verify(file: string): number {
  // The restored file's schema is the backup's: no function calls with side effects from it.
  const db = openDefensive(file, { fileMustExist: true });
  try {
    const integrity = db.pragma('integrity_check') as Array<{ integrity_check: string }>;
    const problems = integrity.map((r) => r.integrity_check).filter((m) => m !== 'ok');
    if (problems.length > 0) {
      throw new LifeboatError('CORRUPT', `the restored database fails integrity_check: ${problems.slice(0, 3).join('; ')}`, {
        hint: 'restore to another time or snapshot, and run `lifeboat check --read-data`',
      });
    }
    return (db.pragma('foreign_key_check') as unknown[]).length;
  } finally {
    db.close();
  }
}
