/**
 * The audit log in the catalog: every mutating call and every refused one. Refusals
 * are aggregated and the log is pruned to server.keep_audit, so that a flood of bad
 * tokens or forbidden calls costs a handful of rows, not one (and a write) per call.
 */
import type { Database as Db } from 'better-sqlite3';
import { DEFAULT_KEEP_AUDIT } from '../config/config.js';
import type { AuditRow } from './catalog.js';

/** Refusals of one (token or address, status) within this long of the row's first are that one row. */
const WINDOW_MS = 60_000;
/** Pending refusal counts are written at most this often (a flood must not become a write per call). */
const FLUSH_MS = 1000;
/** Every this many audit rows written, the audit log is pruned to server.keep_audit. */
const PRUNE_EVERY = 100;

export class AuditLog {
  /** Refusals counted since their row was last written, by aggregation key. */
  private readonly refusals = new Map<string, { id: number; opened: number; pending: number }>();
  private lastFlush = 0;
  private writes = 0;
  /** What prune keeps (server.keep_audit). */
  keep: { seconds?: number; rows: number } = { ...DEFAULT_KEEP_AUDIT };

  constructor(private readonly db: Db) {}

  /**
   * Records a call. Refused calls (outcome "refused") are aggregated: the first of a
   * (token or address, status) is a row at once, and the same refusals in the minute
   * after it add to its count, written at most once a second. A flood of bad tokens is
   * then a handful of rows, not one per call, and still says who, how often and when.
   * The minute starts at the row's first refusal, not on the clock's minute, so two
   * refusals a second apart are one row whatever the clock says.
   */
  record(e: Omit<AuditRow, 'id' | 'time' | 'count'>, now = Date.now()): void {
    if (e.outcome === 'refused') {
      const key = JSON.stringify([e.actor, e.actor === null ? e.remote : null, e.status_code]);
      const open = this.refusals.get(key);
      if (open && now - open.opened < WINDOW_MS && now >= open.opened) {
        open.pending++;
        // A clock set back makes the flush due, not late by however far it went back.
        if (now - this.lastFlush >= FLUSH_MS || now < this.lastFlush) this.flush(now);
        return;
      }
      if (open) this.flushOne(open);
      const id = this.insertAudit(e, now);
      this.refusals.set(key, { id, opened: now, pending: 0 });
      // Rows whose minute has passed are done: forget them so the map stays small.
      // (A row opened "in the future" by a clock since set back is done too.)
      for (const [k, v] of this.refusals) if (now - v.opened >= WINDOW_MS || now < v.opened) { this.flushOne(v); this.refusals.delete(k); }
      return;
    }
    this.insertAudit(e, now);
  }

  private insertAudit(e: Omit<AuditRow, 'id' | 'time' | 'count'>, now: number): number {
    const id = Number(
      this.db
        .prepare('INSERT INTO audit (time, actor, role, method, path, status_code, outcome, remote, count) VALUES (?,?,?,?,?,?,?,?,1)')
        .run(new Date(now).toISOString(), e.actor, e.role, e.method, e.path, e.status_code, e.outcome, e.remote).lastInsertRowid,
    );
    if (++this.writes % PRUNE_EVERY === 0) this.prune(now);
    return id;
  }

  private flushOne(r: { id: number; pending: number }): void {
    if (r.pending === 0) return;
    this.db.prepare('UPDATE audit SET count = count + ? WHERE id = ?').run(r.pending, r.id);
    r.pending = 0;
  }

  /** Writes the refusal counts held in memory. */
  flush(now = Date.now()): void {
    this.lastFlush = now;
    if ([...this.refusals.values()].every((r) => r.pending === 0)) return;
    this.db.transaction(() => {
      for (const r of this.refusals.values()) this.flushOne(r);
    })();
  }

  newest(limit = 200): AuditRow[] {
    this.flush();
    return this.db.prepare('SELECT * FROM audit ORDER BY id DESC LIMIT ?').all(limit) as AuditRow[];
  }

  rows(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n;
  }

  /** Drops audit rows beyond server.keep_audit (older than its duration, past its row count); returns how many. */
  prune(now = Date.now()): number {
    const k = this.keep;
    return this.db.transaction(() => {
      let n = 0;
      if (k.seconds !== undefined) n += this.db.prepare('DELETE FROM audit WHERE time < ?').run(new Date(now - k.seconds * 1000).toISOString()).changes;
      n += this.db.prepare('DELETE FROM audit WHERE id <= (SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?)').run(k.rows).changes;
      return n;
    })();
  }
}
