/**
 * forget: removes snapshots by id or by a keep policy applied per group (by default
 * host and paths, as restic does), and trims each PostgreSQL source's archived WAL
 * to what its oldest remaining base backup needs. Data blobs stay until prune.
 *
 * The history guard: keep rules that count snapshots (--keep-last, --keep-hourly)
 * can be filled by anyone able to add snapshots, so a host with an append-only key
 * that writes a burst of fresh snapshots would make the administrator's next forget
 * remove all real history. A policy run that would leave a group (trusted and
 * restricted writers' snapshots each checked apart) with no snapshot older than the
 * last HISTORY_GUARD_DAYS days while it has some now, or with no snapshot at all, is
 * refused unless forced, and nothing is written. Explicit ids are never guarded: the
 * operator named them.
 */
import { writeTombstone } from '../../repo/tombstones.js';
import { LifeboatError } from '../../errors.js';
import { keys } from '../../repo/format.js';
import { acquireLock, isStale, readLocks } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import type { DamagedObject } from '../../repo/damage.js';
import { isFutureDated, pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { applyPolicy, isEmptyPolicy, type KeepPolicy, type PolicyResult } from './policy.js';
import { trimLogs, type LogTrim } from './logs.js';
import { findSourceKind } from '../../sources/registry.js';
import { drillKeyTime, scanDrills } from '../drill/drill.js';
import { trimGroupPoints, type PointTrim } from '../group/points-keep.js';

export type GroupField = 'host' | 'paths' | 'tags';

export interface ForgetOptions {
  ids?: string[];
  policy?: KeepPolicy;
  groupBy?: GroupField[];
  dryRun?: boolean;
  /** Keep logs replayable this far back (a point-in-time window); default: from the oldest base. */
  pitrWindowMs?: number;
  /** Apply the keep rules only to this source's snapshots (a name, or kind:name). */
  source?: string;
  /** Go ahead even when the history guard (above) would refuse. */
  force?: boolean;
  /** The current time (ms) the rules are applied at; default Date.now(). */
  now?: number;
}

/**
 * Days of history the guard treats as recent: today (UTC) and the 7 whole days
 * before it. A week is longer than any gap between scheduled runs, and counting whole
 * days means --keep-daily 7, run every day, removes its eighth day without a refusal.
 */
export const HISTORY_GUARD_DAYS = 7;

export interface ForgetGroup {
  key: { host?: string; paths?: string[]; tags?: string[] };
  keep: Array<{ id: string; time: string; reasons: string[]; trusted?: false }>;
  remove: Array<{ id: string; time: string; trusted?: false }>;
  /** Kept but suspicious: dated beyond now plus the clock-skew allowance. */
  future: Array<{ id: string; time: string }>;
}

/** A group the history guard stopped (or, in a dry run, would stop). */
export interface HistoryAtRisk {
  key: ForgetGroup['key'];
  /** Whose snapshots: the administrator's keys, or restricted (append-only) writers. */
  writers: 'trusted' | 'restricted';
  reason: string;
}

export interface ForgetResult {
  groups: ForgetGroup[];
  removed: string[];
  /** Archived WAL files no remaining base backup needs, per PostgreSQL source. */
  wal: Array<{ source: string; removed: number; keptFrom: string | null; skipped?: string }>;
  /** SQLite log segments no remaining snapshot can replay from, per source. */
  sqlite: LogTrim[];
  /** The log segments of the kinds added since (Redis commands, operation-log records), each trim naming its kind. */
  segments: LogTrim[];
  /** Consistency-group points dropped because a member's data went with the snapshots removed (engine/group/points-keep.ts). */
  points: PointTrim[];
  /** Groups whose history the rules would wipe; a run that is not a dry run refuses these unless forced. */
  atRisk: HistoryAtRisk[];
  dryRun: boolean;
}

/** Whether a snapshot belongs to a source given as a name or kind:name. */
function isOfSource(s: Snapshot, source: string): boolean {
  const name = s.source.name ?? s.paths[0];
  return name === source || `${s.source.kind}:${name}` === source;
}

function groupKey(s: Snapshot, by: GroupField[]): ForgetGroup['key'] {
  return {
    ...(by.includes('host') ? { host: s.hostname } : {}),
    ...(by.includes('paths') ? { paths: [...s.paths].sort() } : {}),
    ...(by.includes('tags') ? { tags: [...s.tags].sort() } : {}),
  };
}

function describeKey(k: ForgetGroup['key']): string {
  const parts = [
    ...(k.host !== undefined ? [`host ${k.host}`] : []),
    ...(k.paths ? [`paths ${k.paths.join(' ')}`] : []),
    ...(k.tags ? [`tags ${k.tags.join(',') || '(none)'}`] : []),
  ];
  return parts.length ? parts.join(', ') : 'all snapshots';
}

/** Start of the recent window: 00:00 UTC, HISTORY_GUARD_DAYS days before today. */
export function recentSince(now: number): number {
  const d = new Date(now);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - HISTORY_GUARD_DAYS);
}

/** What the history guard finds wrong with one group's result, per class of writer. */
function historyAtRisk(key: ForgetGroup['key'], list: Snapshot[], r: PolicyResult<Snapshot>, now: number): HistoryAtRisk[] {
  const out: HistoryAtRisk[] = [];
  const removed = new Set(r.remove.map((s) => s.id));
  const since = recentSince(now);
  for (const writers of ['trusted', 'restricted'] as const) {
    const mine = list.filter((s) => (s.trusted === false) === (writers === 'restricted') && !isFutureDated(s.time, now));
    if (mine.length === 0 || !mine.some((s) => removed.has(s.id))) continue;
    const old = mine.filter((s) => Date.parse(s.time) < since);
    const who = writers === 'restricted' ? "restricted writers' snapshots" : 'snapshots';
    if (mine.every((s) => removed.has(s.id))) {
      out.push({ key, writers, reason: `would remove every one of the ${mine.length} ${who} of ${describeKey(key)}` });
    } else if (old.length > 0 && old.every((s) => removed.has(s.id))) {
      out.push({
        key,
        writers,
        reason: `would remove all ${who} of ${describeKey(key)} older than ${new Date(since).toISOString().slice(0, 10)} (${old.length}), keeping only the last ${HISTORY_GUARD_DAYS} days`,
      });
    }
  }
  return out;
}

/** A damaged object of `snapshots/` named by its full id or object name, as a removable entry. */
function damagedByRef(damaged: readonly DamagedObject[], ref: string): Snapshot | undefined {
  const d = damaged.find((x) => x.key === ref || x.key === keys.snapshot(ref));
  return d ? ({ id: d.key.slice('snapshots/'.length), time: 'damaged' } as Snapshot) : undefined;
}

/** How far a drill's clock may be ahead of the clock that stamped the snapshot it verified. */
const DRILL_CLOCK_MARGIN_MS = 3_600_000;

/**
 * Fail closed: a drill record that cannot be read may have verified any snapshot made
 * before it (its name holds its time), so those are kept until the record is deleted
 * or readable again. Returns the newest snapshot time so held (-Infinity: none;
 * Infinity: every snapshot, when a name holds no time).
 */
function protectedByDamagedDrills(repo: Repository, damaged: readonly DamagedObject[]): number {
  let until = -Infinity;
  for (const d of damaged) {
    const t = drillKeyTime(d.key);
    until = Math.max(until, Number.isNaN(t) ? Infinity : t + DRILL_CLOCK_MARGIN_MS);
    repo.onWarning(`${d.key} cannot be read (${d.error}): forget keeps every snapshot it may have verified; delete it (\`lifeboat check\` lists damaged records) to release them`);
  }
  return until;
}

export async function forget(repo: Repository, opts: ForgetOptions): Promise<ForgetResult> {
  if (repo.appendOnly && !opts.dryRun) {
    throw new LifeboatError('PERMISSION', `append-only: ${repo.store.location} refuses forget`, {
      hint: 'this client may only add; run forget/prune with a key that is not append-only (--dry-run shows what would go)',
    });
  }
  const policy = opts.policy ?? {};
  if (!opts.ids?.length && isEmptyPolicy(policy)) {
    throw new LifeboatError('USAGE', 'no snapshots and no keep rule given: nothing would be removed', {
      hint: 'name snapshot ids, or rules like --keep-daily 7 --keep-weekly 4 --keep-monthly 12',
    });
  }
  // Removing snapshot manifests never breaks a running backup (a parent is only a
  // hint, blobs stay until prune), so a shared lock suffices.
  const lock = await acquireLock(repo.store, 'shared', 'forget');
  try {
    const now = opts.now ?? Date.now();
    const { snapshots: all, damaged } = await repo.scanSnapshots();
    for (const d of damaged) repo.onWarning(`${d.key} skipped: ${d.error}`);
    const groups: ForgetGroup[] = [];
    const atRisk: HistoryAtRisk[] = [];
    const removed = new Set<string>();
    const entry = (s: Snapshot) => ({ id: s.id, time: s.time, ...(s.trusted === false ? { trusted: false as const } : {}) });
    if (opts.ids?.length) {
      // A damaged snapshot cannot be listed, but it can be forgotten by its full id or object name.
      const chosen = opts.ids.map((ref) => damagedByRef(damaged, ref) ?? pickSnapshot(all, ref, { now }));
      for (const s of chosen) removed.add(s.id);
      groups.push({ key: {}, keep: [], remove: chosen.map(entry), future: [] });
    }
    if (!isEmptyPolicy(policy)) {
      const by = opts.groupBy ?? ['host', 'paths'];
      const byKey = new Map<string, Snapshot[]>();
      for (const s of all) {
        if (removed.has(s.id) || (opts.source !== undefined && !isOfSource(s, opts.source))) continue;
        const k = JSON.stringify(groupKey(s, by));
        byKey.set(k, [...(byKey.get(k) ?? []), s]);
      }
      // The newest snapshot a drill restored and found sound is kept whatever the rules say.
      const drills = await scanDrills(repo);
      const verified = new Set(drills.records.filter((d) => d.ok && d.snapshot).map((d) => d.snapshot as string));
      const heldUntil = protectedByDamagedDrills(repo, drills.damaged);
      for (const [k, list] of byKey) {
        const r = applyPolicy(list, policy, now);
        const newestVerified = [...list].sort((a, b) => Date.parse(b.time) - Date.parse(a.time)).find((s) => verified.has(s.id));
        if (newestVerified && r.remove.some((s) => s.id === newestVerified.id)) {
          r.remove = r.remove.filter((s) => s.id !== newestVerified.id);
          r.keep.push(newestVerified);
          r.reasons.set(newestVerified.id, [...(r.reasons.get(newestVerified.id) ?? []), 'newest verified by a drill']);
        }
        for (const s of r.remove.filter((x) => Date.parse(x.time) <= heldUntil)) {
          r.remove = r.remove.filter((x) => x.id !== s.id);
          r.keep.push(s);
          r.reasons.set(s.id, [...(r.reasons.get(s.id) ?? []), 'a drill record that cannot be read may have verified it']);
        }
        for (const s of r.remove) removed.add(s.id);
        const key = JSON.parse(k) as ForgetGroup['key'];
        atRisk.push(...historyAtRisk(key, list, r, now));
        groups.push({
          key,
          keep: r.keep.map((s) => ({ ...entry(s), reasons: r.reasons.get(s.id) ?? [] })),
          remove: r.remove.map(entry),
          future: r.future.map((s) => ({ id: s.id, time: s.time })),
        });
      }
    }
    if (atRisk.length > 0 && !opts.dryRun && !opts.force) {
      const more = atRisk.length > 1 ? ` (and ${atRisk.length - 1} more group(s))` : '';
      throw new LifeboatError('HISTORY_AT_RISK', `forget ${atRisk[0]!.reason}${more}; nothing was removed`, {
        hint: 'look for a flood of new or forged snapshots with `lifeboat snapshots`; if the rules mean it, add --force (--dry-run shows the plan), or keep older ones with --keep-weekly/--keep-monthly',
      });
    }
    const remaining = all.filter((s) => !removed.has(s.id));
    // A base backup still running needs WAL from its own start, and it is not a
    // snapshot yet: trim only while no other process holds the repository.
    const busy = (await readLocks(repo.store)).some((l) => l.id !== lock.id && !isStale(l.record));
    const trimmed = await trimLogs(repo, all, remaining, {
      dryRun: opts.dryRun === true,
      busy,
      damaged,
      now,
      ...(opts.pitrWindowMs !== undefined ? { pitrWindowMs: opts.pitrWindowMs } : {}),
    });
    if (!opts.dryRun) {
      for (const id of removed) {
        // The tombstone first: a copy of the snapshot put back later stays forgotten.
        await writeTombstone(repo.store, repo.key, id);
        await repo.store.delete(keys.snapshot(id));
      }
    }
    // Group points follow the data that remains (after the snapshots above are gone).
    const points = await trimGroupPoints(repo, { dryRun: opts.dryRun === true, removed, now, ...(opts.pitrWindowMs !== undefined ? { pitrWindowMs: opts.pitrWindowMs } : {}) });
    // Each kind says under which key of the result its trims are reported (the JSON forget prints).
    const reported = (key: 'wal' | 'sqlite' | 'segments') => trimmed.filter((t) => findSourceKind(t.kind)?.log?.reportAs === key);
    const wal = reported('wal').map(({ kind: _kind, ...rest }) => rest);
    return { groups, removed: [...removed], wal, sqlite: reported('sqlite'), segments: reported('segments'), points, atRisk, dryRun: opts.dryRun === true };
  } finally {
    await lock.release();
  }
}
