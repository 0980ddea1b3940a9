/**
 * lifeboat serve: one process that runs the schedules, keeps continuous archiving
 * alive (and watches archive_command sources), records every job in the catalog,
 * watches RPO against the targets, sends notifications once per incident, and serves
 * the REST API, the dashboard and /metrics.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { LifeboatError, errno } from '../errors.js';
import type { LifeboatConfig, ScheduleConfig } from '../config/config.js';
import { Catalog, type BackupRow, type DrillRow, type GroupPointRow, type JobRow } from './catalog.js';
import type { GroupPoint } from '../engine/group/capture.js';
import { JobRunner, forgetCommand, groupRestoreArgs, requireGroup, requireRepository, requireSource, type GroupRestoreParams, type JobRequest } from './jobs.js';
import { runLifeboat } from './job-child.js';
import { Metrics, type GroupStatus, type RepositoryStatus, type SourceStatus } from './metrics.js';
import { Incidents, Notifier, type Notice } from './notify.js';
import { Scheduler, systemClock, type Clock, type FireReason } from './scheduler.js';
import { Supervisor, archiveUp, type ArchiveState } from './supervisor.js';
import { buildApi } from '../api/app.js';
import { RepositoryReads, type ReadsOptions } from './reads.js';
import { checkListen, loadMetricsToken } from './listen.js';
import { sourceKind, sourceKinds } from '../sources/registry.js';
import type { ArchiveWatcher } from '../sources/source.js';
// The daemon is an entry point: every kind of source registers before the configuration is read.
import '../sources/all.js';

export interface DaemonOptions {
  clock?: Clock;
  /** Base delay of notification retries (tests shorten it). */
  notifyRetryDelayMs?: number;
  log?: (line: string) => void;
  /** The cache of repository reads (snapshot listings, retention previews); tests shorten or bound it. */
  reads?: ReadsOptions;
  /** The script job children run as `node ENTRY job` (default: this installation's CLI; tests give a misbehaving one). */
  jobEntry?: string;
}

/** Jobs after which what a repository holds may have changed (restore and check only read it). */
const WRITING_KINDS = new Set(['backup', 'drill', 'forget', 'prune', 'rotate', 'replicate', 'group-backup', 'group-drill']);

/**
 * Codes of a group restore's plan that are about the request (its point, time or
 * targets) and keep their HTTP status; any other failure of the planning child is the
 * daemon's (FAILED), so that a child's WRONG_PASSWORD never reads as the caller's 401.
 */
const PLAN_CODES = new Set(['USAGE', 'NOT_FOUND', 'TARGET_EXISTS', 'TARGET_UNSAFE', 'ARCHIVE_BEHIND', 'RESTORE_NOT_ALLOWED']);

export class Daemon {
  readonly catalog: Catalog;
  readonly runner: JobRunner;
  readonly supervisor: Supervisor;
  /** Each kind's watcher of archiving that no process of ours runs (PostgreSQL's archive_command). */
  readonly archiveWatches: ArchiveWatcher[];
  readonly scheduler: Scheduler;
  readonly notifier: Notifier;
  readonly incidents: Incidents;
  readonly metrics: Metrics;
  readonly reads: RepositoryReads;
  app!: FastifyInstance;
  readonly startedAt: Date;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  /** When each source's archiving was first seen not up (cleared when it is up). */
  private readonly archiveDownSince = new Map<string, number>();
  private checkTimer: unknown;
  private readonly jobEntry: string | undefined;
  private ready = false;

  private constructor(
    readonly config: LifeboatConfig,
    opts: DaemonOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now());
    this.log = opts.log ?? ((line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`));
    this.catalog = new Catalog(path.resolve(path.dirname(config.file), config.server.stateDir));
    this.catalog.keepAudit = config.server.keepAudit;
    this.jobEntry = opts.jobEntry;
    this.runner = new JobRunner(config, this.catalog, opts.jobEntry);
    this.notifier = new Notifier([...config.notifications.values()], (name, message) => {
      this.metrics.notifyFailures.inc({ notification: name });
      this.log(message);
    }, opts.notifyRetryDelayMs);
    this.incidents = new Incidents(this.notifier, this.clock);
    this.metrics = new Metrics(() => ({ sources: this.sources(), repositories: this.repositories(), groups: this.groups(), running: this.catalog.jobs({ status: 'running', limit: 1000 }).length }));
    this.metrics.declare(
      [...config.sources.keys()],
      [...config.repositories.keys()],
      [...config.notifications.keys()],
      [...config.sources.values()].filter((s) => s.continuous && sourceKind(s.kind).continuous?.reportsShipLag).map((s) => s.name),
      [...config.sources.values()].filter((s) => s.continuous).map((s) => s.name),
      [...config.groups.keys()],
    );
    this.reads = new RepositoryReads((repository, args) => this.cliJson(repository, args), opts.reads, () => this.clock.now(), (repository) => this.metrics.repositoryReads.inc({ repository }));
    this.supervisor = new Supervisor(config, this.catalog, () => {}, this.clock, { diverged: (source, reason) => this.diverged(source, reason), gap: (source, message) => this.gap(source, message) });
    this.archiveWatches = sourceKinds().flatMap((k) => (k.archiveWatch ? [k.archiveWatch(config, () => {}, this.clock)] : []));
    this.scheduler = new Scheduler([...config.schedules.values()], this.catalog, (s, at, reason) => this.fire(s, at, reason), this.clock);
    this.runner.on('finished', (job: JobRow) => this.finished(job));
  }

  /** Builds the daemon and its HTTP app; `listen` opens the socket (tests may use inject instead). */
  static async create(config: LifeboatConfig, opts: DaemonOptions = {}): Promise<Daemon> {
    loadMetricsToken(config);
    const d = new Daemon(config, opts);
    const tls = config.server.tls;
    let https: { cert: Buffer; key: Buffer } | undefined;
    if (tls) {
      const read = (file: string) => {
        try {
          return readFileSync(path.resolve(path.dirname(config.file), file));
        } catch (err) {
          throw new LifeboatError('CONFIG_INVALID', `cannot read TLS file ${file}: ${errno(err) ?? String(err)}`, { hint: 'server.tls.cert and server.tls.key name PEM files' });
        }
      };
      https = { cert: read(tls.cert), key: read(tls.key) };
    }
    d.app = await buildApi(d, https);
    return d;
  }

  /** Starts schedules, replication and RPO watching. */
  start(): void {
    const interrupted = this.catalog.failInterrupted();
    if (interrupted.length > 0) this.log(`${interrupted.length} job(s) were running when the daemon last stopped; marked failed`);
    this.scheduler.start();
    this.supervisor.start();
    for (const w of this.archiveWatches) w.start();
    // Each counts and is told as a failure, like one that failed on its own: the
    // scheduler does not run it again (its fire time was recorded when it started), so
    // a check a restart interrupts every time would otherwise never fail anywhere.
    // (Not replicators': the supervisor restarts them and tells their ends itself.)
    for (const job of interrupted) if (job.kind !== 'replicate') this.finished(job);
    let lastPrune = 0;
    const tick = () => {
      if (this.runner.unrecordedCount > 0 && this.runner.retryUnrecorded()) this.log('the catalog records jobs again');
      this.watchRpo();
      this.watchArchives();
      this.incidents.remind();
      if (this.clock.now() - lastPrune >= 3600_000) {
        lastPrune = this.clock.now();
        this.catalog.pruneJobs(new Date(this.clock.now() - this.config.server.keepJobsSeconds * 1000));
        this.catalog.pruneAudit();
      }
      this.checkTimer = this.clock.setTimeout(tick, this.config.server.checkIntervalSeconds * 1000);
    };
    this.checkTimer = this.clock.setTimeout(tick, this.config.server.checkIntervalSeconds * 1000);
    this.ready = true;
  }

  /**
   * Opens the socket. Beyond loopback it needs TLS (or `insecure`, then a warning is
   * returned for the caller to print) and server.metrics_token; see listen.ts.
   */
  async listen(opts: { insecure?: boolean; warn?: (line: string) => void } = {}): Promise<string> {
    for (const w of checkListen(this.config.server, opts.insecure ?? false)) (opts.warn ?? this.log)(w);
    return this.app.listen({ host: this.config.server.host, port: this.config.server.port });
  }

  isReady(): boolean {
    if (!this.ready) return false;
    // A job's end the catalog refused (a full disk under the state directory): not ready
    // until it takes it (tried again here and at every check).
    if (!this.runner.retryUnrecorded()) return false;
    try {
      this.catalog.db.prepare('SELECT 1').get();
      return true;
    } catch {
      return false;
    }
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.scheduler.stop();
    this.clock.clearTimeout(this.checkTimer);
    await this.app.close();
    await Promise.all([this.runner.stop(), this.supervisor.stop(), ...this.archiveWatches.map((w) => w.stop())]);
    await this.notifier.idle();
    await new Promise((r) => setImmediate(r));
    // Job ends the catalog refused: a last try, and what is left is said (the next start
    // marks such jobs failed as interrupted).
    if (!this.runner.retryUnrecorded()) {
      this.log(`${this.runner.unrecordedCount} job end(s) could not be recorded in the catalog`);
    }
    this.catalog.close();
  }

  // --- jobs -----------------------------------------------------------------

  submit(req: JobRequest): JobRow {
    return this.runner.submit(req);
  }

  /**
   * Restores several sources to one moment (a whole deployment after a disaster): one
   * restore job per source, all checked before any starts. Files come back from the
   * newest backup at or before the moment; databases are recovered to the moment.
   * `recovery` ties the jobs together (their params, GET /api/v1/recovery/status).
   */
  recover(targets: Record<string, string>, time: string | undefined, trigger: string, actor: string | undefined, recovery?: string): JobRow[] {
    return this.planRecovery(targets, time, trigger, actor, recovery).map((req) => this.submit(req));
  }

  /** The restore jobs a recovery would start, every one checked (nothing started): the dry run of `recover`. */
  planRecovery(targets: Record<string, string>, time: string | undefined, trigger: string, actor: string | undefined, recovery?: string): JobRequest[] {
    const at = time === undefined ? undefined : Date.parse(time);
    if (at !== undefined && Number.isNaN(at)) throw new LifeboatError('USAGE', `"${time}" is not a time`, { hint: 'use RFC 3339, e.g. 2026-11-21T14:30:05Z' });
    const names = Object.keys(targets);
    if (names.length === 0) throw new LifeboatError('USAGE', 'nothing to recover', { hint: 'give "targets": {"SOURCE": "/new/path", ...}' });
    const tag = recovery === undefined ? {} : { recovery };
    const requests: JobRequest[] = names.map((source) => {
      const s = this.config.sources.get(source);
      const target = targets[source] as string;
      // A kind with a log replays it to the moment; one without comes back from its newest backup at or before it.
      if (!s || sourceKind(s.kind).log !== undefined || at === undefined) return { kind: 'restore', source, trigger, actor, restore: { target, ...(time ? { time } : {}) }, ...tag };
      const snap = this.catalog.backups(source, 5000).find((b) => Date.parse(b.time) <= at);
      if (!snap) throw new LifeboatError('NOT_FOUND', `no backup of ${source} at or before ${time}`, { hint: `GET /api/v1/backups?source=${source} lists them` });
      return { kind: 'restore', source, trigger, actor, restore: { target, snapshot: snap.snapshot_id }, ...tag };
    });
    // Two members writing into one place (or one inside the other) would mix their files.
    const places = requests.map((r) => path.resolve(r.restore?.target ?? ''));
    places.forEach((a, i) => places.forEach((b, j) => {
      if (i !== j && (a === b || b.startsWith(`${a}/`))) {
        throw new LifeboatError('USAGE', `the restore targets of ${names[i]} and ${names[j]} overlap (${b} is ${a === b ? '' : 'inside '}${a}); nothing was started`, { hint: 'give each source a place of its own' });
      }
    }));
    for (const req of requests) this.checkStartable(req);
    return requests;
  }

  /** Throws what would refuse the job now (a bad request, or the same job running): nothing is started. */
  checkStartable(req: JobRequest): void {
    const { repository } = this.runner.validate(req);
    if (this.runner.isRunning(JobRunner.key({ ...req, repository }))) throw new LifeboatError('JOB_RUNNING', `a ${req.kind} of ${req.group ?? req.source ?? repository} is already running`, { hint: 'wait for it, then try again' });
  }

  private fire(s: ScheduleConfig, at: Date, reason: FireReason): void {
    const trigger = `${reason}:${s.name}`;
    const requests: JobRequest[] =
      s.run === 'check' || s.run === 'prune' || s.run === 'rotate'
        ? [{ kind: s.run, repository: s.repository as string, trigger, ...(s.readDataSubset ? { readDataSubset: s.readDataSubset } : {}) }]
        : s.groups.length > 0
          ? s.groups.map((group) => ({ kind: s.run === 'drill' ? ('group-drill' as const) : ('group-backup' as const), group, trigger }))
          : s.sources.map((source) => ({ kind: s.run as 'backup' | 'drill' | 'forget', source, trigger }));
    for (const req of requests) {
      const repository = req.repository ?? (req.group !== undefined ? this.config.groups.get(req.group)?.repository : this.config.sources.get(req.source as string)?.repository);
      if (this.runner.isRunning(JobRunner.key({ ...req, repository }))) {
        const job = this.runner.skip({ ...req, ...(repository ? { repository } : {}) }, `skipped: the ${at.toISOString()} run of "${s.name}" found the previous ${req.kind} still running`);
        this.metrics.jobFinished(job);
        this.log(`${s.name}: ${req.kind} of ${req.group ?? req.source ?? repository} still running; this run is skipped`);
        continue;
      }
      try {
        const job = this.submit(req);
        this.log(`${s.name}: started ${req.kind} of ${req.group ?? req.source ?? repository} (job ${job.id})`);
      } catch (err) {
        this.log(`${s.name}: could not start ${req.kind}: ${(err as Error).message}`);
      }
    }
  }

  private finished(job: JobRow): void {
    if (job.repository && WRITING_KINDS.has(job.kind)) this.reads.invalidate(job.repository);
    // forget and prune drop the points whose data they removed (docs/groups.md): read them again.
    if (job.repository && (job.kind === 'forget' || job.kind === 'prune') && job.status === 'succeeded') void this.refreshGroupPoints(job.repository);
    const size = job.kind === 'backup' && job.status === 'succeeded' ? (job.result as { summary?: { totalBytes?: number } } | null)?.summary?.totalBytes : undefined;
    this.metrics.jobFinished(job, size);
    const subject = job.source ?? job.repository ?? '';
    const key = `failure:${job.kind}:${subject}`;
    const what = `${job.kind} of ${subject}`;
    this.log(`job ${job.id}: ${what} ${job.status}${job.error ? `: ${job.error}` : ''}`);
    const base = { ...(job.source ? { source: job.source } : {}), ...(job.repository ? { repository: job.repository } : {}), job: { id: job.id, kind: job.kind, status: job.status, error: job.error } };
    const failure: Notice = { ...base, event: 'failure', message: `${what} failed: ${job.error ?? 'see the job log'}` };
    // A restore is one person's request, not a recurring duty: told once, never reminded.
    if (job.status === 'failed' && (job.kind === 'restore' || job.kind === 'group-restore')) this.notifier.notify(failure);
    else if (job.status === 'failed') this.incidents.raise(key, failure);
    else if (job.status === 'succeeded') this.incidents.resolve(key, { ...base, event: 'recovery', message: `${what} succeeded again` });
    if (job.kind === 'backup' && job.status === 'succeeded') this.watchRpo();
    // A destination left out is an incident of the repository's, until a job that
    // writes to it (and so checks every destination first) reaches them all again.
    if (job.repository && job.status === 'succeeded') {
      const leftOut = `degraded:${job.repository}`;
      const about = { repository: job.repository, job: base.job };
      if (job.error_code === 'DEGRADED') this.incidents.raise(leftOut, { ...about, event: 'failure', message: `${what}: a destination of repository ${job.repository} was left out: ${job.error ?? 'see the job log'}` });
      else if (WRITING_KINDS.has(job.kind)) this.incidents.resolve(leftOut, { ...about, event: 'recovery', message: `repository ${job.repository}: every destination reached again (${what})` });
    }
  }

  /**
   * A finding, not a state: the replicator has already retired the generation and
   * started a new one, so it is told once (and counted for the alert rule), never
   * "recovered".
   */
  private diverged(source: string, reason: string): void {
    this.metrics.divergences.inc({ source });
    this.log(`${source}: the replicated history diverged from the database: ${reason}`);
    this.tell('diverged', source, `the replicated history of ${source} no longer reproduces the database (${reason}); a new generation started with a fresh snapshot`, { reason });
  }

  /**
   * A history that could not be continued (a Redis server restarted without persistence,
   * or its backlog moved on while the replicator was away): writes in the window it names
   * may be missing from the backups. Told once and counted, like a divergence.
   */
  private gap(source: string, message: string): void {
    this.metrics.gaps.inc({ source });
    this.log(`${source}: ${message}`);
    this.tell('archive_gap', source, message, {});
  }

  /** Notifies a finding about a source once (no incident: nothing to recover from). */
  private tell(event: 'diverged' | 'archive_gap', source: string, message: string, details: Record<string, unknown>): void {
    const s = this.config.sources.get(source);
    this.notifier.notify({ event, source, ...(s ? { repository: s.repository } : {}), message, details });
  }

  /** Compares each source's RPO with its target; notifies on breach and on recovery. */
  watchRpo(): void {
    for (const s of this.sources()) {
      if (s.rpo_target_seconds === null) continue;
      // Nothing recoverable yet counts as a breach once the daemon has run for the target.
      const age = s.rpo_seconds ?? (this.clock.now() - this.startedAt.getTime()) / 1000;
      const details = { rpo_seconds: age, target_seconds: s.rpo_target_seconds };
      if (age > s.rpo_target_seconds) {
        this.incidents.raise(`rpo:${s.name}`, { event: 'rpo_breach', source: s.name, repository: s.repository, message: `RPO of ${s.name} is ${Math.round(age)} s, over its target of ${s.rpo_target_seconds} s`, details });
      } else {
        this.incidents.resolve(`rpo:${s.name}`, { event: 'recovery', source: s.name, repository: s.repository, message: `RPO of ${s.name} is back within its target (${Math.round(age)} s ≤ ${s.rpo_target_seconds} s)`, details });
      }
    }
  }

  /**
   * Archiving that has not been up for a whole check interval is an incident (a
   * streamer restarted within a second is not); up again ends it.
   */
  watchArchives(): void {
    const now = this.clock.now();
    const limit = this.config.server.checkIntervalSeconds * 1000;
    for (const s of this.sources()) {
      if (!s.archive) continue;
      const key = `archive:${s.name}`;
      if (s.archive.up) {
        this.archiveDownSince.delete(s.name);
        this.incidents.resolve(key, { event: 'recovery', source: s.name, repository: s.repository, message: `archiving of ${s.name} is up again` });
        continue;
      }
      const since = this.archiveDownSince.get(s.name) ?? now;
      this.archiveDownSince.set(s.name, since);
      if (now - since >= limit) {
        const error = s.archive.error ?? 'not up';
        this.incidents.raise(key, { event: 'archive_down', source: s.name, repository: s.repository, message: `archiving of ${s.name} is down: ${error}`, details: { error, hint: s.archive.hint, method: s.archive.method } });
      }
    }
  }

  /** The archiving state of a source, from its archiver's status events or from watching archive_command. */
  archiveState(source: string): ArchiveState | undefined {
    return this.supervisor.states.get(source) ?? this.archiveWatches.map((w) => w.states.get(source)).find((st) => st !== undefined);
  }

  // --- status ---------------------------------------------------------------

  sources(): SourceStatus[] {
    const now = this.clock.now();
    return [...this.config.sources.values()].map((s) => {
      const last = this.catalog.backups(s.name, 1)[0];
      const backupJobs = this.catalog.jobs({ source: s.name, kind: 'backup', limit: 50 });
      const lastOk = backupJobs.find((j) => j.status === 'succeeded');
      const drill = this.catalog.drills(s.name, 1)[0];
      const rep = this.archiveState(s.name);
      // Everything committed at or before the newest backup, or before what the archive proves, is recoverable.
      const newest = Math.max(last ? Date.parse(last.time) : -Infinity, rep?.archivedThrough ?? -Infinity);
      const lastJob = backupJobs.find((j) => j.status !== 'skipped');
      const rpo = Number.isFinite(newest) ? Math.max(0, (now - newest) / 1000) : null;
      return {
        name: s.name,
        kind: s.kind,
        repository: s.repository,
        continuous: s.continuous,
        last_backup: last ? { snapshot_id: last.snapshot_id, time: last.time, size_bytes: last.size_bytes, duration_ms: last.duration_ms } : null,
        last_success_at: lastOk?.finished_at ?? null,
        rpo_seconds: rpo,
        rpo_target_seconds: s.targets.rpoSeconds ?? null,
        rto_seconds: drill?.rto_seconds ?? null,
        rto_target_seconds: s.targets.rtoSeconds ?? null,
        last_drill: drill ? { time: drill.time, ok: drill.ok, rto_seconds: drill.rto_seconds, rpo_seconds: drill.rpo_seconds } : null,
        archive: rep ? archiveStatus(rep, now, s.targets.rpoSeconds) : null,
        failing: lastJob?.status === 'failed',
      };
    });
  }

  /** Each consistency group: members, newest point, its hold and age, the newest capture. */
  groups(): GroupStatus[] {
    const now = this.clock.now();
    return [...this.config.groups.values()].map((g) => {
      const points = this.catalog.groupPoints(g.name, 1);
      const last = points[0];
      const jobs = this.catalog.jobs({ source: g.name, kind: 'group-backup', limit: 20 }).filter((j) => j.status !== 'skipped');
      const job = jobs[0];
      const drill = this.catalog.drills(`group:${g.name}`, 1)[0];
      const intervals = [...this.config.schedules.values()]
        .filter((s) => s.run === 'backup' && s.groups.includes(g.name))
        .map((s) => {
          const a = this.scheduler.nextAfter(s.name, new Date(now));
          const b = a && this.scheduler.nextAfter(s.name, a);
          return a && b ? (b.getTime() - a.getTime()) / 1000 : null;
        })
        .filter((x): x is number => x !== null);
      return {
        name: g.name,
        repository: g.repository,
        members: g.members.map((m) => ({ name: m, kind: this.config.sources.get(m)?.kind ?? '' })),
        hooks: g.freeze !== undefined,
        max_hold_ms: g.maxHoldMs,
        last_point: last ? { id: last.id, time: last.time, hold_ms: last.hold_ms, max_hold_ms: last.max_hold_ms, frozen: last.frozen } : null,
        points: this.catalog.groupPointCount(g.name),
        rpo_seconds: last ? Math.max(0, (now - Date.parse(last.time)) / 1000) : null,
        schedule_interval_seconds: intervals.length > 0 ? Math.min(...intervals) : null,
        last_capture: job ? { job: job.id, status: job.status, finished_at: job.finished_at, error_code: job.error_code, error: job.error } : null,
        failing: job?.status === 'failed',
        last_drill: drill ? { time: drill.time, ok: drill.ok, rto_seconds: drill.rto_seconds, point: drill.snapshot, error: drill.error } : null,
      };
    });
  }

  repositories(): RepositoryStatus[] {
    return [...this.config.repositories.keys()].map((name) => {
      const check = this.catalog.jobs({ kind: 'check', limit: 20 }).find((j) => j.repository === name && (j.status === 'succeeded' || j.status === 'failed'));
      // The current key epoch, as the newest check or rotation of the repository reported it.
      const epochOf = (kind: 'check' | 'rotate') =>
        this.catalog.jobs({ kind, limit: 20 }).filter((j) => j.repository === name && j.status === 'succeeded').map((j) => (j.result as { keyEpoch?: { created?: string } } | null)?.keyEpoch?.created).find((c) => typeof c === 'string');
      const created = [epochOf('rotate'), epochOf('check')].filter((c): c is string => c !== undefined).sort().at(-1);
      return { name, last_check: check ? { time: check.finished_at as string, ok: check.status === 'succeeded' } : null, key_epoch_created: created ?? null };
    });
  }

  /** What the source's retention would remove now (forget --dry-run), without removing anything. */
  async retentionPreview(source: string): Promise<unknown> {
    const s = requireSource(this.config, source);
    return this.reads.get(s.repository, forgetCommand(this.config, s, 'preview'));
  }

  /** The snapshots a repository holds, read from the repository itself (shared and cached for a few seconds, see reads.ts). */
  async snapshots(repository: string, opts: { fresh?: boolean } = {}): Promise<unknown> {
    return this.reads.get(requireRepository(this.config, repository), ['snapshots'], opts);
  }

  /**
   * The plan of a group restore (`group restore … --dry-run`, run now in a child): every
   * member's mechanism, target and position, everything checked and nothing written.
   */
  async planGroupRestore(name: string, p: GroupRestoreParams): Promise<Record<string, unknown>> {
    const g = requireGroup(this.config, name);
    const r = await runLifeboat(this.config, g.repository, groupRestoreArgs(g.name, p, true), this.jobEntry !== undefined ? { entry: this.jobEntry } : {});
    if (r.error) throw new LifeboatError(PLAN_CODES.has(r.error.code) ? r.error.code : 'FAILED', r.error.message, r.error.hint !== undefined ? { hint: r.error.hint } : {});
    return r.result as Record<string, unknown>;
  }

  /** Re-reads the points of every group stored in `repository` into the catalog; a failure is logged, the catalog keeps what it had. */
  async refreshGroupPoints(repository: string): Promise<void> {
    for (const g of this.config.groups.values()) {
      if (g.repository !== repository) continue;
      try {
        const { points } = await this.groupPoints(g.name, { fresh: true });
        this.catalog.replaceGroupPoints(g.name, points.map((p) => pointRow(p, repository)));
      } catch (err) {
        this.log(`group ${g.name}: could not read its points again after a forget or prune: ${(err as Error).message}`);
      }
    }
  }

  /** A group's points read from its repository (`group points NAME --json`; shared and cached like snapshot listings). */
  async groupPoints(name: string, opts: { fresh?: boolean } = {}): Promise<{ group: string; points: GroupPoint[]; unreadable: string[] }> {
    const g = requireGroup(this.config, name);
    return (await this.reads.get(g.repository, ['group', 'points', g.name], opts)) as { group: string; points: GroupPoint[]; unreadable: string[] };
  }

  private async cliJson(repository: string, args: string[]): Promise<unknown> {
    const r = await runLifeboat(this.config, repository, args, this.jobEntry !== undefined ? { entry: this.jobEntry } : {});
    // FAILED (500) whatever the child's code: the API request was fine, the read behind it was not
    // (a child's WRONG_PASSWORD must not read as the caller's 401). The child's message and hint tell why.
    if (r.error) throw new LifeboatError('FAILED', r.error.message, r.error.hint !== undefined ? { hint: r.error.hint } : {});
    return r.result;
  }

  /** Rebuilds what the catalog knows of backups and drills from the repositories. */
  async rebuildCatalog(): Promise<{ backups: number; drills: number }> {
    let nb = 0;
    let nd = 0;
    const byName = new Map([...this.config.sources.values()].map((s) => [`${s.kind}:${s.name}`, s]));
    for (const repository of this.config.repositories.keys()) {
      const snaps = (await this.snapshots(repository, { fresh: true })) as Array<{ id: string; time: string; paths: string[]; source?: { kind: string; name?: string }; summary: { totalBytes: number; addedBytes: number; durationMs: number } }>;
      const drills = (await this.reads.get(repository, ['drill', '--history'], { fresh: true })) as Array<{ source: string; time: string; ok: boolean; rto_seconds: number | null; rpo_seconds: number | null; snapshot: string | null; error?: string }>;
      const backups: BackupRow[] = [];
      for (const s of snaps) {
        const src = byName.get(`${s.source?.kind}:${s.source?.name ?? s.paths[0]}`);
        if (!src || src.repository !== repository) continue;
        backups.push({ snapshot_id: s.id, source: src.name, kind: src.kind, repository, time: s.time, size_bytes: s.summary.totalBytes, added_bytes: s.summary.addedBytes, duration_ms: s.summary.durationMs });
      }
      const drillRows: DrillRow[] = [];
      for (const d of drills) {
        const src = byName.get(d.source);
        if (!src || src.repository !== repository) continue;
        drillRows.push({ source: src.name, repository, time: d.time, ok: d.ok, rto_seconds: d.rto_seconds, rpo_seconds: d.rpo_seconds, snapshot: d.snapshot, error: d.error ?? null });
      }
      const points: GroupPointRow[] = [];
      for (const g of this.config.groups.values()) {
        if (g.repository !== repository) continue;
        points.push(...(await this.groupPoints(g.name, { fresh: true })).points.map((p) => pointRow(p, repository)));
      }
      this.catalog.replaceRepositoryContents(repository, backups, drillRows, points);
      nb += backups.length;
      nd += drillRows.length;
    }
    return { backups: nb, drills: nd };
  }
}

/** A stored point as the catalog keeps it. */
function pointRow(p: GroupPoint, repository: string): GroupPointRow {
  return { group: p.group, id: p.id, repository, time: p.time, hold_ms: p.hold_ms, max_hold_ms: p.max_hold_ms, frozen: p.frozen, members: p.members as GroupPointRow['members'] };
}

/** Above this lag an archive that is up counts as lagging when the source has no RPO target (the LifeboatArchiveLag threshold). */
const LAG_WITHOUT_TARGET_SECONDS = 600;

function archiveStatus(a: ArchiveState, now: number, rpoTarget: number | undefined): NonNullable<SourceStatus['archive']> {
  const { up, error } = archiveUp(a, now);
  const lag = a.archivedThrough === undefined ? null : Math.max(0, (now - a.archivedThrough) / 1000);
  const state = up
    ? lag !== null && lag > (rpoTarget ?? LAG_WITHOUT_TARGET_SECONDS) ? 'lagging' : 'ok'
    : a.running && a.statusAt === undefined ? 'starting' : a.archiver?.failing && a.healthy === false ? 'failing' : 'down';
  const at = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    method: a.method,
    up,
    state,
    restarts: a.restarts,
    lag_seconds: lag,
    archived_through: at(a.archivedThrough),
    last_status_at: at(a.statusAt),
    error,
    hint: up ? null : (a.hint ?? null),
    last_error: a.lastError ?? null,
    last_error_at: at(a.lastErrorAt),
    archive_command: a.archiver
      ? { failed_count: a.archiver.failedCount, failing: a.archiver.failing, last_failed_wal: a.archiver.lastFailedWal, last_failed_at: a.archiver.lastFailedAt, last_archived_wal: a.archiver.lastArchivedWal, last_archived_at: a.archiver.lastArchivedAt }
      : null,
  };
}
