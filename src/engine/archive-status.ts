/**
 * The one progress contract of every continuous archiver (`pg stream`, `sqlite
 * replicate`): a `status` event, printed by `--json` as one JSON line on stdout,
 *
 *   {"time": ISO, "kind": "status", "healthy": boolean, "archivedThrough": ISO|null,
 *    "error"?: string, "hint"?: string}
 *
 * `archivedThrough` is a moment T such that everything the source committed at or
 * before T is proven to be in the repository (null while nothing is proven), so the
 * RPO is now − archivedThrough. It is a proof, not a guess: an archiver that cannot
 * check (the database is down, the store refuses) reports `healthy: false` and leaves
 * it where it was, so the RPO grows honestly. It moves backwards only when an archiver
 * finds that what it claimed is not so (a SQLite generation that no longer reproduces
 * the database: what it shipped since the last verification is not trusted).
 * `verifiedAt` (SQLite) is the newest page-by-page comparison with the live database.
 *
 * An archiver emits a status at once when its health (or its error) changes and at
 * least every STATUS_EVERY_MS otherwise; the daemon counts one that falls silent for
 * STATUS_STALE_MS as not up (docs/daemon.md).
 *
 * `ArchiveState` is what the daemon keeps per source from those events, or from a
 * kind's own watcher of archiving it does not run (PostgreSQL's archive_command,
 * src/sources/postgres/archive-watch.ts); `applyStatus` and `archiveUp` judge it.
 */

export interface ArchiveStatus {
  time: string;
  kind: 'status';
  healthy: boolean;
  archivedThrough: string | null;
  verifiedAt?: string | null;
  error?: string;
  hint?: string;
}

/** At least this often while running: the daemon's liveness signal, and the RPO's resolution. */
export const STATUS_EVERY_MS = 5000;
/**
 * Silence this long means the archiver is stuck (a hung store, a blocked loop). Three
 * missed beats, with room for a loaded machine's pauses.
 */
export const STATUS_STALE_MS = 20_000;

export interface HealthReport {
  healthy: boolean;
  archivedThrough: Date | null;
  verifiedAt?: Date | null;
  error?: string | undefined;
  hint?: string | undefined;
}

/**
 * Turns an archiver's frequent self-assessments into status events: one at once when
 * health or the error changes, otherwise one per `everyMs`. `archivedThrough` never
 * moves backwards, whatever a caller reports.
 */
export class StatusReporter {
  private last: { healthy: boolean; error: string | undefined; at: number } | undefined;
  private through: number | null = null;

  constructor(
    private readonly emit: (s: ArchiveStatus) => void,
    private readonly everyMs = STATUS_EVERY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** The newest proven moment so far (ms since the epoch), or null. */
  get archivedThrough(): number | null {
    return this.through;
  }

  /** With `force`, a status goes out now (progress worth telling at once). */
  report(r: HealthReport, force = false): void {
    const t = r.archivedThrough?.getTime();
    if (t !== undefined && (this.through === null || t > this.through)) this.through = t;
    const now = this.now();
    const error = r.healthy ? undefined : r.error;
    const changed = !this.last || this.last.healthy !== r.healthy || this.last.error !== error;
    if (!changed && !force && now - (this.last?.at ?? 0) < this.everyMs) return;
    this.last = { healthy: r.healthy, error, at: now };
    this.emit({
      time: new Date(now).toISOString(),
      kind: 'status',
      healthy: r.healthy,
      archivedThrough: this.through === null ? null : new Date(this.through).toISOString(),
      ...(r.verifiedAt !== undefined ? { verifiedAt: r.verifiedAt ? r.verifiedAt.toISOString() : null } : {}),
      ...(error ? { error } : {}),
      ...(!r.healthy && r.hint ? { hint: r.hint } : {}),
    });
  }

  /** What was claimed after `to` is not proven after all (see the contract above). */
  retract(to: Date | null): void {
    const t = to?.getTime() ?? null;
    if (this.through !== null && (t === null || t < this.through)) this.through = t;
  }
}

/** A status event read back from a line of output; undefined for anything else. */
export function parseStatus(event: Record<string, unknown>): ArchiveStatus | undefined {
  if (event.kind !== 'status' || typeof event.healthy !== 'boolean' || typeof event.time !== 'string') return undefined;
  const through = event.archivedThrough;
  if (through !== null && (typeof through !== 'string' || Number.isNaN(Date.parse(through)))) return undefined;
  return {
    time: event.time,
    kind: 'status',
    healthy: event.healthy,
    archivedThrough: through,
    ...(typeof event.error === 'string' ? { error: event.error } : {}),
    ...(typeof event.hint === 'string' ? { hint: event.hint } : {}),
  };
}

/** What the daemon knows of one source's log archiving (continuous archivers and archive_command alike). */
export interface ArchiveState {
  source: string;
  method: 'stream' | 'replicate' | 'archive_command';
  /** The archiver process runs (archive_command: the server is being watched). */
  running: boolean;
  restarts: number;
  /** The newest status: healthy or not, and when it arrived (daemon clock, ms). */
  healthy?: boolean;
  statusAt?: number;
  /** Everything committed at or before this moment is proven to be in the repository (ms). */
  archivedThrough?: number;
  lastError?: string;
  lastErrorAt?: number;
  hint?: string;
  /** Shipping delay of the newest segment, seconds (SQLite). */
  lastShipLagSeconds?: number;
  /** archive_command sources: the server's pg_stat_archiver. */
  archiver?: { failedCount: number; failing: boolean; lastFailedWal: string | null; lastFailedAt: string | null; lastArchivedWal: string | null; lastArchivedAt: string | null };
}

/** Is archiving up now, and if not, why (the error an operator should read). */
export function archiveUp(s: ArchiveState, now: number): { up: boolean; error: string | null } {
  if (!s.running) return { up: false, error: s.lastError ?? 'the archiver is not running' };
  if (s.statusAt === undefined) return { up: false, error: null }; // starting: nothing proven or disproven yet
  const silent = now - s.statusAt;
  if (silent > STATUS_STALE_MS) return { up: false, error: `no status from the archiver for ${Math.round(silent / 1000)} s: it is stuck` };
  return s.healthy ? { up: true, error: null } : { up: false, error: s.lastError ?? 'unhealthy' };
}

/** Records a status event; returns true when health changed (worth a log line). */
export function applyStatus(state: ArchiveState, st: Pick<ArchiveStatus, 'healthy' | 'archivedThrough' | 'error' | 'hint'>, now: number): boolean {
  const changed = state.healthy !== st.healthy;
  state.healthy = st.healthy;
  state.statusAt = now;
  const through = st.archivedThrough === null ? undefined : Date.parse(st.archivedThrough);
  if (through !== undefined && through > (state.archivedThrough ?? -Infinity)) state.archivedThrough = through;
  if (!st.healthy) {
    state.lastError = st.error ?? 'unhealthy (no reason given)';
    state.lastErrorAt = now;
    if (st.hint) state.hint = st.hint;
    else delete state.hint;
  }
  return changed;
}
