/**
 * Recovery drills: restore the latest backup of a source into a scratch place, run
 * that source's own integrity checks, and measure what a real recovery would give:
 * RTO (restore until the data is usable) and RPO (how old the newest recoverable data
 * is at drill time). Every drill is recorded in the repository (`drills/…`), so
 * `drill --history` shows them and `forget` can keep the newest verified snapshot.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, promises as fs, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { sealMeta } from '../../codec/crypto.js';
import { listAll } from '../../storage/store.js';
import type { Repository } from '../../repo/repository.js';
import { isDamage, parseJson, type DamagedObject } from '../../repo/damage.js';
import { MAX_RECORD } from '../../repo/limits.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { walkTree } from '../browse/tree-walk.js';
import { pgVerify } from '../../sources/postgres/verify.js';
import { connect } from '../../sources/postgres/connect.js';
import { formatLsn, parseLsn } from '../../sources/postgres/wal.js';
import { restore } from '../restore/restorer.js';
import { sqliteRestore } from '../../sources/sqlite/restore.js';

export interface DrillSource {
  kind: 'files' | 'postgres' | 'sqlite';
  /** The source name (database sources, named file backups) or the first backed-up path (files). */
  name: string;
}

export interface DrillRecord {
  source: string;
  kind: DrillSource['kind'];
  ok: boolean;
  snapshot: string | null;
  /** Restore start until the data passed its checks; null when it never did. */
  rto_seconds: number | null;
  /**
   * RPO when the drill ran: 0 when the restore replayed past the source server's WAL
   * position read at the start ('source-position'); otherwise the age of the newest
   * transaction replayed ('last-transaction') or of the backup ('backup'), upper bounds.
   */
  rpo_seconds: number | null;
  rpo_basis?: 'source-position' | 'last-transaction' | 'backup';
  checks: Array<{ name: string; ok: boolean; detail: string }>;
  /** What failed, in one line. */
  error?: string;
  time: string;
  hostname: string;
}

export interface DrillOptions {
  /** `lifeboat pg archive-get …` for this repository (PostgreSQL drills replay WAL with it). */
  archiveGetCommand: (name: string) => readonly string[];
  record?: boolean;
  /** PostgreSQL: the source server, so the drill's RPO can be measured against its WAL position. */
  sourceDsn?: string;
}

/** Every source with a backup: database sources by name, file backups by their first path. */
export function sourcesOf(snapshots: readonly Snapshot[]): DrillSource[] {
  const seen = new Map<string, DrillSource>();
  for (const s of snapshots) {
    const kind = s.source.kind;
    if ((kind === 'sqlite' || kind === 'postgres') && s.source.name) seen.set(`${kind}:${s.source.name}`, { kind, name: s.source.name });
    else if (kind === 'files' && (s.source.name ?? s.paths[0])) {
      const name = (s.source.name ?? s.paths[0]) as string;
      seen.set(`files:${name}`, { kind: 'files', name });
    }
  }
  return [...seen.values()];
}

export function sourceLabel(s: DrillSource): string {
  return `${s.kind}:${s.name}`;
}

/** Drills one source; never throws for what it finds wrong (that is `ok: false`). */
export async function drill(repo: Repository, source: DrillSource, opts: DrillOptions): Promise<DrillRecord> {
  const record: DrillRecord = {
    source: sourceLabel(source),
    kind: source.kind,
    ok: false,
    snapshot: null,
    rto_seconds: null,
    rpo_seconds: null,
    checks: [],
    time: new Date().toISOString(),
    hostname: os.hostname(),
  };
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-drill-'));
  const started = Date.now();
  try {
    if (source.kind === 'files') await drillFiles(repo, source, scratch, record);
    else if (source.kind === 'sqlite') await drillSqlite(repo, source, scratch, record);
    else await drillPostgres(repo, source, opts, record);
    record.ok = record.checks.every((c) => c.ok);
    if (record.ok && record.rto_seconds === null) record.rto_seconds = (Date.now() - started) / 1000;
    const failed = record.checks.find((c) => !c.ok);
    if (failed) record.error = `${failed.name}: ${failed.detail}`;
  } catch (err) {
    record.ok = false;
    record.error = isLifeboatError(err) ? `${err.code}: ${err.message}` : String(err);
    record.checks.push({ name: 'restore', ok: false, detail: record.error });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (opts.record !== false && !repo.appendOnly) await saveDrill(repo, record);
  return record;
}

function latestOf(snapshots: readonly Snapshot[], match: (s: Snapshot) => boolean, label: string): Snapshot {
  const s = snapshots.filter(match).sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
  if (!s) throw new LifeboatError('NOT_FOUND', `no backup of ${label}`, { hint: '`lifeboat drill --json` without --source drills every source' });
  return s;
}

async function drillFiles(repo: Repository, source: DrillSource, scratch: string, record: DrillRecord): Promise<void> {
  const snap = latestOf(await repo.listSnapshots(), (s) => s.source.kind === 'files' && (s.source.name ?? s.paths[0]) === source.name, sourceLabel(source));
  await repo.loadIndex(); // after choosing: the index files of a snapshot are stored before it
  record.snapshot = snap.id;
  record.rpo_seconds = (Date.now() - Date.parse(snap.time)) / 1000;
  const started = Date.now();
  // A fresh directory inside the private scratch one: restore targets must not exist yet.
  const target = path.join(scratch, 'files');
  const r = await restore(repo, snap, { target });
  record.checks.push({ name: 'restore', ok: r.errors.length === 0, detail: r.errors.length ? `${r.errors.length} entries could not be restored` : 'every blob authenticated' });
  // What the snapshot says must be on disk: every file, at its size.
  let files = 0;
  let bad: string | undefined;
  for await (const e of walkTree(repo, snap.tree)) {
    if (e.node.type !== 'file') continue;
    files++;
    const st = await fs.stat(path.join(target, e.path)).catch(() => undefined);
    if (!st || st.size !== (e.node.size ?? 0)) bad ??= `${e.path}: ${st ? `${st.size} bytes, expected ${e.node.size}` : 'missing'}`;
  }
  record.checks.push({ name: 'files', ok: !bad, detail: bad ?? `${files} files at their recorded sizes` });
  record.rto_seconds = (Date.now() - started) / 1000;
}

async function drillSqlite(repo: Repository, source: DrillSource, scratch: string, record: DrillRecord): Promise<void> {
  const started = Date.now();
  const r = await sqliteRestore(repo, { name: source.name, output: path.join(scratch, 'drill.db') });
  record.snapshot = r.snapshot.id;
  record.rto_seconds = (Date.now() - started) / 1000;
  record.rpo_seconds = (Date.now() - r.restoredTo.getTime()) / 1000;
  record.checks.push({ name: 'integrity_check', ok: true, detail: `ok (${r.commits} transactions replayed)` });
  record.checks.push({ name: 'foreign_key_check', ok: true, detail: `${r.foreignKeyViolations} rows reported` });
}

async function drillPostgres(repo: Repository, source: DrillSource, opts: DrillOptions, record: DrillRecord): Promise<void> {
  const before = opts.sourceDsn ? await sourcePosition(opts.sourceDsn, record) : undefined;
  const r = await pgVerify(repo, { name: source.name, target: { kind: 'latest' }, archiveGetCommand: opts.archiveGetCommand(source.name) });
  record.snapshot = r.snapshot;
  record.rto_seconds = r.rto_seconds;
  record.checks.push(...r.checks);
  // The newest recovered data is the last transaction replayed; without one (no WAL
  // after the base backup), the base backup's end.
  const snap = (await repo.listSnapshots()).find((s) => s.id === r.snapshot);
  const newest = r.last_transaction ? Date.parse(r.last_transaction) : snap ? Date.parse(snap.time) : undefined;
  record.rpo_seconds = newest === undefined ? null : (Date.now() - newest) / 1000;
  record.rpo_basis = r.last_transaction ? 'last-transaction' : 'backup';
  // An idle source's newest transaction may be hours old with nothing missing: what
  // counts is whether the restore reached where the server was when the drill began.
  if (before && r.replayed_lsn && parseLsn(r.replayed_lsn) >= before) {
    record.rpo_seconds = 0;
    record.rpo_basis = 'source-position';
    record.checks.push({ name: 'rpo', ok: true, detail: `replayed to ${r.replayed_lsn}, past the source's ${formatLsn(before)} at the start: nothing committed before the drill is missing` });
  } else if (before && r.replayed_lsn) {
    record.checks.push({ name: 'rpo', ok: true, detail: `replayed to ${r.replayed_lsn}, short of the source's ${formatLsn(before)} at the start: RPO counted from the newest transaction replayed` });
  }
}

/** The source server's WAL position, read after the drill began; undefined (and a note) when it cannot be reached. */
async function sourcePosition(dsn: string, record: DrillRecord): Promise<bigint | undefined> {
  try {
    const client = await connect(dsn);
    try {
      const r = await client.query<{ lsn: string | null }>('select (case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end)::text as lsn');
      return r.rows[0]?.lsn ? parseLsn(r.rows[0].lsn) : undefined;
    } finally {
      await client.end().catch(() => {});
    }
  } catch (err) {
    record.checks.push({ name: 'rpo', ok: true, detail: `the source server could not be asked for its WAL position (${(err as Error).message}); RPO counted from the newest transaction replayed` });
    return undefined;
  }
}

// ---- history ---------------------------------------------------------------

async function saveDrill(repo: Repository, record: DrillRecord): Promise<void> {
  // The name is chosen first: a version 2 envelope authenticates it.
  const key = `drills/${record.time.replace(/[:.]/g, '')}-${randomBytes(10).toString('hex')}`;
  const sealed = sealMeta(repo.key, Buffer.from(JSON.stringify(record)), repo.compression, { kind: 'drill', name: key });
  await repo.store.put(key, sealed, { ifAbsent: true });
}

/** Every recorded drill, oldest first; a record that cannot be read is left out with a warning. */
export async function drillHistory(repo: Repository): Promise<DrillRecord[]> {
  const { records, damaged } = await scanDrills(repo);
  for (const d of damaged) repo.onWarning(`${d.key} skipped: ${d.error}`);
  return records;
}

/**
 * Every drill record that opens, and those that do not (damaged, foreign or junk).
 * Callers that let records protect data must treat the damaged ones as protecting
 * (src/engine/retention/forget.ts).
 */
export async function scanDrills(repo: Repository): Promise<{ records: DrillRecord[]; damaged: DamagedObject[] }> {
  const records: DrillRecord[] = [];
  const damaged: DamagedObject[] = [];
  for (const o of await listAll(repo.store, 'drills/')) {
    try {
      const r = parseJson<DrillRecord>((await repo.getMeta(o.key, o.key, { kind: 'drill', name: o.key }, MAX_RECORD)).payload, o.key);
      if (typeof r.time !== 'string' || typeof r.ok !== 'boolean') throw new LifeboatError('CORRUPT', `${o.key}: not a drill record`);
      records.push(r);
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue;
      if (!isDamage(err)) throw err;
      damaged.push({ key: o.key, error: (err as Error).message });
    }
  }
  return { records: records.sort((a, b) => Date.parse(a.time) - Date.parse(b.time)), damaged };
}

/**
 * The time in a drill record's name (`drills/<time>-<hex>`, the time without `:` and
 * `.`): no snapshot made after it can be the one that drill verified. NaN when the
 * name does not hold one.
 */
export function drillKeyTime(key: string): number {
  const m = /^drills\/(\d{4}-\d{2}-\d{2}T)(\d{2})(\d{2})(\d{2})(\d{3})Z-[0-9a-f]+$/.exec(key);
  return m ? Date.parse(`${m[1]}${m[2]}:${m[3]}:${m[4]}.${m[5]}Z`) : NaN;
}
