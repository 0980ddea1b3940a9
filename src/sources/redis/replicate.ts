/**
 * Continuous Redis replication: the replicator stays attached to the server as a
 * replica (sync.ts) and ships the command stream to the repository every interval, so
 * a restore can replay it onto a base RDB up to any second. docs/redis.md has the argument.
 *
 * - A generation is one unbroken replication history (segment.ts): a full
 *   synchronisation's RDB as its base snapshot, then segments from the base's offset on.
 *   A link that breaks is re-opened with `PSYNC <replid> <shipped+1>`: when the server's
 *   backlog still holds what we had not shipped (+CONTINUE) the generation goes on with
 *   no gap; otherwise (+FULLRESYNC: the backlog moved on, or the server restarted without
 *   persistence and has a new history) a new generation starts from the fresh RDB and a
 *   `loss` event says which moments may be missing. A replicator started again (after
 *   `kill -9`) tries the same from where the newest generation's stored history ends.
 * - Only bytes up to a cut point (a command boundary outside MULTI…EXEC) are shipped; the
 *   rest waits for the next one. What was not shipped when the link broke is simply asked
 *   for again.
 * - Proof, not assumption: every interval the server's own `master_repl_offset` is read on
 *   a separate connection at a time t0; once every byte up to it is shipped, everything
 *   the server acknowledged before t0 is in the repository, and `archivedThrough` = t0.
 *   An idle server's RPO is then about one interval, and a stuck link shows as a proof
 *   that stops advancing (unhealthy).
 * - Every shipped transaction (a write command, or a whole MULTI…EXEC block) is numbered
 *   in its generation: 1, 2, … from the generation's first RDB, carried on when the
 *   generation resumes; each segment records the number of its first and how many it holds.
 * - Every snapshot interval a second full synchronisation (another connection, rdb-only)
 *   stores a fresh base in the same generation, so restores replay at most that much.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { StatusReporter, STATUS_EVERY_MS, type ArchiveStatus } from '../../engine/archive-status.js';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { rdbSnapshot, serverFacts } from './backup.js';
import { RedisConnection, RedisRefusedError, type RedisTarget } from './connection.js';
import { compactGeneration } from './compact.js';
import { logSource } from './names.js';
import { requireRedisPoint } from './point.js';
import { generationEnd, type GenerationEnd } from './history.js';
import { encodeSegment, segmentName, type Mark, type SegmentMeta } from './segment.js';
import { ReplicaLink, type StreamChunk } from './sync.js';

export interface ReplicateOptions {
  target: RedisTarget;
  password?: string | undefined;
  name: string;
  /** How often the received stream is shipped: the data-loss window. */
  intervalMs: number;
  /** How often a fresh RDB bounds what a restore replays. */
  snapshotIntervalMs: number;
  signal: AbortSignal;
  onEvent?: (e: ReplicateEvent) => void;
}

export type GenerationReason = 'first' | 'resumed' | 'full-resync';

export type ReplicateEvent =
  | { kind: 'generation'; generation: string; reason: GenerationReason; replid: string; offset: number }
  | { kind: 'snapshot'; generation: string; id: string; offset: number; bytes: number; addedBytes: number }
  | { kind: 'ship'; generation: string; segment: string; start: number; end: number; bytes: number; lagMs: number }
  /** The history could not be continued: what was written between `since` (the last proven moment) and `until` (the new base) may be missing. */
  | { kind: 'loss'; generation: string; previous: string; since: string | null; until: string; message: string }
  | { kind: 'compact'; generation: string; merged: number; into: number }
  | (ArchiveStatus & { generation: string })
  | { kind: 'error'; message: string; hint?: string | undefined };

export interface ReplicateSummary {
  generation: string;
  bytes: number;
  segments: number;
  snapshots: number;
}

/** A generation id: creation time in hex (so ids sort by age) and a random tail (point.ts: 20 hex digits). */
export function newGeneration(now = Date.now()): string {
  return now.toString(16).padStart(12, '0') + randomBytes(4).toString('hex');
}

/** Received bytes that force a ship before the interval (memory bound; a transaction longer than this waits whole). */
const MAX_PENDING_BYTES = 32 << 20;
/** Pause before reconnecting, or after a failed ship: a server or store that is down is not hammered. */
const RETRY_MS = 1000;
/** How often finished minutes' segments are merged (compact.ts). */
const COMPACT_EVERY_MS = 60_000;
/** Proofs not yet met are kept at most this many (one per interval). */
const MAX_PROOFS = 1000;

interface Problem {
  message: string;
  hint?: string | undefined;
}

export async function replicate(repo: Repository, opts: ReplicateOptions): Promise<ReplicateSummary> {
  return new Replicator(repo, opts).run();
}

class Replicator {
  private readonly source: string;
  private generation = '';
  private replid = '';
  /** Everything up to this offset is in the repository. */
  private shipped = 0;
  private received = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private marks: Mark[] = [];
  /** Transactions ending up to each pending mark (since the mark before). */
  private markTxns: number[] = [];
  /** The number the next transaction shipped gets; undefined while resuming history written without numbers. */
  private nextTxn: number | undefined = 1;
  /** The database selected at each pending mark, and where the shipped stream ends (segment.ts's `db`). */
  private markDbs: Array<number | undefined> = [];
  private shippedDb: number | undefined;
  private firstPendingAt = 0;
  private shipping: Promise<void> = Promise.resolve();
  /** Where the stored history ends, to continue from (and when it was last proven, for a loss report). */
  private resumeFrom: GenerationEnd | undefined;
  private provenAt = 0;
  private proofs: Array<{ t0: number; offset: number }> = [];
  private probe: RedisConnection | undefined;
  private proving: Promise<void> | undefined;
  private problem: Problem | undefined;
  private readonly reporter: StatusReporter;
  private nextSnapshot = 0;
  private nextCompact = Date.now() + COMPACT_EVERY_MS;
  private background: Promise<void> | undefined;
  private readonly stats = { bytes: 0, segments: 0, snapshots: 0 };
  /** A link was opened once: later refusals (a password changed on the server) are retried and reported, not fatal. */
  private linked = false;

  constructor(
    private readonly repo: Repository,
    private readonly opts: ReplicateOptions,
  ) {
    this.source = logSource(opts.name);
    this.reporter = new StatusReporter((s) => this.emit({ ...s, generation: this.generation }), Math.min(opts.intervalMs, STATUS_EVERY_MS));
  }

  async run(): Promise<ReplicateSummary> {
    const { opts } = this;
    const beat = setInterval(() => this.status(), Math.min(opts.intervalMs, STATUS_EVERY_MS));
    try {
      this.resumeFrom = await generationEnd(this.repo, opts.name);
      let lastShipFailed = false;
      while (!opts.signal.aborted) {
        let link: ReplicaLink | undefined;
        try {
          link = await this.connect();
          await this.follow(link);
        } catch (err) {
          if (opts.signal.aborted) break;
          if (!isLifeboatError(err)) throw err;
          // Refused at start-up: the settings are wrong, and retrying would only look like an outage.
          if (err instanceof RedisRefusedError && !this.linked) throw err;
          const repeated = this.problem?.message === err.message;
          this.problem = { message: err.message, hint: err.hint ?? 'the replicator reconnects by itself' };
          // A server that stays down is one error line, not one a second; the status keeps saying so.
          if (!repeated) this.emit({ kind: 'error', ...this.problem });
          this.status();
          await sleep(RETRY_MS, undefined, { signal: opts.signal }).catch(() => {});
        } finally {
          link?.close();
          await this.shipping.catch(() => {});
          if (this.generation) lastShipFailed = !(await this.ship().catch(() => false));
          // Whatever was received and not shipped is asked for again.
          this.dropPending();
          if (this.generation) {
            this.resumeFrom = {
              generation: this.generation,
              replid: this.replid,
              offset: this.shipped,
              lastTime: this.provenAt,
              baseTime: 0,
              ...(this.nextTxn !== undefined ? { lastTxn: this.nextTxn - 1 } : {}),
              ...(this.shippedDb !== undefined ? { db: this.shippedDb } : {}),
            };
          }
        }
      }
      await this.background;
      await this.proving;
      if (lastShipFailed) {
        throw new LifeboatError('STORE_UNAVAILABLE', 'the last commands could not be shipped before stopping', { hint: 'start the replicator again soon: the server\'s backlog may still hold them' });
      }
      return { generation: this.generation, ...this.stats };
    } finally {
      clearInterval(beat);
      await this.background?.catch(() => {});
      this.probe?.close();
    }
  }

  /** Continues the history we hold when the server still can; otherwise starts a generation from a fresh RDB. */
  private async connect(): Promise<ReplicaLink> {
    const { opts } = this;
    const from = this.resumeFrom;
    const facts = await serverFacts(opts.target, opts.password, opts.signal);
    const link = await ReplicaLink.open(opts.target, { password: opts.password, signal: opts.signal, ...(from ? { from: { replid: from.replid, offset: from.offset }, db: from.db } : {}) });
    this.linked = true;
    try {
      if (link.start.mode === 'continue' && from) {
        const resumed = this.generation !== from.generation;
        this.generation = from.generation;
        this.replid = link.start.replid;
        this.shipped = this.received = from.offset;
        this.nextTxn = from.lastTxn === undefined ? undefined : from.lastTxn + 1;
        this.shippedDb = from.db;
        this.problem = undefined;
        if (resumed) this.nextSnapshot = from.baseTime + opts.snapshotIntervalMs;
        if (resumed) this.emit({ kind: 'generation', generation: this.generation, reason: 'resumed', replid: this.replid, offset: from.offset });
        return link;
      }
      const generation = newGeneration();
      const s = await rdbSnapshot(this.repo, link, { name: opts.name, facts, generation });
      const point = requireRedisPoint(s);
      const previous = from?.generation;
      this.generation = generation;
      this.replid = point.replid;
      this.shipped = this.received = point.offset;
      this.nextTxn = 1;
      this.shippedDb = undefined;
      this.proofs = [];
      this.stats.snapshots++;
      this.problem = undefined;
      this.nextSnapshot = Date.now() + opts.snapshotIntervalMs;
      this.emit({ kind: 'generation', generation, reason: previous ? 'full-resync' : 'first', replid: point.replid, offset: point.offset });
      this.emit({ kind: 'snapshot', generation, id: s.id, offset: point.offset, bytes: point.rdbBytes, addedBytes: s.summary.addedBytes });
      if (previous && from) {
        const since = from.lastTime ? new Date(from.lastTime).toISOString() : null;
        this.emit({
          kind: 'loss',
          generation,
          previous,
          since,
          until: s.time,
          message:
            `the server could not continue generation ${previous} (its history or backlog moved on: a restart without persistence, or a long outage); ` +
            `writes between ${since ?? 'its start'} and ${s.time} may be missing from the archive; generation ${generation} starts from a fresh RDB`,
        });
      }
      this.status(true);
      return link;
    } catch (err) {
      link.close();
      throw err;
    }
  }

  /** Reads the link until it fails (or we stop), shipping and proving every interval. */
  private async follow(link: ReplicaLink): Promise<void> {
    const { opts } = this;
    let done = false;
    const reading = (async () => {
      for (;;) {
        this.receive(await link.next());
        // Back-pressure: while the store refuses, the socket is not read (the server buffers, or drops us and we resume).
        if (this.pendingBytes >= MAX_PENDING_BYTES && !(await this.enqueueShip())) await sleep(RETRY_MS);
      }
    })().finally(() => (done = true));
    reading.catch(() => {});
    const ticks = (async () => {
      // Fixed-rate, not "sleep an interval after the work": a command received just after
      // a ship began is stored by the end of the next, which starts one interval after this
      // one began less what a ship takes (measured), so the loss window stays the interval.
      let shipMs = 0;
      let next = Date.now() + opts.intervalMs;
      while (!done && !opts.signal.aborted) {
        await Promise.race([sleep(Math.max(0, next - Date.now())), reading.catch(() => {})]);
        if (done) break;
        const began = Date.now();
        await this.enqueueShip();
        shipMs = 0.7 * shipMs + 0.3 * (Date.now() - began);
        next = Math.max(Date.now(), began + Math.max(opts.intervalMs / 2, opts.intervalMs - shipMs));
        link.ack(this.shipped);
        // On its own connection and not awaited: a server slow to answer INFO does not hold up shipping.
        this.proving ??= this.prove().finally(() => (this.proving = undefined));
        this.maybeSnapshot();
        this.maybeCompact();
        this.status();
      }
    })();
    await ticks;
    await reading; // rethrows why the link ended
  }

  private receive(c: StreamChunk): void {
    if (this.pending.length === 0) this.firstPendingAt = Date.now();
    this.pending.push(c.data);
    this.pendingBytes += c.data.length;
    this.received = c.end;
    this.stats.bytes += c.data.length;
    if (c.mark) {
      this.marks.push(c.mark);
      this.markTxns.push(c.txns);
      this.markDbs.push(c.db);
    }
  }

  private dropPending(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.marks = [];
    this.markTxns = [];
    this.markDbs = [];
    this.received = this.shipped;
  }

  /** Ships after any ship in flight (the reader and the interval both ask). */
  private enqueueShip(): Promise<boolean> {
    const next = this.shipping.then(() => this.ship());
    this.shipping = next.then(() => undefined);
    return next;
  }

  /** Stores the received stream up to its last cut point as one segment; false when the store refused (kept for the next try). */
  private async ship(): Promise<boolean> {
    const last = this.marks[this.marks.length - 1];
    if (!last) return true;
    const cut = last[0];
    // The reader goes on while the segment is stored: what it adds meanwhile stays pending.
    const parts = this.pending.length;
    const markCount = this.marks.length;
    const all = Buffer.concat(this.pending);
    const txns = this.markTxns.slice(0, markCount).reduce((a, b) => a + b, 0);
    const numbered = this.nextTxn !== undefined ? { firstTxn: this.nextTxn, txns } : {};
    const db = this.shippedDb !== undefined ? { db: this.shippedDb } : {};
    const meta: SegmentMeta = { v: 1, replid: this.replid, start: this.shipped, end: cut, marks: this.marks.slice(0, markCount), ...numbered, ...db };
    const name = segmentName(meta);
    const data = encodeSegment({ meta, stream: all.subarray(0, cut - this.shipped) });
    try {
      await this.repo.putLog(this.source, this.generation, name, data);
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      this.problem = { message: `shipping failed: ${err.message}`, hint: err.hint };
      this.emit({ kind: 'error', ...this.problem });
      return false;
    }
    const rest = Buffer.from(all.subarray(cut - this.shipped));
    this.pending = [...(rest.length ? [rest] : []), ...this.pending.slice(parts)];
    this.pendingBytes -= cut - this.shipped;
    this.marks = this.marks.slice(markCount);
    this.markTxns = this.markTxns.slice(markCount);
    this.shippedDb = this.markDbs[markCount - 1];
    this.markDbs = this.markDbs.slice(markCount);
    if (this.nextTxn !== undefined) this.nextTxn += txns;
    const lagMs = Date.now() - this.firstPendingAt;
    this.firstPendingAt = this.pendingBytes > 0 ? Date.now() : 0;
    this.shipped = cut;
    this.stats.segments++;
    if (this.problem?.message.startsWith('shipping failed')) this.problem = undefined;
    this.emit({ kind: 'ship', generation: this.generation, segment: name, start: meta.start, end: meta.end, bytes: data.length, lagMs });
    this.settleProofs();
    return true;
  }

  /** Reads the server's offset now (t0); the proof is met once everything up to it is shipped. */
  private async prove(): Promise<void> {
    const { opts } = this;
    const t0 = Date.now();
    const replid = this.replid;
    try {
      let info: Map<string, string>;
      try {
        this.probe ??= await this.openProbe();
        info = await this.probe.info('replication');
      } catch {
        // A connection kept from before a server restart fails once: one fresh try.
        this.probe?.close();
        this.probe = await this.openProbe();
        info = await this.probe.info('replication');
      }
      const offset = Number(info.get('master_repl_offset'));
      if (!Number.isSafeInteger(offset)) throw new LifeboatError('SOURCE_UNAVAILABLE', 'INFO replication has no master_repl_offset');
      // An offset of another history (the server restarted and the link has not noticed yet) proves nothing about ours.
      if (info.get('master_replid') !== replid || replid !== this.replid) return;
      this.proofs.push({ t0, offset });
      if (this.proofs.length > MAX_PROOFS) this.proofs.shift();
    } catch (err) {
      this.probe?.close();
      this.probe = undefined;
      if (!opts.signal.aborted) this.problem = { message: `cannot read the server's replication offset: ${(err as Error).message}`, hint: 'archivedThrough stays where it was until the server answers' };
      return;
    }
    this.settleProofs();
    const oldest = this.proofs[0];
    const late = Math.max(3 * opts.intervalMs, 10_000);
    if (oldest && t0 - oldest.t0 > late) {
      this.problem = {
        message: `the server was at offset ${oldest.offset} ${Math.round((t0 - oldest.t0) / 1000)} s ago and only ${this.shipped} is shipped (received ${this.received})`,
        hint: 'the replication link or the repository is stuck or too slow; the replicator keeps trying',
      };
    } else if (this.problem?.message.startsWith('the server was at offset') || this.problem?.message.startsWith('cannot read the server')) {
      this.problem = undefined;
    }
  }

  private openProbe(): Promise<RedisConnection> {
    const { opts } = this;
    return RedisConnection.open(opts.target, { password: opts.password, timeoutMs: Math.max(5000, opts.intervalMs), signal: opts.signal });
  }

  private settleProofs(): void {
    while (this.proofs[0] && this.proofs[0].offset <= this.shipped) {
      this.provenAt = Math.max(this.provenAt, this.proofs[0].t0);
      this.proofs.shift();
    }
  }

  /** Every snapshot interval, a fresh base in the same history from a second, rdb-only synchronisation. */
  private maybeSnapshot(): void {
    if (this.background || Date.now() < this.nextSnapshot) return;
    this.nextSnapshot = Date.now() + this.opts.snapshotIntervalMs;
    const { opts } = this;
    const generation = this.generation;
    const replid = this.replid;
    this.background = (async () => {
      const facts = await serverFacts(opts.target, opts.password, opts.signal);
      const link = await ReplicaLink.open(opts.target, { password: opts.password, rdbOnly: true, signal: opts.signal });
      try {
        // Only an RDB of the history this generation follows can be one of its bases.
        if (link.start.mode !== 'full' || link.start.replid !== replid || generation !== this.generation) return;
        const s = await rdbSnapshot(this.repo, link, { name: opts.name, facts, generation });
        const p = requireRedisPoint(s);
        this.stats.snapshots++;
        this.emit({ kind: 'snapshot', generation, id: s.id, offset: p.offset, bytes: p.rdbBytes, addedBytes: s.summary.addedBytes });
      } finally {
        link.close();
      }
    })()
      .catch((err: unknown) => {
        if (opts.signal.aborted) return;
        this.nextSnapshot = Date.now() + Math.min(opts.snapshotIntervalMs, 60_000);
        const e = isLifeboatError(err) ? err : new LifeboatError('FAILED', String(err));
        this.emit({ kind: 'error', message: `periodic snapshot failed: ${e.message}`, ...(e.hint ? { hint: e.hint } : {}) });
      })
      .finally(() => (this.background = undefined));
  }

  /** Merges finished minutes' and hours' segments (compact.ts); an append-only client leaves it to another, as it deletes. */
  private maybeCompact(): void {
    if (this.background || this.repo.appendOnly || Date.now() < this.nextCompact) return;
    this.nextCompact = Date.now() + COMPACT_EVERY_MS;
    const generation = this.generation;
    this.background = compactGeneration(this.repo, this.source, generation, Date.now())
      .then((r) => {
        if (r.merged > 0) this.emit({ kind: 'compact', generation, merged: r.merged, into: r.into });
      })
      .catch((err: unknown) => {
        this.emit({ kind: 'error', message: `compaction failed: ${err instanceof Error ? err.message : String(err)}` });
      })
      .finally(() => (this.background = undefined));
  }

  private status(force = false): void {
    // Not attached yet: nothing is proven or disproven, so there is no verdict to give (the daemon shows "starting", not up).
    if (!this.generation && !this.problem) return;
    this.reporter.report(
      {
        healthy: this.problem === undefined,
        archivedThrough: this.provenAt ? new Date(this.provenAt) : null,
        error: this.problem?.message,
        hint: this.problem?.hint,
      },
      force,
    );
  }

  private emit(e: ReplicateEvent): void {
    this.opts.onEvent?.(e);
  }
}
