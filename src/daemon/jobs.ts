/**
 * Jobs: every backup, restore, drill, check, forget and prune the daemon runs is the
 * lifeboat command a user would type, run as a child process that reports its result
 * and errors as typed events (job-child.ts, job-protocol.ts). A crash or leak in one
 * job cannot take the daemon down, the job's output is its log, and what the API
 * starts is exactly what the runbook tells a human to run. One job per kind and
 * source (or repository) runs at a time.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import type { GroupConfig, LifeboatConfig, SourceConfig } from '../config/config.js';
import type { Catalog, GroupPointRow, JobKind, JobRow } from './catalog.js';
import type { GroupPoint } from '../engine/group/capture.js';
import { restoreArgs, type RestoreParams } from '../engine/restore-options.js';
import { toArgv } from '../engine/invocation.js';
import { sourceKind } from '../sources/registry.js';
import { checkRestorePlan } from './restore-plan.js';
import { runLifeboat, type JobOutcome } from './job-child.js';
import { redact } from '../util/redact.js';

/** A job whose process runs: `canceledBy` once someone canceled it. */
interface Slot {
  id: string;
  child?: ChildProcess;
  canceledBy?: string;
}

/** How long a canceled job's process may take to stop before it is killed. */
const CANCEL_KILL_MS = 20_000;

/** What a canceled job leaves behind, by kind. */
const CANCEL_HINT: Partial<Record<string, string>> = {
  restore: 'the files finished before the cancel stay in the target (no partial file under its name); remove the target or restore into a new one',
  'group-restore': 'members finished before the cancel stay in their targets; remove them or restore into new ones',
  backup: 'no snapshot was stored; what was uploaded is reused by the next backup',
};

export type { RestoreParams } from '../engine/restore-options.js';

export interface GroupRestoreParams {
  point?: string;
  time?: string;
  /** member → a new or empty directory. */
  targets: Record<string, string>;
}

/** `group restore NAME …` as a job (or, with dryRun, its plan) runs it: every member to one point (docs/groups.md). */
export function groupRestoreArgs(group: string, p: GroupRestoreParams, dryRun: boolean): string[] {
  return [
    'group', 'restore', group,
    ...(p.point !== undefined ? ['--point', p.point] : []),
    ...(p.time !== undefined ? ['--time', p.time] : []),
    ...Object.entries(p.targets).flatMap(([member, dir]) => ['--target', `${member}=${dir}`]),
    ...(dryRun ? ['--dry-run'] : []),
  ];
}

export interface JobRequest {
  kind: Exclude<JobKind, 'replicate' | 'rebuild'>;
  source?: string;
  /** group-backup, group-restore: the consistency group (its job row keeps the name in `source`). */
  group?: string;
  /** group-restore: the point (or the newest at or before `time`) and a target directory per member. */
  groupRestore?: GroupRestoreParams;
  repository?: string | undefined;
  trigger: string;
  actor?: string | undefined;
  restore?: RestoreParams;
  readDataSubset?: string;
  /** The recovery a restore belongs to (POST /recoveries and the recovery aliases): kept in the job's params. */
  recovery?: string;
}

/** The source of that name, or NOT_FOUND listing the sources there are. */
export function requireSource(config: LifeboatConfig, name: string | undefined): SourceConfig {
  const s = name === undefined ? undefined : config.sources.get(name);
  if (!s) throw new LifeboatError('NOT_FOUND', `unknown source "${name ?? ''}"`, { hint: `sources: ${[...config.sources.keys()].join(', ') || 'none'}` });
  return s;
}

/** The consistency group of that name, or NOT_FOUND listing the groups there are. */
export function requireGroup(config: LifeboatConfig, name: string | undefined): GroupConfig {
  const g = name === undefined ? undefined : config.groups.get(name);
  if (!g) throw new LifeboatError('NOT_FOUND', `unknown group "${name ?? ''}"`, { hint: `groups: ${[...config.groups.keys()].join(', ') || 'none (add a groups: section to lifeboat.yaml)'}` });
  return g;
}

/** The repository of that name (default: the only one), or NOT_FOUND listing them. */
export function requireRepository(config: LifeboatConfig, name: string | undefined): string {
  const repository = name ?? (config.repositories.size === 1 ? [...config.repositories.keys()][0] : undefined);
  if (repository === undefined || !config.repositories.has(repository)) {
    throw new LifeboatError('NOT_FOUND', `unknown repository "${name ?? ''}"`, { hint: `repositories: ${[...config.repositories.keys()].join(', ')}` });
  }
  return repository;
}

/**
 * `forget` with a source's retention policy: applied with prune, or previewed. Never
 * --force: when forget's history guard refuses (exit 24), the job fails and notifies,
 * and an administrator decides.
 */
export function forgetCommand(config: LifeboatConfig, s: SourceConfig, mode: 'apply' | 'preview'): string[] {
  const r = s.retention;
  if (!r) throw new LifeboatError('USAGE', `source "${s.name}" has no retention policy`, { hint: `add retention: { keep_daily: 7, ... } to it in ${config.file}` });
  const rules: Array<[string, number | string | undefined]> = [
    ['--keep-last', r.keepLast],
    ['--keep-hourly', r.keepHourly],
    ['--keep-daily', r.keepDaily],
    ['--keep-weekly', r.keepWeekly],
    ['--keep-monthly', r.keepMonthly],
    ['--keep-yearly', r.keepYearly],
    ['--keep-within', r.keepWithin],
    ['--keep-logs-within', r.keepLogsWithin],
  ];
  const args = rules.flatMap(([flag, v]) => (v === undefined ? [] : [flag, String(v)]));
  return ['forget', '--source', s.name, '--group-by', 'host', ...args, mode === 'apply' ? '--prune' : '--dry-run'];
}

/**
 * The environment a child needs for a source, from its kind: secrets (a PostgreSQL
 * password in PGPASSWORD) never go on argv, where `ps` shows them to every local user.
 * Secret files are relative to lifeboat.yaml.
 */
export function childEnv(config: LifeboatConfig, s: SourceConfig | undefined): Record<string, string> {
  return s ? sourceKind(s.kind).childEnv(s, config.file) : {};
}

/** The command a job runs, after `lifeboat --json --repo R`. */
export function jobCommand(config: LifeboatConfig, req: JobRequest, newestSnapshot?: string): string[] {
  const source = req.source === undefined ? undefined : config.sources.get(req.source);
  switch (req.kind) {
    case 'backup': {
      const s = source as SourceConfig;
      return toArgv(sourceKind(s.kind).jobs.backup(s));
    }
    case 'restore': {
      const s = source as SourceConfig;
      const p = req.restore as RestoreParams;
      // One table per kind (its restore.options) says which options it takes.
      // Neither a moment nor a snapshot: the newest data. For a kind without a log that is
      // its newest backup; a kind with one replays its log to the end (its own default),
      // which naming the newest snapshot would cut back to that snapshot's moment.
      const replays = sourceKind(s.kind).log !== undefined;
      const snapshot = p.snapshot ?? (!replays && p.time === undefined && p.txn === undefined && p.beforeTxn === undefined ? newestSnapshot : undefined);
      // Kinds that start by default (PostgreSQL) are started, checked and promoted, so the
      // job measures the RTO of a real recovery.
      const start = sourceKind(s.kind).restore.startByDefault && p.start === undefined;
      return restoreArgs(s, { ...p, ...(snapshot !== undefined ? { snapshot } : {}), ...(start ? { start: true } : {}) });
    }
    case 'drill': {
      const s = source as SourceConfig;
      return toArgv(sourceKind(s.kind).jobs.drill(s));
    }
    case 'check':
      return ['check', ...(req.readDataSubset ? ['--read-data-subset', req.readDataSubset] : [])];
    case 'forget':
      return forgetCommand(config, source as SourceConfig, 'apply');
    case 'prune':
      return ['prune'];
    case 'rotate':
      // A new key epoch (format 2); `prune --reseal` retires the old ones.
      return ['key', 'rotate'];
    case 'group-backup':
      return ['group', 'backup', req.group as string];
    case 'group-restore':
      return groupRestoreArgs(req.group as string, req.groupRestore as GroupRestoreParams, false);
    case 'group-drill':
      return ['group', 'drill', req.group as string];
  }
}

/** A job's end on its way into the catalog: what is left to write, and the row as it ended. */
interface JobEnd {
  id: string;
  row: JobRow;
  /** A line for the job's log. */
  log?: string;
  patch?: Partial<JobRow>;
  /** The catalog's view of the repository after it (record()). */
  record?: () => void;
  /** Why the catalog refused it first. */
  refusedBy?: string;
}

export class JobRunner extends EventEmitter {
  private readonly running = new Map<string, Slot>();
  private readonly done = new Map<string, Array<(j: JobRow) => void>>();
  /** Jobs whose end the catalog refused, with what is left to write of it. */
  private readonly unrecorded = new Map<string, JobEnd>();

  constructor(
    private readonly config: LifeboatConfig,
    private readonly catalog: Catalog,
    /** The script each job child runs (job-child.ts's default: this installation's CLI). */
    private readonly entry?: string,
  ) {
    super();
  }

  static key(req: Pick<JobRequest, 'kind' | 'source' | 'repository' | 'group'>): string {
    return `${req.kind}:${req.group ?? req.source ?? req.repository ?? ''}`;
  }

  isRunning(key: string): boolean {
    return this.running.has(key);
  }

  /** Checks a request; throws a LifeboatError naming what is wrong. */
  validate(req: JobRequest): { repository: string } {
    if (req.kind === 'check' || req.kind === 'prune' || req.kind === 'rotate') return { repository: requireRepository(this.config, req.repository) };
    if (req.kind === 'group-backup' || req.kind === 'group-restore' || req.kind === 'group-drill') return { repository: requireGroup(this.config, req.group).repository };
    const source = requireSource(this.config, req.source);
    if (req.kind === 'forget') forgetCommand(this.config, source, 'apply');
    if (req.kind === 'restore') {
      const p = req.restore;
      if (!p || typeof p.target !== 'string' || p.target === '' || !path.isAbsolute(p.target)) {
        throw new LifeboatError('USAGE', 'a restore needs "target": an absolute path that does not exist yet', { hint: sourceKind(source.kind).restore.targetExample });
      }
      if (existsSync(p.target)) {
        throw new LifeboatError('TARGET_EXISTS', `the restore target ${p.target} already exists; nothing was written`, { hint: 'give a path that does not exist (restores never overwrite)' });
      }
      if (p.time !== undefined && Number.isNaN(Date.parse(p.time))) {
        throw new LifeboatError('USAGE', `"${p.time}" is not a time`, { hint: 'use RFC 3339, e.g. 2026-11-21T14:30:05Z' });
      }
      if (p.snapshot !== undefined && !/^[0-9a-f]{4,64}$|^latest$/.test(p.snapshot)) {
        throw new LifeboatError('USAGE', `"${p.snapshot}" is not a snapshot id`, { hint: 'give at least 4 hex digits of an id from /backups' });
      }
      checkRestorePlan(source, p);
    }
    return { repository: source.repository };
  }

  /** Starts a job and returns it at once (queued → running → succeeded/failed). */
  submit(req: JobRequest): JobRow {
    const { repository } = this.validate(req);
    const key = JobRunner.key({ ...req, repository });
    const busy = this.running.get(key);
    if (busy) throw new LifeboatError('JOB_RUNNING', `${req.kind} of ${req.group ?? req.source ?? repository} is already running (job ${busy.id})`, { hint: `follow it at /api/v1/jobs/${busy.id}` });
    const params: Record<string, unknown> = {
      ...(req.restore ? { restore: req.restore } : {}),
      ...(req.readDataSubset ? { read_data_subset: req.readDataSubset } : {}),
      ...(req.recovery ? { recovery: req.recovery } : {}),
      ...(req.groupRestore ? { group_restore: req.groupRestore } : {}),
    };
    // A group's job keeps the group's name where a source job keeps the source's (and says so in params).
    const job = this.catalog.createJob({ kind: req.kind, source: req.group ?? req.source, repository, trigger: req.trigger, actor: req.actor, params: { ...params, ...(req.group ? { group: req.group } : {}) }, status: 'running' });
    const slot: Slot = { id: job.id };
    this.running.set(key, slot);
    // execute() records its own failures; what is left (the catalog itself failing) must
    // not end the daemon through an unhandled rejection, nor leave the job "running" in
    // silence: the slot is freed, waiters and the daemon hear a failed job, the daemon is
    // not ready until the catalog takes the job's end (`retryUnrecorded`, every check).
    this.execute(job, req, repository, slot, () => this.running.delete(key)).catch((err: unknown) => {
      // Unless released already, and the same job started again since (a 'finished' listener may).
      if (this.running.get(key) === slot) this.running.delete(key);
      const message = redact(err instanceof Error ? err.message : String(err));
      const patch: Partial<JobRow> = {
        status: 'failed',
        finished_at: new Date().toISOString(),
        error: `the catalog could not record this job (${message})`,
        error_code: 'FAILED',
        error_hint: "free space under the daemon's state directory (or fix what its log names); the job is recorded once the catalog takes it",
      };
      process.stderr.write(`lifeboat: job ${job.id} could not be recorded: ${message}\n`);
      this.end({ id: job.id, row: { ...job, ...patch }, patch });
    });
    return this.catalog.job(job.id) as JobRow;
  }

  /** Jobs whose end the catalog did not take (see `submit`); the daemon is not ready while any is left. */
  get unrecordedCount(): number {
    return this.unrecorded.size;
  }

  /** Writes the ends the catalog refused before; true when none is left. */
  retryUnrecorded(): boolean {
    for (const [id, end] of this.unrecorded) {
      try {
        this.writeEnd(end);
        this.catalog.appendLog(id, 'daemon', `recorded late: the catalog refused this job's end at first (${end.refusedBy ?? 'unknown'})`);
        this.unrecorded.delete(id);
        this.catalog.endWritten(id);
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Records a run that did not happen (a schedule fired while the job still ran). */
  skip(req: JobRequest, reason: string): JobRow {
    const job = this.catalog.createJob({ kind: req.kind, source: req.group ?? req.source, repository: req.repository, trigger: req.trigger, status: 'skipped', ...(req.group ? { params: { group: req.group } } : {}) });
    this.catalog.updateJob(job.id, { error: reason, finished_at: new Date().toISOString() });
    this.catalog.appendLog(job.id, 'daemon', reason);
    return this.catalog.job(job.id) as JobRow;
  }

  /** Resolves when the job has finished. */
  wait(id: string): Promise<JobRow> {
    // An end the catalog has not taken yet is part of what it reads back (endNotWritten).
    const job = this.catalog.job(id);
    if (job && job.status !== 'running' && job.status !== 'queued') return Promise.resolve(job);
    return new Promise((resolve) => this.done.set(id, [...(this.done.get(id) ?? []), resolve]));
  }

  /**
   * Cancels a running job: its process gets SIGTERM (each command stops cleanly on it:
   * a restore removes its unfinished temporaries, a capture thaws) and SIGKILL if it has
   * not ended 20 s later. The job ends failed, INTERRUPTED, saying who canceled it.
   */
  cancel(id: string, actor: string | undefined): JobRow {
    const job = this.catalog.job(id);
    if (!job) throw new LifeboatError('NOT_FOUND', `no job "${id}"`, { hint: 'GET /api/v1/jobs lists them' });
    const slot = [...this.running.values()].find((x) => x.id === id);
    if (!slot || (job.status !== 'running' && job.status !== 'queued')) {
      throw new LifeboatError('USAGE', `job ${id} is not running (${job.status}): nothing to cancel`, { hint: 'only a queued or running job can be canceled' });
    }
    if (slot.canceledBy === undefined) {
      slot.canceledBy = actor ?? 'an API caller';
      this.catalog.appendLog(id, 'daemon', `canceled by ${slot.canceledBy}: stopping its process`);
      slot.child?.kill('SIGTERM');
      const hard = setTimeout(() => slot.child?.kill('SIGKILL'), CANCEL_KILL_MS);
      hard.unref();
      void this.wait(id).then(() => clearTimeout(hard));
    }
    return this.catalog.job(id) as JobRow;
  }

  /** Stops every running job (daemon shutdown). */
  async stop(): Promise<void> {
    const waits = [...this.running.values()].map((slot) => {
      slot.child?.kill('SIGTERM');
      return this.wait(slot.id);
    });
    await Promise.all(waits);
  }

  private async execute(job: JobRow, req: JobRequest, repository: string, slot: Slot, release: () => void): Promise<void> {
    const started = Date.now();
    this.catalog.updateJob(job.id, { started_at: new Date(started).toISOString() });
    let outcome: JobOutcome;
    try {
      const newest = req.kind === 'restore' && req.source ? this.catalog.backups(req.source, 1)[0]?.snapshot_id : undefined;
      const args = jobCommand(this.config, req, newest);
      this.catalog.appendLog(job.id, 'daemon', `lifeboat --repo ${repository} ${args.join(' ')}`);
      outcome = await runLifeboat(this.config, repository, args, {
        id: job.id,
        // Reads the source's password file: one that was moved or made unreadable since
        // the daemon started fails this job (below), not the daemon.
        env: childEnv(this.config, req.source === undefined ? undefined : this.config.sources.get(req.source)),
        onSpawn: (c) => (slot.child = c),
        onLine: (stream, line) => this.catalog.appendLog(job.id, stream, line),
        onLog: (level, message) => this.catalog.appendLog(job.id, level === 'warning' ? 'stderr' : 'stdout', level === 'warning' ? `warning: ${message}` : message),
        onProgress: (p) => this.catalog.updateJob(job.id, { progress: { ...p, elapsed_seconds: (Date.now() - started) / 1000 } }),
        ...(this.entry !== undefined ? { entry: this.entry } : {}),
      });
    } catch (err) {
      // The job's process never ran: the job fails with the error that stopped it.
      const e = err instanceof LifeboatError ? err : new LifeboatError('FAILED', err instanceof Error ? err.message : String(err), { hint: 'see the daemon\'s log; run the job again once it is fixed' });
      outcome = { exitCode: e.exitCode, signal: null, result: null, error: { code: e.code, message: redact(e.message), ...(e.hint ? { hint: redact(e.hint) } : {}) } };
    }
    // A canceled job says so, whatever its process reported on the way out.
    const canceled = slot.canceledBy !== undefined && outcome.error !== undefined
      ? { ...outcome.error, code: 'INTERRUPTED', message: `canceled by ${slot.canceledBy} (${outcome.error.message})`, hint: CANCEL_HINT[req.kind] ?? 'run it again when needed' }
      : outcome.error;
    // PARTIAL stored a snapshot: it counts, with its warnings in the log. DEGRADED did
    // its work on the destinations that were up: it counts too, and keeps its error
    // (which destination was left out) for the API, the metric and the notification.
    const failure = canceled ?? outcome.degraded;
    const degraded = failure?.code === 'DEGRADED';
    const ok = failure === undefined || (failure.code === 'PARTIAL' && req.kind === 'backup') || degraded;
    const keep = !ok || degraded;
    const finished = Date.now();
    const patch: Partial<JobRow> = {
      status: ok ? 'succeeded' : 'failed',
      finished_at: new Date(finished).toISOString(),
      duration_ms: finished - started,
      exit_code: outcome.exitCode,
      result: outcome.result,
      error: keep ? (failure?.message ?? null) : null,
      error_hint: keep ? (failure?.hint ?? null) : null,
      error_code: keep ? (failure?.code ?? null) : null,
    };
    const end: JobEnd = {
      id: job.id,
      row: { ...job, ...patch, started_at: new Date(started).toISOString() },
      ...(failure && !ok ? { log: `failed: ${failure.code}: ${failure.message}` } : {}),
      patch,
      record: () => this.record(end.row, req, repository, outcome.result),
    };
    release(); // before anyone hears it finished: the same job may start again at once
    this.end(end);
  }

  /**
   * Writes a job's end to the catalog and tells its waiters and the daemon, once. A
   * catalog that refuses it (a full disk under the state directory) does not change
   * what the job did: it is heard as it ended, and its end is kept and written later
   * (`retryUnrecorded`); until then the daemon is not ready.
   */
  private end(end: JobEnd): void {
    try {
      this.writeEnd(end);
    } catch (err) {
      this.refused(end, err);
    }
    try {
      this.emit('finished', end.row);
    } catch (err) {
      process.stderr.write(`lifeboat: job ${end.id}: ${redact(err instanceof Error ? err.message : String(err))}\n`);
    }
    for (const resolve of this.done.get(end.id) ?? []) resolve(end.row);
    this.done.delete(end.id);
  }

  /** Does what is left of a job's end in the catalog, each step once (every step may be repeated safely). */
  private writeEnd(end: JobEnd): void {
    if (end.log !== undefined) {
      this.catalog.appendLog(end.id, 'daemon', end.log);
      delete end.log;
    }
    if (end.patch) {
      this.catalog.updateJob(end.id, end.patch);
      delete end.patch;
      end.row = this.catalog.job(end.id) ?? end.row;
    }
    if (end.record) {
      end.record();
      delete end.record;
    }
  }

  private refused(end: JobEnd, err: unknown): void {
    const message = redact(err instanceof Error ? err.message : String(err));
    end.refusedBy = message;
    this.unrecorded.set(end.id, end);
    // Until it is written, reads of the job see what its end changes (the row stays as
    // it is when only the steps after it are left).
    if (end.patch) this.catalog.endNotWritten(end.id, end.patch);
    process.stderr.write(`lifeboat: job ${end.id} ended (${end.row.status}) but the catalog could not record it: ${message}\n`);
  }

  /** Keeps the catalog's view of the repository current after a backup or drill. */
  private record(job: JobRow, req: JobRequest, repository: string, parsed: unknown): void {
    if (req.kind === 'group-backup' && job.status === 'succeeded' && parsed && typeof parsed === 'object') {
      const p = parsed as GroupPoint;
      this.catalog.recordGroupPoint({ group: p.group, id: p.id, repository, time: p.time, hold_ms: p.hold_ms, max_hold_ms: p.max_hold_ms, frozen: p.frozen, members: p.members as GroupPointRow['members'] });
      this.catalog.appendLog(job.id, 'daemon', `point ${p.id}: writes held ${p.hold_ms} ms (max_hold ${p.max_hold_ms} ms)`);
      return;
    }
    if (req.kind === 'group-restore' && job.status === 'succeeded' && parsed && typeof parsed === 'object') {
      const r = parsed as { point?: string; members?: unknown[]; elapsed_ms?: number };
      this.catalog.appendLog(job.id, 'daemon', `${r.members?.length ?? 0} member(s) restored to point ${r.point ?? '?'} in ${((r.elapsed_ms ?? 0) / 1000).toFixed(1)} s`);
      return;
    }
    // A group drill is recorded like a source's, under `group:NAME` (the source its record in the repository names).
    if (req.kind === 'group-drill' && parsed && typeof parsed === 'object' && 'record' in parsed) {
      const d = parsed as { ok: boolean; point: string | null; rto_ms: number | null; rpo_seconds: number | null; error?: string; record: { time: string } };
      this.catalog.recordDrill({ source: `group:${req.group as string}`, repository, time: d.record.time, ok: d.ok, rto_seconds: d.rto_ms === null ? null : d.rto_ms / 1000, rpo_seconds: d.rpo_seconds, snapshot: d.point, error: d.error ?? null });
      return;
    }
    const source = req.source ? this.config.sources.get(req.source) : undefined;
    if (!source) return;
    if (req.kind === 'backup' && job.status === 'succeeded' && parsed && typeof parsed === 'object') {
      const s = parsed as { id: string; time: string; summary?: { totalBytes?: number; addedBytes?: number; durationMs?: number } };
      this.catalog.recordBackup({
        snapshot_id: s.id,
        source: source.name,
        kind: source.kind,
        repository,
        time: s.time,
        size_bytes: s.summary?.totalBytes ?? 0,
        added_bytes: s.summary?.addedBytes ?? 0,
        duration_ms: s.summary?.durationMs ?? job.duration_ms ?? 0,
      });
    }
    if (req.kind === 'restore' && sourceKind(source.kind).restore.measuresRto && parsed && typeof parsed === 'object' && 'rto_seconds' in parsed) {
      // The result (job.result.rto_seconds) holds it; the log says it in words.
      const rto = (parsed as { rto_seconds: number | null }).rto_seconds;
      this.catalog.appendLog(job.id, 'daemon', rto === null ? 'the restored server did not recover: no RTO measured' : `measured RTO ${rto} s (restore, start, recovery and promotion)`);
    }
    if (req.kind === 'drill' && parsed && typeof parsed === 'object' && 'ok' in parsed) {
      const d = parsed as { ok: boolean; time: string; rto_seconds: number | null; rpo_seconds: number | null; snapshot: string | null; error?: string };
      this.catalog.recordDrill({ source: source.name, repository, time: d.time, ok: d.ok, rto_seconds: d.rto_seconds, rpo_seconds: d.rpo_seconds, snapshot: d.snapshot, error: d.error ?? null });
    }
  }
}
