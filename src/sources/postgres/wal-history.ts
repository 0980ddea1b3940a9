/**
 * The transactions of an archived PostgreSQL WAL near a moment, so an operator can pick
 * one for `pg restore --xid`: segments are fetched from the repository into a private
 * scratch directory and read by PostgreSQL's own `pg_waldump` (argv only, TZ=UTC), whose
 * records are grouped by transaction id — each COMMIT or ABORT record with its commit
 * time, and the relations (tablespace/database/relfilenode) the transaction's records
 * wrote, with what it did there (INSERT, DELETE, UPDATE... as pg_waldump names them).
 *
 * Which segments: from the newest of the timeline backwards until one holds a commit
 * at or before the moment (at most MAX_PROBES segments read), then that one and the
 * ones after it, read as one range (a record may continue into the next segment), until
 * enough transactions after the moment are seen (at most MAX_RANGE segments).
 *
 * Memory: the records of transactions still open (bounded by MAX_OPEN) and at most
 * twice `limit` transactions; pg_waldump is stopped once enough after the moment are seen.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { logSource, streamSource, timelineDir } from './names.js';
import { parseWalName } from './wal.js';

export interface PgTxn {
  xid: number;
  /** The commit (or abort) time PostgreSQL wrote in the record: the server's clock. */
  time: string;
  lsn: string;
  outcome: 'commit' | 'abort';
  relations: Array<{ rel: string; ops: Record<string, number>; name?: string }>;
}

const MAX_PROBES = 64;
const MAX_RANGE = 16;
/** Transactions with records but no commit yet, kept at once (the oldest are dropped beyond). */
const MAX_OPEN = 20_000;
export const MAX_PG_AROUND = 500;

export interface PgHistoryOptions {
  around: Date;
  limit: number;
  timeline?: number;
  /** Directory of pg_waldump. */
  binDir: string;
}

export async function pgTransactionsAround(repo: Pick<Repository, 'listLogs' | 'getLog'>, name: string, opts: PgHistoryOptions): Promise<{ timeline: number; segments: string[]; txns: PgTxn[] }> {
  if (!(opts.limit >= 1 && opts.limit <= MAX_PG_AROUND)) throw new LifeboatError('USAGE', `--limit must be between 1 and ${MAX_PG_AROUND}`);
  const logs = await repo.listLogs(logSource(name));
  const segs = logs
    .map((l) => {
      try {
        const w = parseWalName(l.file);
        return w.kind === 'segment' && l.timeline === timelineDir(w.timeline) ? w : undefined;
      } catch {
        return undefined;
      }
    })
    .filter((w) => w !== undefined);
  const timeline = opts.timeline ?? Math.max(0, ...segs.map((w) => w.timeline));
  const line = segs.filter((w) => w.timeline === timeline).sort((a, b) => (a.segno! < b.segno! ? -1 : a.segno! > b.segno! ? 1 : 0));
  if (line.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no archived WAL of PostgreSQL "${name}"${opts.timeline ? ` on timeline ${opts.timeline}` : ''} in this repository`, {
      hint: 'archive_command (`lifeboat pg archive-push`) stores it; `lifeboat pg timelines` lists what is there',
    });
  }
  const t = opts.around.getTime();
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'lifeboat-waldump-'));
  try {
    const fetch = async (i: number) => {
      const w = line[i]!;
      const tl = timelineDir(w.timeline);
      const data = (await repo.getLog(logSource(name), tl, w.name)) ?? (await repo.getLog(streamSource(name), tl, w.name));
      if (!data) throw new LifeboatError('CORRUPT', `archived WAL segment ${w.name} of "${name}" vanished while it was read`, { hint: 'run the command again; `lifeboat check` reports missing objects' });
      writeFileSync(path.join(scratch, w.name), data, { mode: 0o600 });
    };
    // Backwards to a segment with a commit at or before the moment.
    // Found none: the moment is before the oldest segment probed, which is where to start.
    let start = Math.max(0, line.length - MAX_PROBES);
    for (let i = line.length - 1, probes = 0; i >= 0 && probes < MAX_PROBES; i--, probes++) {
      await fetch(i);
      const txns = await waldump(opts.binDir, scratch, line[i]!.name, line[i]!.name, { t, limit: 1 });
      rmSync(path.join(scratch, line[i]!.name), { force: true });
      if (txns.some((x) => Date.parse(x.time) <= t)) {
        start = i;
        break;
      }
    }
    // Forward from the segment before it (the transactions just before the moment may
    // have begun there), as one range, until enough come after the moment.
    const from = Math.max(0, start - 1);
    let txns: PgTxn[] = [];
    let to = from;
    for (; to < line.length && to - from < MAX_RANGE; to++) {
      await fetch(to);
      txns = await waldump(opts.binDir, scratch, line[from]!.name, line[to]!.name, { t, limit: opts.limit });
      if (txns.filter((x) => Date.parse(x.time) > t).length >= opts.limit) break;
    }
    // A quarter before the moment, the rest after it.
    const boundary = ((i) => (i < 0 ? txns.length : i))(txns.findIndex((x) => Date.parse(x.time) >= t));
    let a = Math.max(0, boundary - Math.floor(opts.limit / 4));
    const b = Math.min(txns.length, a + opts.limit);
    a = Math.max(0, b - opts.limit);
    return { timeline, segments: line.slice(from, Math.min(to + 1, line.length)).map((w) => w.name), txns: txns.slice(a, b) };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const RECORD = /^rmgr: (\S+)\s+len \(rec\/tot\):\s*\d+\/\s*\d+, tx:\s*(\d+), lsn: ([0-9A-F]+\/[0-9A-F]+), prev [0-9A-F]+\/[0-9A-F]+, desc: (.*)$/;
const END = /^(COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC/;

/** pg_waldump over [first, last] in dir, its records grouped into transactions in commit order. */
function waldump(binDir: string, dir: string, first: string, last: string, window: { t: number; limit: number }): Promise<PgTxn[]> {
  return new Promise((resolve, reject) => {
    const args = ['--path', dir, first, ...(last !== first ? [last] : [])];
    const child = spawn(path.join(binDir, 'pg_waldump'), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TZ: 'UTC' } });
    const open = new Map<number, Map<string, Record<string, number>>>();
    // Only what the listing can show: the last `limit` before the moment, the first
    // `limit` at or after it; once those are in, pg_waldump is stopped.
    let before: PgTxn[] = [];
    const after: PgTxn[] = [];
    let full = false;
    let stderr = '';
    let records = 0;
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    createInterface({ input: child.stdout }).on('line', (l) => {
      const m = RECORD.exec(l);
      if (!m) return;
      records++;
      const [, rmgr, tx, lsn, desc] = m as unknown as [string, string, string, string, string];
      const xid = Number(tx);
      const end = rmgr === 'Transaction' ? END.exec(desc) : null;
      if (end) {
        const subs = /subxacts:((?: \d+)+)/.exec(desc)?.[1]?.trim().split(' ').map(Number) ?? [];
        const rels = new Map<string, Record<string, number>>();
        for (const x of [xid, ...subs]) {
          for (const [rel, ops] of open.get(x) ?? []) {
            const into = rels.get(rel) ?? {};
            for (const [op, n] of Object.entries(ops)) into[op] = (into[op] ?? 0) + n;
            rels.set(rel, into);
          }
          open.delete(x);
        }
        const txn: PgTxn = {
          xid,
          time: new Date(`${(end[2] as string).replace(' ', 'T')}Z`).toISOString(),
          lsn,
          outcome: end[1] === 'COMMIT' ? 'commit' : 'abort',
          relations: [...rels].map(([rel, ops]) => ({ rel, ops })),
        };
        if (Date.parse(txn.time) < window.t && after.length === 0) {
          before.push(txn);
          if (before.length > 2 * window.limit) before = before.slice(-window.limit);
        } else if (!full) {
          after.push(txn);
          if (after.length >= window.limit) {
            full = true;
            child.kill('SIGTERM');
          }
        }
        return;
      }
      if (xid === 0) return;
      const op = `${rmgr === 'Heap' || rmgr === 'Heap2' ? '' : `${rmgr}:`}${desc.split(/[ ,]/)[0] ?? ''}`;
      for (const b of desc.matchAll(/blkref #\d+: rel (\d+\/\d+\/\d+)/g)) {
        let rels = open.get(xid);
        if (!rels) {
          if (open.size >= MAX_OPEN) open.delete(open.keys().next().value as number);
          open.set(xid, (rels = new Map()));
        }
        const ops = rels.get(b[1] as string) ?? {};
        ops[op] = (ops[op] ?? 0) + 1;
        rels.set(b[1] as string, ops);
      }
    });
    child.on('error', (err) =>
      reject(new LifeboatError('USAGE', `cannot run ${path.join(binDir, 'pg_waldump')}: ${err.message}`, { hint: 'give --bin-dir, the directory of the PostgreSQL programs' })),
    );
    child.on('close', (code) => {
      // pg_waldump ends with an error where the WAL written so far ends (a zeroed or
      // recycled tail): normal here. Only a run that read nothing is a failure.
      if (!full && code !== 0 && records === 0 && !/could not find a valid record|invalid record length|contrecord/.test(stderr)) {
        return reject(new LifeboatError('FAILED', `pg_waldump could not read ${first}: ${stderr.trim().split('\n')[0] ?? `exit ${code}`}`, { hint: 'is --bin-dir the same PostgreSQL major version as the cluster?' }));
      }
      resolve([...before.slice(-window.limit), ...after]);
    });
  });
}

/**
 * Names the relations through a live connection's catalog: relations of the database
 * connected to (and shared catalogs) by their current relfilenode; the rest keep
 * their tablespace/database/relfilenode (a rewrite since — TRUNCATE, VACUUM FULL —
 * changes the relfilenode, so an old one may no longer resolve).
 */
export async function nameRelations(txns: PgTxn[], query: (sql: string) => Promise<Array<Record<string, unknown>>>): Promise<void> {
  const [db] = await query('select oid::text as oid from pg_database where datname = current_database()');
  const rows = await query(
    "select pg_relation_filenode(c.oid)::text as node, c.relisshared as shared, n.nspname || '.' || c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace where pg_relation_filenode(c.oid) is not null",
  );
  const local = new Map<string, string>();
  const shared = new Map<string, string>();
  for (const r of rows) (r.shared ? shared : local).set(String(r.node), String(r.name));
  for (const t of txns) {
    for (const r of t.relations) {
      const [, dbOid, node] = r.rel.split('/') as [string, string, string];
      const name = dbOid === '0' ? shared.get(node) : dbOid === String(db?.oid) ? local.get(node) : undefined;
      if (name) r.name = name;
    }
  }
}
