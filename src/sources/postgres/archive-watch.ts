/**
 * Watches PostgreSQL sources that archive through archive_command (no streamer of
 * ours runs for them): every few seconds the server is asked how its archiver is doing
 * (sources/postgres/archiver-status.ts), and the answer becomes the same state a
 * streamer's status events give: healthy or not with the reason, and the newest
 * moment whose WAL position is archived. A source whose server has archive_mode off
 * is not watched; one that was seen archiving and then cannot be reached is down.
 */
import * as path from 'node:path';
import type pg from 'pg';
import type { LifeboatConfig, SourceConfig } from '../../config/config.js';
import { STATUS_EVERY_MS } from '../../engine/archive-status.js';
import { readArchiver } from './archiver-status.js';
import { LsnWitness } from './lsn-proof.js';
import { readPasswordFile } from './password.js';
import { applyStatus, type ArchiveState } from '../../engine/archive-status.js';

const TIMEOUT_MS = 5000;

interface Proof {
  /** Positions tagged with pg_current_snapshot()'s xmax read with them. */
  witness: LsnWitness;
}
const HINT = 'the server logs the output of archive_command; `lifeboat pg archive-push` exit codes are in docs/exit-codes.md';

export class ArchiveWatch {
  readonly states = new Map<string, ArchiveState>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly clients = new Map<string, pg.Client>();
  private readonly polls = new Set<Promise<void>>();
  private stopping = false;

  constructor(
    private readonly config: LifeboatConfig,
    private readonly onChange: (state: ArchiveState) => void = () => {},
    /** The daemon's clock (tests move it). */
    private readonly clock: { now(): number } = { now: () => Date.now() },
  ) {}

  /** Sources it watches: PostgreSQL sources with a dsn and without `stream: true` (their server's archive_command archives). */
  static watched(config: LifeboatConfig): SourceConfig[] {
    return [...config.sources.values()].filter((s) => s.kind === 'postgres' && !s.continuous && s.dsn !== undefined && s.dsn !== '');
  }

  start(): void {
    // As often as a streamer reports, and at least once per check_interval.
    const every = Math.min(STATUS_EVERY_MS, this.config.server.checkIntervalSeconds * 1000);
    for (const s of ArchiveWatch.watched(this.config)) {
      const proof: Proof = { witness: new LsnWitness() };
      const tick = async () => {
        const p = this.poll(s, proof);
        this.polls.add(p);
        await p.finally(() => this.polls.delete(p));
        if (this.stopping) return;
        const t = setTimeout(() => (this.timers.delete(t), void tick()), every);
        this.timers.add(t);
      };
      void tick();
    }
  }

  private async poll(s: SourceConfig, proof: Proof): Promise<void> {
    const { witness } = proof;
    const t = Date.now();
    const known = this.states.get(s.name);
    try {
      const r = await readArchiver(await this.client(s));
      if (r.archiveMode === 'off') {
        if (known) this.report(known, { healthy: false, archivedThrough: null, error: 'archive_mode is off: the server archives no WAL', hint: 'set archive_mode = on and archive_command (docs/postgres.md), then restart the server' });
        return;
      }
      const state = known ?? this.create(s.name);
      state.archiver = {
        failedCount: r.failedCount,
        failing: r.failing,
        lastFailedWal: r.lastFailedWal,
        lastFailedAt: r.lastFailedAt?.toISOString() ?? null,
        lastArchivedWal: r.lastArchivedWal,
        lastArchivedAt: r.lastArchivedAt?.toISOString() ?? null,
      };
      witness.observe(t, r.current, r.completedXmax ?? undefined);
      let proven = r.archivedEnd === null ? witness.through : witness.provenThrough(r.archivedEnd);
      // No transaction has ended since the newest moment proven by position: what the
      // archive lacks is the server's own background WAL (checkpoints, snapshots of
      // running transactions), which archive_timeout does not switch out. Nothing
      // committed, so this moment is proven too.
      if (r.completedXmax !== null && witness.provenTag === r.completedXmax) proven = t;
      const archivedThrough = proven === null ? null : new Date(proven).toISOString();
      if (r.failing) {
        const error = `archive_command failed for ${r.lastFailedWal ?? '?'} at ${r.lastFailedAt?.toISOString() ?? '?'} (${r.failedCount} failures since the statistics were reset)`;
        this.report(state, { healthy: false, archivedThrough, error, hint: HINT });
      } else {
        this.report(state, { healthy: true, archivedThrough });
      }
    } catch (err) {
      await this.drop(s.name);
      if (known) this.report(known, { healthy: false, archivedThrough: null, error: `cannot query PostgreSQL: ${(err as Error).message}`, hint: 'is the server running and reachable at the source\'s dsn?' });
    }
  }

  private create(source: string): ArchiveState {
    const state: ArchiveState = { source, method: 'archive_command', running: true, restarts: 0 };
    this.states.set(source, state);
    return state;
  }

  private report(state: ArchiveState, st: Parameters<typeof applyStatus>[1]): void {
    applyStatus(state, st, this.clock.now());
    this.onChange(state);
  }

  private async client(s: SourceConfig): Promise<pg.Client> {
    const open = this.clients.get(s.name);
    if (open) return open;
    const pw = s.passwordFile === undefined ? undefined : readPasswordFile(path.resolve(path.dirname(this.config.file), s.passwordFile));
    // Loaded here: registering the postgres kind must not load the client.
    const { pgClient } = await import('./connect.js');
    const c = await pgClient(s.dsn as string, pw, { connectionTimeoutMillis: TIMEOUT_MS, query_timeout: TIMEOUT_MS, application_name: 'lifeboat-archive-watch' });
    c.on('error', () => {}); // reported through the next failing query
    try {
      await c.connect();
    } catch (err) {
      await c.end().catch(() => {});
      throw err;
    }
    this.clients.set(s.name, c);
    return c;
  }

  private async drop(source: string): Promise<void> {
    const c = this.clients.get(source);
    this.clients.delete(source);
    await c?.end().catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all([...this.polls]);
    await Promise.all([...this.clients.keys()].map((k) => this.drop(k)));
  }
}
