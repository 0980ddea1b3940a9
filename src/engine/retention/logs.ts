/**
 * Log archives follow the snapshots that remain: WAL segments and SQLite log segments
 * that no remaining base snapshot can use are removed. With a point-in-time window
 * (`--keep-logs-within 7d`), only the last week stays replayable while older base
 * backups (monthly, yearly) are kept for restores to their own moment:
 *
 *  - PostgreSQL: every remaining base backup keeps the WAL from its start to its end
 *    (what makes it consistent); the window's base (the newest base backup that ended
 *    before the window began, or the oldest one) keeps all WAL from its start on.
 *    History files are always kept.
 *  - SQLite: a generation none of whose snapshots remain is removed whole; within a
 *    generation, segments that end at or before the window's base snapshot (the
 *    newest that is older than the window, or the oldest) are removed.
 *
 * Without a window the window's base is the oldest remaining base: nothing any
 * remaining snapshot can replay from is removed.
 */
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { parseLsn, parseWalName } from '../../sources/postgres/wal.js';
import { logSource, streamSource, type PgConsistency } from '../../sources/postgres/names.js';
import type { SqliteConsistency } from '../../sources/sqlite/backup.js';
import { logSource as sqliteLogSource } from '../../sources/sqlite/backup.js';
import { DIVERGED } from '../../sources/sqlite/history.js';
import { comparePos, parseSegmentName, type Position } from '../../sources/sqlite/segment.js';

export interface LogTrim {
  kind: 'postgres' | 'sqlite';
  /** The source name. */
  source: string;
  removed: number;
  /** Where the replayable history now starts (an LSN, or a SQLite generation/position); null when untouched. */
  keptFrom: string | null;
  skipped?: string;
}

export interface TrimOptions {
  /** Keep logs replayable for this long back from `now`; undefined: from the oldest base. */
  pitrWindowMs?: number;
  dryRun: boolean;
  /** Another process holds the repository: a base backup may be in flight. */
  busy: boolean;
  now?: number;
}

export async function trimLogs(repo: Repository, before: Snapshot[], after: Snapshot[], opts: TrimOptions): Promise<LogTrim[]> {
  const out: LogTrim[] = [];
  const cutoff = opts.pitrWindowMs === undefined ? undefined : (opts.now ?? Date.now()) - opts.pitrWindowMs;
  for (const name of namesOf(before, 'postgres')) out.push(await trimPostgres(repo, name, after, cutoff, opts));
  for (const name of namesOf(before, 'sqlite')) out.push(await trimSqlite(repo, name, after, cutoff, opts));
  return out;
}

function namesOf(snaps: Snapshot[], kind: string): Set<string> {
  return new Set(snaps.filter((s) => s.source.kind === kind && s.source.name).map((s) => s.source.name as string));
}

/** The base the window replays from: the newest at or before the cutoff, else the oldest. */
function windowBase<T>(bases: T[], timeOf: (b: T) => number, cutoff: number | undefined): T | undefined {
  const sorted = [...bases].sort((a, b) => timeOf(a) - timeOf(b));
  if (cutoff === undefined) return sorted[0];
  return sorted.filter((b) => timeOf(b) <= cutoff).pop() ?? sorted[0];
}

async function trimPostgres(repo: Repository, name: string, after: Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const label = { kind: 'postgres' as const, source: name };
  const bases = after.filter((s) => s.source.kind === 'postgres' && s.source.name === name && s.consistency).map((s) => s.consistency as unknown as PgConsistency);
  if (bases.length === 0) return { ...label, removed: 0, keptFrom: null };
  if (opts.busy) return { ...label, removed: 0, keptFrom: null, skipped: 'another process holds the repository (a backup may be running); WAL kept, run again later' };
  const base = windowBase(bases, (c) => Date.parse(c.stopTime), cutoff) as PgConsistency;
  const segSize = base.walSegSize || 16 * 1024 * 1024;
  const seg = (lsn: string) => parseLsn(lsn) / BigInt(segSize);
  const from = seg(base.startLsn);
  // Each remaining base's own span stays (it makes that base consistent).
  const spans = bases.map((c) => [seg(c.startLsn), seg(c.stopLsn)] as const);
  let removed = 0;
  for (const source of [logSource(name), streamSource(name)]) {
    for (const l of await repo.listLogs(source)) {
      let w;
      try {
        w = parseWalName(l.file, segSize);
      } catch {
        continue;
      }
      const segno = w.segno ?? (w.kind === 'backup' ? BigInt(`0x${l.file.slice(8, 16)}`) * (0x1_0000_0000n / BigInt(segSize)) + BigInt(`0x${l.file.slice(16, 24)}`) : undefined);
      if (w.kind === 'history' || segno === undefined || segno >= from) continue;
      if (spans.some(([a, b]) => segno >= a && segno <= b)) continue;
      if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
      removed++;
    }
  }
  return { ...label, removed, keptFrom: base.startLsn };
}

async function trimSqlite(repo: Repository, name: string, after: Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const source = sqliteLogSource(name);
  const snaps = after.filter((s) => s.source.kind === 'sqlite' && s.source.name === name);
  const byGen = new Map<string, Array<{ time: number; position: Position }>>();
  for (const s of snaps) {
    const c = s.consistency as unknown as SqliteConsistency | undefined;
    if (!c?.generation || !c.position) continue;
    byGen.set(c.generation, [...(byGen.get(c.generation) ?? []), { time: Date.parse(s.time), position: c.position }]);
  }
  let removed = 0;
  const kept: string[] = [];
  for (const l of await repo.listLogs(source)) {
    const n = parseSegmentName(l.file);
    const bases = byGen.get(l.timeline);
    if (!n) {
      // A divergence record goes with the last of its generation's snapshots.
      if (l.file === DIVERGED && !bases && !opts.busy) {
        if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
      }
      continue;
    }
    if (bases) {
      const base = windowBase(bases, (b) => b.time, cutoff) as { position: Position };
      if (comparePos(n.end, base.position) > 0) continue;
    } else if (opts.busy) {
      continue; // a replicator may be storing this generation's first snapshot right now
    }
    if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
    removed++;
  }
  for (const [gen, bases] of byGen) {
    const b = windowBase(bases, (x) => x.time, cutoff) as { position: Position };
    kept.push(`${gen}@${b.position.cycle}/${b.position.frame}`);
  }
  return { kind: 'sqlite', source: name, removed, keptFrom: kept.length ? kept.join(', ') : null };
}
