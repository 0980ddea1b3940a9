/**
 * Keeps continuous log archiving alive: `lifeboat pg stream` or `lifeboat sqlite
 * replicate` per source that asks for it, restarted with exponential backoff when it
 * exits, and judged by its `status` events (engine/archive-status.ts): a running child
 * is up only while its newest status is healthy and recent, and the archive's RPO is
 * counted from the moment that status proves.
 */
import type { ChildProcess } from 'node:child_process';
import type { LifeboatConfig, SourceConfig } from '../config/config.js';
import { applyStatus, parseStatus, type ArchiveState } from '../engine/archive-status.js';
import type { Catalog } from './catalog.js';
import { childEnv } from './jobs.js';
import { runLifeboat } from './job-child.js';
import { toArgv } from '../engine/invocation.js';
import { LifeboatError } from '../errors.js';
import { sourceKind } from '../sources/registry.js';
import { systemClock, type Clock } from './scheduler.js';

// The state of an archiver and how it is judged are shared with the kinds' own watchers (engine/archive-status.ts).
export { applyStatus, archiveUp, type ArchiveState } from '../engine/archive-status.js';

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;
/** A run this long resets the backoff. */
const HEALTHY_RUN_MS = 60_000;

/** The command that archives a source continuously, from its kind (spools live under the state directory). */
export function replicationCommand(s: SourceConfig, stateDir: string): string[] {
  const continuous = sourceKind(s.kind).continuous;
  if (!continuous) throw new LifeboatError('CONFIG_INVALID', `source "${s.name}" asks for continuous archiving, which a ${s.kind} source does not have`, { hint: 'remove stream/replicate from it in lifeboat.yaml' });
  return toArgv(continuous.invocation(s, stateDir));
}

export class Supervisor {
  readonly states = new Map<string, ArchiveState>();
  private readonly children = new Map<string, ChildProcess>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;

  constructor(
    private readonly config: LifeboatConfig,
    private readonly catalog: Catalog,
    private readonly onChange: (state: ArchiveState) => void = () => {},
    private readonly clock: Pick<Clock, 'now'> = systemClock,
    /**
     * Findings a replicator reports once: its stored history does not reproduce the
     * database (SQLite `diverged`), or could not be continued and may miss a window (Redis `loss`).
     */
    private readonly findings: { diverged(source: string, reason: string): void; gap(source: string, message: string): void } = { diverged: () => {}, gap: () => {} },
  ) {}

  start(): void {
    for (const s of this.config.sources.values()) {
      if (!s.continuous) continue;
      const method = sourceKind(s.kind).continuous?.method;
      if (!method) continue; // the config reader sets continuous only for kinds that have it
      this.states.set(s.name, { source: s.name, method, running: false, restarts: 0 });
      this.run(s, MIN_BACKOFF_MS);
    }
  }

  private run(s: SourceConfig, backoff: number): void {
    if (this.stopping) return;
    const state = this.states.get(s.name) as ArchiveState;
    const job = this.catalog.createJob({ kind: 'replicate', source: s.name, repository: s.repository, trigger: 'daemon', status: 'running' });
    this.catalog.updateJob(job.id, { started_at: new Date().toISOString() });
    const started = Date.now();
    let env: Record<string, string>;
    try {
      env = childEnv(this.config, s);
    } catch (err) {
      this.exited(s, job.id, started, backoff, 1, (err as Error).message);
      return;
    }
    void runLifeboat(this.config, s.repository, replicationCommand(s, this.catalog.stateDir), {
      env,
      onSpawn: (c) => {
        this.children.set(s.name, c);
        state.running = true;
        delete state.healthy;
        delete state.statusAt;
        this.onChange(state);
      },
      onLine: (stream, line) => {
        const event = stream === 'stdout' ? parseEvent(line) : undefined;
        const status = event && parseStatus(event);
        if (status) {
          // Health changes go to the job log; the routine beats do not.
          if (applyStatus(state, status, this.clock.now())) this.catalog.appendLog(job.id, stream, line);
          this.onChange(state);
          return;
        }
        if (event) {
          const kind = event.kind;
          if (kind === 'ship' || kind === 'segment' || kind === 'partial') {
            if (typeof event.lagMs === 'number') state.lastShipLagSeconds = event.lagMs / 1000;
            this.onChange(state);
            return; // routine: not worth a log line each
          }
          if (kind === 'diverged') this.findings.diverged(s.name, String(event.reason));
          if (kind === 'loss') this.findings.gap(s.name, String(event.message));
          if (kind === 'error') {
            state.lastError = String(event.message);
            state.lastErrorAt = this.clock.now();
          }
        }
        this.catalog.appendLog(job.id, stream, line);
      },
    })
      .then(
        (r) => this.exited(s, job.id, started, backoff, r.exitCode, r.error?.message),
        (err: Error) => this.exited(s, job.id, started, backoff, 1, err.message),
      )
      // exited() writes the catalog; if that fails the daemon must go on, not end on an unhandled rejection.
      .catch((err: unknown) => process.stderr.write(`lifeboat: the ${s.name} replication's end could not be recorded: ${err instanceof Error ? err.message : String(err)}\n`));
  }

  private exited(s: SourceConfig, jobId: string, started: number, backoff: number, exitCode: number, error: string | undefined): void {
    const state = this.states.get(s.name) as ArchiveState;
    this.children.delete(s.name);
    state.running = false;
    delete state.healthy;
    delete state.statusAt;
    if (!this.stopping) {
      state.lastError = error ?? `the archiver exited with ${exitCode}`;
      state.lastErrorAt = this.clock.now();
    }
    this.catalog.updateJob(jobId, {
      status: this.stopping || exitCode === 0 ? 'succeeded' : 'failed',
      finished_at: new Date().toISOString(),
      duration_ms: Date.now() - started,
      exit_code: exitCode,
      error: this.stopping ? null : (error ?? `exited with ${exitCode}`),
    });
    this.onChange(state);
    if (this.stopping) return;
    const wait = Date.now() - started >= HEALTHY_RUN_MS ? MIN_BACKOFF_MS : backoff;
    const next = Math.min(MAX_BACKOFF_MS, wait * 2);
    state.restarts++;
    this.catalog.appendLog(jobId, 'daemon', `exited (${exitCode}); restarting in ${wait} ms`);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      this.run(s, next);
    }, wait);
    this.timers.add(timer);
  }

  /** Stops every replicator; each ships what it holds before it exits. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    const exits = [...this.children.values()].map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          c.once('close', () => resolve());
          c.kill('SIGTERM');
          setTimeout(() => c.kill('SIGKILL'), 30_000).unref();
        }),
    );
    await Promise.all(exits);
  }
}

function parseEvent(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}
