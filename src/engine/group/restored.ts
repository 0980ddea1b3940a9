/**
 * The members of a group restored into scratch, opened for reading: what `group
 * drill` runs each member's own checks and the group's cross-member checks on.
 *
 * - sqlite: the restored file, opened read-only without trusting its schema
 *   (openDefensive); its check is `PRAGMA quick_check`.
 * - postgres: the restored data directory started by startRestored (pg restore
 *   --start's machinery: a private socket, no TCP port, tied to this process), which
 *   recovers to the member's position and promotes; its checks are the source's own
 *   `checks:` queries. Queries run in a READ ONLY transaction.
 * - redis: a scratch redis-server (pg's counterpart for Redis: private socket, a
 *   password, tied to this process) loaded from the restored dump.rdb; its checks are
 *   the source's own `COMMAND => REPLY` checks and the keys it loaded.
 * - files, bucket: the restored directory; its check counts the files.
 *
 * Members are opened one after the other, each inside the one before (a PostgreSQL
 * scratch server lives inside startRestored's call), and closed in reverse whatever
 * happens; `signal` stops the opening between members.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CheckQuery, SourceConfig } from '../../config/config.js';
import { LifeboatError } from '../../errors.js';
import type { PgClient } from '../../sources/postgres/connect.js';
import { startRestored } from '../../sources/postgres/start.js';
import { RDB_FILE } from '../../sources/redis/names.js';
import { ScratchRedis } from '../../sources/redis/scratch.js';
import { keysOf, parseCheck, runChecks } from '../../sources/redis/verify.js';
import { RespError, type RespValue } from '../../sources/redis/resp.js';
import { openDefensive } from '../../sources/sqlite/select-tables.js';
import { tooMany, type ValueReader } from './checks.js';

export interface RestoredMember {
  /** The source's configuration (its kind, checks, dsn, paths). */
  source: SourceConfig;
  /** What the group restore wrote: a file (sqlite), a data directory (postgres), a directory holding dump.rdb (redis), a directory (files, bucket). */
  target: string;
  /** lifeboat.yaml, which a files source's relative `paths` are relative to (default: the working directory). */
  configFile?: string;
}

export interface MemberCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface OpenedMembers {
  readers: Map<string, ValueReader>;
  /** Each member's own checks, by member name. */
  checks: Map<string, MemberCheck[]>;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Opens every restored member, calls `fn` while all are open, and closes them (stops
 * the scratch servers) before it returns or throws. A member that cannot be opened
 * gets a failed check and no reader; the others are still opened.
 */
export async function withRestoredMembers<T>(members: readonly RestoredMember[], fn: (opened: OpenedMembers) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const opened: OpenedMembers = { readers: new Map(), checks: new Map() };
  const open = async (i: number): Promise<T> => {
    signal?.throwIfAborted();
    const m = members[i];
    if (!m) return fn(opened);
    const checks: MemberCheck[] = [];
    opened.checks.set(m.source.name, checks);
    const next = (reader: ValueReader | undefined) => {
      if (reader) opened.readers.set(m.source.name, reader);
      return open(i + 1);
    };
    try {
      switch (m.source.kind) {
        case 'sqlite':
          return await withSqlite(m, checks, next);
        case 'postgres':
          return await withPostgres(m, checks, next);
        case 'redis':
          return await withRedis(m, checks, next);
        case 'files':
        case 'bucket':
          return await withDirectory(m, checks, next);
        default:
          checks.push({ name: 'open', ok: false, detail: `a ${m.source.kind} member cannot be opened after a restore yet` });
          return await next(undefined);
      }
    } catch (err) {
      if (err instanceof OpenFailure) {
        checks.push({ name: 'open', ok: false, detail: err.message });
        return next(undefined);
      }
      throw err;
    }
  };
  return open(0);
}

/** The member could not be opened: reported as its failed check, the drill goes on. */
class OpenFailure extends Error {}

type Next<T> = (reader: ValueReader | undefined) => Promise<T>;

async function withSqlite<T>(m: RestoredMember, checks: MemberCheck[], next: Next<T>): Promise<T> {
  let db: ReturnType<typeof openDefensive>;
  try {
    db = openDefensive(m.target, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new OpenFailure(`cannot open ${m.target}: ${message(err)}`);
  }
  try {
    const rows = db.prepare('PRAGMA quick_check').pluck().all() as string[];
    checks.push({ name: 'quick_check', ok: rows.length === 1 && rows[0] === 'ok', detail: rows.slice(0, 3).join('; ') });
    const reader: ValueReader = {
      async values(q, limit) {
        const out: string[] = [];
        for (const row of db.prepare(sqlOf(q)).raw().iterate() as Iterable<unknown[]>) {
          const v = row[0];
          if (v === null || v === undefined) continue;
          if (out.length >= limit) throw tooMany(m.source.name, limit);
          out.push(Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
        }
        return out;
      },
    };
    return await next(reader);
  } finally {
    db.close();
  }
}

function sqlOf(q: CheckQuery): string {
  if (q.kind !== 'sql') throw new LifeboatError('USAGE', `member "${q.member}" is read with sql`, { hint: 'docs/groups.md' });
  return q.sql;
}

/** The database a postgres member's queries run in when the check names none: its dsn's, else postgres. */
function databaseOf(source: SourceConfig): string {
  try {
    const db = source.dsn === undefined ? '' : decodeURIComponent(new URL(source.dsn).pathname.slice(1));
    return db || 'postgres';
  } catch {
    return 'postgres';
  }
}

async function withPostgres<T>(m: RestoredMember, checks: MemberCheck[], next: Next<T>): Promise<T> {
  const version = (await fs.readFile(path.join(m.target, 'PG_VERSION'), 'utf8').catch(() => '')).trim();
  if (!/^\d+$/.test(version)) throw new OpenFailure(`${m.target} is not a PostgreSQL data directory (no PG_VERSION)`);
  let result: { value: T } | undefined;
  // The server listens on no TCP port, only on a private socket: the number only names it.
  const report = await startRestored({
    dataDir: m.target,
    port: 5432,
    binDir: `/usr/lib/postgresql/${version}/bin`,
    ...(m.source.checks ? { checks: m.source.checks } : {}),
    // Beside the restored data: what a killed drill leaves, the next one removes whole.
    socketParent: path.dirname(m.target),
    inspect: async (connect, started) => {
      checks.push(...started);
      const reader: ValueReader = {
        async values(q, limit) {
          const client: PgClient = await connect(q.kind === 'sql' && q.database !== undefined ? q.database : databaseOf(m.source));
          try {
            await client.query('BEGIN TRANSACTION READ ONLY');
            const r = (await client.query({ text: sqlOf(q), rowMode: 'array' })) as unknown as { rows: unknown[][] };
            if (r.rows.length > limit) throw tooMany(m.source.name, limit);
            return r.rows.filter((row) => row[0] !== null && row[0] !== undefined).map((row) => (Buffer.isBuffer(row[0]) ? row[0].toString('utf8') : String(row[0])));
          } finally {
            await client.query('ROLLBACK').catch(() => {});
            await client.end().catch(() => {});
          }
        },
      };
      result = { value: await next(reader) };
    },
  });
  if (result) return result.value;
  // It never recovered: what startRestored found is the member's result.
  checks.push(...report.checks);
  if (report.log) checks.push({ name: 'log', ok: false, detail: report.log.split('\n').at(-1) ?? '' });
  return next(undefined);
}

/** A Redis reply as the values it holds: a list's elements (nested ones flattened), a string, a number; nil is none. */
export function replyValues(reply: RespValue, out: string[], limit: number, member: string): void {
  if (reply === null) return;
  if (Array.isArray(reply)) {
    for (const r of reply) replyValues(r, out, limit, member);
    return;
  }
  if (reply instanceof RespError) throw new LifeboatError('FAILED', `member "${member}": ${reply.message}`, { hint: 'check the command in the check' });
  if (out.length >= limit) throw tooMany(member, limit);
  out.push(Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply));
}

async function withRedis<T>(m: RestoredMember, checks: MemberCheck[], next: Next<T>): Promise<T> {
  const rdb = path.join(m.target, RDB_FILE);
  if (!(await fs.stat(rdb).catch(() => undefined))?.isFile()) throw new OpenFailure(`${m.target} holds no ${RDB_FILE}`);
  let scratch: ScratchRedis;
  try {
    // Loading a dump of gigabytes takes a while before the server answers.
    scratch = await ScratchRedis.start({ rdb, parent: path.dirname(m.target), readyMs: 30 * 60_000 });
  } catch (err) {
    throw new OpenFailure(`the scratch redis-server did not load ${rdb}: ${message(err)}`);
  }
  try {
    const keys = await keysOf(scratch.conn);
    checks.push({ name: 'load', ok: true, detail: `loaded ${Object.entries(keys).map(([db, n]) => `${n} keys in ${db}`).join(', ') || 'no keys'}` });
    try {
      checks.push(...(await runChecks(scratch.conn, (m.source.checks ?? []).map(parseCheck))));
    } catch (err) {
      checks.push({ name: 'checks', ok: false, detail: message(err) });
    }
    const conn = scratch.conn;
    return await next({
      async values(q, limit) {
        if (q.kind !== 'redis') throw new LifeboatError('USAGE', `member "${q.member}" is read with redis`, { hint: 'docs/groups.md' });
        const out: string[] = [];
        replyValues(await conn.call(q.redis), out, limit, m.source.name);
        return out;
      },
    });
  } finally {
    await scratch.stop();
  }
}

/** Where a files member's relative names start: its one backed-up path inside the restore (restores keep absolute paths), else the restore's root. */
function filesRoot(m: RestoredMember): string {
  const only = m.source.kind === 'files' && m.source.paths.length === 1 ? m.source.paths[0] : undefined;
  return only === undefined ? m.target : path.join(m.target, path.resolve(m.configFile === undefined ? '.' : path.dirname(path.resolve(m.configFile)), only));
}

/**
 * Calls `onFile` with the relative name (`/` between parts) of each regular file below
 * `dir`; symlinks are neither followed nor listed, and `dir` itself must be reached
 * from `root` without one (a restored tree may hold links that lead out of it).
 */
export async function walkFiles(root: string, rel: string, onFile: (name: string) => void): Promise<boolean> {
  let at = root;
  for (const part of rel === '.' ? [] : rel.split('/').filter(Boolean)) {
    at = path.join(at, part);
    if (!(await fs.lstat(at).catch(() => undefined))?.isDirectory()) return false;
  }
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for await (const e of await fs.opendir(dir)) {
      const name = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(dir, e.name), name);
      else if (e.isFile()) onFile(name);
    }
  };
  await walk(at, '');
  return true;
}

async function withDirectory<T>(m: RestoredMember, checks: MemberCheck[], next: Next<T>): Promise<T> {
  const root = filesRoot(m);
  if (!(await fs.lstat(root).catch(() => undefined))?.isDirectory()) throw new OpenFailure(`${root} is not a restored directory`);
  let files = 0;
  await walkFiles(root, '.', () => files++);
  checks.push({ name: 'files', ok: true, detail: `${files} files restored` });
  return next({
    async values(q, limit) {
      if (q.kind !== 'files') throw new LifeboatError('USAGE', `member "${q.member}" is read with files`, { hint: 'docs/groups.md' });
      const out: string[] = [];
      await walkFiles(root, q.files, (name) => {
        if (out.length >= limit) throw tooMany(m.source.name, limit);
        out.push(name);
      });
      return out;
    },
  });
}
