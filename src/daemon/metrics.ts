/**
 * Prometheus metrics (prom-client) on one registry per daemon. Job outcomes are
 * counted as they happen; the RPO, RTO, archive lag and targets are read from the
 * daemon's status at scrape time, so they are never stale. docs/ops/ holds alert
 * rules and a Grafana dashboard over these names.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobRow } from './catalog.js';
import { PROGRAM_VERSION } from '../repo/repository.js';

export interface SourceStatus {
  name: string;
  kind: string;
  repository: string;
  continuous: boolean;
  last_backup: { snapshot_id: string; time: string; size_bytes: number; duration_ms: number } | null;
  last_success_at: string | null;
  /** Age of the newest recoverable data, seconds; null while nothing is recoverable. */
  rpo_seconds: number | null;
  rpo_target_seconds: number | null;
  /** RTO measured by the newest drill. */
  rto_seconds: number | null;
  rto_target_seconds: number | null;
  last_drill: { time: string; ok: boolean; rto_seconds: number | null; rpo_seconds: number | null } | null;
  /** Log archiving: a streamer or replicator of the daemon's, or a server's archive_command the daemon watches. */
  archive: {
    method: 'stream' | 'replicate' | 'archive_command';
    /** Healthy, with a recent status: what lifeboat_archive_up reports. */
    up: boolean;
    /** ok, lagging (up, but the archive is older than the RPO target), failing (archive_command fails), down, starting. */
    state: 'ok' | 'lagging' | 'failing' | 'down' | 'starting';
    restarts: number;
    /** now − archived_through. */
    lag_seconds: number | null;
    /** Everything committed at or before this moment is proven to be in the repository. */
    archived_through: string | null;
    last_status_at: string | null;
    /** Why it is not up now; null while up. */
    error: string | null;
    hint: string | null;
    /** The newest error ever reported, and when (kept after recovery). */
    last_error: string | null;
    last_error_at: string | null;
    archive_command: { failed_count: number; failing: boolean; last_failed_wal: string | null; last_failed_at: string | null; last_archived_wal: string | null; last_archived_at: string | null } | null;
  } | null;
  failing: boolean;
}

export interface RepositoryStatus {
  name: string;
  last_check: { time: string; ok: boolean } | null;
  /** When the current key epoch began (format 2), as the newest check or rotation saw it. */
  key_epoch_created?: string | null;
}

/** A consistency group (docs/groups.md) as the daemon sees it: from its configuration, its points and its jobs. */
export interface GroupStatus {
  name: string;
  repository: string;
  members: Array<{ name: string; kind: string }>;
  /** freeze and thaw configured: writes are held; without them the positions are read back to back. */
  hooks: boolean;
  max_hold_ms: number;
  /** The newest point the catalog knows (from the group's capture jobs, or a catalog rebuild). */
  last_point: { id: string; time: string; hold_ms: number; max_hold_ms: number; frozen: boolean } | null;
  points: number;
  /** now − the newest point's time: how far back a group restore to one moment reaches; null without a point. */
  rpo_seconds: number | null;
  /** The shortest interval between fire times of the schedules that capture the group; null when none does. */
  schedule_interval_seconds: number | null;
  /** The newest capture job that ran (not skipped). */
  last_capture: { job: string; status: string; finished_at: string | null; error_code: string | null; error: string | null } | null;
  /** The newest capture job failed. */
  failing: boolean;
  /** The newest group drill (`group drill`): its RTO measures the whole group's recovery. */
  last_drill: { time: string; ok: boolean; rto_seconds: number | null; point: string | null; error: string | null } | null;
}

type Status = { sources: SourceStatus[]; repositories: RepositoryStatus[]; groups?: GroupStatus[]; running: number };

export class Metrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'kind' | 'source' | 'status'>;
  private readonly failures: Counter<'kind' | 'source'>;
  private readonly leftOut: Counter<'repository'>;
  private readonly duration: Histogram<'source'>;
  private readonly size: Histogram<'source'>;
  readonly notifyFailures: Counter<'notification'>;
  /** SQLite generations found not to reproduce their database (the replicator's `diverged` events). */
  readonly divergences: Counter<'source'>;
  /** Histories a replicator could not continue, so that a window may be missing (Redis `loss` events). */
  readonly gaps: Counter<'source'>;
  /** Children the API started to read a repository (snapshot listings, retention previews), after sharing and caching. */
  readonly repositoryReads: Counter<'repository'>;
  /** Group captures that failed, and of those the ones that held writes past max_hold. */
  private readonly groupFailures: Counter<'group'>;
  private readonly groupHoldExceeded: Counter<'group'>;
  /** The names Summit's dashboards and alerts use (docs/daemon.md, "Metric aliases"): the same counts as lifeboat_jobs_total. */
  private readonly backupSuccess: Counter<'source'>;
  private readonly backupFailure: Counter<'source'>;
  private readonly recoveryAttempts: Counter<'source' | 'status'>;

  /** The daemon's status, read once per scrape by every gauge (see render). */
  private scrape: Status | undefined;

  constructor(private readonly readStatus: () => Status) {
    const status = () => this.scrape ?? this.readStatus();
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'lifeboat_' });
    this.jobs = new Counter({ name: 'lifeboat_jobs_total', help: 'Jobs finished, by kind, source (or repository) and status', labelNames: ['kind', 'source', 'status'], registers: [r] });
    this.leftOut = new Counter({
      name: 'lifeboat_destination_left_out_total',
      help: "Jobs that did their work but left one of the repository's destinations out (exit DEGRADED: down, full, failing to list, or not holding the repository)",
      labelNames: ['repository'],
      registers: [r],
    });
    this.failures = new Counter({ name: 'lifeboat_job_failures_total', help: 'Jobs that failed, by kind and source (or repository)', labelNames: ['kind', 'source'], registers: [r] });
    this.duration = new Histogram({
      name: 'lifeboat_backup_duration_seconds',
      help: 'Duration of successful backups',
      labelNames: ['source'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400],
      registers: [r],
    });
    this.size = new Histogram({
      name: 'lifeboat_backup_size_bytes',
      help: 'Size of the data in each successful backup',
      labelNames: ['source'],
      buckets: [1 << 20, 16 << 20, 128 << 20, 1 << 30, 8 * 2 ** 30, 64 * 2 ** 30, 512 * 2 ** 30, 4 * 2 ** 40],
      registers: [r],
    });
    const perSource = (name: string, help: string, value: (s: SourceStatus) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['source'],
        registers: [r],
        collect() {
          this.reset();
          for (const s of status().sources) {
            const v = value(s);
            if (v !== null && v !== undefined) this.set({ source: s.name }, v);
          }
        },
      });
    const seconds = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : null);
    perSource('lifeboat_backup_last_success_timestamp_seconds', 'When the newest successful backup finished (Unix time)', (s) => seconds(s.last_success_at));
    perSource('lifeboat_backup_last_size_bytes', 'Size of the data in the newest backup', (s) => s.last_backup?.size_bytes);
    perSource('lifeboat_rpo_seconds', 'Current RPO: age of the newest recoverable data (backup or archived log)', (s) => s.rpo_seconds);
    perSource('lifeboat_rpo_target_seconds', 'RPO target from lifeboat.yaml', (s) => s.rpo_target_seconds);
    perSource('lifeboat_rto_seconds', 'RTO measured by the newest drill (restore until checks passed)', (s) => s.rto_seconds);
    perSource('lifeboat_rto_target_seconds', 'RTO target from lifeboat.yaml', (s) => s.rto_target_seconds);
    perSource('lifeboat_drill_last_success', '1 when the newest drill passed, 0 when it failed', (s) => (s.last_drill ? Number(s.last_drill.ok) : null));
    perSource('lifeboat_drill_last_timestamp_seconds', 'When the newest drill ran (Unix time)', (s) => seconds(s.last_drill?.time));
    perSource('lifeboat_archive_lag_seconds', 'Seconds since the moment up to which the log archive (WAL, SQLite frames) is proven to hold every commit', (s) => s.archive?.lag_seconds);
    perSource('lifeboat_archive_up', '1 while log archiving is healthy and reporting (streamer, replicator, or archive_command), 0 when it fails, is stuck or is not running', (s) => (s.archive ? Number(s.archive.up) : null));
    perSource('lifeboat_archive_restarts', 'Restarts of continuous archiving since the daemon started', (s) => (s.archive?.method === 'archive_command' ? null : s.archive?.restarts));
    perSource('lifeboat_archive_command_failing', '1 while the newest archive_command attempt of the server failed (pg_stat_archiver)', (s) => (s.archive?.archive_command ? Number(s.archive.archive_command.failing) : null));
    perSource('lifeboat_archive_command_last_archived_timestamp_seconds', 'When archive_command last archived a file (pg_stat_archiver, Unix time)', (s) => seconds(s.archive?.archive_command?.last_archived_at));
    new Counter({
      name: 'lifeboat_archive_command_failures_total',
      help: 'Failed archive_command runs the server counted (pg_stat_archiver.failed_count; resets with the server statistics)',
      labelNames: ['source'],
      registers: [r],
      collect() {
        this.reset();
        for (const s of status().sources) if (s.archive?.archive_command) this.inc({ source: s.name }, s.archive.archive_command.failed_count);
      },
    });
    perSource('lifeboat_source_failing', '1 while the newest backup job of the source failed (until one succeeds)', (s) => Number(s.failing));
    new Gauge({
      name: 'lifeboat_verification_last_success',
      help: '1 when the newest check of the repository passed, 0 when it failed',
      labelNames: ['repository'],
      registers: [r],
      collect() {
        this.reset();
        for (const repo of status().repositories) if (repo.last_check) this.set({ repository: repo.name }, Number(repo.last_check.ok));
      },
    });
    new Gauge({
      name: 'lifeboat_verification_last_timestamp_seconds',
      help: 'When the newest check of the repository finished (Unix time)',
      labelNames: ['repository'],
      registers: [r],
      collect() {
        this.reset();
        for (const repo of status().repositories) if (repo.last_check) this.set({ repository: repo.name }, Date.parse(repo.last_check.time) / 1000);
      },
    });
    new Gauge({
      name: 'lifeboat_key_epoch_age_seconds',
      help: 'Age of the repository\'s current key epoch (format 2), as its newest check or rotation saw it; rotate with `lifeboat key rotate` or a `run: rotate` schedule',
      labelNames: ['repository'],
      registers: [r],
      collect() {
        this.reset();
        for (const repo of status().repositories) if (repo.key_epoch_created) this.set({ repository: repo.name }, Math.max(0, (Date.now() - Date.parse(repo.key_epoch_created)) / 1000));
      },
    });
    new Gauge({ name: 'lifeboat_build_info', help: 'The running version (value 1)', labelNames: ['version'], registers: [r] }).set({ version: PROGRAM_VERSION }, 1);
    this.divergences = new Counter({
      name: 'lifeboat_archive_divergences_total',
      help: 'Replicated histories found, page by page, not to reproduce the live database (SQLite)',
      labelNames: ['source'],
      registers: [r],
    });
    this.gaps = new Counter({
      name: 'lifeboat_archive_gaps_total',
      help: 'Histories a replicator could not continue, so that writes in a window may be missing from the backups (Redis: a server restarted without persistence, or a backlog that moved on)',
      labelNames: ['source'],
      registers: [r],
    });
    this.repositoryReads = new Counter({ name: 'lifeboat_api_repository_reads_total', help: 'Processes the API started to read a repository (snapshot listings, retention previews); concurrent requests share one', labelNames: ['repository'], registers: [r] });
    this.notifyFailures = new Counter({ name: 'lifeboat_notifications_failed_total', help: 'Notifications that could not be delivered after every retry', labelNames: ['notification'], registers: [r] });
    // --- consistency groups (docs/groups.md) ---
    const perGroup = (name: string, help: string, value: (g: GroupStatus) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['group'],
        registers: [r],
        collect() {
          this.reset();
          for (const g of status().groups ?? []) {
            const v = value(g);
            if (v !== null && v !== undefined) this.set({ group: g.name }, v);
          }
        },
      });
    perGroup('lifeboat_group_last_point_timestamp_seconds', 'When the newest point of the group was captured (start of freeze, Unix time)', (g) => seconds(g.last_point?.time));
    perGroup('lifeboat_group_rpo_seconds', 'Age of the newest point of the group: how far back a restore of all members to one moment goes', (g) => g.rpo_seconds);
    perGroup('lifeboat_group_hold_seconds', 'How long the newest point held writes (freeze start to thaw end)', (g) => (g.last_point ? g.last_point.hold_ms / 1000 : null));
    perGroup('lifeboat_group_max_hold_seconds', 'max_hold of the group from lifeboat.yaml: the longest a capture may hold writes', (g) => g.max_hold_ms / 1000);
    perGroup('lifeboat_group_schedule_interval_seconds', 'Shortest interval between fire times of the schedules that capture the group', (g) => g.schedule_interval_seconds);
    perGroup('lifeboat_group_rto_seconds', 'RTO the newest group drill measured: every member restored to one point and every check passed (absent until a drill succeeds)', (g) => g.last_drill?.rto_seconds);
    perGroup('lifeboat_group_drill_ok', '1 when the newest group drill passed, 0 when it failed', (g) => (g.last_drill ? Number(g.last_drill.ok) : null));
    perGroup('lifeboat_group_failing', '1 while the newest capture of the group failed (until one succeeds)', (g) => Number(g.failing));
    this.groupFailures = new Counter({ name: 'lifeboat_group_capture_failures_total', help: 'Group captures (group backup jobs) that failed; no point was stored', labelNames: ['group'], registers: [r] });
    this.groupHoldExceeded = new Counter({ name: 'lifeboat_group_hold_exceeded_total', help: 'Group captures that failed because writes would have been held past max_hold (HOLD_EXCEEDED)', labelNames: ['group'], registers: [r] });

    // --- the names Summit's dashboards and alerts use, with Lifeboat's values (docs/daemon.md) ---
    new Gauge({
      name: 'dr_rpo_actual_seconds',
      help: 'Alias of lifeboat_rpo_seconds (label source) and lifeboat_group_rpo_seconds (label group)',
      labelNames: ['source', 'group'],
      registers: [r],
      collect() {
        this.reset();
        for (const s of status().sources) if (s.rpo_seconds !== null) this.set({ source: s.name }, s.rpo_seconds);
        for (const g of status().groups ?? []) if (g.rpo_seconds !== null) this.set({ group: g.name }, g.rpo_seconds);
      },
    });
    new Gauge({
      name: 'dr_rto_actual_seconds',
      help: 'Alias of lifeboat_rto_seconds (label source) and lifeboat_group_rto_seconds (label group): the RTO the newest drill measured',
      labelNames: ['source', 'group'],
      registers: [r],
      collect() {
        this.reset();
        for (const s of status().sources) if (s.rto_seconds !== null && s.rto_seconds !== undefined) this.set({ source: s.name }, s.rto_seconds);
        for (const g of status().groups ?? []) if (g.last_drill?.rto_seconds != null) this.set({ group: g.name }, g.last_drill.rto_seconds);
      },
    });
    perSource('postgres_base_backup_duration_seconds', 'Duration of the newest backup of each postgres source (lifeboat_backup_duration_seconds, last value)', (s) => (s.kind === 'postgres' && s.last_backup ? s.last_backup.duration_ms / 1000 : null));
    perSource('file_backup_duration_seconds', 'Duration of the newest backup of each files source (lifeboat_backup_duration_seconds, last value)', (s) => (s.kind === 'files' && s.last_backup ? s.last_backup.duration_ms / 1000 : null));
    this.backupSuccess = new Counter({ name: 'backup_success_total', help: 'Alias of lifeboat_jobs_total{kind="backup",status="succeeded"}', labelNames: ['source'], registers: [r] });
    this.backupFailure = new Counter({ name: 'backup_failure_total', help: 'Alias of lifeboat_jobs_total{kind="backup",status="failed"}', labelNames: ['source'], registers: [r] });
    this.recoveryAttempts = new Counter({ name: 'dr_recovery_attempts_total', help: 'Alias of lifeboat_jobs_total{kind="restore"} (succeeded and failed): restore jobs, one per source of a recovery', labelNames: ['source', 'status'], registers: [r] });

    new Gauge({
      name: 'lifeboat_jobs_running',
      help: 'Jobs running now',
      registers: [r],
      collect() {
        this.set(status().running);
      },
    });
  }

  /** The text exposition, with the daemon's status read once for all gauges. */
  async render(): Promise<string> {
    this.scrape = this.readStatus();
    try {
      return await this.registry.metrics();
    } finally {
      this.scrape = undefined;
    }
  }

  jobFinished(job: JobRow, sizeBytes?: number): void {
    const source = job.source ?? job.repository ?? '';
    this.jobs.inc({ kind: job.kind, source, status: job.status });
    if (job.status === 'failed') this.failures.inc({ kind: job.kind, source });
    if (job.error_code === 'DEGRADED' && job.repository) this.leftOut.inc({ repository: job.repository });
    if (job.kind === 'backup' && job.status === 'succeeded') this.backupSuccess.inc({ source });
    if (job.kind === 'backup' && job.status === 'failed') this.backupFailure.inc({ source });
    if ((job.kind === 'restore' || job.kind === 'group-restore') && (job.status === 'succeeded' || job.status === 'failed')) this.recoveryAttempts.inc({ source, status: job.status });
    if (job.kind === 'group-backup' && job.status === 'failed') {
      this.groupFailures.inc({ group: source });
      if (job.error_code === 'HOLD_EXCEEDED') this.groupHoldExceeded.inc({ group: source });
    }
    if (job.kind === 'backup' && job.status === 'succeeded') {
      this.duration.observe({ source }, (job.duration_ms ?? 0) / 1000);
      if (sizeBytes !== undefined) this.size.observe({ source }, sizeBytes);
    }
  }

  /** Makes the failure series exist at 0 from the start (sources: backup, drill; repositories: check), so increase() and alerts see the first failure. */
  declare(sources: readonly string[], repositories: readonly string[], notifications: readonly string[], replicated: readonly string[] = [], continuous: readonly string[] = [], groups: readonly string[] = []): void {
    for (const source of sources) for (const kind of ['backup', 'drill']) this.failures.inc({ kind, source }, 0);
    for (const source of sources) {
      this.backupSuccess.inc({ source }, 0);
      this.backupFailure.inc({ source }, 0);
    }
    for (const group of groups) {
      this.failures.inc({ kind: 'group-backup', source: group }, 0);
      this.groupFailures.inc({ group }, 0);
      this.groupHoldExceeded.inc({ group }, 0);
    }
    for (const source of replicated) this.divergences.inc({ source }, 0);
    for (const source of continuous) this.gaps.inc({ source }, 0);
    for (const repository of repositories) {
      this.failures.inc({ kind: 'check', source: repository }, 0);
      this.leftOut.inc({ repository }, 0);
    }
    for (const n of notifications) this.notifyFailures.inc({ notification: n }, 0);
  }
}
