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
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { parseLsn, parseWalName, segmentName } from '../../sources/postgres/wal.js';
import { restore, type RestoreResult } from '../restore/restorer.js';
import { logSource, streamSource, type PgConsistency } from './names.js';

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
}

export interface PgRestoreResult extends RestoreResult {
  snapshot: Snapshot;
  recoveryConf: string[];
}

function consistencyOf(s: Snapshot): PgConsistency {
  return s.consistency as unknown as PgConsistency;
}

/** The newest base backup from which the target is reachable. */
export function chooseBackup(all: Snapshot[], name: string, target: PgTarget): Snapshot {
  const mine = all.filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no base backup of PostgreSQL source "${name}"`, {
      hint: 'take one with `lifeboat pg backup --name NAME --dsn URL`',
    });
  }
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
 * Every segment from the backup's start segment up to the newest archived segment
 * on each timeline reached must be present. Throws naming the first one missing.
 */
export async function checkWalContinuity(repo: Repository, name: string, c: PgConsistency): Promise<void> {
  const logs = [...(await repo.listLogs(logSource(name))), ...(await repo.listLogs(streamSource(name)))];
  const segSize = c.walSegSize || 16 * 1024 * 1024;
  const startSeg = parseLsn(c.startLsn) / BigInt(segSize);
  const byTimeline = new Map<number, bigint[]>();
  for (const l of logs) {
    let w;
    if (l.timeline === 'identity') continue;
    try {
      w = parseWalName(l.file, segSize);
    } catch {
      continue;
    }
    if ((w.kind !== 'segment' && w.kind !== 'partial') || w.timeline < c.timeline || w.segno === undefined) continue;
    const list = byTimeline.get(w.timeline) ?? [];
    list.push(w.segno);
    byTimeline.set(w.timeline, list);
  }
  const own = byTimeline.get(c.timeline) ?? [];
  // The backup is consistent only once WAL up to its stop LSN is replayed: every
  // segment from start to stop must be there, whatever the target.
  const stopSeg = parseLsn(c.stopLsn) / BigInt(segSize);
  for (let seg = startSeg; seg <= stopSeg; seg++) {
    if (!own.includes(seg)) {
      throw new LifeboatError('CORRUPT', `WAL segment ${segmentName(c.timeline, seg, segSize)}, which the base backup needs to be consistent, is not in the archive`, {
        hint: 'is archive_command set to `lifeboat pg archive-push`? without that WAL this backup cannot be restored',
      });
    }
  }
  for (const [tli, segs] of [...byTimeline].sort((a, b) => a[0] - b[0])) {
    const sorted = [...new Set(segs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let expect = tli === c.timeline ? startSeg : sorted[0]!;
    for (const s of sorted) {
      if (s < expect) continue;
      if (s > expect) {
        throw new LifeboatError('CORRUPT', `WAL segment ${segmentName(tli, expect, segSize)} is missing from the archive`, {
          hint: 'recovery would stop there, before the point asked for; restore that file to the archive or choose an earlier target',
        });
      }
      expect = s + 1n;
    }
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
  const snapshot = chooseBackup(await repo.listSnapshots(), opts.name, opts.target);
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
  // WAL from the backup is fetched by restore_command; the directory must exist.
  await fs.mkdir(path.join(target, 'pg_wal', 'archive_status'), { recursive: true });
  await own(path.join(target, 'pg_wal'));
  await own(path.join(target, 'pg_wal', 'archive_status'));
  return { ...result, snapshot, recoveryConf: lines };
}
