/**
 * Continuous SQLite replication: ships every transaction from the WAL to the
 * repository about once a second, so a database can be restored to any moment.
 *
 * The rule that makes it safe (docs/sqlite.md has the argument): a read transaction
 * of ours is open at every moment, and before we let go of one we have read the WAL
 * up to the newer one's snapshot. While a read transaction is open SQLite cannot
 * restart the WAL over frames newer than it, so no frame is overwritten before it was
 * read. Handing over needs two reader connections, which take turns.
 *
 * Holding readers stops SQLite's own checkpoints from ever restarting the WAL, so the
 * replicator checkpoints itself once the WAL passes `checkpointFrames`: a passive
 * checkpoint while writers run, then, for a few milliseconds under the write lock,
 * reading the last frames, checkpointing the rest and handing the read pin to a reader
 * that lets the next writer start the WAL over.
 *
 * A generation ends when the history cannot be proven continuous (the file was
 * replaced, or the WAL moved on while nobody held it); the next starts with a fresh
 * snapshot, which deduplication makes cheap.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import {
  beginRead,
  endRead,
  ensureWal,
  openDatabase,
  sqliteError,
  type Connection,
  type ImagePoint,
} from '../../sources/sqlite/database.js';
import { WalFile, cycleStart, sameCycle, FRAME_HEADER_SIZE, type WalCursor, type WalHeader } from '../../sources/sqlite/wal.js';
import { imageSnapshot, logSource, type SqliteConsistency } from './backup.js';
import { compactGeneration } from './compact.js';
import {
  chainFrom,
  decodeSegment,
  encodeSegment,
  parseSegmentName,
  segmentName,
  type Commit,
  type Position,
  type SegmentMeta,
} from './segment.js';

export interface ReplicateOptions {
  file: string;
  name: string;
  /** How often new transactions are shipped: the data-loss window. */
  intervalMs: number;
  /** How often a fresh snapshot bounds the frames a restore must replay. */
  snapshotIntervalMs: number;
  /** WAL length (frames) that triggers a checkpoint; SQLite's own default is 1000. */
  checkpointFrames: number;
  /** How often neighbouring segments are merged. */
  compactIntervalMs: number;
  enableWal: boolean;
  busyTimeoutMs: number;
  signal: AbortSignal;
  onEvent?: (e: ReplicateEvent) => void;
}

export type ReplicateEvent =
  | { kind: 'generation'; generation: string; reason: GenerationReason }
  | { kind: 'snapshot'; generation: string; id: string; position: Position; bytes: number; addedBytes: number }
  | { kind: 'ship'; generation: string; segment: string; commits: number; bytes: number; lagMs: number }
  /** Every few seconds while nothing waits to be shipped: the archive holds every commit (the daemon's lag metric). */
  | { kind: 'caught-up'; generation: string }
  | { kind: 'checkpoint'; complete: boolean; blockedMs: number }
  | { kind: 'compact'; generation: string; merged: number; into: number }
  | { kind: 'error'; message: string; hint?: string };

export type GenerationReason = 'first' | 'resumed' | 'wal-moved' | 'file-replaced' | 'snapshot-failed';

export interface ReplicateSummary {
  generation: string;
  commits: number;
  segments: number;
  snapshots: number;
}

/** A generation id: creation time in hex (so ids sort by age) and a random tail. */
export function newGeneration(now = Date.now()): string {
  return now.toString(16).padStart(12, '0') + randomBytes(4).toString('hex');
}

class GenerationBreak extends Error {
  constructor(readonly reason: GenerationReason) {
    super(`generation ends: ${reason}`);
  }
}

/** Bytes of unshipped frames that force a segment out before the interval (memory bound). */
const MAX_PENDING_BYTES = 32 << 20;
/** How long a checkpoint waits for the write lock before it is put off to the next poll. */
const WRITE_LOCK_WAIT_MS = 20;
/** The wait when the WAL has grown to 16 times the threshold and the writer must yield. */
const FORCED_LOCK_WAIT_MS = 1000;
/** At most this many frames (about 2 MiB of 4 KiB pages) are read while writers wait. */
const LOCKED_READ_FRAMES = 512;
/** How often the WAL is polled for new transactions. */
const OBSERVE_MS = 25;
/** Pause after a failed ship before trying again: a store that is down is not hammered. */
const RETRY_MS = 2000;
const CAUGHT_UP_EVERY_MS = 5000;

export async function replicate(repo: Repository, opts: ReplicateOptions): Promise<ReplicateSummary> {
  const r = new Replicator(repo, opts);
  return r.run();
}

class Replicator {
  private readonly file: string;
  private readonly source: string;
  private readers: [Connection, Connection] | undefined;
  private writer: Connection | undefined;
  private wal: WalFile | undefined;
  private identity = '';
  /** Index of the reader that holds the pin (the other is idle and does checkpoints). */
  private held = 0;

  private generation = '';
  private hdr: WalHeader | undefined;
  private cycle = 0;
  private cursor: WalCursor = { frame: 0, checksum: [0, 0] };
  private shipped: Position = { cycle: 0, frame: 0 };
  private pending: Buffer[] = [];
  private pendingCommits: Commit[] = [];
  private pendingBytes = 0;
  /** Segments wait until the generation's first snapshot is stored. */
  private baseStored = false;
  /** The generation's first snapshot failed: the generation is started again. */
  private baseFailed = false;

  /**
   * When the pending transactions go out: one interval after the oldest was seen, less
   * a margin for polling and for the upload itself, so that none waits longer than the
   * interval (the data-loss window) before it is stored.
   */
  private shipBy = Infinity;
  /** How long the last upload took (ms). */
  private lastShipMs = 0;
  private lastCaughtUp = 0;
  /**
   * How often the WAL is looked at, and so how precisely a transaction's time is known
   * (a restore to a time includes what had been seen by then). Looking costs a read
   * transaction and a stat.
   */
  private readonly tick: number;

  private background: Promise<void> | undefined;
  private readonly stats = { commits: 0, segments: 0, snapshots: 0 };

  constructor(
    private readonly repo: Repository,
    private readonly opts: ReplicateOptions,
  ) {
    this.file = path.resolve(opts.file);
    this.source = logSource(opts.name);
    this.tick = Math.max(5, Math.min(OBSERVE_MS, opts.intervalMs / 4));
  }

  async run(): Promise<ReplicateSummary> {
    const { opts } = this;
    try {
      await this.open();
      await this.begin();
      let nextSnapshot = Date.now() + opts.snapshotIntervalMs;
      let nextCompact = Date.now() + opts.compactIntervalMs;
      while (!opts.signal.aborted) {
        try {
          if (this.baseFailed) {
            await sleep(RETRY_MS, undefined, { signal: opts.signal }).catch(() => {});
            throw new GenerationBreak('snapshot-failed');
          }
          await this.observe();
          await this.checkpoint();
          const now = Date.now();
          if (now >= this.shipBy || this.pendingBytes >= MAX_PENDING_BYTES) {
            if (!(await this.ship())) this.shipBy = now + RETRY_MS;
          }
          if (this.baseStored && this.pendingCommits.length === 0 && now - this.lastCaughtUp >= CAUGHT_UP_EVERY_MS) {
            this.lastCaughtUp = now;
            this.emit({ kind: 'caught-up', generation: this.generation });
          }
          if (!this.background && now >= nextSnapshot) {
            nextSnapshot = now + opts.snapshotIntervalMs;
            this.inBackground(this.periodicSnapshot());
          } else if (!this.background && now >= nextCompact && !this.repo.appendOnly) {
            // Compaction deletes what it merged: an append-only client leaves it to another.
            nextCompact = now + opts.compactIntervalMs;
            const gen = this.generation;
            this.inBackground(this.compact(gen));
          }
        } catch (err) {
          if (!(err instanceof GenerationBreak)) throw err;
          await this.endGeneration();
          await this.reopen();
          await this.startGeneration(err.reason);
        }
        await sleep(this.tick, undefined, { signal: opts.signal }).catch(() => {});
      }
      // Clean stop: everything committed so far goes out before we exit.
      await this.observe().catch((err: unknown) => {
        if (!(err instanceof GenerationBreak)) throw err;
      });
      await this.background;
      if (this.baseStored && !(await this.ship())) {
        throw new LifeboatError('STORE_UNAVAILABLE', 'the last transactions could not be shipped before stopping', {
          hint: 'they are still in the database; start the replicator again when the repository is reachable',
        });
      }
      return { generation: this.generation, ...this.stats };
    } finally {
      await this.background?.catch(() => {});
      await this.close();
    }
  }

  // ---- connections ---------------------------------------------------------

  private async open(): Promise<void> {
    const o = { busyTimeoutMs: this.opts.busyTimeoutMs };
    const first = openDatabase(this.file, o);
    try {
      ensureWal(first, this.file, this.opts.enableWal);
      // Our connections never write, but a connection's own autocheckpoint would.
      first.pragma('wal_autocheckpoint = 0');
      const second = openDatabase(this.file, o);
      second.pragma('wal_autocheckpoint = 0');
      this.readers = [first, second];
      // Only ever takes the write lock for a checkpoint, which is skipped rather than
      // waited for: while it waits the application keeps writing, and all of that would
      // have to be read while the application then waits for us.
      this.writer = openDatabase(this.file, { busyTimeoutMs: WRITE_LOCK_WAIT_MS });
      this.writer.pragma('wal_autocheckpoint = 0');
    } catch (err) {
      first.close();
      throw err;
    }
    this.wal = await WalFile.open(`${this.file}-wal`);
    this.identity = await fileIdentity(this.file);
    this.held = 0;
  }

  private async close(): Promise<void> {
    for (const c of [this.writer, ...(this.readers ?? [])]) {
      if (c?.open) {
        if (c.inTransaction) c.exec('ROLLBACK');
        c.close();
      }
    }
    this.readers = undefined;
    this.writer = undefined;
    await this.wal?.close();
    this.wal = undefined;
  }

  private async reopen(): Promise<void> {
    await this.close();
    await this.open();
  }

  private reader(i: number): Connection {
    return (this.readers as [Connection, Connection])[i] as Connection;
  }

  // ---- generations ---------------------------------------------------------

  /** Continues the newest generation if the WAL still holds where it ended, or starts one. */
  private async begin(): Promise<void> {
    const end = await this.lastPoint();
    if (end) {
      beginRead(this.reader(this.held), this.file);
      const hdr = await (this.wal as WalFile).header();
      const t = end.tail;
      const same = hdr && hdr.salt1 === t.salt1 && hdr.salt2 === t.salt2 && hdr.pageSize === end.pageSize;
      if (hdr && same && (await (this.wal as WalFile).holds(hdr, { frame: end.position.frame, checksum: t.checksum }))) {
        this.generation = end.generation;
        this.hdr = hdr;
        this.cycle = end.position.cycle;
        this.cursor = { frame: end.position.frame, checksum: t.checksum };
        this.shipped = end.position;
        this.baseStored = true;
        this.emit({ kind: 'generation', generation: end.generation, reason: 'resumed' });
        return;
      }
      endRead(this.reader(this.held));
      await this.startGeneration('wal-moved');
      return;
    }
    await this.startGeneration('first');
  }

  /** Where the newest generation stands: its last segment's end, or its newest snapshot. */
  private async lastPoint(): Promise<
    { generation: string; position: Position; tail: SegmentMeta['tail']; pageSize: number } | undefined
  > {
    const snaps = (await this.repo.listSnapshots()).filter(
      (s) => s.source.kind === 'sqlite' && s.source.name === this.opts.name && typeof (s.consistency as SqliteConsistency | undefined)?.generation === 'string',
    );
    const newestSnap = snaps.sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
    if (!newestSnap) return undefined;
    const c = newestSnap.consistency as unknown as SqliteConsistency;
    const gen = c.generation as string;
    const names = (await this.repo.listLogs(this.source))
      .filter((l) => l.timeline === gen)
      .map((l) => parseSegmentName(l.file))
      .filter((n) => n !== undefined);
    const { chain, gapAt } = chainFrom(c.position as Position, names);
    const last = chain[chain.length - 1];
    if (gapAt || !last) {
      if (!c.wal || gapAt) return undefined;
      return { generation: gen, position: c.position as Position, tail: c.wal, pageSize: c.pageSize };
    }
    const data = await this.repo.getLog(this.source, gen, last.file);
    if (!data) return undefined;
    const seg = decodeSegment(data, last.file);
    return { generation: gen, position: seg.meta.end, tail: seg.meta.tail, pageSize: seg.meta.pageSize };
  }

  /**
   * Starts a generation: fixes a consistent image under a read pin, then stores it in
   * the background while transactions after it are already being read (and held back
   * until the snapshot is stored, so no segment exists without its base).
   */
  private async startGeneration(reason: GenerationReason): Promise<void> {
    await this.background?.catch(() => {});
    this.generation = newGeneration();
    this.pending = [];
    this.pendingCommits = [];
    this.pendingBytes = 0;
    this.baseStored = false;
    this.baseFailed = false;
    const generation = this.generation;
    const imageConn = openDatabase(this.file, { busyTimeoutMs: this.opts.busyTimeoutMs });
    let fixed = false;
    let placed!: () => void;
    const placedOrFailed = new Promise<void>((resolve) => (placed = resolve));
    const stored = imageSnapshot(this.repo, imageConn, this.file, {
      name: this.opts.name,
      place: (point) => {
        this.hdr = point.wal;
        this.cycle = 0;
        this.cursor = point.wal ? point.cursor : { frame: 0, checksum: [0, 0] };
        this.shipped = { cycle: 0, frame: this.cursor.frame };
        fixed = true;
        placed();
        return { generation, position: this.shipped };
      },
    });
    stored.catch(() => placed());
    await placedOrFailed;
    if (!fixed) {
      imageConn.close();
      await stored; // rethrows why the image could not be read
    }
    this.emit({ kind: 'generation', generation, reason });
    // The image's own read transaction pins the WAL until it is stored; the loop's
    // first observe() takes a pin of its own before that one ends.
    this.inBackground(
      stored
        .then(
          (s) => {
            if (!s) return;
            this.stats.snapshots++;
            if (this.generation === generation) this.baseStored = true;
            const c = s.consistency as unknown as SqliteConsistency;
            this.emit({ kind: 'snapshot', generation, id: s.id, position: c.position as Position, bytes: s.summary.totalBytes, addedBytes: s.summary.addedBytes });
          },
          (err: unknown) => {
            if (this.generation === generation) this.baseFailed = true;
            throw err;
          },
        )
        .finally(() => imageConn.close()),
    );
  }

  private async endGeneration(): Promise<void> {
    await this.background?.catch(() => {});
    if (this.baseStored) await this.ship();
  }

  // ---- reading the WAL -----------------------------------------------------

  /** Hands the read pin to the idle reader after reading the WAL up to its snapshot. */
  private async observe(): Promise<void> {
    const idle = this.reader(1 - this.held);
    beginRead(idle, this.file);
    try {
      if ((await fileIdentity(this.file)) !== this.identity) throw new GenerationBreak('file-replaced');
      await this.readNew();
    } catch (err) {
      endRead(idle);
      throw err;
    }
    endRead(this.reader(this.held));
    this.held = 1 - this.held;
  }

  /** Reads every whole transaction after the cursor into the pending list; returns the frames read. */
  private async readNew(): Promise<number> {
    const wal = this.wal as WalFile;
    const hdr = await wal.header();
    if (!hdr) return 0; // empty or truncated: the next writer writes a new header
    if (!this.hdr) {
      this.hdr = hdr;
      this.cursor = cycleStart(hdr);
    } else if (!sameCycle(hdr, this.hdr)) {
      const restartedOnce =
        hdr.pageSize === this.hdr.pageSize && hdr.salt1 === ((this.hdr.salt1 + 1) >>> 0) && hdr.checkpointSeq === this.hdr.checkpointSeq + 1;
      if (!restartedOnce) throw new GenerationBreak('wal-moved');
      this.hdr = hdr;
      this.cycle++;
      this.cursor = cycleStart(hdr);
    }
    const frameSize = FRAME_HEADER_SIZE + hdr.pageSize;
    // Up to what the file holds now, which covers the pin just taken: a writer
    // faster than this loop is caught up with on the next tick, not chased.
    const limit = await wal.framesInFile(hdr);
    const from = this.cursor.frame;
    for (;;) {
      const got = await wal.readCommitted(this.hdr, this.cursor, 8 << 20, limit);
      if (got.commits.length === 0) return this.cursor.frame - from;
      const time = Date.now();
      if (this.pendingCommits.length === 0) this.shipBy = time + this.opts.intervalMs - this.shipMargin();
      for (const c of got.commits) {
        const end = this.pendingBytes + (c.frame - this.cursor.frame) * frameSize;
        this.pendingCommits.push({ cycle: this.cycle, frame: c.frame, time, end });
      }
      this.pending.push(got.data);
      this.pendingBytes += got.data.length;
      this.cursor = got.end;
      this.stats.commits += got.commits.length;
      if (this.pendingBytes >= MAX_PENDING_BYTES && this.baseStored) await this.ship();
    }
  }

  // ---- checkpoints ---------------------------------------------------------

  private async checkpoint(): Promise<void> {
    if (!this.hdr || this.cursor.frame < this.opts.checkpointFrames) return;
    const idle = this.reader(1 - this.held);
    const writer = this.writer as Connection;
    try {
      idle.pragma('wal_checkpoint(PASSIVE)'); // the bulk of the copying, writers still running
    } catch (err) {
      return this.checkpointSkipped(err);
    }
    // Writers wait while we read what is left under the write lock, so catch up first
    // and go ahead only when little is left. A writer that keeps outrunning us lets the
    // WAL grow to 16 times the threshold; then it waits for us once (back-pressure,
    // as SQLite's own RESTART checkpoints do), so the WAL stays bounded.
    const behind = (await this.readNew()) > LOCKED_READ_FRAMES;
    if (behind && this.cursor.frame < 16 * this.opts.checkpointFrames) return;
    const started = Date.now();
    try {
      // SQLite's lock is not fair: against a writer that never pauses, a short wait never wins.
      if (behind) writer.pragma(`busy_timeout = ${FORCED_LOCK_WAIT_MS}`);
      writer.exec('BEGIN IMMEDIATE');
    } catch (err) {
      return this.checkpointSkipped(err);
    } finally {
      if (behind) writer.pragma(`busy_timeout = ${WRITE_LOCK_WAIT_MS}`);
    }
    let complete = false;
    try {
      await this.readNew();
      // The write transaction pins the newest snapshot, which we have now read whole,
      // so the older pin can go and the checkpoint can copy every frame.
      endRead(this.reader(this.held));
      const [row] = idle.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
      complete = row !== undefined && row.busy === 0 && row.log === row.checkpointed;
      // A pin taken on a fully checkpointed WAL does not stop the next writer from
      // starting the WAL over, and every frame it drops has been read.
      beginRead(idle, this.file);
      this.held = 1 - this.held;
    } finally {
      writer.exec('ROLLBACK');
    }
    this.emit({ kind: 'checkpoint', complete, blockedMs: Date.now() - started });
  }

  private checkpointSkipped(err: unknown): void {
    const e = sqliteError(err, this.file, 'checkpoint');
    if (e.code !== 'SOURCE_UNAVAILABLE') throw e;
    this.emit({ kind: 'error', message: `checkpoint skipped: ${e.message}`, hint: 'a long write transaction holds the lock; the WAL grows until it ends' });
  }

  // ---- shipping ------------------------------------------------------------

  /** Two polls, and a tenth of the interval or twice the last upload's time, whichever is more. */
  private shipMargin(): number {
    return 2 * this.tick + Math.max(this.opts.intervalMs / 10, 2 * this.lastShipMs);
  }

  /** Stores the pending transactions as one segment; false when the store refused (kept for the next try). */
  private async ship(): Promise<boolean> {
    if (!this.baseStored || this.pendingCommits.length === 0 || !this.hdr) return true;
    const last = this.pendingCommits[this.pendingCommits.length - 1] as Commit;
    const meta: SegmentMeta = {
      v: 1,
      pageSize: this.hdr.pageSize,
      start: this.shipped,
      end: { cycle: last.cycle, frame: last.frame },
      commits: this.pendingCommits,
      tail: { salt1: this.hdr.salt1, salt2: this.hdr.salt2, checkpointSeq: this.hdr.checkpointSeq, checksum: this.cursor.checksum },
    };
    const name = segmentName(meta);
    const data = encodeSegment({ meta, frames: Buffer.concat(this.pending) });
    const started = Date.now();
    try {
      await this.repo.putLog(this.source, this.generation, name, data);
      this.lastShipMs = Date.now() - started;
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      this.emit({ kind: 'error', message: `shipping failed: ${err.message}`, ...(err.hint ? { hint: err.hint } : {}) });
      return false;
    }
    const first = this.pendingCommits[0] as Commit;
    this.shipped = meta.end;
    this.pending = [];
    this.pendingCommits = [];
    this.pendingBytes = 0;
    this.shipBy = Infinity;
    this.stats.segments++;
    this.emit({ kind: 'ship', generation: this.generation, segment: name, commits: meta.commits.length, bytes: data.length, lagMs: Date.now() - first.time });
    return true;
  }

  // ---- background work -----------------------------------------------------

  private inBackground(task: Promise<void>): void {
    this.background = task
      .catch((err: unknown) => {
        const e = isLifeboatError(err) ? err : new LifeboatError('FAILED', String(err));
        this.emit({ kind: 'error', message: e.message, ...(e.hint ? { hint: e.hint } : {}) });
      })
      .finally(() => {
        this.background = undefined;
      });
  }

  /**
   * A snapshot within the current generation. Its image comes from its own
   * connection; it is placed in the generation's positions by the WAL cycle it saw
   * (the current one, or the next if the replicator has not seen the restart yet).
   */
  private async periodicSnapshot(): Promise<void> {
    const generation = this.generation;
    const conn = openDatabase(this.file, { busyTimeoutMs: this.opts.busyTimeoutMs });
    try {
      const s = await imageSnapshot(this.repo, conn, this.file, {
        name: this.opts.name,
        place: (point: ImagePoint) => {
          const cur = this.hdr;
          if (generation !== this.generation || !point.wal) return null;
          if (!cur) return { generation, position: { cycle: this.cycle, frame: point.cursor.frame } };
          if (sameCycle(point.wal, cur)) return { generation, position: { cycle: this.cycle, frame: point.cursor.frame } };
          if (point.wal.salt1 === ((cur.salt1 + 1) >>> 0) && point.wal.checkpointSeq === cur.checkpointSeq + 1) {
            return { generation, position: { cycle: this.cycle + 1, frame: point.cursor.frame } };
          }
          return null;
        },
      });
      if (s) {
        this.stats.snapshots++;
        const c = s.consistency as unknown as SqliteConsistency;
        this.emit({ kind: 'snapshot', generation, id: s.id, position: c.position as Position, bytes: s.summary.totalBytes, addedBytes: s.summary.addedBytes });
      }
    } finally {
      conn.close();
    }
  }

  private async compact(generation: string): Promise<void> {
    const r = await compactGeneration(this.repo, this.source, generation, Date.now());
    if (r.merged > 0) this.emit({ kind: 'compact', generation, merged: r.merged, into: r.into });
  }

  private emit(e: ReplicateEvent): void {
    this.opts.onEvent?.(e);
  }
}

/** Device and inode: a restore or copy over the path is a different file. */
async function fileIdentity(file: string): Promise<string> {
  try {
    const st = await fs.stat(file, { bigint: true });
    return `${st.dev}:${st.ino}`;
  } catch (err) {
    throw new LifeboatError('SOURCE_UNAVAILABLE', `${file} disappeared while it was being replicated`, {
      hint: 'the replicator stops; start it again once the database is back',
      cause: err,
    });
  }
}

