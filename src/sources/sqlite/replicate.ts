/**
 * Continuous SQLite replication: ships every committed transaction from the WAL to the
 * repository about once a second, so a database can be restored to any moment, and
 * proves what it shipped instead of assuming it. docs/sqlite.md has the argument.
 *
 * - wal-follower.ts reads every transaction SQLite commits, and nothing else, through
 *   descriptors and read pins held so that none can be overwritten or deleted unread.
 * - A generation is one provable history: a snapshot, then segments of transactions.
 *   When continuity cannot be proven (the file or WAL replaced, a difference found) the
 *   generation ends and the next starts with a fresh snapshot; a restarted replicator
 *   continues the newest generation when the WAL still holds where it ended.
 * - A page model of what was shipped is compared, page by page, with the live database
 *   every `verifyIntervalMs` (verify-live.ts); a difference records the generation as
 *   diverged (restores stop at the last verified position) and starts a new one.
 * - `status` events say whether all is well and until when everything committed is
 *   known to be in the repository (`archivedThrough`): the daemon's RPO.
 *
 * Holding pins stops SQLite's own checkpoints from restarting the WAL, so the
 * replicator checkpoints itself (checkpoint.ts).
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { STATUS_EVERY_MS, StatusReporter, type ArchiveStatus } from '../../engine/archive-status.js';
import type { Repository } from '../../repo/repository.js';
import { endRead, openDatabase, type CyclePosition, type ImagePoint } from './database.js';
import { FRAME_HEADER_SIZE } from './wal.js';
import { imageSnapshot, logSource } from './backup.js';
import { checkpoint } from './checkpoint.js';
import { compactGeneration } from './compact.js';
import { generationEnd, recordDivergence } from './history.js';
import { firstDifference, PageModel, type ModelView } from './page-model.js';
import { encodeSegment, segmentName, type Commit, type Position, type SegmentMeta, type WalTail } from './segment.js';
import { liveView, storedView } from './verify-live.js';
import { GenerationBreak, WalFollower, type Transactions } from './wal-follower.js';
import { requireSqlitePoint } from './point.js';
import type { GraphDeclaration } from '../graph/options.js';

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
  /** The source's declared graph: every snapshot records its counts and query latencies. */
  graph?: GraphDeclaration;
  signal: AbortSignal;
  onEvent?: (e: ReplicateEvent) => void;
}

export type ReplicateEvent =
  | { kind: 'generation'; generation: string; reason: GenerationReason }
  | { kind: 'snapshot'; generation: string; id: string; position: Position; bytes: number; addedBytes: number }
  | { kind: 'ship'; generation: string; segment: string; commits: number; bytes: number; lagMs: number }
  /**
   * Every interval (at most 5 s), at once when health changes and when a ship leaves nothing pending: everything committed
   * at or before `archivedThrough` is in the repository (null: nothing proven yet).
   */
  | (ArchiveStatus & { generation: string })
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

/** Bytes of unshipped frames that force a segment out before the interval (memory bound). */
const MAX_PENDING_BYTES = 32 << 20;
/**
 * How often at most the wal-index is looked at while transactions arrive, and so how
 * precisely a transaction's time is known (a restore to a time includes what had been
 * seen by then); waker.ts says when the looks happen. A look is one 136-byte read and
 * six stats; a read transaction is taken only when something changed.
 */
const OBSERVE_MS = 5;
/** Pause after a failed ship before trying again: a store that is down is not hammered. */
const RETRY_MS = 2000;
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
  private follower: WalFollower | undefined;
  private generation = '';

  private shipped: Position = { cycle: 0, frame: 0 };
  private pending: Buffer[] = [];
  private pendingCommits: Commit[] = [];
  /** The number the next transaction read gets (segment.ts's Commit.seq); undefined: this generation's history has none. */
  private nextSeq: number | undefined;
  private pendingBytes = 0;
  private pendingTail: WalTail | undefined;
  private pageSize = 0;
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
  /** Once an interval (as `pg stream`), so an idle database's RPO is seconds, not the 5 s heartbeat. */
  private readonly reporter: StatusReporter;
  /** A segment went out since the last status: the next status that finds nothing pending says so at once. */
  private shippedSinceStatus = false;

  /** The fastest look at the wal-index (ms). */
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
    this.reporter = new StatusReporter((s) => this.emit({ ...s, generation: this.generation }), Math.min(opts.intervalMs, STATUS_EVERY_MS));
  }

  private get w(): WalFollower {
    return this.follower as WalFollower;
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
          await this.w.observe();
          await checkpoint(this.w, opts.checkpointFrames);
          const now = Date.now();
          if (now >= this.shipBy || this.pendingBytes >= MAX_PENDING_BYTES) {
            if (!(await this.ship())) this.shipBy = now + RETRY_MS;
          }
          if (this.baseStored && this.pendingCommits.length === 0) this.provenAt = Math.max(this.provenAt, this.w.readAt);
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
          this.status();
        } catch (err) {
          if (!(err instanceof GenerationBreak)) throw err;
          if (err.reason === 'diverged' && err.detail) this.divergence ??= { reason: err.detail, trusted: this.lastVerified ?? null };
          await this.endGeneration(err.reason);
          await this.reopen();
          await this.startGeneration(err.reason);
        }
        await this.w.waker.wait(opts.signal);
      }
      // Clean stop: everything committed so far goes out before we exit.
      await this.w.observe().catch((err: unknown) => {
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
      await this.follower?.close();
    }
  }

  private async open(): Promise<void> {
    this.follower = await WalFollower.open(this.file, {
      busyTimeoutMs: this.opts.busyTimeoutMs,
      enableWal: this.opts.enableWal,
      fastMs: this.tick,
      onRead: (t) => this.read(t),
      emit: (e) => this.emit(e),
    });
  }

  private async reopen(): Promise<void> {
    await this.follower?.close();
    this.follower = undefined;
    await this.open();
  }

  // ---- generations ---------------------------------------------------------

  /** Continues the newest generation if the WAL still holds where it ended, or starts one. */
  private async begin(): Promise<void> {
    const end = await generationEnd(this.repo, this.opts.name);
    if (!end) return this.startGeneration('first');
    if (!(await this.w.resume(end.position, end.tail))) return this.startGeneration('wal-moved');
    this.generation = end.generation;
    this.shipped = end.position;
    this.nextSeq = end.seq === undefined ? undefined : end.seq + 1;
    this.baseStored = true;
    const model = new PageModel(end.pages);
    this.model = model;
    this.emit({ kind: 'generation', generation: end.generation, reason: 'resumed' });
    this.inBackground(this.rebuildModel(model, end.generation, end.position));
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
    this.nextSeq = 1;
    this.pendingBytes = 0;
    this.pendingTail = undefined;
    this.baseStored = false;
    this.baseFailed = false;
    this.lastVerified = undefined;
    this.divergence = undefined;
    this.nextVerify = Date.now() + this.opts.verifyIntervalMs;
    const imageConn = openDatabase(this.file, { busyTimeoutMs: this.opts.busyTimeoutMs });
    let model: PageModel | undefined;
    let placed!: () => void;
    const placedOrFailed = new Promise<void>((resolve) => (placed = resolve));
    let imageAt = 0;
    const stored = imageSnapshot(this.repo, imageConn, this.w.files, {
      name: this.opts.name,
      ...(this.opts.graph ? { graph: this.opts.graph } : {}),
      place: (point) => {
        imageAt = Date.now();
        this.w.placeAt({ salts: point.cycle, hdr: point.wal, cycle: 0, cursor: point.cursor });
        this.shipped = this.w.position;
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
    // first look takes a pin of its own before that one ends.
    this.inBackground(
      stored
        .then(
          (s) => {
            if (!s) return;
            this.stats.snapshots++;
            model?.baseDone();
            const c = requireSqlitePoint(s);
            if (this.generation === generation) {
              this.baseStored = true;
              // The image was read from the live file: verified by construction.
              this.lastVerified = c.position as Position;
              this.verifiedAt = imageAt;
              this.problem = undefined;
              this.shippedSinceStatus = true; // the next status proves the new base at once
            }
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
      this.reporter.retract(this.provenAt ? new Date(this.provenAt) : null);
      this.problem = {
        message: `generation ${this.generation} of ${this.opts.name} no longer reproduces the database: ${d.reason}`,
        hint: 'a new generation starts with a fresh snapshot; restores of the old one stop at its last verified position',
      };
      this.emit({ kind: 'error', ...this.problem });
      await recordDivergence(this.repo, this.source, this.generation, { v: 1, detectedAt: new Date().toISOString(), reason: d.reason, verified: d.trusted });
      return;
    }
    if (this.baseStored) await this.ship();
  }

  // ---- shipping ------------------------------------------------------------

  /** Transactions the follower read: held until the next ship, and laid over the page model. */
  private async read(t: Transactions): Promise<void> {
    const time = Date.now();
    const frameSize = FRAME_HEADER_SIZE + t.pageSize;
    if (this.pendingCommits.length === 0) this.shipBy = time + this.opts.intervalMs - this.shipMargin();
    for (const c of t.commits) {
      const seq = this.nextSeq === undefined ? {} : { seq: this.nextSeq++ };
      this.pendingCommits.push({ ...c, time, end: this.pendingBytes + (c.frame - t.from) * frameSize, ...seq });
    }
    this.pending.push(t.data);
    this.pendingBytes += t.data.length;
    this.pendingTail = t.tail;
    this.pageSize = t.pageSize;
    this.model?.applyFrames(t.data, t.pageSize);
    this.stats.commits += t.commits.length;
    if (this.pendingBytes < MAX_PENDING_BYTES) return;
    // Until the generation's base is stored nothing may ship, and a writer outrunning a
    // slow snapshot would grow what is held here without bound (1.8 GB seen under load):
    // wait for the base instead, so the WAL waits on disk under our pin, not in memory.
    if (!this.baseStored) await this.background?.catch(() => {});
    if (this.baseStored) await this.ship();
  }
  /** Two polls, and a tenth of the interval or twice the last upload's time, whichever is more. */
  private shipMargin(): number {
    return 2 * this.tick + Math.max(this.opts.intervalMs / 10, 2 * this.lastShipMs);
  }

  /** Stores the pending transactions as one segment; false when the store refused (kept for the next try). */
  private async ship(): Promise<boolean> {
    if (!this.baseStored || this.pendingCommits.length === 0 || !this.pendingTail) return true;
    const last = this.pendingCommits[this.pendingCommits.length - 1] as Commit;
    const meta: SegmentMeta = {
      v: 1,
      pageSize: this.pageSize,
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

  private status(): void {
    const caughtUp = this.shippedSinceStatus && this.pendingCommits.length === 0;
    if (caughtUp) this.shippedSinceStatus = false;
    this.reporter.report(
      {
        healthy: this.problem === undefined,
        archivedThrough: this.provenAt ? new Date(this.provenAt) : null,
        verifiedAt: this.verifiedAt ? new Date(this.verifiedAt) : null,
        error: this.problem?.message,
        hint: this.problem?.hint,
      },
      caughtUp,
    );
  }

  // ---- verification --------------------------------------------------------

  /**
   * Pins a read transaction exactly at the position read up to (the wal-index is the
   * same before and after it begins), freezes the page model there, and compares the
   * two in the background. Writers that keep committing make the exact point rare:
   * after ALIGN_TRIES misses the write lock is taken for a moment to get one.
   */
  private async startVerification(): Promise<void> {
    if (!this.baseStored || !this.model || !this.w.salts) return;
    const lock = this.alignMisses + 1 >= ALIGN_TRIES;
    if (!(await this.w.pinExactly(lock))) {
      this.alignMisses++;
      return;
    }
    this.alignMisses = 0;
    const w = this.w;
    const at: CyclePosition = { ...(w.salts as { salt1: number; salt2: number }), frame: w.cursor.frame, checksum: w.cursor.checksum };
    const view = this.model.view();
    const pinnedAt = Date.now();
    this.inBackground(this.verify(at, w.position, view, pinnedAt).finally(() => endRead(w.pinConn)));
  }

  private async verify(at: CyclePosition, position: Position, view: ModelView, pinnedAt: number): Promise<void> {
    const retry = () => void (this.nextVerify = Date.now() + 1000);
    if (!view.complete) return retry(); // the base is still being stored or rebuilt
    const live = await liveView(this.w.files, at);
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
      const s = await imageSnapshot(this.repo, conn, this.w.files, {
        name: this.opts.name,
        ...(this.opts.graph ? { graph: this.opts.graph } : {}),
        place: (point: ImagePoint) => {
          const cur = this.w.salts;
          if (generation !== this.generation || !point.cycle || !cur) return null;
          if (point.cycle.salt1 !== cur.salt1 || point.cycle.salt2 !== cur.salt2) return null;
          return { generation, position: { cycle: this.w.cycle, frame: point.cursor.frame } };
        },
      });
      if (!s) return false;
      this.stats.snapshots++;
      this.problem = undefined;
      const c = requireSqlitePoint(s);
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

  private emit(e: ReplicateEvent): void {
    this.opts.onEvent?.(e);
  }
}

