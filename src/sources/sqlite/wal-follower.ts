/**
 * Following a live SQLite database's WAL for the replicator: every transaction SQLite
 * commits, read once, in order, before it can be overwritten (docs/sqlite.md has the
 * argument).
 *
 * - What is committed is what SQLite publishes in the wal-index (`-shm`): the last
 *   committed frame and the checksum chain there. Frames past it (a writer that died
 *   inside COMMIT) are never read; the frames read must end on that checksum.
 * - A read transaction of ours is open at every moment ("the pin"); a new one begins
 *   before the old one ends, and before it ends we have read past the old one's
 *   snapshot. SQLite then cannot restart the WAL over a frame we have not read, so a
 *   new cycle seen between two looks continues the last one, whichever connection
 *   restarted it (no counter in the WAL header is trusted for that).
 * - The database, its WAL and its wal-index are read through descriptors held until
 *   every connection is closed (sources/sqlite/live-files.ts); every look also checks
 *   that the paths still name those files.
 */
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import { beginRead, endRead, ensureWal, openDatabase, sameChecksum, type Connection } from './database.js';
import { LiveFiles } from './live-files.js';
import { sameCycle, sameWalIndex, type WalIndexHeader } from './wal-index.js';
import { cycleStart, type WalCursor, type WalHeader } from './wal.js';
import { LOCK_WAIT_MS, LOCKED_READ_FRAMES, type CheckpointHost } from './checkpoint.js';
import type { GenerationReason, ReplicateEvent } from './replicate.js';
import type { Position, WalTail } from './segment.js';
import { Waker } from './waker.js';

/** How often at most the read pin moves on (two read transactions) while transactions arrive. */
const HANDOVER_MS = 25;

/** The history cannot be proven continuous: the generation ends. */
export class GenerationBreak extends Error {
  constructor(
    readonly reason: GenerationReason,
    /** For a divergence: what was found. */
    readonly detail?: string,
  ) {
    super(detail ?? `generation ends: ${reason}`);
  }
}

/** Whole transactions just read. */
export interface Transactions {
  /** Their frames, as SQLite wrote them. */
  data: Buffer;
  pageSize: number;
  /** The frame of the cycle `data` starts after. */
  from: number;
  /** Each transaction's commit frame. */
  commits: Position[];
  /** The WAL cycle and checksum chain after the last of them. */
  tail: WalTail;
}

/** Where reading stands: the WAL cycle (by its salts, and its header once written), the cycle count and the cursor in it. */
export interface FollowPoint {
  salts: { salt1: number; salt2: number } | undefined;
  hdr: WalHeader | undefined;
  cycle: number;
  cursor: WalCursor;
}

export interface FollowerOptions {
  busyTimeoutMs: number;
  enableWal: boolean;
  /** The fastest look interval (ms). */
  fastMs: number;
  onRead: (t: Transactions) => Promise<void>;
  emit: (e: ReplicateEvent) => void;
}

export class WalFollower implements CheckpointHost, FollowPoint {
  held = 0;
  private lastHandover = 0;
  salts: FollowPoint['salts'];
  hdr: WalHeader | undefined;
  cycle = 0;
  cursor: WalCursor = { frame: 0, checksum: [0, 0] };
  /** The wal-index state read up to, and the moment before which everything committed is in it. */
  private lastIndex: WalIndexHeader | undefined;
  readAt = 0;

  private constructor(
    readonly path: string,
    readonly files: LiveFiles,
    private readonly readers: [Connection, Connection],
    /** Takes the write lock for checkpoints and exact pins, never to write. */
    readonly writeLock: Connection,
    /** Holds a verification's position while the live file is read. */
    readonly pinConn: Connection,
    readonly waker: Waker,
    private readonly opts: FollowerOptions,
  ) {}

  static async open(file: string, opts: FollowerOptions): Promise<WalFollower> {
    const o = { busyTimeoutMs: opts.busyTimeoutMs };
    const conns: Connection[] = [];
    let files: LiveFiles | undefined;
    try {
      const first = openDatabase(file, o);
      conns.push(first);
      ensureWal(first, file, opts.enableWal);
      for (let i = 0; i < 2; i++) conns.push(openDatabase(file, o));
      // The write lock is skipped rather than waited for: while we wait the application
      // keeps writing, and all of that would have to be read while it then waits for us.
      conns.push(openDatabase(file, { busyTimeoutMs: LOCK_WAIT_MS }));
      // Our connections never write, but a connection's own autocheckpoint would.
      for (const c of conns) c.pragma('wal_autocheckpoint = 0');
      files = await LiveFiles.open(file);
      if (!files.hasWalIndex) {
        throw new LifeboatError('USAGE', `${file} has no ${path.basename(file)}-shm although it is in WAL mode`, {
          hint: 'replication needs the shared-memory wal-index: a database in locking_mode=EXCLUSIVE cannot be replicated',
        });
      }
    } catch (err) {
      for (const c of conns) c.close();
      await files?.close();
      throw err;
    }
    const [a, b, pin, writer] = conns as [Connection, Connection, Connection, Connection];
    return new WalFollower(file, files, [a, b], writer, pin, new Waker(`${file}-wal`, opts.fastMs), opts);
  }

  async close(): Promise<void> {
    for (const c of [this.writeLock, this.pinConn, ...this.readers]) {
      if (c.open) {
        if (c.inTransaction) c.exec('ROLLBACK');
        c.close();
      }
    }
    this.waker.close();
    // Only now: closing a descriptor while a connection is open drops SQLite's locks.
    await this.files.close();
  }

  reader(i: number): Connection {
    return this.readers[i] as Connection;
  }

  emit(e: ReplicateEvent): void {
    this.opts.emit(e);
  }

  /** Frames of the current WAL cycle read so far (for checkpoint decisions). */
  get framesRead(): number {
    return this.hdr ? this.cursor.frame : 0;
  }

  get position(): Position {
    return { cycle: this.cycle, frame: this.cursor.frame };
  }

  /** Reading continues from `p` (an image's point, or where a resumed generation ended). */
  placeAt(p: FollowPoint): void {
    this.salts = p.salts;
    this.hdr = p.hdr;
    this.cycle = p.cycle;
    this.cursor = p.cursor;
    this.lastIndex = undefined;
  }

  /**
   * Takes the pin and says whether the WAL still holds `tail` at `at` (same cycle, that
   * frame with that checksum): then reading continues there. Otherwise the pin is let go.
   */
  async resume(at: Position, tail: WalTail): Promise<boolean> {
    beginRead(this.reader(this.held), this.path);
    const idx = this.files.walIndex();
    let same = idx !== undefined && idx.salt1 === tail.salt1 && idx.salt2 === tail.salt2 && idx.mxFrame >= at.frame;
    let hdr: WalHeader | undefined;
    if (same && at.frame > 0) {
      hdr = await this.files.wal.header();
      same = hdr !== undefined && hdr.salt1 === tail.salt1 && hdr.salt2 === tail.salt2 && (await this.files.wal.holds(hdr, { frame: at.frame, checksum: tail.checksum }));
    }
    if (!same) {
      endRead(this.reader(this.held));
      return false;
    }
    this.placeAt({ salts: { salt1: tail.salt1, salt2: tail.salt2 }, hdr, cycle: at.cycle, cursor: { frame: at.frame, checksum: tail.checksum } });
    return true;
  }

  /** Reads what SQLite committed since the last look, moving the pin on when it is due. */
  async observe(): Promise<void> {
    const gone = this.files.replaced();
    if (gone) {
      this.emit({ kind: 'error', message: `the ${gone === 'database' ? 'database file' : `-${gone} file`} of ${this.path} was replaced or deleted`, hint: 'a new generation starts with a fresh snapshot' });
      throw new GenerationBreak(gone === 'database' ? 'file-replaced' : 'wal-replaced');
    }
    const t = Date.now();
    const idx = this.files.walIndex();
    if (!idx) return; // being written: look again next time
    const unchanged = this.lastIndex !== undefined && sameWalIndex(idx, this.lastIndex);
    this.waker.settle(!unchanged);
    if (unchanged) {
      this.readAt = t - 1; // nothing was committed since: we hold all of it
      return;
    }
    // Frames after the pin cannot be overwritten while it is held, so they are read
    // without moving it; it moves at most every HANDOVER_MS, which lets checkpoints
    // copy further.
    if (t - this.lastHandover < HANDOVER_MS) {
      await this.catchUp();
      return;
    }
    this.lastHandover = t;
    const idle = this.reader(1 - this.held);
    beginRead(idle, this.path);
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
    const idx = this.files.walIndex();
    if (!idx) return false;
    await this.readTo(idx);
    this.lastIndex = idx;
    // A commit that returned in the millisecond of the look may have been published just after it.
    this.readAt = t - 1;
    return true;
  }

  /**
   * Pins `pinConn` exactly at the position read up to: the wal-index is the same before
   * and after the pin begins. With `lock`, the write lock is taken for a moment to get
   * one against writers that never pause. False when writers got in between.
   */
  async pinExactly(lock: boolean): Promise<boolean> {
    if (!lock) {
      const idx = this.files.walIndex();
      if (!idx || !this.lastIndex || !sameWalIndex(idx, this.lastIndex)) return false;
      beginRead(this.pinConn, this.path);
      const after = this.files.walIndex();
      if (after && sameWalIndex(after, idx)) return true;
      endRead(this.pinConn);
      return false;
    }
    // The application's writers wait while we hold the lock: read what is new first,
    // with them running, and under the lock only a little (as a checkpoint does), or
    // try again later. Unbounded, a replicator starved of CPU held the lock for seconds
    // and an application with a 5 s busy timeout failed with "database is locked".
    await this.catchUp();
    try {
      this.writeLock.exec('BEGIN IMMEDIATE');
    } catch {
      return false; // a long write transaction: try again later
    }
    try {
      const idx = this.files.walIndex();
      if (!idx) return false;
      const left = idx.mxFrame - (this.salts && sameCycle(idx, this.salts) ? this.cursor.frame : 0);
      if (left > LOCKED_READ_FRAMES) return false;
      if (!(await this.catchUp())) return false;
      beginRead(this.pinConn, this.path);
      return true;
    } finally {
      this.writeLock.exec('ROLLBACK');
    }
  }

  /** Reads every transaction committed up to `idx`, handing it to `onRead` in pieces of at most 8 MiB. */
  private async readTo(idx: WalIndexHeader): Promise<void> {
    if (!this.salts || idx.salt1 !== this.salts.salt1 || idx.salt2 !== this.salts.salt2) {
      // A restart: by the pin we held since the last look, every frame of the old cycle
      // was read before it could happen.
      if (this.salts) this.cycle++;
      this.salts = { salt1: idx.salt1, salt2: idx.salt2 };
      this.hdr = undefined;
      this.cursor = { frame: 0, checksum: [0, 0] };
    }
    if (idx.mxFrame < this.cursor.frame) {
      throw new GenerationBreak('diverged', `the WAL's committed end went back from frame ${this.cursor.frame} to ${idx.mxFrame} within one cycle`);
    }
    if (idx.mxFrame === this.cursor.frame) {
      if (idx.mxFrame > 0 && !sameChecksum(this.cursor.checksum, idx.frameChecksum)) {
        throw new GenerationBreak('diverged', `the frames read up to ${idx.mxFrame} are not the ones SQLite committed (checksum)`);
      }
      return;
    }
    if (!this.hdr || this.cursor.frame === 0) {
      // The chain starts at the header as it is now (a first writer may rewrite it).
      const h = await this.files.wal.header();
      if (!h || h.salt1 !== idx.salt1 || h.salt2 !== idx.salt2) throw new GenerationBreak('diverged', 'the WAL file does not carry the cycle the wal-index publishes');
      this.hdr = h;
      this.cursor = cycleStart(h);
    }
    const hdr = this.hdr;
    for (;;) {
      const got = await this.files.wal.readCommitted(hdr, this.cursor, 8 << 20, idx.mxFrame);
      if (got.commits.length === 0) break;
      const from = this.cursor.frame;
      this.cursor = got.end;
      await this.opts.onRead({
        data: got.data,
        pageSize: hdr.pageSize,
        from,
        commits: got.commits.map((c) => ({ cycle: this.cycle, frame: c.frame })),
        tail: { salt1: hdr.salt1, salt2: hdr.salt2, checkpointSeq: hdr.checkpointSeq, checksum: got.end.checksum },
      });
    }
    if (this.cursor.frame !== idx.mxFrame || !sameChecksum(this.cursor.checksum, idx.frameChecksum)) {
      throw new GenerationBreak('diverged', `the WAL's frames up to ${idx.mxFrame} are not the ones SQLite committed (read to ${this.cursor.frame})`);
    }
  }
}
