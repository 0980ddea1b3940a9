/**
 * Continuous SQLite replication: ships every committed transaction from the WAL to the
 * repository about once a second, so a database can be restored to any moment, and
 * proves what it shipped instead of assuming it. docs/sqlite.md has the argument.
 *
 * - What is committed is what SQLite publishes in the wal-index (`-shm`): the last
 *   committed frame and the checksum chain there. Frames past it (a writer that died
 *   inside COMMIT) are never read; the frames read must end on that checksum.
 * - A read transaction of ours is open at every moment ("the pin"); a new one begins
 *   before the old one ends, and before it ends we have read past the old one's
 *   snapshot. SQLite then cannot restart the WAL over a frame we have not read, so a
 *   new cycle seen between two polls continues the last one, whichever connection
 *   restarted it (no counter in the WAL header is trusted for that).
 * - The database, its WAL and its wal-index are read through descriptors held for the
 *   whole run (sources/sqlite/live-files.ts): closing one would drop SQLite's locks,
 *   and an application's next close would delete the WAL under us. Every poll also
 *   checks that the paths still name those files.
 * - A page model of what was shipped is compared, page by page, with the live database
 *   every `verifyIntervalMs` (verify-live.ts); a difference records the generation as
 *   diverged (restores stop at the last verified position) and starts a new one.
 * - `status` events say whether all is well and until when everything committed is
 *   known to be in the repository (`archivedThrough`): the daemon's RPO.
 *
 * Holding readers stops SQLite's own checkpoints from restarting the WAL, so the
 * replicator checkpoints itself (checkpoint.ts).
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { beginRead, endRead, ensureWal, openDatabase, sameChecksum, type Connection, type CyclePosition, type ImagePoint } from '../../sources/sqlite/database.js';
import { LiveFiles } from '../../sources/sqlite/live-files.js';
import { sameWalIndex, type WalIndexHeader } from '../../sources/sqlite/wal-index.js';
import { cycleStart, FRAME_HEADER_SIZE, frameInfo, type WalCursor, type WalHeader } from '../../sources/sqlite/wal.js';
import { imageSnapshot, logSource, type SqliteConsistency } from './backup.js';
import { checkpoint, LOCK_WAIT_MS } from './checkpoint.js';
import { compactGeneration } from './compact.js';
import { DIVERGED, recordDivergence, segmentsOf } from './history.js';
import { firstDifference, PageModel, type ModelView } from './page-model.js';
import { chainFrom, decodeSegment, encodeSegment, segmentName, type Commit, type Position, type SegmentMeta, type WalTail } from './segment.js';
import { liveView, storedView } from './verify-live.js';
import { Waker } from './waker.js';

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
  /** How often the shipped history is compared with the live database page by page; 0 never. */
  verifyIntervalMs: number;
  enableWal: boolean;
  busyTimeoutMs: number;
  signal: AbortSignal;
  onEvent?: (e: ReplicateEvent) => void;
}

export type ReplicateEvent =
  | { kind: 'generation'; generation: string; reason: GenerationReason }
  | { kind: 'snapshot'; generation: string; id: string; position: Position; bytes: number; addedBytes: number }
  | { kind: 'ship'; generation: string; segment: string; commits: number; bytes: number; lagMs: number }
  /**
   * Every 5 s, at once when health changes and when a ship leaves nothing pending: everything committed
   * at or before `archivedThrough` is in the repository (null: nothing proven yet).
   */
  | { kind: 'status'; generation: string; healthy: boolean; archivedThrough: string | null; verifiedAt: string | null; error?: string; hint?: string }
  | { kind: 'verified'; generation: string; position: Position; pages: number; durationMs: number }
  | { kind: 'diverged'; generation: string; position: Position; reason: string }
  | { kind: 'checkpoint'; complete: boolean; blockedMs: number; skipped?: string }
  | { kind: 'compact'; generation: string; merged: number; into: number }
  | { kind: 'error'; message: string; hint?: string };

export type GenerationReason = 'first' | 'resumed' | 'wal-moved' | 'file-replaced' | 'wal-replaced' | 'snapshot-failed' | 'diverged';

export interface ReplicateSummary {
  generation: string;
  commits: number;
  segments: number;
  snapshots: number;
  verifications: number;
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
/**
 * How often at most the wal-index is looked at while transactions arrive, and so how
 * precisely a transaction's time is known (a restore to a time includes what had been
 * seen by then); waker.ts says when the looks happen. A look is one 136-byte read and
 * six stats; a read transaction is taken only when something changed.
 */
const OBSERVE_MS = 5;
/** How often at most the read pin moves on (two read transactions) while transactions arrive. */
const HANDOVER_MS = 25;
/** Pause after a failed ship before trying again: a store that is down is not hammered. */
const RETRY_MS = 2000;
const STATUS_EVERY_MS = 5000;
/** Polls that find writers between us and an exact verification point before the write lock is taken for one. */
const ALIGN_TRIES = 20;
/** A verification takes at most this share of the time (a large database is read whole each time). */
const VERIFY_DUTY = 20;

interface Problem {
  message: string;
  hint?: string;
}

export async function replicate(repo: Repository, opts: ReplicateOptions): Promise<ReplicateSummary> {
  return new Replicator(repo, opts).run();
}

class Replicator {
  private readonly file: string;
  private readonly source: string;
  private files: LiveFiles | undefined;
  private waker: Waker | undefined;
  private readers: [Connection, Connection] | undefined;
  /** Takes the write lock for checkpoints and exact verification points, never to write. */
  private writer: Connection | undefined;
  /** Holds a verification's position while the live file is read. */
  private pinConn: Connection | undefined;
  /** Index of the reader that holds the pin (the other is idle). */
  held = 0;
  private lastHandover = 0;

  generation = '';
  /** The WAL cycle being read, by its salts; its header once it is written. */
  private salts: { salt1: number; salt2: number } | undefined;
  private hdr: WalHeader | undefined;
  private cycle = 0;
  /** Frames of the cycle read so far and the checksum chain there. */
  cursor: WalCursor = { frame: 0, checksum: [0, 0] };
  /** The wal-index state read up to, and when it was read. */
  private lastIndex: WalIndexHeader | undefined;
  private readAt = 0;

  private shipped: Position = { cycle: 0, frame: 0 };
  private pending: Buffer[] = [];
  private pendingCommits: Commit[] = [];
  private pendingBytes = 0;
  private pendingTail: WalTail | undefined;
  /** Segments wait until the generation's first snapshot is stored. */
  private baseStored = false;
  private baseFailed = false;
  /** When the pending transactions go out (see shipMargin). */
  private shipBy = Infinity;
  private lastShipMs = 0;

  private model: PageModel | undefined;
  private lastVerified: Position | undefined;
  private verifiedAt = 0;
  private nextVerify = 0;
  private alignMisses = 0;
  /** Set when the history was found not to reproduce the database: the generation ends. */
  private divergence: { reason: string; trusted: Position | null } | undefined;

  /** Everything committed at or before this moment is in the repository (0: not yet known). */
  private provenAt = 0;
  private problem: Problem | undefined;
  private lastStatus = 0;
  private lastHealthy: boolean | undefined;
  /** A segment went out since the last status: the next status that finds nothing pending says so at once. */
  private shippedSinceStatus = false;

  /** How often the wal-index is looked at (ms). */
  private readonly tick: number;
  private background: Promise<void> | undefined;
  private readonly stats = { commits: 0, segments: 0, snapshots: 0, verifications: 0 };

  constructor(
    private readonly repo: Repository,
    private readonly opts: ReplicateOptions,
  ) {
    this.file = path.resolve(opts.file);
    this.source = logSource(opts.name);
    this.tick = Math.max(1, Math.min(OBSERVE_MS, opts.intervalMs / 4));
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
          if (this.divergence) throw new GenerationBreak('diverged');
          await this.observe();
          await checkpoint(this, opts.checkpointFrames);
          const now = Date.now();
          if (now >= this.shipBy || this.pendingBytes >= MAX_PENDING_BYTES) {
            if (!(await this.ship())) this.shipBy = now + RETRY_MS;
          }
          if (this.baseStored && this.pendingCommits.length === 0) this.provenAt = Math.max(this.provenAt, this.readAt);
          if (!this.background && now >= nextSnapshot) {
            nextSnapshot = now + opts.snapshotIntervalMs;
            this.inBackground(this.periodicSnapshot().then((placed) => void (placed || (nextSnapshot = Date.now() + 1000))));
          } else if (!this.background && now >= nextCompact && !this.repo.appendOnly) {
            // Compaction deletes what it merged: an append-only client leaves it to another.
            nextCompact = now + opts.compactIntervalMs;
            const gen = this.generation;
            this.inBackground(this.compact(gen));
          } else if (!this.background && opts.verifyIntervalMs > 0 && now >= this.nextVerify) {
            await this.startVerification();
          }
          this.status(now);
        } catch (err) {
          if (!(err instanceof GenerationBreak)) throw err;
          await this.endGeneration(err.reason);
          await this.reopen();
          await this.startGeneration(err.reason);
        }
        await (this.waker as Waker).wait(opts.signal);
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
    const conns: Connection[] = [];
    try {
      const first = openDatabase(this.file, o);
      conns.push(first);
      ensureWal(first, this.file, this.opts.enableWal);
      for (let i = 0; i < 2; i++) conns.push(openDatabase(this.file, o));
      // Only ever takes the write lock, which is skipped rather than waited for: while it
      // waits the application keeps writing, and all of that would have to be read while
      // the application then waits for us.
      conns.push(openDatabase(this.file, { busyTimeoutMs: LOCK_WAIT_MS }));
      // Our connections never write, but a connection's own autocheckpoint would.
      for (const c of conns) c.pragma('wal_autocheckpoint = 0');
      this.files = await LiveFiles.open(this.file);
    } catch (err) {
      for (const c of conns) c.close();
      throw err;
    }
    if (!this.files.hasWalIndex) {
      for (const c of conns) c.close();
      await this.files.close();
      throw new LifeboatError('USAGE', `${this.file} has no ${path.basename(this.file)}-shm although it is in WAL mode`, {
        hint: 'replication needs the shared-memory wal-index: a database in locking_mode=EXCLUSIVE cannot be replicated',
      });
    }
    this.waker = new Waker(`${this.file}-wal`, this.tick);
    const [a, b, pin, writer] = conns as [Connection, Connection, Connection, Connection];
    this.readers = [a, b];
    this.pinConn = pin;
    this.writer = writer;
    this.held = 0;
  }

  private async close(): Promise<void> {
    for (const c of [this.writer, this.pinConn, ...(this.readers ?? [])]) {
      if (c?.open) {
        if (c.inTransaction) c.exec('ROLLBACK');
        c.close();
      }
    }
    this.readers = undefined;
    this.writer = undefined;
    this.pinConn = undefined;
    this.waker?.close();
    // Only now: closing a descriptor while a connection is open drops SQLite's locks.
    await this.files?.close();
    this.files = undefined;
  }

  private async reopen(): Promise<void> {
    await this.close();
    await this.open();
  }

  reader(i: number): Connection {
    return (this.readers as [Connection, Connection])[i] as Connection;
  }

  get writeLock(): Connection {
    return this.writer as Connection;
  }

  get path(): string {
    return this.file;
  }

  // ---- generations ---------------------------------------------------------

  /** Continues the newest generation if the WAL still holds where it ended, or starts one. */
  private async begin(): Promise<void> {
    const end = await this.lastPoint();
    if (end) {
      beginRead(this.reader(this.held), this.file);
      const files = this.files as LiveFiles;
      const idx = files.walIndex();
      const t = end.tail;
      let same = idx !== undefined && idx.salt1 === t.salt1 && idx.salt2 === t.salt2 && idx.mxFrame >= end.position.frame;
      let hdr: WalHeader | undefined;
      if (same && end.position.frame > 0) {
        hdr = await files.wal.header();
        same = hdr !== undefined && hdr.salt1 === t.salt1 && hdr.salt2 === t.salt2 && (await files.wal.holds(hdr, { frame: end.position.frame, checksum: t.checksum }));
      }
      if (same) {
        this.generation = end.generation;
        this.salts = { salt1: t.salt1, salt2: t.salt2 };
        this.hdr = hdr;
        this.cycle = end.position.cycle;
        this.cursor = { frame: end.position.frame, checksum: t.checksum };
        this.shipped = end.position;
        this.baseStored = true;
        const model = new PageModel(end.pages);
        this.model = model;
        this.emit({ kind: 'generation', generation: end.generation, reason: 'resumed' });
        this.inBackground(this.rebuildModel(model, end.generation, end.position));
        return;
      }
      endRead(this.reader(this.held));
      await this.startGeneration('wal-moved');
      return;
    }
    await this.startGeneration('first');
  }

  /** Where the newest generation stands: its last segment's end, or its newest snapshot. */
  private async lastPoint(): Promise<{ generation: string; position: Position; tail: WalTail; pages: number } | undefined> {
    const snaps = (await this.repo.listSnapshots()).filter(
      (s) => s.source.kind === 'sqlite' && s.source.name === this.opts.name && typeof (s.consistency as SqliteConsistency | undefined)?.generation === 'string',
    );
    const newestSnap = snaps.sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
    if (!newestSnap) return undefined;
    const c = newestSnap.consistency as unknown as SqliteConsistency;
    const gen = c.generation as string;
    const logs = await this.repo.listLogs(this.source);
    if (logs.some((l) => l.timeline === gen && l.file === DIVERGED)) return undefined;
    const { chain, gapAt } = chainFrom(c.position as Position, segmentsOf(logs, gen));
    const last = chain[chain.length - 1];
    if (gapAt) return undefined;
    if (!last) return c.wal ? { generation: gen, position: c.position as Position, tail: c.wal, pages: c.pages } : undefined;
    const data = await this.repo.getLog(this.source, gen, last.file);
    if (!data) return undefined;
    const seg = decodeSegment(data, last.file);
    const pages = frameInfo(seg.frames, seg.frames.length - FRAME_HEADER_SIZE - seg.meta.pageSize).dbPages;
    return { generation: gen, position: seg.meta.end, tail: seg.meta.tail, pages };
  }

  /**
   * Starts a generation: fixes a consistent image under a read pin, then stores it in
   * the background while transactions after it are already being read (and held back
   * until the snapshot is stored, so no segment exists without its base).
   */
  private async startGeneration(reason: GenerationReason): Promise<void> {
    await this.background?.catch(() => {});
    const generation = newGeneration();
    this.generation = generation;
    this.pending = [];
    this.pendingCommits = [];
    this.pendingBytes = 0;
    this.pendingTail = undefined;
    this.baseStored = false;
    this.baseFailed = false;
    this.lastIndex = undefined;
    this.lastVerified = undefined;
    this.divergence = undefined;
    this.nextVerify = Date.now() + this.opts.verifyIntervalMs;
    const imageConn = openDatabase(this.file, { busyTimeoutMs: this.opts.busyTimeoutMs });
    let model: PageModel | undefined;
    let placed!: () => void;
    const placedOrFailed = new Promise<void>((resolve) => (placed = resolve));
    let imageAt = 0;
    const stored = imageSnapshot(this.repo, imageConn, this.files as LiveFiles, {
      name: this.opts.name,
      place: (point) => {
        imageAt = Date.now();
        this.salts = point.cycle;
        this.hdr = point.wal;
        this.cycle = 0;
        this.cursor = point.cursor;
        this.shipped = { cycle: 0, frame: point.cursor.frame };
        model = new PageModel(point.pages);
        this.model = model;
        placed();
        return { generation, position: this.shipped };
      },
      onPages: (first, run, pageSize) => model?.applyBase(first, run, pageSize),
    });
    stored.catch(() => placed());
    await placedOrFailed;
    if (!model) {
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
            model?.baseDone();
            if (this.generation === generation) {
              this.baseStored = true;
              // The image was read from the live file: verified by construction.
              this.lastVerified = (s.consistency as unknown as SqliteConsistency).position as Position;
              this.verifiedAt = imageAt;
              this.problem = undefined;
              this.shippedSinceStatus = true; // the next status proves the new base at once
            }
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

  private async endGeneration(reason: GenerationReason): Promise<void> {
    await this.background?.catch(() => {});
    if (reason === 'diverged' && this.generation) {
      const d = this.divergence ?? { reason: 'diverged', trusted: this.lastVerified ?? null };
      // What was claimed archived since the last verification is not proven any more.
      this.provenAt = Math.min(this.provenAt, this.verifiedAt);
      this.problem = { message: `generation ${this.generation} of ${this.opts.name} no longer reproduces the database: ${d.reason}`, hint: 'a new generation starts with a fresh snapshot; restores of the old one stop at its last verified position' };
      this.emit({ kind: 'error', ...this.problem });
      await recordDivergence(this.repo, this.source, this.generation, { v: 1, detectedAt: new Date().toISOString(), reason: d.reason, verified: d.trusted });
      return;
    }
    if (this.baseStored) await this.ship();
  }

  // ---- reading the WAL -----------------------------------------------------

  /** Reads what SQLite committed since the last look, handing the pin over when anything changed. */
  private async observe(): Promise<void> {
    const files = this.files as LiveFiles;
    const gone = files.replaced();
    if (gone) {
      this.emit({ kind: 'error', message: `the ${gone === 'database' ? 'database file' : `-${gone} file`} of ${this.file} was replaced or deleted`, hint: 'a new generation starts with a fresh snapshot' });
      throw new GenerationBreak(gone === 'database' ? 'file-replaced' : 'wal-replaced');
    }
    const t = Date.now();
    const idx = files.walIndex();
    if (!idx) return; // being written: look again next poll
    const unchanged = this.lastIndex !== undefined && sameWalIndex(idx, this.lastIndex);
    this.waker?.settle(!unchanged);
    if (unchanged) {
      this.readAt = t - 1; // nothing was committed since: we hold all of it
      return;
    }
    // Frames after the pin cannot be overwritten while it is held (docs/sqlite.md), so
    // they are read without moving it; the pin moves at most every HANDOVER_MS, which
    // is what lets checkpoints copy further.
    if (t - this.lastHandover < HANDOVER_MS) {
      await this.catchUp();
      return;
    }
    this.lastHandover = t;
    const idle = this.reader(1 - this.held);
    beginRead(idle, this.file);
    try {
      // After the new pin: its snapshot is at or before what this reads.
      if (!(await this.catchUp())) {
        endRead(idle);
        return;
      }
    } catch (err) {
      endRead(idle);
      throw err;
    }
    endRead(this.reader(this.held));
    this.held = 1 - this.held;
  }

  /** Reads up to the wal-index's committed end; false when it could not be read this time. */
  async catchUp(): Promise<boolean> {
    const t = Date.now();
    const idx = (this.files as LiveFiles).walIndex();
    if (!idx) return false;
    await this.readTo(idx);
    this.lastIndex = idx;
    // A commit that returned in the millisecond of the look may have been published just after it.
    this.readAt = t - 1;
    return true;
  }

  /** Frames of the current cycle read so far (for checkpoint decisions). */
  get framesRead(): number {
    return this.hdr ? this.cursor.frame : 0;
  }

  /** Reads every transaction committed up to `idx` into the pending list and the page model. */
  private async readTo(idx: WalIndexHeader): Promise<void> {
    const files = this.files as LiveFiles;
    if (!this.salts || idx.salt1 !== this.salts.salt1 || idx.salt2 !== this.salts.salt2) {
      // A restart: by the pin we held since the last look, every frame of the old cycle
      // was read before it could happen (docs/sqlite.md).
      if (this.salts) this.cycle++;
      this.salts = { salt1: idx.salt1, salt2: idx.salt2 };
      this.hdr = undefined;
      this.cursor = { frame: 0, checksum: [0, 0] };
    }
    if (idx.mxFrame < this.cursor.frame) {
      this.diverge(`the WAL's committed end went back from frame ${this.cursor.frame} to ${idx.mxFrame} within one cycle`);
    }
    if (idx.mxFrame === this.cursor.frame) {
      if (idx.mxFrame > 0 && !sameChecksum(this.cursor.checksum, idx.frameChecksum)) {
        this.diverge(`the frames read up to ${idx.mxFrame} are not the ones SQLite committed (checksum)`);
      }
      return;
    }
    if (!this.hdr || this.cursor.frame === 0) {
      // The chain starts at the header as it is now (a first writer may rewrite it).
      const h = await files.wal.header();
      if (!h || h.salt1 !== idx.salt1 || h.salt2 !== idx.salt2) this.diverge('the WAL file does not carry the cycle the wal-index publishes');
      this.hdr = h;
      this.cursor = cycleStart(h);
    }
    const hdr = this.hdr;
    const frameSize = FRAME_HEADER_SIZE + hdr.pageSize;
    for (;;) {
      const got = await files.wal.readCommitted(hdr, this.cursor, 8 << 20, idx.mxFrame);
      if (got.commits.length === 0) break;
      const time = Date.now();
      if (this.pendingCommits.length === 0) this.shipBy = time + this.opts.intervalMs - this.shipMargin();
      for (const c of got.commits) {
        const end = this.pendingBytes + (c.frame - this.cursor.frame) * frameSize;
        this.pendingCommits.push({ cycle: this.cycle, frame: c.frame, time, end });
      }
      this.pending.push(got.data);
      this.pendingBytes += got.data.length;
      this.model?.applyFrames(got.data, hdr.pageSize);
      this.cursor = got.end;
      this.pendingTail = { salt1: hdr.salt1, salt2: hdr.salt2, checkpointSeq: hdr.checkpointSeq, checksum: got.end.checksum };
      this.stats.commits += got.commits.length;
      if (this.pendingBytes >= MAX_PENDING_BYTES && this.baseStored) await this.ship();
    }
    if (this.cursor.frame !== idx.mxFrame || !sameChecksum(this.cursor.checksum, idx.frameChecksum)) {
      this.diverge(`the WAL's frames up to ${idx.mxFrame} are not the ones SQLite committed (read to ${this.cursor.frame})`);
    }
  }

  /**
   * Ends the generation as not reproducing the database. Not knowing since when, only
   * what the last page-by-page verification proved stays trusted.
   */
  private diverge(reason: string): never {
    this.divergence = { reason, trusted: this.lastVerified ?? null };
    throw new GenerationBreak('diverged');
  }

  // ---- shipping ------------------------------------------------------------

  /** Two polls, and a tenth of the interval or twice the last upload's time, whichever is more. */
  private shipMargin(): number {
    return 2 * this.tick + Math.max(this.opts.intervalMs / 10, 2 * this.lastShipMs);
  }

  /** Stores the pending transactions as one segment; false when the store refused (kept for the next try). */
  private async ship(): Promise<boolean> {
    if (!this.baseStored || this.pendingCommits.length === 0 || !this.hdr || !this.pendingTail) return true;
    const last = this.pendingCommits[this.pendingCommits.length - 1] as Commit;
    const meta: SegmentMeta = {
      v: 1,
      pageSize: this.hdr.pageSize,
      start: this.shipped,
      end: { cycle: last.cycle, frame: last.frame },
      commits: this.pendingCommits,
      tail: this.pendingTail,
    };
    const name = segmentName(meta);
    const data = encodeSegment({ meta, frames: Buffer.concat(this.pending) });
    const started = Date.now();
    try {
      await this.repo.putLog(this.source, this.generation, name, data);
      this.lastShipMs = Date.now() - started;
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      this.problem = { message: `shipping failed: ${err.message}`, ...(err.hint ? { hint: err.hint } : {}) };
      this.emit({ kind: 'error', ...this.problem });
      return false;
    }
    const first = this.pendingCommits[0] as Commit;
    this.shipped = meta.end;
    this.pending = [];
    this.pendingCommits = [];
    this.pendingBytes = 0;
    this.shipBy = Infinity;
    this.stats.segments++;
    this.problem = undefined;
    this.shippedSinceStatus = true;
    this.emit({ kind: 'ship', generation: this.generation, segment: name, commits: meta.commits.length, bytes: data.length, lagMs: Date.now() - first.time });
    return true;
  }

  private status(now: number): void {
    const healthy = this.problem === undefined;
    const caughtUp = this.shippedSinceStatus && this.pendingCommits.length === 0;
    if (healthy === this.lastHealthy && !caughtUp && now - this.lastStatus < STATUS_EVERY_MS) return;
    this.lastHealthy = healthy;
    this.shippedSinceStatus = false;
    this.lastStatus = now;
    this.emit({
      kind: 'status',
      generation: this.generation,
      healthy,
      archivedThrough: this.provenAt ? new Date(this.provenAt).toISOString() : null,
      verifiedAt: this.verifiedAt ? new Date(this.verifiedAt).toISOString() : null,
      ...(this.problem ? { error: this.problem.message, ...(this.problem.hint ? { hint: this.problem.hint } : {}) } : {}),
    });
  }

  // ---- verification --------------------------------------------------------

  /**
   * Pins a read transaction exactly at the position read up to (the wal-index is the
   * same before and after it begins), freezes the page model there, and compares the
   * two in the background. Writers that keep committing make the exact point rare:
   * after ALIGN_TRIES misses the write lock is taken for a moment to get one.
   */
  private async startVerification(): Promise<void> {
    const files = this.files as LiveFiles;
    const pin = this.pinConn as Connection;
    if (!this.baseStored || !this.model || !this.salts) return;
    let aligned = false;
    const idx = files.walIndex();
    if (idx && this.lastIndex && sameWalIndex(idx, this.lastIndex)) {
      beginRead(pin, this.file);
      const after = files.walIndex();
      aligned = after !== undefined && sameWalIndex(after, idx);
      if (!aligned) endRead(pin);
    }
    if (!aligned && ++this.alignMisses >= ALIGN_TRIES) {
      try {
        this.writeLock.exec('BEGIN IMMEDIATE');
      } catch {
        return; // a long write transaction: try again next poll
      }
      try {
        aligned = await this.catchUp();
        if (aligned) beginRead(pin, this.file);
      } finally {
        this.writeLock.exec('ROLLBACK');
      }
    }
    if (!aligned) return;
    this.alignMisses = 0;
    const salts = this.salts;
    const at: CyclePosition = { ...salts, frame: this.cursor.frame, checksum: this.cursor.checksum };
    const position = { cycle: this.cycle, frame: this.cursor.frame };
    const view = this.model.view();
    const pinnedAt = Date.now();
    this.inBackground(this.verify(at, position, view, pinnedAt).finally(() => endRead(pin)));
  }

  private async verify(at: CyclePosition, position: Position, view: ModelView, pinnedAt: number): Promise<void> {
    const retry = () => void (this.nextVerify = Date.now() + 1000);
    if (!view.complete) return retry(); // the base is still being stored or rebuilt
    const live = await liveView(this.files as LiveFiles, at);
    if (!live) return retry(); // the WAL moved on while it was read
    const took = Date.now() - pinnedAt;
    this.nextVerify = Date.now() + Math.max(this.opts.verifyIntervalMs, VERIFY_DUTY * took);
    const diff = firstDifference(view, live);
    if (diff) {
      this.divergence = { reason: `the stored history differs from the database at ${diff.reason} (position ${position.cycle}/${position.frame})`, trusted: this.lastVerified ?? null };
      this.emit({ kind: 'diverged', generation: this.generation, position, reason: diff.reason });
      return;
    }
    this.lastVerified = position;
    this.verifiedAt = pinnedAt;
    this.stats.verifications++;
    this.problem = undefined;
    this.emit({ kind: 'verified', generation: this.generation, position, pages: live.pages, durationMs: took });
  }

  /** A resumed generation's model: the repository's history up to where it resumed. */
  private async rebuildModel(model: PageModel, generation: string, at: Position): Promise<void> {
    try {
      model.applyStored(await storedView(this.repo, this.opts.name, generation, at));
    } catch (err) {
      if (isLifeboatError(err, 'CORRUPT') && this.generation === generation) {
        this.divergence = { reason: `the repository cannot rebuild it: ${err.message}`, trusted: null };
      }
      throw err;
    }
  }

  // ---- background work -----------------------------------------------------

  private inBackground(task: Promise<void>): void {
    this.background = task
      .catch((err: unknown) => {
        const e = isLifeboatError(err) ? err : new LifeboatError('FAILED', String(err));
        this.problem = { message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
        this.emit({ kind: 'error', ...this.problem });
      })
      .finally(() => {
        this.background = undefined;
      });
  }

  /**
   * A snapshot within the current generation, from a connection of its own; placed at
   * the position it saw when that is in the cycle being read (false otherwise: tried
   * again a moment later).
   */
  private async periodicSnapshot(): Promise<boolean> {
    const generation = this.generation;
    const conn = openDatabase(this.file, { busyTimeoutMs: this.opts.busyTimeoutMs });
    try {
      const s = await imageSnapshot(this.repo, conn, this.files as LiveFiles, {
        name: this.opts.name,
        place: (point: ImagePoint) => {
          const cur = this.salts;
          if (generation !== this.generation || !point.cycle || !cur) return null;
          if (point.cycle.salt1 !== cur.salt1 || point.cycle.salt2 !== cur.salt2) return null;
          return { generation, position: { cycle: this.cycle, frame: point.cursor.frame } };
        },
      });
      if (!s) return false;
      this.stats.snapshots++;
      this.problem = undefined;
      const c = s.consistency as unknown as SqliteConsistency;
      this.emit({ kind: 'snapshot', generation, id: s.id, position: c.position as Position, bytes: s.summary.totalBytes, addedBytes: s.summary.addedBytes });
      return true;
    } finally {
      conn.close();
    }
  }

  private async compact(generation: string): Promise<void> {
    const r = await compactGeneration(this.repo, this.source, generation, Date.now());
    this.problem = undefined;
    if (r.merged > 0) this.emit({ kind: 'compact', generation, merged: r.merged, into: r.into });
  }

  emit(e: ReplicateEvent): void {
    this.opts.onEvent?.(e);
  }
}

export type { Replicator };
