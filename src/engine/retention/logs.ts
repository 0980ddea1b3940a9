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
 *
 * Each kind with a log trims its own (`log.trim` in src/sources/<kind>/kind.ts);
 * this module picks the sources and holds what the kinds share.
 *
 * Replicators hold no lock while they ship, so a generation can begin (its first
 * snapshot stored, then its segments) after the snapshots a run judges by were listed:
 * its segments would look like those of a generation whose snapshots are all gone.
 * A snapshot is always stored before its generation's segments, so a kind that finds
 * segments of a generation without a base asks `lateSnapshots` (listed after its own
 * listing of the log) before it removes them.
 */
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { listAll } from '../../storage/store.js';
import { isLifeboatError } from '../../errors.js';
import { sourceKinds } from '../../sources/registry.js';

export interface LogTrim {
  /** The kind of source (one with a log). */
  kind: string;
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
  /** Objects of `snapshots/` the run's listing could not read (not late: they were there already). */
  damaged?: ReadonlyArray<{ key: string }>;
  /**
   * Set by trimLogs for the kinds: the snapshots stored since the run listed the ones it
   * judges by, read now (call it after listing the log). `unreadable`: one of them could
   * not be read, so a generation without a base may still have one.
   */
  lateSnapshots?: () => Promise<LateSnapshots>;
}

export interface LateSnapshots {
  snapshots: Snapshot[];
  unreadable: boolean;
}

/** Snapshots in the repository now that are not among `known` (ids): read one by one. */
async function snapshotsSince(repo: Pick<Repository, 'store' | 'loadSnapshot'>, known: ReadonlySet<string>): Promise<LateSnapshots> {
  const out: LateSnapshots = { snapshots: [], unreadable: false };
  for (const o of await listAll(repo.store, 'snapshots/')) {
    const id = o.key.slice('snapshots/'.length);
    if (known.has(id)) continue;
    try {
      out.snapshots.push(await repo.loadSnapshot(id));
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue; // gone again
      out.unreadable = true; // damaged, forgotten and put back, or a store error: assume it is a base
    }
  }
  return out;
}

/** Trims the log of every source that had a snapshot in `before`, kind by kind in registration order. */
export async function trimLogs(repo: Repository, before: Snapshot[], after: Snapshot[], opts: TrimOptions): Promise<LogTrim[]> {
  const out: LogTrim[] = [];
  const cutoff = opts.pitrWindowMs === undefined ? undefined : (opts.now ?? Date.now()) - opts.pitrWindowMs;
  const known = new Set([...before.map((s) => s.id), ...(opts.damaged ?? []).map((d) => d.key.slice('snapshots/'.length))]);
  const withLate: TrimOptions = { ...opts, lateSnapshots: () => snapshotsSince(repo, known) };
  for (const kind of sourceKinds()) {
    if (!kind.log) continue;
    for (const name of namesOf(before, kind.name)) out.push(await kind.log.trim(repo, name, after, cutoff, withLate));
  }
  return out;
}

function namesOf(snaps: Snapshot[], kind: string): Set<string> {
  return new Set(snaps.filter((s) => s.source.kind === kind && s.source.name).map((s) => s.source.name as string));
}

/** The base the window replays from: the newest at or before the cutoff, else the oldest. */
export function windowBase<T>(bases: T[], timeOf: (b: T) => number, cutoff: number | undefined): T | undefined {
  const sorted = [...bases].sort((a, b) => timeOf(a) - timeOf(b));
  if (cutoff === undefined) return sorted[0];
  return sorted.filter((b) => timeOf(b) <= cutoff).pop() ?? sorted[0];
}
