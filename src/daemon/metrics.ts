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

type Status = { sources: SourceStatus[]; repositories: RepositoryStatus[]; running: number };

export class Metrics {
  readonly registry = new Registry();
  private readonly jobs: Counter<'kind' | 'source' | 'status'>;
  private readonly failures: Counter<'kind' | 'source'>;
  private readonly duration: Histogram<'source'>;
  private readonly size: Histogram<'source'>;
  readonly notifyFailures: Counter<'notification'>;
  /** SQLite generations found not to reproduce their database (the replicator's `diverged` events). */
  readonly divergences: Counter<'source'>;
  /** Histories a replicator could not continue, so that a window may be missing (Redis `loss` events). */
  readonly gaps: Counter<'source'>;
  /** Children the API started to read a repository (snapshot listings, retention previews), after sharing and caching. */
  readonly repositoryReads: Counter<'repository'>;

  /** The daemon's status, read once per scrape by every gauge (see render). */
  private scrape: Status | undefined;

  constructor(private readonly readStatus: () => Status) {
    const status = () => this.scrape ?? this.readStatus();
    const r = this.registry;
    collectDefaultMetrics({ register: r, prefix: 'lifeboat_' });
    this.jobs = new Counter({ name: 'lifeboat_jobs_total', help: 'Jobs finished, by kind, source (or repository) and status', labelNames: ['kind', 'source', 'status'], registers: [r] });
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
    if (job.kind === 'backup' && job.status === 'succeeded') {
      this.duration.observe({ source }, (job.duration_ms ?? 0) / 1000);
      if (sizeBytes !== undefined) this.size.observe({ source }, sizeBytes);
    }
  }

  /** Makes the failure series exist at 0 from the start (sources: backup, drill; repositories: check), so increase() and alerts see the first failure. */
  declare(sources: readonly string[], repositories: readonly string[], notifications: readonly string[], replicated: readonly string[] = [], continuous: readonly string[] = []): void {
    for (const source of sources) for (const kind of ['backup', 'drill']) this.failures.inc({ kind, source }, 0);
    for (const source of replicated) this.divergences.inc({ source }, 0);
    for (const source of continuous) this.gaps.inc({ source }, 0);
    for (const repository of repositories) this.failures.inc({ kind: 'check', source: repository }, 0);
    for (const n of notifications) this.notifyFailures.inc({ notification: n }, 0);
  }
}
