/**
 * forget: removes snapshots by id or by a keep policy applied per group (by default
 * host and paths, as restic does), and trims each PostgreSQL source's archived WAL
 * to what its oldest remaining base backup needs. Data blobs stay until prune.
 */
import { LifeboatError } from '../../errors.js';
import { keys } from '../../repo/format.js';
import { acquireLock, isStale, readLocks } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import type { DamagedObject } from '../../repo/damage.js';
import { pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import { applyPolicy, isEmptyPolicy, type KeepPolicy } from './policy.js';
import { trimLogs, type LogTrim } from './logs.js';
import { drillKeyTime, scanDrills } from '../drill/drill.js';

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
}

export interface ForgetGroup {
  key: { host?: string; paths?: string[]; tags?: string[] };
  keep: Array<{ id: string; time: string; reasons: string[] }>;
  remove: Array<{ id: string; time: string }>;
}

export interface ForgetResult {
  groups: ForgetGroup[];
  removed: string[];
  /** Archived WAL files no remaining base backup needs, per PostgreSQL source. */
  wal: Array<{ source: string; removed: number; keptFrom: string | null; skipped?: string }>;
  /** SQLite log segments no remaining snapshot can replay from, per source. */
  sqlite: LogTrim[];
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
    const { snapshots: all, damaged } = await repo.scanSnapshots();
    for (const d of damaged) repo.onWarning(`${d.key} skipped: ${d.error}`);
    const groups: ForgetGroup[] = [];
    const removed = new Set<string>();
    if (opts.ids?.length) {
      // A damaged snapshot cannot be listed, but it can be forgotten by its full id or object name.
      const chosen = opts.ids.map((ref) => damagedByRef(damaged, ref) ?? pickSnapshot(all, ref));
      for (const s of chosen) removed.add(s.id);
      groups.push({ key: {}, keep: [], remove: chosen.map((s) => ({ id: s.id, time: s.time })) });
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
        const r = applyPolicy(list, policy);
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
        groups.push({
          key: JSON.parse(k) as ForgetGroup['key'],
          keep: r.keep.map((s) => ({ id: s.id, time: s.time, reasons: r.reasons.get(s.id) ?? [] })),
          remove: r.remove.map((s) => ({ id: s.id, time: s.time })),
        });
      }
    }
    const remaining = all.filter((s) => !removed.has(s.id));
    // A base backup still running needs WAL from its own start, and it is not a
    // snapshot yet: trim only while no other process holds the repository.
    const busy = (await readLocks(repo.store)).some((l) => l.id !== lock.id && !isStale(l.record));
    const trimmed = await trimLogs(repo, all, remaining, {
      dryRun: opts.dryRun === true,
      busy,
      ...(opts.pitrWindowMs !== undefined ? { pitrWindowMs: opts.pitrWindowMs } : {}),
    });
    if (!opts.dryRun) for (const id of removed) await repo.store.delete(keys.snapshot(id));
    const wal = trimmed.filter((t) => t.kind === 'postgres').map(({ kind: _kind, ...rest }) => rest);
    return { groups, removed: [...removed], wal, sqlite: trimmed.filter((t) => t.kind === 'sqlite'), dryRun: opts.dryRun === true };
  } finally {
    await lock.release();
  }
}
