/**
 * Point-in-time restore of a PostgreSQL cluster: picks the newest base backup that
 * precedes the target, restores its data directory, writes the backup label and the
 * recovery settings (restore_command calling `lifeboat pg archive-get`, the target,
 * promote at the end, follow the latest timeline). A plain `pg_ctl start` then
 * replays WAL to the target and promotes.
 *
 * Before writing anything it checks that the archive holds every segment from the
 * backup's start onwards without gaps, so recovery can never stop early, silently,
 * at a point the user did not ask for.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { parseLsn, parseWalName, segmentName } from '../../sources/postgres/wal.js';
import { restore, type RestoreResult } from '../restore/restorer.js';
import { logSource, streamSource, timelineDir, type PgConsistency } from './names.js';

/** Spool for prefetched WAL inside a restored data directory (left out of base backups). */
export const PREFETCH_DIR = 'lifeboat-prefetch';

export type PgTarget =
  | { kind: 'latest' }
  | { kind: 'time'; time: Date }
  | { kind: 'lsn'; lsn: string }
  | { kind: 'xid'; xid: string }
  | { kind: 'name'; name: string };

export interface PgRestoreOptions {
  name: string;
  targetDir: string;
  target: PgTarget;
  /** The command PostgreSQL runs to fetch WAL, without the trailing "%f %p". */
  archiveGetCommand: string;
  /** Reuse an existing (stopped) data directory, rewriting only files that differ. */
  delta?: boolean;
  /** The base backup to start from (id prefix or "latest"); default: chosen by target. */
  snapshot?: string;
}

export interface PgRestoreResult extends RestoreResult {
  snapshot: Snapshot;
  recoveryConf: string[];
}

function consistencyOf(s: Snapshot): PgConsistency {
  return s.consistency as unknown as PgConsistency;
}

/** The newest base backup from which the target is reachable. */
export function chooseBackup(all: Snapshot[], name: string, target: PgTarget, snapshotRef?: string): Snapshot {
  const mine = all.filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no base backup of PostgreSQL source "${name}"`, {
      hint: 'take one with `lifeboat pg backup --name NAME --dsn URL`',
    });
  }
  // Chosen by the operator: for --xid and --restore-point targets, whose position is
  // only known by replaying, the newest backup may already be past them.
  if (snapshotRef) return pickSnapshot(mine, snapshotRef);
  let usable = mine;
  if (target.kind === 'time') {
    usable = mine.filter((s) => Date.parse(consistencyOf(s).stopTime) <= target.time.getTime());
    if (usable.length === 0) {
      throw new LifeboatError('USAGE', `no base backup of "${name}" finished before ${target.time.toISOString()}`, {
        hint: `the oldest finished at ${consistencyOf(mine[0]!).stopTime}; choose a later time`,
      });
    }
  } else if (target.kind === 'lsn') {
    const lsn = parseLsn(target.lsn);
    usable = mine.filter((s) => parseLsn(consistencyOf(s).stopLsn) <= lsn);
    if (usable.length === 0) {
      throw new LifeboatError('USAGE', `no base backup of "${name}" reached consistency before LSN ${target.lsn}`, {
        hint: `the oldest stopped at ${consistencyOf(mine[0]!).stopLsn}`,
      });
    }
  }
  return usable.sort((a, b) => Date.parse(consistencyOf(a).stopTime) - Date.parse(consistencyOf(b).stopTime)).at(-1)!;
}

/**
 * The timelines recovery will walk with recovery_target_timeline = 'latest':
 * PostgreSQL probes N+1.history, N+2.history, ... from the backup's timeline and
 * follows the newest; that file lists its ancestors with their switch points.
 * Returns [timeline, end LSN (undefined for the last)] from the backup's timeline on.
 */
async function timelineChain(repo: Repository, name: string, c: PgConsistency): Promise<Array<[number, bigint | undefined]>> {
  let newest = c.timeline;
  let history: string | undefined;
  for (;;) {
    const next = newest + 1;
    const h = await repo.getLog(logSource(name), timelineDir(next), `${timelineDir(next)}.history`);
    if (!h) break;
    newest = next;
    history = h.toString('utf8');
  }
  const chain: Array<[number, bigint | undefined]> = [];
  for (const line of (history ?? '').split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+\/[0-9A-Fa-f]+)/.exec(line);
    if (m && Number(m[1]) >= c.timeline) chain.push([Number(m[1]), parseLsn(m[2]!)]);
  }
  if (newest !== c.timeline && chain[0]?.[0] !== c.timeline) {
    throw new LifeboatError('USAGE', `the newest timeline ${newest} does not descend from timeline ${c.timeline} of this base backup`, {
      hint: 'choose a base backup taken on the timeline you want to recover along',
    });
  }
  chain.push([newest, undefined]);
  return chain;
}

/**
 * Every segment the recovery will read must be in the archive: from the backup's
 * start along each timeline of the chain up to its switch point, and on the newest
 * timeline up to its last archived segment. A segment may come from the timeline
 * that owns it or from a later one in the chain (a new timeline's first segment is a
 * copy). Throws naming the first segment missing.
 */
export async function checkWalContinuity(repo: Repository, name: string, c: PgConsistency): Promise<void> {
  const logs = [...(await repo.listLogs(logSource(name))), ...(await repo.listLogs(streamSource(name)))];
  const segSize = c.walSegSize || 16 * 1024 * 1024;
  const have = new Map<number, Set<bigint>>();
  for (const l of logs) {
    if (l.timeline === 'identity') continue;
    let w;
    try {
      w = parseWalName(l.file, segSize);
    } catch {
      continue;
    }
    if ((w.kind !== 'segment' && w.kind !== 'partial') || w.segno === undefined) continue;
    const set = have.get(w.timeline) ?? new Set<bigint>();
    set.add(w.segno);
    have.set(w.timeline, set);
  }
  const chain = await timelineChain(repo, name, c);
  const seg = (lsn: bigint) => lsn / BigInt(segSize);
  const present = (i: number, s: bigint) => chain.slice(i).some(([tli]) => have.get(tli)?.has(s));
  const missing = (tli: number, s: bigint, why: string): never => {
    throw new LifeboatError('CORRUPT', `WAL segment ${segmentName(tli, s, segSize)}${why} is missing from the archive`, {
      hint: 'recovery would stop there, before the point asked for; restore that file to the archive, or choose another backup',
    });
  };
  // The backup itself is consistent only once WAL up to its stop LSN is replayed.
  for (let s = seg(parseLsn(c.startLsn)); s <= seg(parseLsn(c.stopLsn)); s++) {
    if (!present(0, s)) missing(c.timeline, s, ', which the base backup needs to be consistent,');
  }
  let from = seg(parseLsn(c.startLsn));
  for (let i = 0; i < chain.length; i++) {
    const [tli, end] = chain[i]!;
    const last = end !== undefined ? seg(end) : [...(have.get(tli) ?? [])].reduce((a, b) => (b > a ? b : a), from);
    for (let s = from; s <= last; s++) if (!present(i, s)) missing(tli, s, '');
    from = last;
  }
}

function quoteConf(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * restore_command: a segment already prefetched is taken with a plain `mv` (the
 * shell starts in a millisecond, Node in ~60); only a miss runs lifeboat, which
 * fetches it and prefetches the next ones.
 */
export function restoreCommand(archiveGetCommand: string, prefetchDir?: string): string {
  if (!prefetchDir) return `${archiveGetCommand} %f "%p"`;
  return `test -f "${prefetchDir}/%f" && mv "${prefetchDir}/%f" "%p" || ${archiveGetCommand} --prefetch "${prefetchDir}" %f "%p"`;
}

export function recoverySettings(target: PgTarget, command: string): string[] {
  const lines = [`restore_command = ${quoteConf(command)}`, `recovery_target_timeline = 'latest'`];
  switch (target.kind) {
    case 'time':
      // PostgreSQL does not take "T…Z"; it does take "YYYY-MM-DD HH:MM:SS.sss+00".
      lines.push(`recovery_target_time = ${quoteConf(target.time.toISOString().replace('T', ' ').replace('Z', '+00'))}`);
      break;
    case 'lsn':
      lines.push(`recovery_target_lsn = ${quoteConf(target.lsn)}`);
      break;
    case 'xid':
      lines.push(`recovery_target_xid = ${quoteConf(target.xid)}`);
      break;
    case 'name':
      lines.push(`recovery_target_name = ${quoteConf(target.name)}`);
      break;
    case 'latest':
      return lines;
  }
  lines.push(`recovery_target_action = 'promote'`);
  return lines;
}

async function assertEmptyTarget(dir: string): Promise<void> {
  try {
    const entries = await fs.readdir(dir);
    if (entries.length > 0) {
      throw new LifeboatError('USAGE', `${dir} is not empty; refusing to overwrite it`, {
        hint: 'restore into an empty or new directory, or pass --delta to rewrite only what differs in a stopped cluster',
      });
    }
  } catch (err) {
    if (errno(err) !== 'ENOENT') throw err;
  }
}

async function assertStopped(dir: string): Promise<void> {
  const pid = await fs.readFile(path.join(dir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (pid === undefined) return;
  const n = Number(pid.split('\n')[0]);
  let alive = false;
  try {
    process.kill(n, 0);
    alive = true;
  } catch (err) {
    alive = errno(err) === 'EPERM';
  }
  if (alive) {
    throw new LifeboatError('USAGE', `a PostgreSQL server (pid ${n}) is running on ${dir}`, {
      hint: 'stop it first (pg_ctl -D DIR stop); --delta rewrites the data directory in place',
    });
  }
}

export async function pgRestore(repo: Repository, opts: PgRestoreOptions): Promise<PgRestoreResult> {
  const target = path.resolve(opts.targetDir);
  if (opts.delta) await assertStopped(target);
  else await assertEmptyTarget(target);
  const snapshot = chooseBackup(await repo.listSnapshots(), opts.name, opts.target, opts.snapshot);
  const c = consistencyOf(snapshot);
  await checkWalContinuity(repo, opts.name, c);

  const result = await restore(repo, snapshot, { target, root: c.dataDirectory, ...(opts.delta ? { delta: true } : {}) });
  const st = await fs.stat(target);
  const own = async (file: string) => {
    if (process.getuid?.() === 0) await fs.chown(file, st.uid, st.gid);
  };
  const write = async (file: string, text: string, mode = 0o600) => {
    await fs.writeFile(path.join(target, file), text, { mode });
    await own(path.join(target, file));
  };
  await write('backup_label', c.backupLabel);
  if (c.tablespaceMap) await write('tablespace_map', c.tablespaceMap);
  await write('recovery.signal', '');
  const lines = recoverySettings(opts.target, restoreCommand(opts.archiveGetCommand, path.join(target, PREFETCH_DIR)));
  const auto = path.join(target, 'postgresql.auto.conf');
  const before = await fs.readFile(auto, 'utf8').catch(() => '');
  await write('postgresql.auto.conf', `${before}\n# Added by lifeboat pg restore (snapshot ${snapshot.id.slice(0, 8)})\n${lines.join('\n')}\n`);
  // WAL from the backup is fetched by restore_command; the directory must exist, and
  // be a real one: a pg_wal symlink (initdb --waldir) would point the restored server
  // at the original cluster's WAL.
  const walDir = path.join(target, 'pg_wal');
  if ((await fs.lstat(walDir).catch(() => undefined))?.isSymbolicLink()) await fs.unlink(walDir);
  await fs.mkdir(path.join(walDir, 'archive_status'), { recursive: true });
  await own(path.join(target, 'pg_wal'));
  await own(path.join(target, 'pg_wal', 'archive_status'));
  return { ...result, snapshot, recoveryConf: lines };
}
