/**
 * Planning a guided recovery (`lifeboat recover`, docs/recover.md): the moment the
 * operator chose checked against the source's recoverable window (window.ts), the
 * restore command of the source's kind built from its option table (restore-options.ts,
 * the same table the daemon and the runbook use), the target checked, and the expected
 * time taken from the last passed drill. Nothing here writes; the CLI runs the plan.
 *
 * A target that exists and is not empty, or that is (or holds, or lies in) the source's
 * live data, is refused with TARGET_EXISTS unless `overwrite` is given. With it, the
 * restore goes to a fresh path beside the target and only once it passed its checks is
 * the old content renamed aside (kept, never deleted) and the new one renamed into place.
 */
import { existsSync, lstatSync, readdirSync, renameSync, rmSync, rmdirSync } from 'node:fs';
import * as path from 'node:path';
import type { SourceConfig } from '../config/config.js';
import { LifeboatError } from '../errors.js';
import { sourceKind } from '../sources/registry.js';
import { toArgv } from './invocation.js';
import { restoreInvocation, takes, type RestoreParams } from './restore-options.js';
import { parseTargetTime } from './target-time.js';
import type { RecoverableWindow, WindowSnapshot } from './window.js';

/** `txn`: SQLite and Redis, just before transaction `before` (numbers from `sqlite history` / `redis history`) of `generation` (default: the newest). */
export type Moment = { kind: 'latest' } | { kind: 'time'; time: string } | { kind: 'snapshot'; id: string } | { kind: 'txn'; before: number; generation?: string };

/** Whether a kind's restore takes `--before-txn` / `--generation` (its restore table says so: sqlite, redis). */
export function takesTxn(kind: string): boolean {
  return takes(kind, 'before_txn');
}

/**
 * What the operator typed: `latest`, an RFC 3339 time, or a backup's id (a unique
 * prefix of one of the window's snapshots). USAGE naming what it takes otherwise.
 */
export function parseMoment(text: string, w: Pick<RecoverableWindow, 'snapshots'>, now = new Date()): Moment {
  const t = text.trim();
  if (t === '' || t.toLowerCase() === 'latest') return { kind: 'latest' };
  if (/^[0-9a-f][0-9a-f-]{3,80}$/i.test(t)) {
    const hits = w.snapshots.filter((s) => s.id.startsWith(t.toLowerCase()));
    if (hits.length === 1) return { kind: 'snapshot', id: (hits[0] as WindowSnapshot).id };
    if (hits.length > 1) throw new LifeboatError('USAGE', `"${t}" is the start of ${hits.length} backups' ids`, { hint: 'give more of the id' });
    if (!/^\d{4}-/.test(t)) throw new LifeboatError('USAGE', `no backup of this source has an id starting with "${t}"`, { hint: 'the window lists the backups; or give a time such as 2026-11-21T14:30:00Z, or latest' });
  }
  return { kind: 'time', time: parseTargetTime(t, now).toISOString() };
}

export interface RecoverPlan {
  source: string;
  kind: string;
  moment: Moment;
  /** The moment the data will be as of (RFC 3339), or null for the newest stored. */
  restore_to: string | null;
  /** The snapshot chosen, when the operator chose one. */
  snapshot: string | null;
  /** Where the restored data ends up. */
  target: string;
  /** With overwrite and an existing target: where the restore is written first. */
  staging: string | null;
  /** With overwrite and an existing target: where its old content is moved. */
  aside: string | null;
  /** Within `staging`, what replaces the target (files restore under their original paths); null: all of staging. */
  inner: string | null;
  /** The source's live data, when known. */
  live: string[];
  /** Seconds the restore and its checks are expected to take (the last passed drill's RTO), or null. */
  expected_seconds: number | null;
  /** The restore command (after `lifeboat` and the repository options). */
  command: string[];
  warnings: string[];
}

export interface PlanInput {
  window: RecoverableWindow;
  moment: Moment;
  target: string;
  overwrite: boolean;
  /** The source as lifeboat.yaml configures it, when it does (its bin_dir and checks reach the restore). */
  source?: SourceConfig;
  /** Where the source's live data is, when known. */
  live: readonly string[];
  now?: Date;
}

const inside = (a: string, b: string) => a === b || a.startsWith(b.endsWith(path.sep) ? b : `${b}${path.sep}`);

export function planRecovery(p: PlanInput): RecoverPlan {
  const w = p.window;
  const kind = sourceKind(w.kind);
  const warnings: string[] = [];
  const target = path.resolve(p.target);
  let restoreTo: string | null = null;
  let snapshot: string | null = null;
  if (w.snapshots.length === 0 && w.coverage.length === 0) {
    throw new LifeboatError('NOT_FOUND', `nothing of ${w.kind}:${w.name} is stored in this repository`, { hint: '`lifeboat window` lists the sources there are' });
  }
  if (p.moment.kind === 'snapshot') {
    const id = p.moment.id;
    const s = w.snapshots.find((x) => x.id === id);
    if (!s) throw new LifeboatError('NOT_FOUND', `backup ${id.slice(0, 8)} is not one of ${w.kind}:${w.name}`, { hint: '`lifeboat window NAME` lists its backups' });
    snapshot = s.id;
    restoreTo = s.consistent_at;
  } else if (p.moment.kind === 'time') {
    const t = Date.parse(p.moment.time);
    restoreTo = p.moment.time;
    if (w.earliest !== null && t < Date.parse(w.earliest)) {
      throw new LifeboatError('USAGE', `${p.moment.time} is before the earliest recoverable moment of ${w.name}`, { hint: `the earliest is ${w.earliest}` });
    }
    if (w.latest !== null && t > Date.parse(w.latest)) warnings.push(`${p.moment.time} is after the latest recoverable moment (${w.latest}): the data will be as of ${w.latest}`);
    const gap = w.gaps.find((g) => t > Date.parse(g.from) && t < Date.parse(g.to));
    if (gap) warnings.push(`${p.moment.time} falls in a gap (${gap.from} → ${gap.to}: ${gap.reason}); the data will be as of ${gap.from}`);
    if (!w.continuous && !w.snapshots.some((s) => Date.parse(s.consistent_at) === t)) {
      const before = [...w.snapshots].reverse().find((s) => Date.parse(s.consistent_at) <= t);
      if (before) warnings.push(`${w.kind} restores only to its backups: the newest at or before that moment is ${before.short_id} (${before.consistent_at})`);
    }
  }
  if (p.moment.kind === 'txn' && !takesTxn(w.kind)) {
    throw new LifeboatError('USAGE', `--before-txn is for SQLite and Redis sources; ${w.name} is ${w.kind}`, { hint: 'choose a time (PostgreSQL: `pg restore --xid` picks a transaction)' });
  }
  // A kind whose restore cannot name a snapshot gets that snapshot's own moment as the time.
  const params: RestoreParams = { target };
  if (snapshot !== null && takes(w.kind, 'snapshot')) params.snapshot = snapshot;
  else if (restoreTo !== null) params.time = restoreTo;
  if (p.moment.kind === 'txn') {
    params.beforeTxn = p.moment.before;
    if (p.moment.generation !== undefined) params.generation = p.moment.generation;
  }
  if (kind.restore.startByDefault && takes(w.kind, 'start')) params.start = true;

  const live = p.live.map((l) => path.resolve(l));
  // Data restored under its original path (files) is restored beside a live target and moved, even where the target is gone.
  const underOriginal = live.includes(target) && kind.recover?.restoredPath !== undefined;
  const { staging, aside } = checkTarget(target, live, p.overwrite, `${w.kind}:${w.name}`, underOriginal);
  if (staging) params.target = staging;
  const inner = staging && live.includes(target) && kind.recover?.restoredPath ? kind.recover.restoredPath(staging, target) : null;
  kind.restore.check?.(p.source ?? ({ name: w.name, kind: w.kind } as SourceConfig), params);
  const source = p.source ?? ({ name: w.name, kind: w.kind } as SourceConfig);
  const drill = w.last_verified_drill;
  if (!drill) warnings.push(`${w.name} was never drilled successfully: how long this takes, and whether the backup restores, is unproven`);
  return {
    source: w.name,
    kind: w.kind,
    moment: p.moment,
    restore_to: restoreTo,
    snapshot,
    target,
    staging,
    aside,
    inner,
    live,
    expected_seconds: drill?.rto_seconds ?? null,
    command: toArgv(restoreInvocation(source, params)),
    warnings,
  };
}

/**
 * Whether the target may be written: a path that does not exist (its parent must) or an
 * empty directory; anything else, or the live data, only with overwrite, and then
 * through a staging path beside it. TARGET_EXISTS otherwise (nothing written).
 */
function checkTarget(target: string, live: readonly string[], overwrite: boolean, what: string, alwaysStage: boolean): { staging: string | null; aside: string | null } {
  const hitsLive = live.find((l) => inside(target, l) || inside(l, target));
  if (!existsSync(path.dirname(target))) {
    throw new LifeboatError('NOT_FOUND', `the parent directory of ${target} does not exist`, { hint: 'create it first, or choose another target' });
  }
  let st;
  try {
    st = lstatSync(target);
  } catch {
    st = undefined;
  }
  const empty = st?.isDirectory() === true && readdirSync(target).length === 0;
  if (hitsLive && !overwrite) {
    throw new LifeboatError('TARGET_EXISTS', `${target} is the live data of ${what} (${hitsLive}); nothing was written`, {
      hint: 'restore into a new path and switch over, or pass --overwrite to restore beside it and swap (the old data is kept aside)',
    });
  }
  if (st && !empty && !overwrite) {
    throw new LifeboatError('TARGET_EXISTS', `${target} already exists and is not empty; nothing was written`, { hint: 'choose a new path, or pass --overwrite to restore beside it and swap (the old content is kept aside)' });
  }
  if (existsSync(path.join(target, 'postmaster.pid'))) {
    throw new LifeboatError('TARGET_EXISTS', `a PostgreSQL server runs on ${target} (postmaster.pid); nothing was written`, { hint: `stop it first (pg_ctl -D ${target} stop), or restore into a new path` });
  }
  if ((!st || empty) && !alwaysStage) return { staging: null, aside: null };
  const stamp = new Date().toISOString().replace(/[-:.]/g, '').slice(0, 15);
  const staging = `${target}.recover-${stamp}`;
  const aside = `${target}.before-recover-${stamp}`;
  if (existsSync(staging) || existsSync(aside)) throw new LifeboatError('TARGET_EXISTS', `${staging} or ${aside} already exists`, { hint: 'wait a second and run again' });
  return { staging, aside };
}

/** Prepares the target for the restore command: an empty directory is removed (every restore wants a new path). */
export function prepareTarget(plan: RecoverPlan): void {
  if (plan.staging !== null) return;
  try {
    if (lstatSync(plan.target).isDirectory() && readdirSync(plan.target).length === 0) rmdirSync(plan.target);
  } catch {
    // absent: the restore creates it
  }
}

/**
 * After a restore into the staging path passed its checks: the old target (and a SQLite
 * database's -wal and -shm beside it) renamed aside, the restored copy renamed into
 * place. Returns the paths moved aside.
 */
export function swapIntoPlace(plan: RecoverPlan): string[] {
  if (plan.staging === null || plan.aside === null) return [];
  const moved: string[] = [];
  if (existsSync(plan.target)) {
    renameSync(plan.target, plan.aside);
    moved.push(plan.aside);
  }
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(`${plan.target}${suffix}`)) {
      renameSync(`${plan.target}${suffix}`, `${plan.aside}${suffix}`);
      moved.push(`${plan.aside}${suffix}`);
    }
  }
  if (plan.inner !== null) {
    renameSync(plan.inner, plan.target);
    // What is left of the staging tree is the empty directories above the data.
    rmSync(plan.staging, { recursive: true, force: true });
  } else renameSync(plan.staging, plan.target);
  return moved;
}

/** One word for a POSIX shell, quoted only where it needs it (as the runbook writes them). */
export const shellWord = (v: string) => (/^[\w@%+=:,./-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

/** The kind's switch-over lines, or a generic one. */
export function switchOver(plan: RecoverPlan, result: Record<string, unknown>): string[] {
  const kind = sourceKind(plan.kind);
  return kind.recover?.switchOver(plan.target, plan.live, result, shellWord) ?? [`# the restored data is in ${plan.target}; put it in service as the source's runbook says (lifeboat runbook)`];
}
