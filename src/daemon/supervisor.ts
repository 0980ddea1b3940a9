/**
 * Keeps continuous log archiving alive: `lifeboat pg stream` or `lifeboat sqlite
 * replicate` per source that asks for it, restarted with exponential backoff when it
 * exits, and read through its JSON events so the daemon knows when the archive last
 * held everything (archive lag, current RPO).
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { LifeboatConfig, SourceConfig } from '../config/config.js';
import type { Catalog } from './catalog.js';
import { childError, runLifeboat } from './jobs.js';

export interface ReplicationState {
  source: string;
  up: boolean;
  restarts: number;
  /** When the archive last held every commit (a shipped segment, or caught up with nothing new). */
  lastArchivedAt?: number;
  /** Shipping delay of the newest segment, seconds (SQLite). */
  lastShipLagSeconds?: number;
  lastError?: string;
}

const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;
/** A run this long resets the backoff. */
const HEALTHY_RUN_MS = 60_000;

/** The command that archives a source continuously; PostgreSQL's WAL is spooled under the state directory. */
export function replicationCommand(s: SourceConfig, stateDir: string): string[] {
  if (s.kind === 'sqlite') {
    return ['sqlite', 'replicate', s.path as string, '--name', s.name, ...(s.interval ? ['--interval', s.interval] : []), ...(s.snapshotInterval ? ['--snapshot-interval', s.snapshotInterval] : [])];
  }
  return ['pg', 'stream', '--name', s.name, '--dsn', s.dsn as string, '--spool', path.join(stateDir, 'spool', s.name), ...(s.binDir ? ['--bin-dir', s.binDir] : [])];
}

export class Supervisor {
  readonly states = new Map<string, ReplicationState>();
  private readonly children = new Map<string, ChildProcess>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopping = false;

  constructor(
    private readonly config: LifeboatConfig,
    private readonly catalog: Catalog,
    private readonly onChange: (state: ReplicationState) => void = () => {},
  ) {}

  start(): void {
    for (const s of this.config.sources.values()) {
      if (!s.continuous) continue;
      this.states.set(s.name, { source: s.name, up: false, restarts: 0 });
      this.run(s, MIN_BACKOFF_MS);
    }
  }

  private run(s: SourceConfig, backoff: number): void {
    if (this.stopping) return;
    const state = this.states.get(s.name) as ReplicationState;
    const job = this.catalog.createJob({ kind: 'replicate', source: s.name, repository: s.repository, trigger: 'daemon', status: 'running' });
    this.catalog.updateJob(job.id, { started_at: new Date().toISOString() });
    const started = Date.now();
    void runLifeboat(this.config, s.repository, replicationCommand(s, this.catalog.stateDir), {
      onSpawn: (c) => {
        this.children.set(s.name, c);
        state.up = true;
        this.onChange(state);
      },
      onLine: (stream, line) => {
        const event = stream === 'stdout' ? parseEvent(line) : undefined;
        if (event) {
          const kind = event.kind;
          if (kind === 'status') {
            // SQLite: everything committed up to archivedThrough is proven to be stored.
            if (typeof event.archivedThrough === 'string') state.lastArchivedAt = Date.parse(event.archivedThrough);
            if (event.healthy === false && typeof event.error === 'string') state.lastError = event.error;
            this.onChange(state);
            return;
          }
          if (kind === 'ship' || kind === 'segment' || kind === 'partial') {
            if (kind !== 'ship') state.lastArchivedAt = Date.parse(String(event.time)) || Date.now();
            if (typeof event.lagMs === 'number') state.lastShipLagSeconds = event.lagMs / 1000;
            this.onChange(state);
            return; // routine: not worth a log line each
          }
          if (kind === 'error') state.lastError = String(event.message);
        }
        this.catalog.appendLog(job.id, stream, line);
      },
    }).then(
      (r) => this.exited(s, job.id, started, backoff, r.exitCode, r.stderr),
      (err: Error) => this.exited(s, job.id, started, backoff, 1, [`lifeboat: ${err.message}`]),
    );
  }

  private exited(s: SourceConfig, jobId: string, started: number, backoff: number, exitCode: number, stderr: string[]): void {
    const state = this.states.get(s.name) as ReplicationState;
    this.children.delete(s.name);
    state.up = false;
    const error = childError(stderr)?.message;
    if (error) state.lastError = error;
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
