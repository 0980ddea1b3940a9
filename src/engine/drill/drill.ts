/**
 * Recovery drills: restore the latest backup of a source into a scratch place, run
 * that source's own integrity checks, and measure what a real recovery would give:
 * RTO (restore until the data is usable) and RPO (how old the newest recoverable data
 * is at drill time). Every drill is recorded in the repository (`drills/…`), so
 * `drill --history` shows them and `forget` can keep the newest verified snapshot.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { sealMeta } from '../../codec/crypto.js';
import { listAll } from '../../storage/store.js';
import type { Repository } from '../../repo/repository.js';
import { isDamage, parseJson, type DamagedObject } from '../../repo/damage.js';
import { MAX_RECORD } from '../../repo/limits.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { findSourceKind, sourceKind } from '../../sources/registry.js';

export interface DrillSource {
  /** A registered kind of source (src/sources/registry.ts). */
  kind: string;
  /** The name the kind drills it under (its `drill.nameOf`): a source name, or a backed-up path. */
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
  /** A declared graph's numbers (docs/graph.md), beside the `checks` that judge them. */
  graph?: DrillGraph;
  /** What failed, in one line. */
  error?: string;
  time: string;
  hostname: string;
}

/** What a drill measured of a declared graph, next to what the backup recorded (null: not recorded). */
export interface DrillGraph {
  /** Counts were required to equal the recorded ones (a restore to the snapshot's own point). */
  compared: boolean;
  nodes: Record<string, { restored: number; recorded: number | null }>;
  edges: Record<string, { restored: number; recorded: number | null; dangling: number }>;
  /** Median latency on the restored copy, and the one measured on the source at backup time. */
  queries: Array<{ name: string; ms: number; runs: number; rows: number; backup_ms: number | null; backup_rows: number | null }>;
}

export interface DrillOptions {
  /**
   * The argv running this lifeboat with ARGS against this repository (cli/self-command.ts),
   * for servers a drill starts that must call back (PostgreSQL's restore_command).
   * Throws when no password file is known, so kinds that never call it do not need one.
   */
  lifeboat: (args: readonly string[]) => readonly string[];
  record?: boolean;
  /** The source's server (PostgreSQL), so a kind can measure the drill's RPO against its position. */
  sourceDsn?: string;
  /** The source's own checks (its `checks` in lifeboat.yaml), for kinds that have them: PostgreSQL queries, Redis `COMMAND => REPLY`. */
  checks?: readonly string[];
}

/** Every source with a backup, as its kind names it; snapshots of kinds this program does not know are left out. */
export function sourcesOf(snapshots: readonly Snapshot[]): DrillSource[] {
  const seen = new Map<string, DrillSource>();
  for (const s of snapshots) {
    const kind = findSourceKind(s.source.kind);
    const name = kind?.drill.nameOf(s);
    if (kind && name) seen.set(`${kind.name}:${name}`, { kind: kind.name, name });
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
    await sourceKind(source.kind).drill.run(repo, source.name, { scratch, opts, record });
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

// ---- history ---------------------------------------------------------------

/** Stores one drill record (`drills/…`): engine/group/drill.ts records group drills here too. */
export async function saveDrill(repo: Pick<Repository, 'key' | 'compression' | 'store'>, record: DrillRecord): Promise<void> {
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
