/**
 * The recoverable window of a source (or a consistency group): from the repository
 * alone, the earliest and latest moment a restore can reach, the backups in it, the
 * stretches of time each kind's log covers (PostgreSQL WAL, SQLite generations, Redis
 * command segments, an operation log), the gaps between them and why, and the last
 * drill that proved a restore works. `lifeboat recover`, `lifeboat window` and the
 * API's `/sources/:name/window` all read it from here (docs/recover.md).
 *
 * What a moment is reachable is each kind's to say (its `window` member in the Source
 * seam, src/sources/source.ts), computed the way its `restore --time` chooses a base
 * and replays its log, so the window never promises what a restore would not give.
 * Kinds without a log are restorable only to their backups' moments (`continuous` false).
 */
import type { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/snapshot/snapshot.js';
import { LifeboatError } from '../errors.js';
import { findSourceKind, sourceKinds } from '../sources/registry.js';
import { drillHistory, type DrillRecord } from './drill/drill.js';


/** Which log a stretch of coverage comes from. */
export type LogKind = 'wal-archive' | 'wal-stream' | 'sqlite' | 'redis' | 'oplog';

/**
 * A stretch of time a kind's restore can reach any moment of: from a base (a backup)
 * replaying its log up to `to`. Times are Unix ms.
 */
export interface LogStretch {
  log: LogKind;
  from: number;
  to: number;
  /** The snapshot replayed from. */
  base?: string;
  /** The kind's generation or timeline the log belongs to. */
  generation?: string;
  /** Why the log stops at `to` when newer history exists: the reason of the gap after it. */
  endsBecause?: string;
}

/** What a kind with a log reports (its `window` member). */
export interface KindWindow {
  stretches: LogStretch[];
  /** The moment a snapshot restores to, when it is not its `time` (PostgreSQL: the backup's stop time). */
  consistentAt?: ReadonlyMap<string, number>;
  /**
   * The newest moment the stored log reaches at all (Unix ms), reachable or not: past
   * the window's latest it is history a gap cuts off (a segment missing before it).
   */
  storedUntil?: number;
  /** Anything else worth a line (an unreadable segment, a tool that is missing). */
  notes?: string[];
}

export interface WindowSnapshot {
  id: string;
  short_id: string;
  time: string;
  /** The moment restoring this snapshot alone gives. */
  consistent_at: string;
}

export interface WindowCoverage {
  log: LogKind;
  from: string;
  to: string;
  generation: string | null;
  base: string | null;
}

export interface WindowGap {
  from: string;
  to: string;
  reason: string;
}

export interface WindowDrill {
  time: string;
  ok: boolean;
  snapshot: string | null;
  rto_seconds: number | null;
  rpo_seconds: number | null;
  error: string | null;
}

export interface RecoverableWindow {
  /** The source's name (a group's name for a group). */
  name: string;
  /** Its kind; `group` for a consistency group. */
  kind: string;
  earliest: string | null;
  latest: string | null;
  /** Any moment inside `coverage` can be chosen; false: only the moments of `snapshots`. */
  continuous: boolean;
  /** Oldest first. */
  snapshots: WindowSnapshot[];
  /** Oldest first; may overlap (several bases reach the same moments). */
  coverage: WindowCoverage[];
  /** Stretches between `earliest` and `latest` no restore can reach, oldest first. */
  gaps: WindowGap[];
  last_drill: WindowDrill | null;
  /** The newest drill that passed: its RTO is what a recovery can expect. */
  last_verified_drill: WindowDrill | null;
  notes: string[];
  /** A group's members, each with its own window. */
  members?: RecoverableWindow[];
}

const iso = (t: number) => new Date(t).toISOString();

/** Window of the source `name` of kind `kind`, or NOT_FOUND when the repository has nothing of it. */
export async function sourceWindow(repo: Repository, kindName: string, name: string, drills?: readonly DrillRecord[]): Promise<RecoverableWindow> {
  const kind = findSourceKind(kindName);
  if (!kind) throw new LifeboatError('USAGE', `unknown kind of source "${kindName}"`, { hint: `kinds: ${sourceKinds().map((k) => k.name).join(', ')}` });
  const all = await repo.listSnapshots();
  const snaps = all.filter((s) => s.source.kind === kind.name && kind.drill.nameOf(s) === name).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  // The kind lists the snapshots again: hand it this listing (each listing decrypts every snapshot).
  const listed = new Proxy(repo, {
    get: (target, prop) => {
      if (prop === 'listSnapshots') return async () => all;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const kw: KindWindow = kind.window ? await kind.window(listed, name) : { stretches: [] };
  // Nothing stored yet is an empty window (earliest and latest null), not an error: a new source has one.
  const snapshots = snaps.map((s) => windowSnapshot(s, kw.consistentAt?.get(s.id)));
  return assemble(name, kind.name, snapshots, kw, kind.window !== undefined, pickDrills(drills ?? (await drillHistory(repo)), `${kind.name}:${name}`), kw.notes ?? []);
}

function windowSnapshot(s: Pick<Snapshot, 'id' | 'time'>, at?: number): WindowSnapshot {
  return { id: s.id, short_id: s.id.slice(0, 8), time: s.time, consistent_at: at !== undefined ? iso(at) : s.time };
}

/**
 * Puts a window together: coverage merged with the snapshots' moments, and every
 * stretch between merged blocks that nothing reaches a gap, with the reason the block
 * before it ended (the kind's words) or, failing that, a general one.
 */
export function assemble(
  name: string,
  kind: string,
  snapshots: WindowSnapshot[],
  kw: KindWindow,
  continuous: boolean,
  drills: { last: WindowDrill | null; verified: WindowDrill | null },
  notes: string[],
): RecoverableWindow {
  const stretches = [...kw.stretches].filter((s) => Number.isFinite(s.from) && Number.isFinite(s.to)).sort((a, b) => a.from - b.from || a.to - b.to);
  const blocks: Array<{ from: number; to: number; endsBecause?: string }> = [
    ...stretches.map((s) => ({ from: s.from, to: Math.max(s.from, s.to), ...(s.endsBecause !== undefined ? { endsBecause: s.endsBecause } : {}) })),
    ...snapshots.map((s) => ({ from: Date.parse(s.consistent_at), to: Date.parse(s.consistent_at) })),
  ].sort((a, b) => a.from - b.from || a.to - b.to);
  const merged: Array<{ from: number; to: number; endsBecause?: string }> = [];
  for (const b of blocks) {
    const last = merged[merged.length - 1];
    if (last && b.from <= last.to) {
      if (b.to > last.to) {
        last.to = b.to;
        if (b.endsBecause !== undefined) last.endsBecause = b.endsBecause;
        else delete last.endsBecause;
      } else if (b.to === last.to && b.endsBecause !== undefined && last.endsBecause === undefined) last.endsBecause = b.endsBecause;
    } else merged.push({ ...b });
  }
  const gaps: WindowGap[] = [];
  if (continuous) {
    for (let i = 1; i < merged.length; i++) {
      const a = merged[i - 1] as (typeof merged)[number];
      const b = merged[i] as (typeof merged)[number];
      gaps.push({
        from: iso(a.to),
        to: iso(b.from),
        reason: a.endsBecause ?? 'no stored log covers this stretch: only the backups at its ends can be restored',
      });
    }
  }
  const first = merged[0];
  const last = merged[merged.length - 1];
  // Stored history no base reaches: everything after the last reachable moment is lost to a restore.
  if (continuous && last && kw.storedUntil !== undefined && kw.storedUntil > last.to) {
    gaps.push({ from: iso(last.to), to: iso(kw.storedUntil), reason: last.endsBecause ?? 'the stored log after this moment cannot be reached from any backup' });
  }
  return {
    name,
    kind,
    earliest: first ? iso(first.from) : null,
    latest: last ? iso(last.to) : null,
    continuous,
    snapshots,
    coverage: stretches.map((s) => ({ log: s.log, from: iso(s.from), to: iso(Math.max(s.from, s.to)), generation: s.generation ?? null, base: s.base ?? null })),
    gaps,
    last_drill: drills.last,
    last_verified_drill: drills.verified,
    notes,
  };
}

function toDrill(d: DrillRecord): WindowDrill {
  return { time: d.time, ok: d.ok, snapshot: d.snapshot, rto_seconds: d.rto_seconds, rpo_seconds: d.rpo_seconds, error: d.error ?? null };
}

/** The newest drill of `label` (`kind:name`, `group:NAME`), and the newest that passed. */
export function pickDrills(all: readonly DrillRecord[], label: string): { last: WindowDrill | null; verified: WindowDrill | null } {
  const mine = all.filter((d) => d.source === label).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  const last = mine[mine.length - 1];
  const verified = mine.filter((d) => d.ok).pop();
  return { last: last ? toDrill(last) : null, verified: verified ? toDrill(verified) : null };
}

/**
 * Window of consistency group `name`: a group restores to one of its points (or the
 * newest at or before a time), so its moments are the points; each member's own
 * window comes along for the timeline.
 */
export async function groupWindow(repo: Repository, name: string): Promise<RecoverableWindow> {
  // Loaded here: the group engine brings the members' clients, which a source's window does not need.
  const { groupPoints } = await import('./group/capture.js');
  const { points, unreadable } = await groupPoints(repo, name);
  const sorted = [...points].sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
  const drills = await drillHistory(repo);
  const members: RecoverableWindow[] = [];
  for (const m of sorted[sorted.length - 1]?.members ?? []) {
    if (findSourceKind(m.kind)) members.push(await sourceWindow(repo, m.kind, m.name, drills));
  }
  const snapshots = sorted.map((p) => ({ id: p.id, short_id: p.id.slice(0, 8), time: p.time, consistent_at: p.time }));
  const notes = unreadable.map((u) => `point ${u} could not be read`);
  return { ...assemble(name, 'group', snapshots, { stretches: [] }, false, pickDrills(drills, `group:${name}`), notes), members };
}

/** Every source with a backup or a log, as `{kind, name}`, for a chooser. */
export async function windowSources(repo: Repository): Promise<Array<{ kind: string; name: string; newest: string }>> {
  const seen = new Map<string, { kind: string; name: string; newest: string }>();
  for (const s of await repo.listSnapshots()) {
    const kind = findSourceKind(s.source.kind);
    const name = kind?.drill.nameOf(s);
    if (!kind || !name) continue;
    const key = `${kind.name}:${name}`;
    const prev = seen.get(key);
    if (!prev || prev.newest < s.time) seen.set(key, { kind: kind.name, name, newest: s.time });
  }
  return [...seen.values()].sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
}

/**
 * The source a name means: `kind:name`, or a name one kind has backups of. NOT_FOUND
 * naming the sources there are; USAGE when two kinds share the name.
 */
export async function resolveWindowSource(repo: Repository, ref: string): Promise<{ kind: string; name: string }> {
  const all = await windowSources(repo);
  const colon = ref.indexOf(':');
  const exact = colon > 0 ? all.filter((s) => `${s.kind}:${s.name}` === ref) : [];
  const found = exact.length > 0 ? exact : all.filter((s) => s.name === ref);
  if (found.length === 1) return found[0] as { kind: string; name: string };
  if (found.length > 1) {
    throw new LifeboatError('USAGE', `"${ref}" names ${found.length} sources`, { hint: `say which: ${found.map((s) => `${s.kind}:${s.name}`).join(', ')}` });
  }
  const names = all.slice(0, 12).map((s) => `${s.kind}:${s.name}`);
  throw new LifeboatError('NOT_FOUND', `no backups of source "${ref}" in this repository`, {
    hint: names.length ? `sources: ${names.join(', ')}${all.length > names.length ? ', …' : ''}` : 'the repository has no backups yet',
  });
}
