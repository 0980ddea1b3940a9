/**
 * The daemon's local catalog: a SQLite file in the state directory holding jobs and
 * their logs, the audit log, API tokens (hashed), scheduler state, and what the
 * repositories hold (backups, drills) so the API and metrics answer without opening
 * a repository. Backups and drills can be rebuilt from the repositories; jobs, the
 * audit log and tokens are the daemon's own and are not.
 */
import { chmodSync, closeSync, mkdirSync, openSync, statSync, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Database as Db } from 'better-sqlite3';
import { AuditLog } from './audit-log.js';
import { redact, redactDeep } from '../util/redact.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'skipped';
/** `group-backup`, `group-restore`, `group-drill`: a consistency group's capture, restore and drill (the row's `source` holds the group's name). */
export type JobKind = 'backup' | 'restore' | 'drill' | 'check' | 'forget' | 'prune' | 'rotate' | 'replicate' | 'rebuild' | 'group-backup' | 'group-restore' | 'group-drill';

export interface JobRow {
  id: string;
  kind: JobKind;
  source: string | null;
  repository: string | null;
  status: JobStatus;
  trigger: string;
  actor: string | null;
  params: Record<string, unknown>;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  duration_ms: number | null;
  progress: Record<string, unknown> | null;
  result: unknown;
  error: string | null;
  error_code: string | null;
  /** What an operator can do about the error, as the job reported it. */
  error_hint: string | null;
  exit_code: number | null;
}

export interface BackupRow {
  snapshot_id: string;
  source: string;
  kind: string;
  repository: string;
  time: string;
  size_bytes: number;
  added_bytes: number;
  duration_ms: number;
}

export interface DrillRow {
  source: string;
  repository: string;
  time: string;
  ok: boolean;
  rto_seconds: number | null;
  rpo_seconds: number | null;
  snapshot: string | null;
  error: string | null;
}

/** A consistency group's point (docs/groups.md) as the catalog keeps it: what `group backup --json` returned. */
export interface GroupPointRow {
  group: string;
  id: string;
  repository: string;
  time: string;
  hold_ms: number;
  max_hold_ms: number;
  frozen: boolean;
  /** The point's members: name, kind and position (JSON as stored in the repository). */
  members: Array<{ name: string; kind: string; position: Record<string, unknown> }>;
}

export interface AuditRow {
  id: number;
  time: string;
  actor: string | null;
  role: string | null;
  method: string;
  path: string;
  status_code: number;
  outcome: string;
  remote: string | null;
  /** Refusals are aggregated: how many calls this row stands for (1 for everything else). */
  count: number;
}

export interface TokenRow {
  id: string;
  name: string;
  role: string;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
  expires_at: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, source TEXT, repository TEXT, status TEXT NOT NULL,
  trigger TEXT NOT NULL, actor TEXT, params TEXT NOT NULL, created_at TEXT NOT NULL,
  started_at TEXT, finished_at TEXT, duration_ms INTEGER, progress TEXT, result TEXT,
  error TEXT, error_code TEXT, exit_code INTEGER, error_hint TEXT);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS job_log (job_id TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL,
  stream TEXT NOT NULL, line TEXT NOT NULL, PRIMARY KEY (job_id, seq));
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, actor TEXT,
  role TEXT, method TEXT NOT NULL, path TEXT NOT NULL, status_code INTEGER NOT NULL, outcome TEXT NOT NULL, remote TEXT);
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_used_at TEXT, revoked_at TEXT);
CREATE TABLE IF NOT EXISTS schedule_state (name TEXT PRIMARY KEY, last_fire TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backups (snapshot_id TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,
  repository TEXT NOT NULL, time TEXT NOT NULL, size_bytes INTEGER NOT NULL, added_bytes INTEGER NOT NULL, duration_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS backups_source ON backups(source, time);
CREATE TABLE IF NOT EXISTS drills (source TEXT NOT NULL, repository TEXT NOT NULL, time TEXT NOT NULL, ok INTEGER NOT NULL,
  rto_seconds REAL, rpo_seconds REAL, snapshot TEXT, error TEXT, PRIMARY KEY (source, time));
CREATE TABLE IF NOT EXISTS group_points ("group" TEXT NOT NULL, id TEXT NOT NULL, repository TEXT NOT NULL, time TEXT NOT NULL,
  hold_ms REAL NOT NULL, max_hold_ms REAL NOT NULL, frozen INTEGER NOT NULL, members TEXT NOT NULL, PRIMARY KEY ("group", id));
CREATE INDEX IF NOT EXISTS group_points_time ON group_points("group", time);
`;

const JSON_COLUMNS = ['params', 'progress', 'result'] as const;

function decodeJob(row: Record<string, unknown>): JobRow {
  const out = { ...row } as Record<string, unknown>;
  for (const c of JSON_COLUMNS) out[c] = row[c] === null || row[c] === undefined ? null : JSON.parse(row[c] as string);
  return out as unknown as JobRow;
}

/** Columns added after the first release, added to older catalogs when opened. */
const ADDED_COLUMNS: Array<[table: string, column: string, decl: string]> = [
  ['audit', 'count', 'INTEGER NOT NULL DEFAULT 1'],
  ['tokens', 'expires_at', 'TEXT'],
  ['jobs', 'error_hint', 'TEXT'],
];

const TOKEN_COLUMNS = 'id, name, role, created_at, last_used_at, revoked_at, expires_at';

/**
 * The catalog holds job logs, the audit trail and token hashes: private to the
 * daemon's user. The directory is 0700 and the file 0600 before SQLite opens it;
 * SQLite gives its -wal and -shm files the database file's mode.
 */
function privateFile(stateDir: string, file: string): string {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const dir = statSync(stateDir);
  if (dir.uid === process.getuid?.() && (dir.mode & 0o077) !== 0) chmodSync(stateDir, 0o700);
  const full = path.join(stateDir, file);
  closeSync(openSync(full, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600));
  for (const f of [full, `${full}-wal`, `${full}-shm`]) {
    try {
      if ((statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
    } catch {
      // -wal and -shm exist only while a connection has the database open
    }
  }
  return full;
}

export class Catalog {
  readonly db: Db;
  readonly auditTrail: AuditLog;
  /**
   * Jobs that ended while the database refused their end (a full disk): what their end
   * changes, until the write goes through. Every read of jobs sees it, so the API, the
   * dashboard and `lifeboat_jobs_running` do not show a finished job as running.
   */
  private readonly ended = new Map<string, Partial<JobRow>>();

  constructor(readonly stateDir: string) {
    this.db = new Database(privateFile(stateDir, 'catalog.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    for (const [table, column, decl] of ADDED_COLUMNS) {
      const has = (this.db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).some((c) => c.name === column);
      if (!has) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${decl}`);
    }
    this.auditTrail = new AuditLog(this.db);
  }

  /** What prune keeps of the audit log (server.keep_audit). */
  get keepAudit(): { seconds?: number; rows: number } {
    return this.auditTrail.keep;
  }

  set keepAudit(k: { seconds?: number; rows: number }) {
    this.auditTrail.keep = k;
  }

  close(): void {
    this.flushRefusals();
    this.db.close();
  }

  // --- jobs -----------------------------------------------------------------

  createJob(j: { kind: JobKind; source?: string | undefined; repository?: string | undefined; trigger: string; actor?: string | undefined; params?: Record<string, unknown>; status?: JobStatus }): JobRow {
    const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    this.db
      .prepare('INSERT INTO jobs (id, kind, source, repository, status, trigger, actor, params, created_at) VALUES (?,?,?,?,?,?,?,?,?)')
      .run(id, j.kind, j.source ?? null, j.repository ?? null, j.status ?? 'queued', j.trigger, j.actor ?? null, JSON.stringify(j.params ?? {}), new Date().toISOString());
    return this.job(id) as JobRow;
  }

  updateJob(id: string, fields: Partial<Omit<JobRow, 'id'>>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    const values = keys.map((k) => {
      // Job records are readable by viewer tokens: no connection-string password gets in.
      const v = redactDeep((fields as Record<string, unknown>)[k]);
      return (JSON_COLUMNS as readonly string[]).includes(k) ? (v === null ? null : JSON.stringify(v)) : v;
    });
    this.db.prepare(`UPDATE jobs SET ${keys.map((k) => `${k} = ?`).join(', ')} WHERE id = ?`).run(...values, id);
  }

  /** A job's end the database refused: reads show its row with `patch` over it until `endWritten(id)`. */
  endNotWritten(id: string, patch: Partial<JobRow>): void {
    // Redacted as updateJob would have stored it: viewer tokens read these rows.
    this.ended.set(id, redactDeep(patch) as Partial<JobRow>);
  }

  endWritten(id: string): void {
    this.ended.delete(id);
  }

  /** A row as it is once its unwritten end (if any) is laid over it. */
  private withEnd(row: JobRow): JobRow {
    const patch = this.ended.get(row.id);
    return patch ? { ...row, ...patch } : row;
  }

  job(id: string): JobRow | undefined {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return row ? this.withEnd(decodeJob(row)) : undefined;
  }

  jobs(filter: { source?: string; kind?: string; status?: string; limit?: number } = {}): JobRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const k of ['source', 'kind', 'status'] as const) {
      if (filter[k] !== undefined) {
        where.push(`${k} = ?`);
        args.push(filter[k]);
      }
    }
    const limit = filter.limit ?? 100;
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`;
    // With ends not yet written, as many more rows: each may be one the filter drops.
    const rows = (this.db.prepare(sql).all(...args, limit + this.ended.size) as Array<Record<string, unknown>>).map(decodeJob);
    if (this.ended.size === 0) return rows;
    // The rows as their ends make them, matched against the filter as they are now; a
    // job the database has under another status joins the list it now belongs to.
    const matches = (r: JobRow) => (['source', 'kind', 'status'] as const).every((k) => filter[k] === undefined || r[k] === filter[k]);
    const listed = new Set(rows.map((r) => r.id));
    const others = [...this.ended.keys()].filter((id) => !listed.has(id)).flatMap((id) => this.job(id) ?? []);
    return [...rows.map((r) => this.withEnd(r)), ...others]
      .filter(matches)
      .sort((a, b) => b.created_at.localeCompare(a.created_at) || b.id.localeCompare(a.id))
      .slice(0, limit);
  }

  /** Marks the jobs a stopped daemon left queued or running (they died with it) as failed; those jobs, as they now are. */
  failInterrupted(): JobRow[] {
    const rows = this.db
      .prepare("UPDATE jobs SET status = 'failed', error = 'the daemon stopped while the job ran', error_code = 'INTERRUPTED', finished_at = ? WHERE status IN ('queued', 'running') RETURNING *")
      .all(new Date().toISOString()) as Array<Record<string, unknown>>;
    return rows.map((row) => this.withEnd(decodeJob(row)));
  }

  /** Drops finished jobs (and their logs) that finished before `before`; returns how many. */
  pruneJobs(before: Date): number {
    return this.db.transaction(() => {
      const cutoff = before.toISOString();
      this.db.prepare("DELETE FROM job_log WHERE job_id IN (SELECT id FROM jobs WHERE finished_at < ? AND status NOT IN ('queued', 'running'))").run(cutoff);
      return this.db.prepare("DELETE FROM jobs WHERE finished_at < ? AND status NOT IN ('queued', 'running')").run(cutoff).changes;
    })();
  }

  appendLog(jobId: string, stream: 'stdout' | 'stderr' | 'daemon', line: string): void {
    this.db
      .prepare('INSERT INTO job_log (job_id, seq, time, stream, line) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_log WHERE job_id = ?), ?, ?, ?)')
      .run(jobId, jobId, new Date().toISOString(), stream, redact(line).slice(0, 8192));
  }

  log(jobId: string, after = 0): Array<{ seq: number; time: string; stream: string; line: string }> {
    return this.db.prepare('SELECT seq, time, stream, line FROM job_log WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT 5000').all(jobId, after) as Array<{ seq: number; time: string; stream: string; line: string }>;
  }

  // --- audit ----------------------------------------------------------------

  /** Records a call; refusals are aggregated (see audit-log.ts). */
  audit(e: Omit<AuditRow, 'id' | 'time' | 'count'>, now = Date.now()): void {
    this.auditTrail.record(e, now);
  }

  auditLog(limit = 200): AuditRow[] {
    return this.auditTrail.newest(limit);
  }

  auditRows(): number {
    return this.auditTrail.rows();
  }

  /** Drops audit rows beyond server.keep_audit; returns how many. */
  pruneAudit(now = Date.now()): number {
    return this.auditTrail.prune(now);
  }

  flushRefusals(now = Date.now()): void {
    this.auditTrail.flush(now);
  }

  // --- tokens ---------------------------------------------------------------

  /**
   * Adds a token; false (nothing added) when an active token already has the name.
   * Checked and inserted in one immediate transaction: `token create` and the daemon
   * may write the same catalog from two processes.
   */
  addToken(t: { id: string; name: string; role: string; hash: string; expiresAt?: string | undefined }): boolean {
    return this.db
      .transaction(() => {
        if (this.activeTokens(t.name).length > 0) return false;
        this.db.prepare('INSERT INTO tokens (id, name, role, hash, created_at, expires_at) VALUES (?,?,?,?,?,?)').run(t.id, t.name, t.role, t.hash, new Date().toISOString(), t.expiresAt ?? null);
        return true;
      })
      .immediate();
  }

  /** Tokens of that name neither revoked nor expired. */
  private activeTokens(name: string): TokenRow[] {
    return this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`).all(name, new Date().toISOString()) as TokenRow[];
  }

  /** The unrevoked token with that hash (expired ones too: the caller says why it is refused). */
  tokenByHash(hash: string): TokenRow | undefined {
    return this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ? AND revoked_at IS NULL`).get(hash) as TokenRow | undefined;
  }

  touchToken(id: string): void {
    this.db.prepare('UPDATE tokens SET last_used_at = ? WHERE id = ?').run(new Date().toISOString(), id);
  }

  /** Every token with its state: active, expired or revoked. */
  tokens(now = Date.now()): Array<TokenRow & { state: 'active' | 'expired' | 'revoked' }> {
    const rows = this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at`).all() as TokenRow[];
    return rows.map((t) => ({ ...t, state: t.revoked_at ? 'revoked' : t.expires_at && Date.parse(t.expires_at) <= now ? 'expired' : 'active' }));
  }

  /**
   * Revokes exactly one token: the one with that id, else the one unrevoked token of
   * that name. Returns the revoked token, undefined when none matches; several
   * unrevoked tokens of one name (catalogs from before names were unique) are refused
   * by the caller with their ids.
   */
  revokeToken(idOrName: string): { revoked?: TokenRow; ambiguous?: TokenRow[] } {
    return this.db
      .transaction(() => {
        const byId = this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ? AND revoked_at IS NULL`).all(idOrName) as TokenRow[];
        const byName = this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = ? AND revoked_at IS NULL`).all(idOrName) as TokenRow[];
        // A name is unique among active tokens; an expired one of the same name goes only when it is the only one.
        const active = byName.filter((t) => !t.expires_at || Date.parse(t.expires_at) > Date.now());
        const matches = byId.length > 0 ? byId : active.length > 0 ? active : byName;
        if (matches.length > 1) return { ambiguous: matches };
        const t = matches[0];
        if (!t) return {};
        this.db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ?').run(new Date().toISOString(), t.id);
        return { revoked: t };
      })
      .immediate();
  }

  // --- scheduler state ------------------------------------------------------

  lastFire(schedule: string): Date | undefined {
    const row = this.db.prepare('SELECT last_fire FROM schedule_state WHERE name = ?').get(schedule) as { last_fire: string } | undefined;
    return row ? new Date(row.last_fire) : undefined;
  }

  setLastFire(schedule: string, at: Date): void {
    this.db.prepare('INSERT INTO schedule_state (name, last_fire) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET last_fire = excluded.last_fire').run(schedule, at.toISOString());
  }

  // --- what the repositories hold -------------------------------------------

  recordBackup(b: BackupRow): void {
    this.db
      .prepare('INSERT OR REPLACE INTO backups (snapshot_id, source, kind, repository, time, size_bytes, added_bytes, duration_ms) VALUES (?,?,?,?,?,?,?,?)')
      .run(b.snapshot_id, b.source, b.kind, b.repository, b.time, b.size_bytes, b.added_bytes, b.duration_ms);
  }

  backups(source?: string, limit = 500): BackupRow[] {
    return (source === undefined
      ? this.db.prepare('SELECT * FROM backups ORDER BY time DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM backups WHERE source = ? ORDER BY time DESC LIMIT ?').all(source, limit)) as BackupRow[];
  }

  recordDrill(d: DrillRow): void {
    this.db
      .prepare('INSERT OR REPLACE INTO drills (source, repository, time, ok, rto_seconds, rpo_seconds, snapshot, error) VALUES (?,?,?,?,?,?,?,?)')
      .run(d.source, d.repository, d.time, d.ok ? 1 : 0, d.rto_seconds, d.rpo_seconds, d.snapshot, d.error);
  }

  drills(source?: string, limit = 200): DrillRow[] {
    const rows = (source === undefined
      ? this.db.prepare('SELECT * FROM drills ORDER BY time DESC LIMIT ?').all(limit)
      : this.db.prepare('SELECT * FROM drills WHERE source = ? ORDER BY time DESC LIMIT ?').all(source, limit)) as Array<Omit<DrillRow, 'ok'> & { ok: number }>;
    return rows.map((r) => ({ ...r, ok: r.ok === 1 }));
  }

  recordGroupPoint(p: GroupPointRow): void {
    this.db
      .prepare('INSERT OR REPLACE INTO group_points ("group", id, repository, time, hold_ms, max_hold_ms, frozen, members) VALUES (?,?,?,?,?,?,?,?)')
      .run(p.group, p.id, p.repository, p.time, p.hold_ms, p.max_hold_ms, p.frozen ? 1 : 0, JSON.stringify(p.members));
  }

  /** A group's points, newest first. */
  groupPoints(group: string, limit = 500): GroupPointRow[] {
    const rows = this.db.prepare('SELECT * FROM group_points WHERE "group" = ? ORDER BY time DESC, id DESC LIMIT ?').all(group, limit) as Array<Record<string, unknown>>;
    return rows.map((r) => ({ ...(r as unknown as GroupPointRow), frozen: r.frozen === 1, members: JSON.parse(r.members as string) as GroupPointRow['members'] }));
  }

  /** Replaces what is known of one group's points (after forget or prune dropped some). */
  replaceGroupPoints(group: string, points: GroupPointRow[]): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM group_points WHERE "group" = ?').run(group);
      for (const p of points) this.recordGroupPoint(p);
    })();
  }

  groupPointCount(group: string): number {
    return (this.db.prepare('SELECT count(*) AS n FROM group_points WHERE "group" = ?').get(group) as { n: number }).n;
  }

  /** Replaces what is known of one repository's backups, drills and (when given) group points (rebuild). */
  replaceRepositoryContents(repository: string, backups: BackupRow[], drills: DrillRow[], points?: GroupPointRow[]): void {
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM backups WHERE repository = ?').run(repository);
      this.db.prepare('DELETE FROM drills WHERE repository = ?').run(repository);
      if (points) this.db.prepare('DELETE FROM group_points WHERE repository = ?').run(repository);
      for (const b of backups) this.recordBackup(b);
      for (const d of drills) this.recordDrill(d);
      for (const p of points ?? []) this.recordGroupPoint(p);
    })();
  }
}
