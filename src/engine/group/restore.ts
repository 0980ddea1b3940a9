/**
 * `group restore`: every member of a group back to one stored point, each with its own
 * mechanism, into targets the caller names (docs/groups.md).
 *
 *   choose the point            (--point ID, or the newest at or before --time T)
 *   plan every member            (nothing written: targets usable, each member's stored
 *                                 history still reaches its position, the base to start from)
 *   restore the members in order (stops at the first that fails)
 *
 * Mechanisms, each to exactly the recorded position:
 * - postgres: `pg restore` with recovery_target_name = the point's restore point, from
 *   the newest base backup that ended before its LSN (recovery runs when it is started);
 * - sqlite: the generation's snapshot and its transactions up to the recorded commit;
 * - redis: the base RDB and the command stream cut at the recorded offset (dump.rdb);
 * - a member whose position names a snapshot (files, bucket): that snapshot restored.
 *
 * A target is a directory that does not exist yet (its parent must) or is empty, and
 * lies neither inside nor around another target. One unusable target, or one member
 * whose history no longer reaches the point, and nothing starts.
 */
import { closeSync, lstatSync, readdirSync, rmdirSync } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../../config/config.js';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { missingItems, restore } from '../restore/restorer.js';
import { openSafeDir } from '../restore/target.js';
import { mkdirOpenAt } from '../../util/safe-fs.js';
import { findGroup, groupPoints, type GroupPoint } from './capture.js';
import type { MemberPosition } from './members.js';
import { archiveHint, memberReach } from './proof.js';

export type GroupRestoreEvent =
  /** Once, before anything starts (also for a dry run). */
  | { type: 'plan'; plan: GroupRestorePlan }
  | { type: 'member-start'; name: string; kind: string; target: string }
  | { type: 'member-done'; name: string; kind: string; elapsedMs: number; detail: string }
  | { type: 'warning'; message: string };

export interface GroupRestoreOptions {
  /** A point id (or a unique prefix of one). */
  point?: string;
  /** Or: the newest point at or before this moment. */
  time?: Date;
  /** member name → target directory; every member needs one. */
  targets: Map<string, string>;
  dryRun?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: GroupRestoreEvent) => void;
  /**
   * argv running this lifeboat against this repository with ARGS (cli/self-command.ts):
   * the restore_command of PostgreSQL members. Needed (except for a dry run) when the
   * group has a PostgreSQL member.
   */
  lifeboat?: (args: readonly string[]) => readonly string[];
}

export interface PlannedMember {
  name: string;
  kind: string;
  /** How it is restored, in words. */
  mechanism: string;
  position: MemberPosition;
  /** The position in words. */
  at: string;
  target: string;
  /** The snapshot the restore starts from. */
  base: string;
  /** The proof stored with the point; null for points stored before proofs existed. */
  archived: { at: string; reach: string } | null;
  /** What the repository holds for it now (checked by this plan). */
  reach: string;
}

export interface GroupRestorePlan {
  group: string;
  point: GroupPoint;
  /** How the point was chosen, in words ("--time T: the newest point at or before it"). */
  chosen: string;
  members: PlannedMember[];
  notes: string[];
}

export interface MemberOutcome {
  name: string;
  kind: string;
  target: string;
  elapsedMs: number;
  detail: string;
}

export interface GroupRestoreResult {
  plan: GroupRestorePlan;
  dryRun: boolean;
  members: MemberOutcome[];
  elapsedMs: number;
}

type PlanRepo = Repository;

/** The point asked for: by id (or unique prefix), else the newest at or before `time`, else the newest. */
async function choosePoint(repo: PlanRepo, name: string, opts: Pick<GroupRestoreOptions, 'point' | 'time'>): Promise<{ point: GroupPoint; chosen: string }> {
  if (opts.point !== undefined && opts.time !== undefined) throw new LifeboatError('USAGE', 'give --point ID or --time T, not both', { hint: '`lifeboat group points NAME` lists the points' });
  const { points } = await groupPoints(repo, name);
  if (points.length === 0) throw new LifeboatError('NOT_FOUND', `group "${name}" has no stored points`, { hint: `take one with \`lifeboat group backup ${name}\`` });
  if (opts.point !== undefined) {
    const ref = opts.point;
    const hits = points.filter((p) => p.id === ref || p.id.startsWith(ref));
    const exact = hits.find((p) => p.id === ref);
    if (exact) return { point: exact, chosen: `point ${exact.id}` };
    if (hits.length === 1) return { point: hits[0] as GroupPoint, chosen: `point ${(hits[0] as GroupPoint).id}` };
    throw new LifeboatError(hits.length ? 'USAGE' : 'NOT_FOUND', hits.length ? `"${ref}" matches ${hits.length} points of group "${name}"` : `no point "${ref}" of group "${name}"`, {
      hint: `\`lifeboat group points ${name}\` lists them`,
    });
  }
  if (opts.time !== undefined) {
    const t = opts.time.getTime();
    const p = points.find((x) => Date.parse(x.time) <= t); // newest first
    if (!p) {
      throw new LifeboatError('NOT_FOUND', `no point of group "${name}" at or before ${opts.time.toISOString()}`, { hint: `the earliest is ${(points.at(-1) as GroupPoint).time}` });
    }
    return { point: p, chosen: `--time ${opts.time.toISOString()}: the newest point at or before it, ${p.id} of ${p.time}` };
  }
  throw new LifeboatError('USAGE', 'give --point ID or --time T', { hint: `\`lifeboat group points ${name}\` lists the points` });
}

function describe(p: MemberPosition): string {
  if (p.kind === 'postgres') return `restore point ${p.restore_point} (${p.lsn})`;
  if (p.kind === 'sqlite') return `WAL frame ${p.frame} of cycle ${p.salt1.toString(16)}/${p.salt2.toString(16)}`;
  if (p.kind === 'redis') return `offset ${p.offset} of ${p.replid.slice(0, 8)}`;
  const snap = (p as { snapshot?: unknown }).snapshot;
  return typeof snap === 'string' ? `snapshot ${snap.slice(0, 8)}` : JSON.stringify(p);
}

/** A target's state: absent (its parent exists) or an empty directory. Throws for anything else. */
function checkTarget(member: string, target: string): 'absent' | 'empty' {
  const parent = path.dirname(target);
  let st;
  try {
    st = lstatSync(parent);
  } catch {
    throw new LifeboatError('USAGE', `the target of member "${member}", ${target}: its directory ${parent} does not exist; nothing was started`, { hint: 'create the parent directory, or choose another target' });
  }
  if (!st.isDirectory()) throw new LifeboatError('USAGE', `the target of member "${member}", ${target}: ${parent} is not a directory; nothing was started`, { hint: 'choose another target' });
  try {
    st = lstatSync(target);
  } catch (err) {
    if (errno(err) === 'ENOENT') return 'absent';
    throw err;
  }
  if (!st.isDirectory() || st.isSymbolicLink()) {
    throw new LifeboatError('TARGET_EXISTS', `the target of member "${member}", ${target}, exists and is not a directory; nothing was started`, { hint: 'give a new or empty directory' });
  }
  if (readdirSync(target).length > 0) {
    throw new LifeboatError('TARGET_EXISTS', `the target of member "${member}", ${target}, is not empty; nothing was started`, { hint: 'give a new or empty directory (a restore never writes over data)' });
  }
  return 'empty';
}

/** Decides everything a group restore will do, writing nothing. */
export async function planGroupRestore(repo: PlanRepo, config: LifeboatConfig, name: string, opts: GroupRestoreOptions): Promise<GroupRestorePlan> {
  findGroup(config, name);
  const { point, chosen } = await choosePoint(repo, name, opts);
  const notes: string[] = [];
  if (!point.frozen) notes.push('the point was taken without a freeze command: its positions were read back to back, not at one moment');
  const names = point.members.map((m) => m.name);
  const missing = names.filter((n) => !opts.targets.has(n));
  const unknown = [...opts.targets.keys()].filter((n) => !names.includes(n));
  if (unknown.length) {
    throw new LifeboatError('USAGE', `--target names ${unknown.map((n) => `"${n}"`).join(', ')}, not a member of point ${point.id} of group "${name}"; nothing was started`, { hint: `its members: ${names.join(', ')}` });
  }
  if (missing.length) {
    throw new LifeboatError('USAGE', `no --target for member${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n}"`).join(', ')} of group "${name}"; nothing was started`, {
      hint: `give --target MEMBER=DIR for each of ${names.join(', ')}`,
    });
  }
  const targets = new Map([...opts.targets].map(([k, v]) => [k, path.resolve(v)]));
  for (const [a, ta] of targets) {
    for (const [b, tb] of targets) {
      if (a !== b && (ta === tb || ta.startsWith(tb + path.sep))) {
        throw new LifeboatError('USAGE', `the target of member "${a}" (${ta}) is ${ta === tb ? 'the same as' : 'inside'} the target of "${b}"; nothing was started`, { hint: 'give each member a directory of its own, side by side' });
      }
    }
  }
  for (const [m, t] of targets) checkTarget(m, t);
  const members: PlannedMember[] = [];
  for (const m of point.members) {
    const target = targets.get(m.name) as string;
    const reach = await memberReach(repo, m.name, m.position);
    if (reach && !reach.reached) {
      throw new LifeboatError('ARCHIVE_BEHIND', `member "${m.name}" (${m.kind}) of point ${point.id}: its stored history no longer reaches the point (${reach.detail}); nothing was started`, {
        hint: `a log segment or snapshot was forgotten or never stored; choose a newer point (${archiveHint(m.kind, m.name)})`,
      });
    }
    // Only log members are proven (a files or bucket member's position is a snapshot already in the repository).
    if (!m.archived && reach) notes.push(`the archive of member "${m.name}" was not proven when the point was taken (a point of an older version); checked now: ${reach.detail}`);
    const planned = await planMember(repo, config, m.name, m.position);
    members.push({ name: m.name, kind: m.kind, mechanism: planned.mechanism, position: m.position, at: describe(m.position), target, base: planned.base, archived: m.archived ?? null, reach: reach?.detail ?? planned.base });
  }
  const pgMember = members.find((m) => m.kind === 'postgres');
  if (!opts.dryRun && pgMember) {
    if (!opts.lifeboat) throw new LifeboatError('USAGE', 'restoring a PostgreSQL member needs the command its restore_command runs', { hint: 'the CLI and the daemon pass it; call groupRestore with `lifeboat`' });
    // Built now, not when that member's turn comes: a missing password file must stop everything before it starts.
    opts.lifeboat(['pg', 'archive-get', '--name', pgMember.name]);
  }
  return { group: name, point, chosen, members, notes };
}

async function planMember(repo: PlanRepo, config: LifeboatConfig, name: string, p: MemberPosition): Promise<{ mechanism: string; base: string }> {
  if (p.kind === 'postgres') {
    const { planRestore, checkWalContinuity } = await import('../../sources/postgres/restore.js');
    const { requirePgPoint } = await import('../../sources/postgres/point.js');
    const plan = await planRestore(repo, { name, target: { kind: 'lsn', lsn: p.lsn } });
    checkWalContinuity(plan.facts, requirePgPoint(plan.snapshot), plan.chain);
    return { mechanism: `pg restore, recovery_target_name = ${p.restore_point} (recovers when started)`, base: `base backup ${plan.snapshot.id.slice(0, 8)}` };
  }
  if (p.kind === 'sqlite') {
    const { locateWalPosition } = await import('../../sources/sqlite/locate.js');
    const { baseFor } = await import('../../sources/sqlite/restore.js');
    const at = await locateWalPosition(repo, name, p);
    if (!at) throw new LifeboatError('ARCHIVE_BEHIND', `member "${name}": no stored commit is its recorded position`, { hint: archiveHint('sqlite', name) });
    const base = await baseFor(repo, name, at);
    return { mechanism: `sqlite restore to generation ${at.generation}, cycle ${at.position.cycle}, frame ${at.position.frame} -> ${sqliteFile(config, name)}`, base: `snapshot ${base.snapshot.id.slice(0, 8)}` };
  }
  if (p.kind === 'redis') {
    const { planToOffset } = await import('../../sources/redis/restore-plan.js');
    const plan = await planToOffset(repo, name, p.replid, p.offset);
    return { mechanism: `redis restore to offset ${p.offset} -> dump.rdb`, base: `snapshot ${plan.snapshot.id.slice(0, 8)} at offset ${plan.point.offset}` };
  }
  const snap = (p as { snapshot?: unknown }).snapshot;
  if (typeof snap === 'string') {
    const s = await repo.findSnapshot(snap);
    return { mechanism: `restore of snapshot ${s.id.slice(0, 8)}`, base: `snapshot ${s.id.slice(0, 8)}` };
  }
  throw new LifeboatError('UNSUPPORTED_FORMAT', `member "${name}": a position of kind ${(p as { kind: string }).kind} cannot be restored by this version`, { hint: 'upgrade lifeboat' });
}

/** The database file's name inside a SQLite member's target: the source's own file name. */
function sqliteFile(config: LifeboatConfig, name: string): string {
  const s = config.sources.get(name);
  return s?.path ? path.basename(s.path) : `${name}.db`;
}

/**
 * Plans, and unless `dryRun`, restores every member to the point in the point's member
 * order. Stops at the first member that fails (its error, naming the member); members
 * restored before it stay where they were written.
 */
export async function groupRestore(repo: Repository, config: LifeboatConfig, name: string, opts: GroupRestoreOptions): Promise<GroupRestoreResult> {
  const started = Date.now();
  const plan = await planGroupRestore(repo, config, name, opts);
  opts.onEvent?.({ type: 'plan', plan });
  if (opts.dryRun) return { plan, dryRun: true, members: [], elapsedMs: Date.now() - started };
  const outcomes: MemberOutcome[] = [];
  for (const m of plan.members) {
    if (opts.signal?.aborted) throw new LifeboatError('INTERRUPTED', `group restore of "${name}" interrupted before member "${m.name}"`, { hint: `restored so far: ${outcomes.map((o) => o.name).join(', ') || 'none'}` });
    // Checked again just before: another process may have used the directory since the plan.
    const state = checkTarget(m.name, m.target);
    opts.onEvent?.({ type: 'member-start', name: m.name, kind: m.kind, target: m.target });
    const t0 = Date.now();
    let detail: string;
    try {
      detail = await restoreMember(repo, config, m, state, opts);
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      throw new LifeboatError(err.code, `group restore of "${name}", member "${m.name}" (${m.kind}): ${err.message}`, {
        hint: `${err.hint ?? ''}${outcomes.length ? ` (restored before it: ${outcomes.map((o) => o.name).join(', ')})` : ' (no member was restored)'}`.trim(),
        cause: err,
      });
    }
    const outcome = { name: m.name, kind: m.kind, target: m.target, elapsedMs: Date.now() - t0, detail };
    outcomes.push(outcome);
    opts.onEvent?.({ type: 'member-done', name: m.name, kind: m.kind, elapsedMs: outcome.elapsedMs, detail });
  }
  return { plan, dryRun: false, members: outcomes, elapsedMs: Date.now() - started };
}

async function restoreMember(repo: Repository, config: LifeboatConfig, m: PlannedMember, state: 'absent' | 'empty', opts: GroupRestoreOptions): Promise<string> {
  const p = m.position;
  if (p.kind === 'postgres') {
    const { pgRestore, planRestore } = await import('../../sources/postgres/restore.js');
    const lifeboat = opts.lifeboat as NonNullable<GroupRestoreOptions['lifeboat']>;
    // The base backup and timeline as for the LSN (one that ended before the point);
    // recovery itself stops at the restore point's name.
    const plan = await planRestore(repo, { name: m.name, target: { kind: 'lsn', lsn: p.lsn } });
    const r = await pgRestore(repo, {
      plan,
      name: m.name,
      targetDir: m.target,
      target: { kind: 'name', name: p.restore_point },
      archiveGetCommand: lifeboat(['pg', 'archive-get', '--name', m.name]),
      archivePushCommand: lifeboat(['pg', 'archive-push', '--name', m.name]),
      ...(state === 'empty' ? { delta: true } : {}),
    });
    for (const w of r.warnings) opts.onEvent?.({ type: 'warning', message: `${m.name}: ${w}` });
    return `base backup ${r.snapshot.id.slice(0, 8)}, ${r.files} files; recovers to ${p.restore_point} when started (port ${r.port})`;
  }
  if (p.kind === 'sqlite') {
    const { locateWalPosition } = await import('../../sources/sqlite/locate.js');
    const { sqliteRestore } = await import('../../sources/sqlite/restore.js');
    const at = await locateWalPosition(repo, m.name, p);
    if (!at) throw new LifeboatError('ARCHIVE_BEHIND', 'no stored commit is its recorded position', { hint: archiveHint('sqlite', m.name) });
    if (state === 'absent') makeDir(m.target);
    const r = await sqliteRestore(repo, { name: m.name, output: path.join(m.target, sqliteFile(config, m.name)), position: at });
    return `snapshot ${r.snapshot.id.slice(0, 8)} + ${r.commits} transactions -> ${r.output}`;
  }
  if (p.kind === 'redis') {
    const { redisRestore } = await import('../../sources/redis/restore.js');
    // redis restore makes its output directory itself (new only): an empty one is removed first.
    if (state === 'empty') rmdirSync(m.target);
    const r = await redisRestore(repo, { name: m.name, output: m.target, position: { replid: p.replid, offset: p.offset }, ...(opts.signal ? { signal: opts.signal } : {}) });
    for (const w of r.warnings) opts.onEvent?.({ type: 'warning', message: `${m.name}: ${w}` });
    return `snapshot ${r.snapshot.id.slice(0, 8)} + ${r.streamBytes} bytes of commands to offset ${r.offset} -> ${path.join(m.target, 'dump.rdb')}`;
  }
  const snap = (p as { snapshot?: unknown }).snapshot;
  if (typeof snap === 'string') {
    const s = await repo.findSnapshot(snap);
    const r = await restore(repo, s, { target: m.target, ...(state === 'empty' ? { overwrite: true } : {}) });
    // A member with items missing is not restored to the point (it used to pass as done).
    const missing = missingItems(r, m.target, { hint: 'find what removed or changed them (another process writing there?) and restore the group again into new targets' });
    if (missing) throw missing;
    for (const e of r.errors) opts.onEvent?.({ type: 'warning', message: `${m.name}: ${e.path}: ${e.message}` });
    return `snapshot ${s.id.slice(0, 8)}, ${r.files} files`;
  }
  throw new LifeboatError('UNSUPPORTED_FORMAT', `a position of kind ${(p as { kind: string }).kind} cannot be restored by this version`, { hint: 'upgrade lifeboat' });
}

/** A new target directory (0700), made through its parent's descriptor. */
function makeDir(target: string): void {
  const parent = openSafeDir(path.dirname(target));
  try {
    closeSync(mkdirOpenAt(parent.fd, path.basename(target), 0o700));
  } finally {
    closeSync(parent.fd);
  }
}
