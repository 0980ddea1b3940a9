/**
 * Restores a Redis server's data as of a moment: the chosen base RDB and its
 * generation's command stream up to the cut (restore-plan.ts) are fed by an
 * in-process master (feed.ts) to a private scratch redis-server that replicates them
 * (scratch.ts), so the result is exactly what the master held at the cut. There the
 * checks run (verify.ts); it saves, `redis-check-rdb` reads the file, and only then is
 * the result handed out: `dump.rdb` in a new directory (written beside its final name
 * and renamed, through the directory's descriptor), or loaded key by key into a
 * running server that is empty (or --force).
 *
 * Memory: one command segment at a time, the RDB streamed chunk by chunk.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as C, fsyncSync, lstatSync, openSync, readSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { openSafeDir } from '../../engine/restore/target.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { createFileAt, mkdirOpenAt, renameAt } from '../../util/safe-fs.js';
import { parseRedisUrl, RedisConnection } from './connection.js';
import { Feed } from './feed.js';
import { logSource, RDB_FILE } from './names.js';
import { vanished } from '../../engine/txn-history.js';
import { planRestore, planToCut, planToOffset, type RestorePlan } from './restore-plan.js';
import { segmentsOf } from './history.js';
import { ScratchRedis } from './scratch.js';
import { chainFrom, decodeSegment } from './segment.js';
import { copyInto, refuseNonEmpty } from './restore-target.js';
import { checkRdb, compareKeys, compareMemory, datasetMemoryOf, failedChecks, keysOf, parseCheck, runChecks, type CheckResult } from './verify.js';

export type RedisRestoreEvent = { kind: 'feed'; port: number } | { kind: 'scratch'; pid: number | undefined } | { kind: 'warning'; message: string };

export interface RedisRestoreOptions {
  name: string;
  /** A new directory for dump.rdb. */
  output?: string;
  /** Or a running server to load into: redis://HOST:PORT. */
  to?: string;
  password?: string | undefined;
  /** Load into a server that already holds keys (each restored key replaces its namesake). */
  force?: boolean;
  /** As of this moment; default: the newest data stored. */
  time?: Date;
  /** That snapshot alone, without replay. */
  snapshot?: string;
  /** Or exactly this replication position (a group point's): ARCHIVE_BEHIND when the stored history does not reach it. */
  position?: { replid: string; offset: number };
  /** Or exactly this offset of this generation: a transaction's end, or the cut point before it (transactions.ts). */
  cut?: { generation: string; offset: number };
  /** `COMMAND ARG… => REPLY` checks run on the restored data. */
  checks?: readonly string[];
  redisServer?: string;
  redisCheckRdb?: string;
  /** Where the scratch server's private directory is made. */
  scratchParent?: string;
  signal?: AbortSignal;
  /** Awaited: a caller may act before the restore goes on. */
  onEvent?: (e: RedisRestoreEvent) => void | Promise<void>;
}

export interface RedisRestoreResult {
  snapshot: Snapshot;
  generation?: string;
  /** The replication offset the data stands at (the base's, or the cut). */
  offset: number;
  /** When the last applied mark's bytes had all arrived (the snapshot's time without replay). */
  restoredTo: Date;
  segments: number;
  /** Stream bytes replayed on top of the base. */
  streamBytes: number;
  /** Keys per database in the restored data (INFO keyspace of the scratch server). */
  keys: Record<string, number>;
  /** Bytes of the dump written (or, for --to, of the verified dump). */
  bytes: number;
  output?: string;
  to?: string;
  /** Keys written into the --to server, per database. */
  loaded?: Record<string, number>;
  checks: CheckResult[];
  warnings: string[];
  durationMs: number;
}

export async function redisRestore(repo: Repository, opts: RedisRestoreOptions): Promise<RedisRestoreResult> {
  const started = Date.now();
  if ((opts.output === undefined) === (opts.to === undefined)) {
    throw new LifeboatError('USAGE', 'give --output DIR or --to redis://HOST:PORT (one of them)', { hint: '--output writes dump.rdb into a new directory; --to loads into a running, empty server' });
  }
  const userChecks = (opts.checks ?? []).map(parseCheck);
  const output = opts.output === undefined ? undefined : path.resolve(opts.output);
  if (output !== undefined && exists(output)) {
    throw new LifeboatError('TARGET_EXISTS', `${output} already exists; nothing was written`, { hint: 'restore into a new directory (it is created, mode 0700)' });
  }
  const target = opts.to === undefined ? undefined : parseRedisUrl(opts.to);
  // Refused before any work: the same check runs again just before loading.
  if (target && !opts.force) await refuseNonEmpty(target, opts.password);

  const lock = await acquireLock(repo.store, 'shared', `redis restore ${opts.name}`);
  let feed: Feed | undefined;
  let scratch: ScratchRedis | undefined;
  try {
    const plan = opts.cut
      ? await planToCut(repo, opts.name, opts.cut.generation, opts.cut.offset)
      : opts.position
      ? await planToOffset(repo, opts.name, opts.position.replid, opts.position.offset)
      : await planRestore(repo, opts.name, { ...(opts.time ? { time: opts.time } : {}), ...(opts.snapshot !== undefined ? { snapshot: opts.snapshot } : {}) });
    for (const w of plan.warnings) await opts.onEvent?.({ kind: 'warning', message: w });
    await repo.loadIndex();
    const rdb = await rdbNode(repo, plan.snapshot);
    const secret = randomBytes(32).toString('hex');
    feed = await Feed.listen(secret);
    await opts.onEvent?.({ kind: 'feed', port: feed.port });
    scratch = await ScratchRedis.start({
      masterPort: feed.port,
      masterAuth: secret,
      ...(opts.redisServer ? { bin: opts.redisServer } : {}),
      ...(opts.scratchParent ? { parent: opts.scratchParent } : {}),
    });
    await opts.onEvent?.({ kind: 'scratch', pid: scratch.pid });
    const errorsBefore = await errorReplies(scratch.conn);
    const replay = { segments: 0, lastTime: undefined as number | undefined, end: plan.point.offset };
    const sc = scratch;
    const { end } = await feed.serve(
      {
        replid: plan.point.replid,
        offset: plan.point.offset,
        rdbBytes: rdb.size ?? 0,
        writeRdb: (out) => restoreStream(repo, rdb, out),
        stream: () => streamOf(repo, opts.name, plan, replay),
      },
      { poll: stallWatch(sc), ...(opts.signal ? { signal: opts.signal } : {}) },
    ).catch(async (err: unknown) => {
      // The link broke or the server stopped: its log says why (an RDB it cannot load),
      // once it has ended and its last words are read.
      await sc.ended(2000);
      throw isLifeboatError(err, 'RECOVERY_FAILED') ? withLog(err, sc) : err;
    });
    if (plan.untilOffset !== undefined && end !== plan.untilOffset) {
      throw new LifeboatError('ARCHIVE_BEHIND', `the replay of Redis "${opts.name}" ended at offset ${end}, not at ${plan.untilOffset}`, { hint: 'a command segment is missing or was replaced meanwhile; `lifeboat check`' });
    }
    const refused = (await errorReplies(scratch.conn)) - errorsBefore;
    if (refused > 0) {
      throw new LifeboatError('RECOVERY_FAILED', `the scratch server refused ${refused} command(s) of the replication stream, so it does not hold what the source held`, {
        hint: `its log says why: ${scratch.logReason()?.slice(0, 300) ?? '(nothing)'}`,
      });
    }
    const keys = await keysOf(scratch.conn);
    const checks: CheckResult[] = [];
    const baseOnly = replay.segments === 0 && replay.end === plan.point.offset;
    if (baseOnly && plan.point.keys) checks.push(compareKeys(keys, plan.point.keys));
    else checks.push({ name: 'keys', ok: true, detail: describeKeys(keys) });
    const memory = baseOnly && plan.point.datasetMemory !== undefined ? await datasetMemoryOf(scratch.conn) : undefined;
    if (memory !== undefined) checks.push(compareMemory(memory, plan.point.datasetMemory as number));
    checks.push(...(await runChecks(scratch.conn, userChecks)));
    const dump = await scratch.save();
    checks.push(await checkRdb(dump, opts.redisCheckRdb));
    const failed = failedChecks(checks);
    if (failed) throw failed;
    let bytes: number;
    let loaded: Record<string, number> | undefined;
    if (output !== undefined) {
      bytes = writeOutput(dump, output);
    } else {
      bytes = lstatSync(dump).size;
      const result = await copyInto(scratch.conn, keys, target as NonNullable<typeof target>, { password: opts.password, force: opts.force ?? false });
      loaded = result.loaded;
      checks.push(result.check);
      const bad = failedChecks([result.check]);
      if (bad) throw bad;
    }
    return {
      snapshot: plan.snapshot,
      ...(plan.generation ? { generation: plan.generation } : {}),
      offset: end,
      restoredTo: new Date(replay.lastTime ?? Date.parse(plan.snapshot.time)),
      segments: replay.segments,
      streamBytes: end - plan.point.offset,
      keys,
      bytes,
      ...(output !== undefined ? { output } : {}),
      ...(target ? { to: target.display } : {}),
      ...(loaded ? { loaded } : {}),
      checks,
      warnings: plan.warnings,
      durationMs: Date.now() - started,
    };
  } finally {
    await scratch?.stop();
    feed?.close();
    await lock.release();
  }
}

function exists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

function describeKeys(keys: Record<string, number>): string {
  const e = Object.entries(keys);
  return e.length === 0 ? 'no keys' : e.map(([db, n]) => `${db}=${n}`).join(' ');
}

/** The snapshot's one file: its path, or dump.rdb inside it. */
async function rdbNode(repo: Repository, snapshot: Snapshot): Promise<TreeNode> {
  const at = snapshot.paths[0] ?? '/';
  let found = await resolvePath(repo, snapshot.tree, at);
  if ('node' in found && found.node.type === 'dir') found = await resolvePath(repo, snapshot.tree, path.posix.join(at, RDB_FILE));
  if (!('node' in found) || found.node.type !== 'file') {
    throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} holds no RDB file at ${at}`, { hint: '`lifeboat check` reports damaged snapshots' });
  }
  return found.node;
}

/** The error with the last line of the scratch server's log as its hint. */
function withLog(err: LifeboatError, scratch: ScratchRedis): LifeboatError {
  const last = scratch.logReason();
  if (!last) return err;
  return new LifeboatError('RECOVERY_FAILED', err.message, {
    hint: `the scratch redis-server's log says: ${last.slice(0, 300)} (an RDB from a newer Redis needs a newer redis-server: --redis-server)`,
    cause: err,
  });
}

/**
 * How long the scratch server may go without acknowledging more of the stream while
 * it is neither receiving nor loading the RDB: a healthy replica acknowledges every
 * second, so this only ends a replay that is stuck (it never connected, or hangs).
 */
const STALL_MS = 120_000;

/** The feed's poll: fails when the scratch server stopped, or made no progress for STALL_MS. */
function stallWatch(scratch: ScratchRedis): (acked: number) => Promise<void> {
  let last = -1;
  let since = Date.now();
  return async (acked) => {
    scratch.assertRunning();
    let busy: boolean;
    try {
      busy = (await scratch.conn.info('persistence')).get('loading') === '1' || (await scratch.conn.info('replication')).get('master_sync_in_progress') === '1';
    } catch (err) {
      // Our private server dropping us (it died loading what it was given) is a failed recovery, not an unreachable source.
      throw new LifeboatError('RECOVERY_FAILED', `the scratch redis-server stopped answering: ${(err as Error).message}`, { hint: 'its log says why' });
    }
    if (acked > last || busy) {
      last = acked;
      since = Date.now();
    } else if (Date.now() - since > STALL_MS) {
      throw new LifeboatError('RECOVERY_FAILED', `the scratch redis-server made no progress replaying for ${STALL_MS / 1000} s (acknowledged offset ${acked})`, {
        hint: `its log ends: ${scratch.logReason()?.slice(0, 300) ?? '(nothing)'}`,
      });
    }
  };
}

/** The errors the server has replied since it started (a replica counts those to its master too). */
async function errorReplies(conn: RedisConnection): Promise<number> {
  return Number((await conn.info('stats')).get('total_error_replies') ?? 0);
}

/**
 * The stream's bytes from the base offset up to the last mark at or before
 * `plan.until`, segment by segment, never past a gap. A segment that vanished while it
 * was read (merged by compaction) is found again in a fresh listing.
 */
async function* streamOf(
  repo: Repository,
  name: string,
  plan: RestorePlan,
  out: { segments: number; lastTime: number | undefined; end: number },
): AsyncGenerator<Buffer> {
  if (!plan.generation) return;
  const source = logSource(name);
  let chain = plan.chain;
  let relisted = 0;
  for (let i = 0; i < chain.length; i++) {
    const n = chain[i] as (typeof chain)[number];
    const data = await repo.getLog(source, plan.generation, n.file);
    if (!data) {
      if (++relisted > 3) throw vanished(source); // compacted away four times in a row: BUSY, run again
      const fresh = chainFrom(out.end, segmentsOf(await repo.listLogs(source), plan.generation)).chain;
      chain = fresh;
      i = -1;
      continue;
    }
    const seg = decodeSegment(data, n.file);
    let cut: number | undefined;
    let cutTime: number | undefined;
    if (plan.untilOffset !== undefined) {
      // Exactly to the offset (locate.ts checked it ends a command outside a transaction).
      cut = Math.min(seg.meta.end, plan.untilOffset);
      cutTime = seg.meta.marks.filter(([o]) => o <= cut!).at(-1)?.[1] ?? out.lastTime;
      if (cut <= out.end) return;
      const piece = seg.stream.subarray(out.end - seg.meta.start, cut - seg.meta.start);
      out.segments++;
      out.end = cut;
      out.lastTime = cutTime;
      yield piece;
      if (cut === plan.untilOffset) return;
      continue;
    }
    for (const [offset, time] of seg.meta.marks) {
      if (time > plan.until) break;
      if (offset <= out.end) continue;
      cut = offset;
      cutTime = time;
    }
    if (cut === undefined) {
      if (seg.meta.marks.some(([o, t]) => o > out.end && t > plan.until)) return;
      continue;
    }
    const piece = seg.stream.subarray(out.end - seg.meta.start, cut - seg.meta.start);
    out.segments++;
    out.end = cut;
    out.lastTime = cutTime;
    yield piece;
    if (cut < seg.meta.end) return;
  }
}

/** Copies the saved dump into a new directory OUTPUT (0700) as dump.rdb, written beside it and renamed; returns its bytes. */
function writeOutput(dump: string, output: string): number {
  const parent = openSafeDir(path.dirname(output));
  let dir: number | undefined;
  try {
    try {
      dir = mkdirOpenAt(parent.fd, path.basename(output), 0o700);
    } catch (err) {
      if (errno(err) === 'EEXIST') throw new LifeboatError('TARGET_EXISTS', `${output} appeared during the restore and was left alone`, { hint: 'restore into a new directory' });
      throw err;
    }
    const partial = `.${RDB_FILE}.partial`;
    const src = openSync(dump, C.O_RDONLY | C.O_NOFOLLOW);
    const dst = createFileAt(dir, partial, 0o600);
    let bytes = 0;
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (let n = readSync(src, buf); n > 0; n = readSync(src, buf)) {
        for (let w = 0; w < n; ) w += writeSync(dst, buf, w, n - w);
        bytes += n;
      }
      fsyncSync(dst);
    } finally {
      closeSync(src);
      closeSync(dst);
    }
    renameAt(dir, partial, dir, RDB_FILE);
    fsyncSync(dir);
    return bytes;
  } finally {
    if (dir !== undefined) closeSync(dir);
    closeSync(parent.fd);
  }
}
