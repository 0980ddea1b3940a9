/**
 * Shipping a journal: every interval, the whole records appended since the last ship
 * go to the repository as a segment (records.ts frames them; a partial last record
 * waits for its end). docs/oplog.md has the argument; in short:
 *
 * - The file is read through one descriptor, opened without following a symlink at
 *   the path, and identified by device, inode and a hash of its first bytes.
 * - Rotation (the path names another inode, or none): the old file is read to its end
 *   through the descriptor held, until a poll finds it quiet, and only then does the
 *   new file start a new generation; while the path names nothing once the old file is
 *   quiet, the replicator reports itself unhealthy. Truncation (same inode, shorter than shipped, or
 *   its first bytes changed): a new generation, with a warning.
 * - A restarted replicator continues from the newest segment in the repository when
 *   the file is still the one it names (same inode, long enough, same first bytes), so
 *   after kill -9 nothing is shipped twice or skipped.
 * - A new generation whose file begins with a whole restore output (an `oplog restore`
 *   put back in place) continues that restore's history from the end of the copy
 *   (fork.ts), so a restore writes those records once.
 * - The proof (`archivedThrough`, engine/archive-status.ts): a poll takes the time t0,
 *   then finds the path still naming the file it holds and reads its size S; once every
 *   whole record below S is stored, everything written before t0 is, so t0 is proven.
 *
 * Memory: a segment holds at most CHUNK bytes of records, or one record up to MAX_RECORD.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as C, fstatSync, lstatSync, openSync, read } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { LifeboatError, errno, isLifeboatError } from '../../errors.js';
import { STATUS_EVERY_MS, StatusReporter, type ArchiveStatus } from '../../engine/archive-status.js';
import type { Repository } from '../../repo/repository.js';
import { ForkCheck } from './fork.js';
import { generationId, shippedEnd } from './history.js';
import { logSource } from './names.js';
import type { RecordFormat } from './options.js';
import type { FileIdentity, OplogPoint } from './point.js';
import { MAX_RECORD, markRecords, recordEnds, tooLarge, u32Length } from './records.js';
import { encodeSegment, segmentName, type Fork, type SegmentMeta } from './segment.js';

const readAt = promisify(read);

/** At most this many bytes of records a segment (a single larger record goes alone). */
export const CHUNK = 8 << 20;
/** Bytes of the file's start hashed into its identity. */
const HEAD = 4096;

export interface ShipOptions {
  file: string;
  name: string;
  format: RecordFormat;
  timeField?: string | undefined;
  intervalMs: number;
  signal: AbortSignal;
  onEvent?: (e: OplogEvent) => void;
}

export type GenerationReason = 'first' | 'resumed' | 'rotated' | 'truncated' | 'replaced';

export type OplogEvent =
  | { kind: 'generation'; generation: string; reason: GenerationReason }
  | { kind: 'ship'; generation: string; segment: string; records: number; bytes: number; lagMs: number }
  /** The generation's file began with a restore's whole output: its history continues from there. */
  | { kind: 'restored-copy'; generation: string; bytes: number; continues: { generation: string; offset: number } }
  | (ArchiveStatus & { generation: string })
  | { kind: 'warning'; message: string }
  /**
   * A new history that is not a restored copy replaced the one shipped (the file was
   * truncated, rewritten or replaced): what it held past the shipped offset is gone. The
   * daemon counts it as a gap, as it does Redis's.
   */
  | { kind: 'loss'; generation: string; previous: string; since: string | null; until: string; message: string }
  | { kind: 'error'; message: string; hint?: string };

export interface ShipSummary {
  generation: string;
  records: number;
  segments: number;
  /** Where shipping stands, as an oplog snapshot records it. */
  point: OplogPoint;
  /** Everything written before this moment is stored (Unix ms), 0 when nothing was proven. */
  provenAt: number;
}

interface Open {
  fd: number;
  dev: number;
  ino: number;
}

export class Shipper {
  private readonly file: string;
  private readonly source: string;
  private cur: Open | undefined;
  private generation = '';
  private shipped = 0;
  private lastTime = 0;
  /** The generation continues a restored copy (its segments say so). */
  private fork: Fork | undefined;
  /** Set while a new generation's file has not yet been told apart from a restored copy. */
  private forkCheck: ForkCheck | undefined;
  private forkWarning: string | undefined;
  /** The history a new generation replaced, while it may still turn out to be a restored copy of it. */
  private forkLoss: { previous: string; since: string | null } | undefined;
  /** Polls since the path stopped naming the file held (rotation): it is read until quiet. */
  private rotatedPolls = 0;
  private provenAt = 0;
  /** The hash of the file's first bytes as last checked in this generation (truncation and rewrites change it). */
  private headSeen: { generation: string; len: number; hash: string } | undefined;
  /** Why archiving is not healthy; `journal`: the journal is missing, nothing read is left unshipped. */
  private problem: { message: string; hint?: string; journal?: true } | undefined;
  private readonly reporter: StatusReporter;
  private readonly stats = { records: 0, segments: 0 };

  constructor(
    private readonly repo: Repository,
    private readonly opts: ShipOptions,
  ) {
    this.file = path.resolve(opts.file);
    this.source = logSource(opts.name);
    this.reporter = new StatusReporter((s) => this.emit({ ...s, generation: this.generation }), Math.min(opts.intervalMs, STATUS_EVERY_MS));
  }

  /** Ships every interval until the signal, then once more (a clean stop leaves nothing whole behind). */
  async run(): Promise<ShipSummary> {
    try {
      while (!this.opts.signal.aborted) {
        // At a fixed rate: a record waits at most the interval, however long a ship took.
        const began = Date.now();
        await this.pollReporting();
        const wait = Math.max(0, this.opts.intervalMs - (Date.now() - began));
        await sleep(wait, undefined, { signal: this.opts.signal }).catch(() => {});
      }
      await this.poll();
      // A journal that is not there (yet) leaves nothing unshipped; a store that refused does.
      if (this.problem && !this.problem.journal && this.cur) throw new LifeboatError('STORE_UNAVAILABLE', `the last records could not be shipped before stopping: ${this.problem.message}`, { hint: 'they are still in the journal; start the replicator again when the repository is reachable' });
      return this.summary();
    } finally {
      this.close();
    }
  }

  /** One pass (`oplog backup`): every whole record the file holds now is shipped, or this throws. */
  async once(): Promise<ShipSummary> {
    try {
      await this.poll();
      if (!this.cur) throw this.missing();
      if (this.problem) throw new LifeboatError('STORE_UNAVAILABLE', `shipping failed: ${this.problem.message}`, { hint: this.problem.hint ?? 'check the repository and run the backup again' });
      return this.summary();
    } finally {
      this.close();
    }
  }

  private async pollReporting(): Promise<void> {
    try {
      await this.poll();
    } catch (err) {
      if (!isLifeboatError(err) || err.code === 'SOURCE_CORRUPT') throw err;
      this.problem = { message: err.message, ...(err.hint ? { hint: err.hint } : {}) };
      this.emit({ kind: 'error', ...this.problem });
    }
    this.reporter.report({ healthy: !this.problem, archivedThrough: this.provenAt ? new Date(this.provenAt) : null, error: this.problem?.message, hint: this.problem?.hint }, this.stats.segments > 0);
  }

  private missing(): LifeboatError {
    return new LifeboatError('NOT_FOUND', `the journal ${this.file} does not exist`, { hint: 'give the path of the file the application appends to' });
  }

  private async poll(): Promise<void> {
    const t0 = Date.now();
    if (!this.cur && !(await this.openFile())) {
      this.problem = { message: this.missing().message, hint: 'waiting for the application to create it', journal: true };
      return;
    }
    const cur = this.cur as Open;
    const atPath = lstatSync(this.file, { throwIfNoEntry: false });
    const st = fstatSync(cur.fd);
    const seen = Date.now();
    const rotated = !atPath || atPath.ino !== cur.ino || atPath.dev !== cur.dev;
    if (!rotated && (st.size < this.shipped || !(await this.sameHead(cur.fd, this.shipped)))) {
      this.newGeneration('truncated', `${this.file} was truncated or rewritten (now ${st.size} bytes, ${this.shipped} were shipped): a new generation starts at its first byte`);
    }
    if (this.forkCheck && !(await this.settleFork(cur.fd, st.size))) {
      // Every byte the file holds is a prefix of a stored restore output: nothing is unshipped.
      if (!rotated) this.provenAt = Math.max(this.provenAt, t0);
      return;
    }
    const before = this.shipped;
    if (!(await this.drain(cur.fd, st.size, seen))) return;
    this.problem = undefined;
    if (!rotated) {
      this.rotatedPolls = 0;
      this.provenAt = Math.max(this.provenAt, t0);
      return;
    }
    // Rotated: the writer may still append to the old file through its own descriptor
    // for a moment; it is read until a poll finds nothing new, then left.
    if (this.shipped > before || this.rotatedPolls++ < 1) return;
    if (!atPath) {
      // Removed, and nothing in its place: the old file is still read (a writer may hold
      // it open), but the journal at the path is not being archived, and nothing is proven.
      this.problem = {
        message: `the journal ${this.file} was removed and nothing has taken its place`,
        hint: 'the application now writes its journal elsewhere, or has not created it again; what it writes elsewhere is not archived',
        journal: true,
      };
      return;
    }
    if (st.size > this.shipped) {
      this.emit({ kind: 'warning', message: `the rotated file ended with ${st.size - this.shipped} bytes of an unfinished record; they were not shipped` });
    }
    this.close();
    this.rotatedPolls = 0;
    if (await this.openFile('rotated')) await this.poll();
  }

  /** Opens the path (never through a symlink); false when there is no file. Picks the generation. */
  private async openFile(reason?: GenerationReason): Promise<boolean> {
    let fd: number;
    try {
      fd = openSync(this.file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    } catch (err) {
      if (errno(err) === 'ENOENT') return false;
      if (errno(err) === 'ELOOP') throw new LifeboatError('USAGE', `${this.file} is a symlink; the journal is read without following one`, { hint: 'give the path of the file itself' });
      throw new LifeboatError('SOURCE_UNAVAILABLE', `cannot open ${this.file}: ${(err as Error).message}`, { hint: 'check that this user may read it' });
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw new LifeboatError('USAGE', `${this.file} is not a regular file`, { hint: 'give the journal file the application appends to' });
    }
    this.cur = { fd, dev: st.dev, ino: st.ino };
    if (reason) return this.newGeneration(reason), true;
    const end = await shippedEnd(this.repo, this.opts.name);
    if (!end) return this.newGeneration('first'), true;
    this.lastTime = end.meta.marks[end.meta.marks.length - 1]?.[1] ?? 0;
    const f = end.meta.file;
    if (f.ino === st.ino && st.size >= end.meta.end && (await this.headHash(fd, f.headLen)) === f.head) {
      this.generation = end.generation;
      this.shipped = end.meta.end;
      this.fork = end.meta.fork;
      this.emit({ kind: 'generation', generation: this.generation, reason: 'resumed' });
      return true;
    }
    const why = f.ino === st.ino ? 'truncated or rewritten' : 'replaced (rotated while no replicator ran?)';
    this.generation = end.generation;
    this.newGeneration(f.ino === st.ino ? 'truncated' : 'replaced', `${this.file} is not the file shipped last (${why}); a new generation starts at its first byte`);
    return true;
  }

  /** `warning` is said unless the file turns out to be a restored copy (then its history continues). */
  private newGeneration(reason: GenerationReason, warning?: string): void {
    const cur = this.cur as Open;
    const previous = this.generation;
    const since = this.provenAt || this.lastTime;
    this.forkLoss = warning && previous ? { previous, since: since ? new Date(since).toISOString() : null } : undefined;
    this.generation = generationId(this.generation, cur.dev, cur.ino);
    this.shipped = 0;
    this.fork = undefined;
    // A first generation has no history a copy could be of.
    this.forkCheck = reason === 'first' ? undefined : new ForkCheck(this.repo, this.opts.name);
    this.forkWarning = warning;
    this.emit({ kind: 'generation', generation: this.generation, reason });
  }

  /** Whether the new generation may ship: false while its file may still become a restored copy. */
  private async settleFork(fd: number, size: number): Promise<boolean> {
    const verdict = await (this.forkCheck as ForkCheck).decide((pos, len) => this.readBytes(fd, pos, len), size);
    if (verdict === 'wait') return false;
    this.forkCheck = undefined;
    if (verdict === 'none') {
      if (this.forkWarning && this.forkLoss) {
        const { previous, since } = this.forkLoss;
        const until = new Date().toISOString();
        this.emit({ kind: 'loss', generation: this.generation, previous, since, until, message: `${this.forkWarning}; records written between ${since ?? 'its start'} and ${until} that were not shipped are not in the archive` });
      } else if (this.forkWarning) this.emit({ kind: 'warning', message: this.forkWarning });
      return true;
    }
    const last = verdict.fork.pieces[verdict.fork.pieces.length - 1] as readonly [string, number, number];
    this.fork = verdict.fork;
    this.shipped = verdict.fork.bytes;
    this.emit({ kind: 'restored-copy', generation: this.generation, bytes: verdict.fork.bytes, continues: { generation: last[0], offset: last[2] } });
    return true;
  }

  /** Ships the whole records between the shipped offset and `size`; false when the store refused (kept for the next try). */
  private async drain(fd: number, size: number, seen: number): Promise<boolean> {
    const { format } = this.opts;
    while (this.shipped < size) {
      const off = this.shipped;
      let buf = await this.readBytes(fd, off, Math.min(size - off, CHUNK));
      const ends = recordEnds(buf, format, off);
      let end = ends[ends.length - 1];
      if (end === undefined) {
        // No whole record in a chunk: one larger record, or a partial one that waits.
        if (format === 'u32be') {
          const n = u32Length(buf, off);
          if (n === undefined || off + n > size) return true;
          buf = await this.readBytes(fd, off, n);
          end = n;
        } else {
          if (off + buf.length >= size) return true;
          buf = await this.readBytes(fd, off, Math.min(size - off, MAX_RECORD));
          const nl = buf.indexOf(0x0a);
          if (nl < 0) {
            if (buf.length >= MAX_RECORD) throw tooLarge(buf.length, off);
            return true;
          }
          end = nl + 1;
        }
        ends.splice(0, ends.length, end);
      }
      if (!(await this.ship(fd, buf.subarray(0, end), ends, seen))) return false;
    }
    return true;
  }

  private async ship(fd: number, data: Buffer, ends: number[], seen: number): Promise<boolean> {
    const start = this.shipped;
    const timed = markRecords(data, ends, start, { format: this.opts.format, timeField: this.opts.timeField, seen, after: this.lastTime });
    if (timed.untimed > 0) this.emit({ kind: 'warning', message: `${timed.untimed} records without a readable "${this.opts.timeField ?? ''}" field take the time of the record before them` });
    const meta: SegmentMeta = {
      v: 1,
      format: this.opts.format,
      start,
      end: start + data.length,
      records: ends.length,
      untimed: timed.untimed,
      marks: timed.marks,
      file: await this.identity(fd, start + data.length),
      ...(this.fork ? { fork: this.fork } : {}),
    };
    const name = segmentName(meta);
    const encoded = encodeSegment({ meta, data });
    try {
      await this.repo.putLog(this.source, this.generation, name, encoded);
    } catch (err) {
      if (!isLifeboatError(err)) throw err;
      this.problem = { message: `shipping failed: ${err.message}`, ...(err.hint ? { hint: err.hint } : {}) };
      this.emit({ kind: 'error', ...this.problem });
      return false;
    }
    this.shipped = meta.end;
    this.lastTime = timed.last;
    this.stats.records += ends.length;
    this.stats.segments++;
    this.emit({ kind: 'ship', generation: this.generation, segment: name, records: ends.length, bytes: data.length, lagMs: Date.now() - seen });
    return true;
  }

  private async identity(fd: number, shipped: number): Promise<FileIdentity> {
    const cur = this.cur as Open;
    const headLen = Math.min(HEAD, shipped);
    return { dev: cur.dev, ino: cur.ino, headLen, head: await this.headHash(fd, headLen) };
  }

  /** Whether the file still begins with the bytes shipped from it. */
  private async sameHead(fd: number, shipped: number): Promise<boolean> {
    if (shipped === 0 || !this.headSeen || this.headSeen.generation !== this.generation) {
      this.headSeen = { generation: this.generation, len: Math.min(HEAD, shipped), hash: await this.headHash(fd, Math.min(HEAD, shipped)) };
      return true;
    }
    const len = this.headSeen.len;
    const now = await this.headHash(fd, len);
    if (now !== this.headSeen.hash) return false;
    if (len < Math.min(HEAD, shipped)) this.headSeen = { generation: this.generation, len: Math.min(HEAD, shipped), hash: await this.headHash(fd, Math.min(HEAD, shipped)) };
    return true;
  }

  private async headHash(fd: number, len: number): Promise<string> {
    return createHash('sha256').update(await this.readBytes(fd, 0, len)).digest('hex');
  }

  private async readBytes(fd: number, position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await readAt(fd, buf, got, length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }

  private summary(): ShipSummary {
    const cur = this.cur;
    return {
      generation: this.generation,
      ...this.stats,
      provenAt: this.provenAt,
      point: {
        generation: this.generation,
        offset: this.shipped,
        file: { dev: cur?.dev ?? 0, ino: cur?.ino ?? 0, headLen: this.headSeen?.len ?? 0, head: this.headSeen?.hash ?? createHash('sha256').digest('hex') },
        format: this.opts.format,
        lastRecordTime: this.lastTime || null,
      },
    };
  }

  private close(): void {
    if (this.cur) closeSync(this.cur.fd);
    this.cur = undefined;
  }

  private emit(e: OplogEvent): void {
    this.opts.onEvent?.(e);
  }
}
