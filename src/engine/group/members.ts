/**
 * What each member of a group records while writes are held: a position in its own
 * continuous log, read over a connection opened before the freeze (so connecting is not
 * part of the hold) and closed after the thaw.
 *
 * - postgres: a named restore point (`pg_create_restore_point`, what a later
 *   `recovery_target_name` stops at) and the LSN it returned, on the source's dsn with
 *   its password_file (never on argv).
 * - sqlite: the WAL position SQLite last published in the wal-index (`-shm`): the cycle
 *   by its salts, the last committed frame and the checksum chain there, read through
 *   read-only descriptors (live-files.ts). A database not in WAL mode is refused.
 * - redis: `master_repl_offset` (with `master_replid`) from INFO replication; only
 *   while the server keeps a replication backlog (a replica, such as `lifeboat redis
 *   replicate`, attached): without one the offset does not move with writes.
 * - files and bucket (data-members.ts): no log, so their data is captured at the point
 *   itself: a filesystem snapshot or a copy made while frozen, or a bucket listing.
 * Any other kind is refused: it has no position to record yet.
 *
 * With `freeze: builtin` a member holds its own writes (hold/release): Redis with
 * `CLIENT PAUSE <max_hold> WRITE` (the server lets go by itself when the time is up, so
 * even a crash of Lifeboat does not leave writes held), SQLite with its write lock on a
 * connection of its own (writers wait in their busy handler), PostgreSQL with nothing
 * but the restore point.
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { SnapshotHook, SourceConfig } from '../../config/config.js';
import type { Repository } from '../../repo/repository.js';
import { LifeboatError, errno } from '../../errors.js';
import { redact } from '../../util/redact.js';
import { readPasswordFile, splitDsnPassword } from '../../sources/postgres/password.js';
import { parseLsn } from '../../sources/postgres/wal.js';
import { openDatabase, sqliteError, type Connection } from '../../sources/sqlite/database.js';
import { LiveFiles } from '../../sources/sqlite/live-files.js';
import { RedisConnection, parseRedisUrl, redisPassword } from '../../sources/redis/connection.js';
import { writesIn, xidsSince, type XidWindow } from './pg-writes.js';

/** How long a PostgreSQL restore point's record may take to reach disk (the WAL writer flushes within 3 × wal_writer_delay, 600 ms by default). */
const DURABLE_WAIT_MS = 10_000;

export const GROUP_KINDS = ['postgres', 'sqlite', 'redis', 'files', 'bucket'] as const;

export type MemberPosition =
  | { kind: 'postgres'; restore_point: string; lsn: string }
  | { kind: 'sqlite'; salt1: number; salt2: number; frame: number; checksum: [number, number] }
  | { kind: 'redis'; replid: string; offset: number }
  /** copy_ms: how long the frozen copy took (inside the hold); create_ms: the snapshot hook's create. */
  | { kind: 'files'; method: 'frozen-copy' | 'snapshot-hook'; snapshot: string; copy_ms?: number; create_ms?: number }
  /** objects listed at the point and how long the listing took (inside the hold). */
  | { kind: 'bucket'; method: 'listing'; snapshot: string; objects: number; listing_ms: number };

/** A member ready to record its position: opened before the freeze, closed after the thaw. */
export interface OpenMember {
  name: string;
  kind: string;
  /** Reads the position; `pointName` names a PostgreSQL restore point. */
  position(pointName: string): Promise<MemberPosition>;
  /**
   * Inside the hold, after every position was read (an application's freeze hook only):
   * whether writes reached the member since its position, which the freeze said could not
   * happen (the application restarted and forgot it was frozen, or another writer). A
   * description of what moved, or undefined.
   */
  writesSince?(): Promise<string | undefined>;
  /**
   * After thaw, when writesSince saw something move that may not be a write (PostgreSQL:
   * transactions, which may be autovacuum's ANALYZE): a description of the writes among
   * them, or undefined. Looked at outside the hold, so that the look does not lengthen it.
   */
  writesOnCloserLook?(): Promise<string | undefined>;
  /** After thaw: makes the recorded position survive a crash of the server, or throws (no point is stored then). */
  durable?(position: MemberPosition): Promise<void>;
  /** Opens what `hold` needs, before the freeze starts (so the hold is only the lock itself). */
  prepareHold?(): Promise<void>;
  /** postgres: the timeline and segment size the proof looks for the restore point's WAL under (proof.ts). */
  walFacts?(lsn: string): Promise<{ timeline: number; segSize: number }>;
  /** postgres: closes the WAL segment holding `lsn` when the server still writes into it, so it is archived (pg_switch_wal). */
  switchWal?(lsn: string): Promise<void>;
  /** freeze: builtin: takes the member's own hold, giving up after `limitMs`; the hold must end by itself after `maxHoldMs`. */
  hold?(limitMs: number, maxHoldMs: number): Promise<void>;
  /** Ends what hold took; called once hold started, whatever happened. */
  release?(): Promise<void>;
  /** After thaw (files, bucket): stores what was fixed at the point; the position with its snapshot. */
  complete?(): Promise<MemberPosition>;
  /** After a failed capture: waits for work in flight and removes what it stored or made. */
  abandon?(): Promise<void>;
  close(): Promise<void>;
}

/** What a files or bucket member needs to capture its data at the point. */
export interface MemberContext {
  repo: Repository;
  group: string;
  pointId: string;
  /** The point's time: the snapshots of files and bucket members carry it. */
  pointTime: () => Date;
  snapshotHook?: SnapshotHook;
  /** The time left of max_hold when called (a frozen copy or create hook is limited by it). */
  left: () => number;
  warn: (message: string) => void;
}

/** Refuses a member whose kind has no position to record yet (before anything runs). */
export function checkMemberKind(s: SourceConfig, group: string): void {
  if (!(GROUP_KINDS as readonly string[]).includes(s.kind)) {
    throw new LifeboatError('USAGE', `kind ${s.kind} cannot join a group yet (source "${s.name}" in group "${group}")`, {
      hint: `group members are ${GROUP_KINDS.join(', ')} sources for now (docs/groups.md)`,
    });
  }
}

export async function openMember(s: SourceConfig, configFile: string, ctx?: MemberContext): Promise<OpenMember> {
  const rel = (f: string) => path.resolve(path.dirname(configFile), f);
  if ((s.kind === 'files' || s.kind === 'bucket') && ctx) {
    const { openFiles, openBucketMember } = await import('./data-members.js');
    return s.kind === 'files' ? openFiles(s, rel, ctx) : openBucketMember(s, ctx);
  }
  if (s.kind === 'postgres') return openPostgres(s, rel);
  if (s.kind === 'sqlite') return openSqlite(s, rel);
  if (s.kind === 'redis') return openRedis(s, rel);
  throw new LifeboatError('USAGE', `kind ${s.kind} cannot join a group yet`, { hint: `group members are ${GROUP_KINDS.join(', ')} sources for now` });
}

async function openPostgres(s: SourceConfig, rel: (f: string) => string): Promise<OpenMember> {
  if (s.dsn === undefined) throw new LifeboatError('USAGE', `postgres source "${s.name}" has no dsn: a group records its position over a connection`, { hint: 'add dsn: to the source in lifeboat.yaml' });
  const split = splitDsnPassword(s.dsn);
  const password = s.passwordFile === undefined ? split.password : readPasswordFile(rel(s.passwordFile));
  // Loaded here: a group without a PostgreSQL member does not load the client.
  const { pgClient } = await import('../../sources/postgres/connect.js');
  /** To the dsn's database, or (to look for an ANALYZE, pg-writes.ts) another of the cluster's. */
  const connect = async (database?: string): Promise<pg.Client> => {
    const c: pg.Client = await pgClient(split.dsn, password, { connectionTimeoutMillis: 10_000, application_name: 'lifeboat-group', ...(database === undefined ? {} : { database }) });
    c.on('error', () => {}); // reported through the failing query
    try {
      await c.connect();
      return c;
    } catch (err) {
      await c.end().catch(() => {});
      throw new LifeboatError('SOURCE_UNAVAILABLE', `cannot reach PostgreSQL for source "${s.name}" at ${redact(split.dsn)}: ${redact(err instanceof Error ? err.message : String(err))}`, {
        hint: 'is the server running there, and do the dsn and password_file let this user in?',
        cause: err,
      });
    }
  };
  let client = await connect();
  /** The connection that created the restore point: only it can show the record durable. */
  let pointClient: pg.Client | undefined;
  let xmaxAtPoint: string | undefined;
  /** The transactions that ended inside the hold (writesSince), looked at after thaw. */
  let moved: XidWindow | undefined;
  /**
   * After thaw (the proof's questions), a connection the server dropped (it restarted,
   * or was failed over) is opened again once; inside the hold nothing is retried.
   */
  const queryAfterThaw = async <R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> => {
    try {
      return await client.query<R>(text, values);
    } catch (err) {
      const code = errno(err);
      if (code !== undefined && !/^(E[A-Z]|08|57P)/.test(code)) throw err; // an SQL error, not a lost connection
      await client.end().catch(() => {});
      client = await connect();
      return client.query<R>(text, values);
    }
  };
  return {
    name: s.name,
    kind: 'postgres',
    async position(pointName) {
      try {
        // xmax of the snapshot: one past the newest transaction that ended (pg-writes.ts).
        const r = await client.query<{ lsn: string; xmax: string }>('SELECT pg_create_restore_point($1)::text AS lsn, pg_snapshot_xmax(pg_current_snapshot())::text AS xmax', [pointName]);
        const row = r.rows[0] as { lsn: string; xmax: string };
        pointClient = client;
        xmaxAtPoint = row.xmax;
        return { kind: 'postgres', restore_point: pointName, lsn: row.lsn };
      } catch (err) {
        const code = errno(err);
        throw new LifeboatError(code === '42501' ? 'PERMISSION' : 'SOURCE_UNAVAILABLE', `source "${s.name}": cannot create a restore point: ${err instanceof Error ? err.message : String(err)}`, {
          hint: code === '42501' ? 'the role needs superuser, or GRANT EXECUTE ON FUNCTION pg_create_restore_point(text)' : 'a standby cannot create restore points; the server needs wal_level replica or higher',
          cause: err,
        });
      }
    },
    async writesSince() {
      // Only a transaction that wrote holds an id, and its end moves xmax; which of them
      // wrote is looked at after thaw (pg-writes.ts).
      moved = await xidsSince(client, xmaxAtPoint as string);
      return undefined;
    },
    async writesOnCloserLook() {
      if (moved === undefined) return undefined;
      return writesIn(moved, queryAfterThaw, connect);
    },
    async durable(position) {
      // pg_create_restore_point does not flush its record (it writes no transaction id, so its
      // commit is asynchronous): a crash soon after took it back, the segment at its LSN was
      // rewritten without it and archived, and no restore reached the point. Nothing in SQL
      // flushes WAL to an LSN without writing WAL of its own (a commit that wrote none is
      // asynchronous too), so the flush is watched instead: the WAL writer flushes asynchronous
      // commits within three wal_writer_delay. Asked only on the connection that made the point:
      // a server that restarted meanwhile may have lost the record while its flush position
      // passed the LSN with other WAL.
      const lsn = (position as { lsn: string }).lsn;
      const until = performance.now() + DURABLE_WAIT_MS;
      const fail = (why: string, cause?: unknown) =>
        new LifeboatError('SOURCE_UNAVAILABLE', `source "${s.name}": the restore point could not be shown durable (${why}); a crash may have taken it back, so no point was stored`, {
          hint: 'the server stopped or the connection dropped right after the point, or its WAL writer is stalled: capture again once it is back',
          ...(cause === undefined ? {} : { cause }),
        });
      if (client !== pointClient) throw fail('the connection that made it was lost');
      for (;;) {
        let flushed: string;
        try {
          flushed = (await client.query<{ flushed: string }>('SELECT pg_current_wal_flush_lsn()::text AS flushed')).rows[0]!.flushed;
        } catch (err) {
          throw fail(err instanceof Error ? err.message : String(err), err);
        }
        if (parseLsn(flushed) >= parseLsn(lsn)) return;
        if (performance.now() > until) throw fail(`WAL flushed only to ${flushed}, not to its end at ${lsn}, within ${DURABLE_WAIT_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async walFacts(lsn) {
      const r = await queryAfterThaw<{ file: string; size: string }>("SELECT pg_walfile_name($1::pg_lsn) AS file, (SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS size", [lsn]);
      const row = r.rows[0] as { file: string; size: string };
      return { timeline: parseInt(row.file.slice(0, 8), 16), segSize: Number(row.size) };
    },
    async switchWal(lsn) {
      // Only while the server still inserts into the segment holding the record: once
      // it moved on, that segment is complete and on its way to the archive anyway.
      const r = await queryAfterThaw<{ same: boolean }>('SELECT pg_walfile_name(pg_current_wal_insert_lsn()) = pg_walfile_name($1::pg_lsn) AS same', [lsn]);
      if (!r.rows[0]?.same) return;
      try {
        await queryAfterThaw('SELECT pg_switch_wal()', []);
      } catch (err) {
        const code = errno(err);
        throw new LifeboatError(code === '42501' ? 'PERMISSION' : 'SOURCE_UNAVAILABLE', `cannot close the WAL segment holding the restore point: ${err instanceof Error ? err.message : String(err)}`, {
          hint: 'GRANT EXECUTE ON FUNCTION pg_switch_wal() TO the role, or set archive_timeout, or stream WAL with `lifeboat pg stream`',
          cause: err,
        });
      }
    },
    close: () => client.end().catch(() => {}),
  };
}

async function openSqlite(s: SourceConfig, rel: (f: string) => string): Promise<OpenMember> {
  if (s.path === undefined) throw new LifeboatError('USAGE', `sqlite source "${s.name}" has no path`, { hint: 'add path: to the source in lifeboat.yaml' });
  const file = rel(s.path);
  // Read-only, and open first: in WAL mode SQLite then has the -wal and -shm files in place.
  const db: Connection = openDatabase(file, { readonly: true });
  let files: LiveFiles;
  try {
    files = await LiveFiles.open(file);
  } catch (err) {
    db.close();
    throw err;
  }
  // The write lock's own connection (read-write, so only for freeze: builtin), opened after
  // LiveFiles and before the freeze so that the hold is only BEGIN IMMEDIATE; it is closed
  // before close() drops LiveFiles' descriptors (live-files.ts).
  let lock: Connection | undefined;
  // The connection first, the descriptors after (live-files.ts: closing a descriptor drops the process's locks).
  const close = async () => {
    lock?.close();
    lock = undefined;
    db.close();
    await files.close();
  };
  /** The header is undefined while SQLite writes it: read again, for at most ~1000 tries. */
  const walPosition = async (): Promise<MemberPosition & { kind: 'sqlite' }> => {
    for (let attempt = 0; attempt < 1000; attempt++) {
      const h = files.walIndex();
      if (h) return { kind: 'sqlite', salt1: h.salt1, salt2: h.salt2, frame: h.mxFrame, checksum: [h.frameChecksum[0], h.frameChecksum[1]] };
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new LifeboatError('SOURCE_UNAVAILABLE', `source "${s.name}": the WAL index of ${file} could not be read (it kept changing)`, { hint: 'retry' });
  };
  let atPoint: (MemberPosition & { kind: 'sqlite' }) | undefined;
  if (!files.hasWalIndex) {
    await close();
    throw new LifeboatError('USAGE', `sqlite source "${s.name}" (${file}) is not in WAL mode: a group records a WAL position`, {
      hint: 'switch it to WAL (`lifeboat sqlite replicate --enable-wal` does, or PRAGMA journal_mode=WAL)',
    });
  }
  return {
    name: s.name,
    kind: 'sqlite',
    async position() {
      return (atPoint = await walPosition());
    },
    async writesSince() {
      const now = await walPosition();
      if (atPoint && now.salt1 === atPoint.salt1 && now.salt2 === atPoint.salt2 && now.frame === atPoint.frame) return undefined;
      return `commits reached its WAL after the position (frame ${atPoint?.frame ?? '?'} → ${now.frame}${now.salt1 === atPoint?.salt1 ? '' : ', WAL restarted'})`;
    },
    async prepareHold() {
      lock ??= openDatabase(file, { busyTimeoutMs: 1 });
    },
    async hold(limitMs) {
      const conn = (lock ??= openDatabase(file, { busyTimeoutMs: 1 }));
      // Polled, not SQLite's busy handler: that one sleeps 1, 2, 5, 10, 15, 20, 25… ms
      // between tries, so one collision with a writer's commit (tens of microseconds)
      // added up to ~100 ms to the hold. A try every millisecond or so wins as soon as
      // the lock is free, and the loop yields to the other members' holds meanwhile.
      conn.pragma('busy_timeout = 0');
      const until = performance.now() + Math.max(1, limitMs);
      for (let tries = 0; ; tries++) {
        try {
          conn.exec('BEGIN IMMEDIATE');
          return;
        } catch (err) {
          if ((err as { code?: string }).code !== 'SQLITE_BUSY' || performance.now() >= until) throw sqliteError(err, file, 'taking the write lock (freeze: builtin)');
        }
        await new Promise((resolve) => (tries < 20 ? setImmediate(resolve) : setTimeout(resolve, 1)));
      }
    },
    async release() {
      if (lock?.inTransaction) lock.exec('ROLLBACK');
    },
    close,
  };
}

async function openRedis(s: SourceConfig, rel: (f: string) => string): Promise<OpenMember> {
  if (s.url === undefined) throw new LifeboatError('USAGE', `redis source "${s.name}" has no url`, { hint: 'add url: redis://host:port to the source in lifeboat.yaml' });
  const target = parseRedisUrl(s.url);
  const password = redisPassword({ passwordFile: s.passwordFile === undefined ? undefined : rel(s.passwordFile) });
  const conn = await RedisConnection.open(target, { password, timeoutMs: 10_000, clientName: 'lifeboat-group' });
  /**
   * Writes since the last position (writesSince): the server's count of changes since its
   * last save, read in the same round trip. Not the offset first: the stream also carries
   * the PINGs a primary sends its replicas, and an archiver is one. But a save that ends
   * restarts the count from where that save began, so writes made before the position
   * while it ran are counted again (and ones between the position and its start are
   * dropped): when a save ended in between, the offset decides (writesSince).
   */
  let changes: { count: string; lastSave: string; saves: string } | undefined;
  let at: { replid: string; offset: number } | undefined;
  const readChanges = async () => {
    const p = await conn.info('persistence');
    // rdb_saves (Redis 7) counts every save; rdb_last_save_time has whole seconds only.
    return { count: p.get('rdb_changes_since_last_save') ?? '', lastSave: p.get('rdb_last_save_time') ?? '', saves: p.get('rdb_saves') ?? '' };
  };
  const read = async (): Promise<MemberPosition> => {
    const [info, c] = await Promise.all([conn.info('replication'), readChanges()]);
    changes = c;
    const offset = Number(info.get('master_repl_offset'));
    const replid = info.get('master_replid') ?? '';
    // Without a backlog (no replica has attached since the server started, or for
    // repl-backlog-ttl) the offset stands still at writes: it names no position.
    if (info.get('repl_backlog_active') !== '1') {
      throw new LifeboatError('USAGE', `redis source "${s.name}" keeps no replication offset (repl_backlog_active is not 1): its position cannot be recorded`, {
        hint: `the offset moves only while the server keeps a replication backlog: run \`lifeboat redis replicate\` for it (or have any replica attached)`,
      });
    }
    if (!Number.isSafeInteger(offset) || offset < 0) throw new LifeboatError('SOURCE_UNAVAILABLE', `source "${s.name}": INFO replication has no master_repl_offset`, { hint: 'Redis 4 or newer reports it' });
    at = { replid, offset };
    return { kind: 'redis', replid, offset };
  };
  try {
    await read(); // refused before the freeze, not while writes are held
  } catch (err) {
    conn.close();
    throw err;
  }
  return {
    name: s.name,
    kind: 'redis',
    position: read,
    async writesSince() {
      const now = await readChanges();
      const was = changes as NonNullable<typeof changes>;
      // A count that went down was restarted by a save, even within the same second.
      const saved = now.saves !== was.saves || now.lastSave !== was.lastSave || Number(now.count) < Number(was.count);
      if (!saved) return now.count === was.count ? undefined : `keys changed after its offset (changes since the last save ${was.count} → ${now.count})`;
      // Every write moves the offset (a PING to the replicas too, now and then: reported, as a write would be).
      const r = await conn.info('replication');
      const offset = Number(r.get('master_repl_offset'));
      const point = at as NonNullable<typeof at>;
      if (r.get('master_replid') === point.replid && offset === point.offset) return undefined;
      return `keys changed after its offset (a save ended meanwhile, so the replication offset tells: ${point.offset} → ${offset})`;
    },
    // The pause ends by itself after max_hold: a Lifeboat that dies while holding does not hold on.
    async hold(_limitMs, maxHoldMs) {
      await conn.ok(['CLIENT', 'PAUSE', String(Math.max(1, Math.ceil(maxHoldMs))), 'WRITE'], 'CLIENT PAUSE WRITE (freeze: builtin needs Redis 6.2 or newer)');
    },
    async release() {
      await conn.ok(['CLIENT', 'UNPAUSE'], 'CLIENT UNPAUSE');
    },
    close: async () => conn.close(),
  };
}
