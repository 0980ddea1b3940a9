/**
 * What restoring one source would do, before anything starts: the dashboard shows it
 * when someone picks a moment or a snapshot. Built from the catalog (no repository
 * read): the backup that comes back (the newest at or before the moment, or the one
 * picked), whether the source's log is replayed on top, how long the newest passed
 * drill took, and every check the real request would run now (target below the
 * restore roots, target new, the kind's own checks, a restore already running, the
 * caller's role), each as a problem rather than an error.
 */
import { LifeboatError, isLifeboatError } from '../errors.js';
import { parseTargetTime } from '../engine/target-time.js';
import { checkMoment, takes } from '../engine/restore-options.js';
import { sourceKind } from '../sources/registry.js';
import { allows, type Role } from './auth.js';
import type { Daemon } from './daemon.js';
import type { JobRequest } from './jobs.js';
import { requireGroup, requireSource } from './jobs.js';
import { checkRestoreTarget } from './restore-policy.js';

export interface PreviewRequest {
  time?: string | undefined;
  snapshot?: string | undefined;
  /** SQLite, Redis: up to and including, or just before, a transaction (`history` numbers them), of `generation`. */
  txn?: number | undefined;
  before_txn?: number | undefined;
  generation?: string | undefined;
  target?: string | undefined;
}

type Problem = { code: string; message: string; hint: string | null };

/** `restore-NAME-20261203T120501Z`: a new name each second, of characters every restore target accepts. */
function suggestedName(source: string, now: Date): string {
  return `restore-${source}-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

export function previewRestore(d: Daemon, role: Role, name: string, req: PreviewRequest, now = new Date()) {
  const s = requireSource(d.config, name);
  if (req.time !== undefined && req.snapshot !== undefined) throw new LifeboatError('USAGE', 'give a time or a snapshot, not both', { hint: 'a time restores the newest backup at or before it (and replays the log to it); a snapshot restores that backup' });
  checkMoment({ target: '', ...(req.time !== undefined ? { time: req.time } : {}), ...(req.snapshot !== undefined ? { snapshot: req.snapshot } : {}), ...(req.txn !== undefined ? { txn: req.txn } : {}), ...(req.before_txn !== undefined ? { beforeTxn: req.before_txn } : {}), ...(req.generation !== undefined ? { generation: req.generation } : {}) });
  const txnNumber = req.txn ?? req.before_txn;
  const txn = txnNumber === undefined ? undefined : { number: txnNumber, included: req.txn !== undefined, generation: req.generation ?? null };
  // As the restore command takes them (daemon/jobs.ts passes them on).
  const txnParams = { ...(req.txn !== undefined ? { txn: req.txn } : {}), ...(req.before_txn !== undefined ? { beforeTxn: req.before_txn } : {}), ...(req.generation !== undefined ? { generation: req.generation } : {}) };
  const txnBody = { ...(req.txn !== undefined ? { txn: req.txn } : {}), ...(req.before_txn !== undefined ? { before_txn: req.before_txn } : {}), ...(req.generation !== undefined ? { generation: req.generation } : {}) };
  const at = req.time === undefined ? undefined : parseTargetTime(req.time);
  const replays = sourceKind(s.kind).log !== undefined && req.snapshot === undefined;
  const backups = d.catalog.backups(s.name, 5000);
  const notes: string[] = [];
  const snap = req.snapshot === undefined
    ? backups.find((b) => at === undefined || Date.parse(b.time) <= at.getTime())
    : backups.find((b) => b.snapshot_id.startsWith(req.snapshot as string));
  if (req.snapshot !== undefined && !snap) throw new LifeboatError('NOT_FOUND', `source ${s.name} has no snapshot ${req.snapshot} in the catalog`, { hint: `GET /api/v1/backups?source=${s.name} lists them` });
  if (!snap && !replays) throw new LifeboatError('NOT_FOUND', `no backup of ${s.name} at or before ${req.time ?? 'now'}`, { hint: `GET /api/v1/backups?source=${s.name} lists them` });
  if (txn) {
    notes.push(`the newest base backup${txn.generation ? ` of generation ${txn.generation}` : ' of the newest generation'} before transaction ${txn.number}, then ${s.name}'s log replayed ${txn.included ? 'up to and including it' : 'up to just before it'} (numbers: \`${s.kind} history\`)`);
  } else if (replays) notes.push(at ? `the newest base backup at or before ${at.toISOString()}, then ${s.name}'s log replayed to that moment` : `the newest base backup, then ${s.name}'s log replayed to its end`);
  else notes.push(`the files of backup ${snap?.snapshot_id.slice(0, 8)} taken ${snap?.time}${at ? ` (the newest at or before ${at.toISOString()}; later changes are not in it)` : ''}`);

  const roots = d.config.server.restoreRoots;
  const target = req.target ?? (roots[0] === undefined ? null : `${roots[0].replace(/\/+$/, '')}/${suggestedName(s.name, now)}`);
  if (target === null) notes.push(`no restore roots are set (server.restore_roots): only an admin restores through the API, to a target they name`);

  // The call that starts it: a moment goes through /recoveries (which picks the backup or replays the log, as planned here).
  const body: Record<string, unknown> = txn
    ? { source: s.name, target, ...txnBody }
    : req.snapshot !== undefined
    ? { source: s.name, target, snapshot: snap?.snapshot_id }
    : at
      ? { targets: { [s.name]: target }, time: at.toISOString() }
      : replays
        ? { source: s.name, target }
        : { source: s.name, target, snapshot: snap?.snapshot_id };
  const start = { method: 'POST' as const, url: 'targets' in body ? '/api/v1/recoveries' : '/api/v1/restores', body };

  const problems: Problem[] = [];
  const problem = (err: unknown) => {
    if (!isLifeboatError(err)) throw err;
    problems.push({ code: err.code, message: err.message, hint: err.hint ?? null });
  };
  if (!allows(role, 'operator')) problems.push({ code: 'PERMISSION', message: `starting a restore needs the operator role; this token is ${role}`, hint: 'ask an admin for an operator token' });
  if (txn && !takes(s.kind, 'before_txn')) problems.push({ code: 'USAGE', message: `a ${s.kind} restore takes no transaction number`, hint: 'pick a moment on the timeline instead' });
  if (req.snapshot !== undefined && !takes(s.kind, 'snapshot')) problems.push({ code: 'USAGE', message: `a ${s.kind} restore takes no snapshot: it is restored to a moment`, hint: 'pick a moment on the timeline instead' });
  if (target === null) problems.push({ code: 'USAGE', message: 'no target: name the new place to restore into', hint: `set server.restore_roots in ${d.config.file} (then operators restore below them), or give ?target= (admin)` });
  else {
    try {
      const checked = checkRestoreTarget(d.config, allows(role, 'operator') ? role : 'operator', target);
      const restore: NonNullable<JobRequest['restore']> = { target: checked, ...(replays && at ? { time: at.toISOString() } : {}), ...(!replays && snap ? { snapshot: snap.snapshot_id } : {}), ...(txn && takes(s.kind, 'before_txn') ? txnParams : {}) };
      d.checkStartable({ kind: 'restore', source: s.name, trigger: 'api', restore });
    } catch (err) {
      problem(err);
    }
  }
  const drill = d.catalog.drills(s.name, 50).find((x) => x.ok) ?? d.catalog.drills(s.name, 1)[0];
  return {
    source: s.name,
    kind: s.kind,
    repository: s.repository,
    method: replays ? ('replay' as const) : ('snapshot' as const),
    time: at ? at.toISOString() : null,
    txn: txn ?? null,
    snapshot: snap ? { id: snap.snapshot_id, time: snap.time, size_bytes: snap.size_bytes } : null,
    target,
    target_suggested: req.target === undefined && target !== null,
    expected_seconds: drill?.ok ? drill.rto_seconds : null,
    last_drill: drill ? { time: drill.time, ok: drill.ok, rto_seconds: drill.rto_seconds } : null,
    problems,
    start,
    notes,
  };
}

export interface GroupPreviewRequest {
  time?: string | undefined;
  point?: string | undefined;
}

/**
 * What restoring a consistency group to a point (or the newest at or before a time)
 * would do: a new directory per member below the first restore root, and the group
 * restore's own plan (`group restore --dry-run`, in a child: every member's mechanism,
 * position and base, its history proved to reach the point), or what refuses it.
 */
export async function previewGroupRestore(d: Daemon, role: Role, name: string, req: GroupPreviewRequest, now = new Date()) {
  const g = requireGroup(d.config, name);
  if (req.time !== undefined && req.point !== undefined) throw new LifeboatError('USAGE', 'give a time or a point, not both', { hint: 'a time restores the newest point at or before it' });
  const at = req.time === undefined ? undefined : parseTargetTime(req.time);
  // Neither: the newest point (the catalog lists them newest first).
  const point = req.point ?? (at ? undefined : d.catalog.groupPoints(g.name, 1)[0]?.id);
  const roots = d.config.server.restoreRoots;
  const stamp = suggestedName(g.name, now);
  const targets: Record<string, string> | null = roots[0] === undefined ? null : Object.fromEntries(g.members.map((m) => [m, `${(roots[0] as string).replace(/\/+$/, '')}/${stamp}-${m}`]));
  const problems: Problem[] = [];
  const problem = (err: unknown) => {
    if (!isLifeboatError(err)) throw err;
    problems.push({ code: err.code, message: err.message, hint: err.hint ?? null });
  };
  const notes: string[] = [];
  if (!allows(role, 'operator')) problems.push({ code: 'PERMISSION', message: `starting a restore needs the operator role; this token is ${role}`, hint: 'ask an admin for an operator token' });
  if (targets === null) problems.push({ code: 'USAGE', message: 'no restore roots are set (server.restore_roots): there is no place to suggest for the members', hint: `set server.restore_roots in ${d.config.file}, or restore with POST /api/v1/groups/${g.name}/restore naming the targets (admin)` });
  const p = { ...(point !== undefined ? { point } : {}), ...(at ? { time: at.toISOString() } : {}), targets: targets ?? {} };
  let plan: Record<string, unknown> | null = null;
  if (targets !== null) {
    try {
      for (const dir of Object.values(targets)) checkRestoreTarget(d.config, allows(role, 'operator') ? role : 'operator', dir);
      d.checkStartable({ kind: 'group-restore', group: g.name, trigger: 'api', groupRestore: p });
      plan = await d.planGroupRestore(g.name, p);
    } catch (err) {
      problem(err);
    }
  }
  return {
    group: g.name,
    time: at ? at.toISOString() : null,
    point: point ?? null,
    targets,
    plan,
    problems,
    start: { method: 'POST' as const, url: `/api/v1/groups/${encodeURIComponent(g.name)}/restore`, body: { ...(p.point !== undefined ? { point: p.point } : {}), ...(p.time !== undefined ? { time: p.time } : {}), targets: p.targets } as Record<string, unknown> },
    notes,
  };
}
