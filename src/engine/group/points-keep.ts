/**
 * Group points under retention and copy (docs/groups.md, docs/prune.md).
 *
 * Points follow the data; the data does not follow the points. `forget`'s keep rules
 * decide which snapshots stay, as for any source, and a point is dropped once one of
 * its members can no longer be brought back to it:
 *  - a files or bucket member: its snapshot (`position.snapshot`) is gone;
 *  - a member with a log (postgres, sqlite, redis): no snapshot of that source remains
 *    at or before the point's time, or the point lies before the base a point-in-time
 *    window replays from (`--keep-logs-within`: older WAL and log segments are trimmed
 *    to what the older bases themselves need, so an older point is no longer reachable).
 * A point keeps nothing alive: a snapshot a point references is removed when the rules
 * say so, and the point goes with it. (The other way round, points pinning snapshots,
 * would let a group's schedule defeat every member's retention policy.)
 *
 * The points are read before the snapshots are listed: a point is stored only after
 * its snapshots, so one that a capture in flight is about to complete is never
 * mistaken for one whose snapshot is gone.
 *
 * `copy` carries the points whose data it carries: the snapshots a point references
 * travel with any of them, and the point is stored in the destination with its
 * snapshot ids rewritten to the copies' ids.
 */
import type { Repository } from '../../repo/repository.js';
import { keys } from '../../repo/format.js';
import { isDamage } from '../../repo/damage.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { windowBase } from '../retention/logs.js';
import type { GroupPoint } from './capture.js';

const PREFIX = 'logs/group.';
const POINTS = 'points';

/** Kinds whose members are restored from a snapshot named in the point. */
const SNAPSHOT_KINDS = new Set(['files', 'bucket']);

export interface PointTrim {
  group: string;
  /** Point ids removed (or, in a dry run, that would be). */
  removed: Array<{ id: string; reason: string }>;
  kept: number;
}

interface StoredPoint {
  group: string;
  id: string;
  point: GroupPoint | undefined;
}

/** Every stored point of every group (unreadable ones with `point` undefined: they are left alone). */
async function allPoints(repo: Pick<Repository, 'store' | 'getLog'>): Promise<StoredPoint[]> {
  const out: StoredPoint[] = [];
  for await (const o of repo.store.list(PREFIX)) {
    const [source, timeline, id] = o.key.slice('logs/'.length).split('/');
    if (!source || timeline !== POINTS || !id) continue;
    const group = source.slice('group.'.length);
    let point: GroupPoint | undefined;
    try {
      const buf = await repo.getLog(source, POINTS, id);
      const p = buf && (JSON.parse(buf.toString('utf8')) as GroupPoint);
      if (p && p.v === 1 && p.id === id && p.group === group && Array.isArray(p.members)) point = p;
    } catch (err) {
      // A damaged or foreign object is left alone; a store that fails is not taken for one
      // (copy would skip the point and the snapshots tied to it without a word).
      if (!isDamage(err) && !(err instanceof SyntaxError)) throw err;
      point = undefined;
    }
    out.push({ group, id, point });
  }
  return out;
}

/** Why the point can no longer be restored with these snapshots, or undefined. */
function unreachable(p: GroupPoint, snaps: Snapshot[], cutoff: number | undefined): string | undefined {
  const ids = new Set(snaps.map((s) => s.id));
  const at = Date.parse(p.time);
  for (const m of p.members) {
    const pos = m.position as { snapshot?: string };
    if (SNAPSHOT_KINDS.has(m.kind)) {
      if (!pos.snapshot || !ids.has(pos.snapshot)) return `the snapshot of ${m.name} (${(pos.snapshot ?? '').slice(0, 8)}) is gone`;
      continue;
    }
    const bases = snaps.filter((s) => s.source.kind === m.kind && s.source.name === m.name);
    const base = windowBase(bases, (s) => Date.parse(s.time), cutoff);
    if (!bases.some((s) => Date.parse(s.time) <= at)) return `no snapshot of ${m.name} remains at or before the point`;
    if (base && Date.parse(base.time) > at) return `the log of ${m.name} is kept only from ${base.time} on`;
  }
  return undefined;
}

/**
 * Drops the points no remaining data can restore (see the module comment). `removed`:
 * snapshots this run removes (a dry run has not deleted them yet). Idempotent.
 */
export async function trimGroupPoints(
  repo: Pick<Repository, 'store' | 'getLog' | 'listSnapshots'>,
  opts: { dryRun: boolean; removed?: ReadonlySet<string>; pitrWindowMs?: number; now?: number },
): Promise<PointTrim[]> {
  const points = await allPoints(repo);
  if (points.length === 0) return [];
  const snaps = (await repo.listSnapshots()).filter((s) => !opts.removed?.has(s.id));
  const cutoff = opts.pitrWindowMs === undefined ? undefined : (opts.now ?? Date.now()) - opts.pitrWindowMs;
  const byGroup = new Map<string, PointTrim>();
  for (const sp of points) {
    const t = byGroup.get(sp.group) ?? { group: sp.group, removed: [], kept: 0 };
    byGroup.set(sp.group, t);
    const reason = sp.point && unreachable(sp.point, snaps, cutoff);
    if (reason === undefined) {
      t.kept++;
      continue;
    }
    t.removed.push({ id: sp.id, reason });
    if (!opts.dryRun) await repo.store.delete(keys.log(`group.${sp.group}`, POINTS, sp.id));
  }
  return [...byGroup.values()].filter((t) => t.removed.length > 0);
}

/** The snapshots points reference along with any chosen one: copy carries them together. */
export async function withPointSnapshots(from: Pick<Repository, 'store' | 'getLog'>, all: Snapshot[], chosen: Snapshot[]): Promise<Snapshot[]> {
  const byId = new Map(all.map((s) => [s.id, s]));
  const out = new Map(chosen.map((s) => [s.id, s]));
  for (const { point } of await allPoints(from)) {
    if (!point) continue;
    const refs = point.members.map((m) => (m.position as { snapshot?: string }).snapshot).filter((id): id is string => id !== undefined && byId.has(id));
    if (!refs.some((id) => out.has(id))) continue;
    for (const id of refs) out.set(id, byId.get(id) as Snapshot);
  }
  // In the source's order (oldest first), as copy goes.
  return all.filter((s) => out.has(s.id));
}

/**
 * Stores in `to` the points of `from` whose data `to` now holds: every snapshot they
 * name copied (ids rewritten), every log member's source among `logSources` (copied
 * with its log). Returns how many were stored (already there: not counted).
 */
export async function copyGroupPoints(from: Pick<Repository, 'store' | 'getLog'>, to: Pick<Repository, 'listSnapshots' | 'putLog'>, copied: Snapshot[]): Promise<number> {
  const points = await allPoints(from);
  if (points.length === 0) return 0;
  const dest = new Map<string, string>();
  for (const s of await to.listSnapshots()) if (s.original) dest.set(s.original, s.id);
  const carried = new Set(copied.map((s) => `${s.source.kind}:${s.source.name ?? ''}`));
  let n = 0;
  for (const { group, id, point } of points) {
    if (!point) continue;
    const members = [];
    let complete = true;
    for (const m of point.members) {
      const pos = m.position as { snapshot?: string };
      if (SNAPSHOT_KINDS.has(m.kind)) {
        const copy = pos.snapshot === undefined ? undefined : dest.get(pos.snapshot);
        if (copy === undefined) complete = false;
        members.push({ ...m, position: { ...m.position, snapshot: copy } as typeof m.position });
      } else {
        if (!carried.has(`${m.kind}:${m.name}`)) complete = false;
        members.push(m);
      }
    }
    if (!complete) continue;
    const data = Buffer.from(JSON.stringify({ ...point, members }));
    if ((await to.putLog(`group.${group}`, POINTS, id, data)) === 'stored') n++;
  }
  return n;
}
