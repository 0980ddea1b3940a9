/**
 * The command segments Redis replication stores: `logs/redis.NAME/<generation>/<segment>`.
 *
 * A generation is one unbroken replication history of a server: it starts with an RDB
 * received by a full synchronisation (a snapshot whose point names the replication id
 * and offset) and continues with segments of the command stream the server sent after
 * it, each starting exactly at the offset where the previous one ended. A partial
 * resynchronisation the server accepts (+CONTINUE) continues the generation: the
 * server's backlog proves that no byte was skipped. A full one starts a new generation.
 *
 * A segment holds the stream's bytes verbatim (RESP command arrays, as a replica
 * applies them: effects, PEXPIREAT instead of EXPIRE, SELECT, MULTI/EXEC, PING), and
 * `marks`: offsets where the stream may be cut, each with the time its bytes had all
 * been received. A mark is only ever at a command boundary outside MULTI…EXEC, so a
 * restore that stops at a mark never applies half a transaction. A segment ends at a
 * mark (its last), so every segment boundary is a cut point too.
 *
 * Object name: `<start>-<end>-<last mark time>`, the offsets 16 hex digits and the time
 * 12 hex digits of Unix milliseconds, so names sort in history order and a listing
 * alone tells how far a generation reaches.
 *
 * Content: `LBRDSEG1`, a 4-byte big-endian length, that many bytes of JSON (SegmentMeta),
 * then the stream bytes from `start` to `end`.
 */
import { LifeboatError } from '../../errors.js';

/** An offset where the stream may be cut, and when everything before it had arrived (Unix ms). */
export type Mark = readonly [offset: number, time: number];

export interface SegmentMeta {
  v: 1;
  /** The replication id the offsets belong to (after a +CONTINUE the server may name a new one; offsets carry on). */
  replid: string;
  start: number;
  end: number;
  /** Ascending; the last is at `end`. */
  marks: Mark[];
}

export interface Segment {
  meta: SegmentMeta;
  /** Exactly end − start bytes. */
  stream: Buffer;
}

export interface SegmentName {
  start: number;
  end: number;
  lastTime: number;
  file: string;
}

const MAGIC = Buffer.from('LBRDSEG1', 'latin1');
/** A segment's header is small; a larger one is damage, refused before it is parsed. */
const MAX_META = 64 << 20;

export function offsetKey(n: number): string {
  return n.toString(16).padStart(16, '0');
}

export function segmentName(meta: SegmentMeta): string {
  const last = meta.marks[meta.marks.length - 1];
  return `${offsetKey(meta.start)}-${offsetKey(meta.end)}-${(last?.[1] ?? 0).toString(16).padStart(12, '0')}`;
}

export function parseSegmentName(file: string): SegmentName | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{12})$/.exec(file);
  if (!m) return undefined;
  const start = parseInt(m[1] as string, 16);
  const end = parseInt(m[2] as string, 16);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end <= start) return undefined;
  return { start, end, lastTime: parseInt(m[3] as string, 16), file };
}

export function encodeSegment(seg: Segment): Buffer {
  checkMeta(seg.meta, seg.stream.length, 'segment');
  const meta = Buffer.from(JSON.stringify(seg.meta), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(meta.length);
  return Buffer.concat([MAGIC, len, meta, seg.stream]);
}

/** Reads a stored segment; CORRUPT for anything that is not a whole, self-consistent one. */
export function decodeSegment(buf: Buffer, what: string): Segment {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new LifeboatError('CORRUPT', `${what} is not a Redis command segment`);
  const len = buf.readUInt32BE(8);
  if (len > MAX_META || 12 + len > buf.length) throw new LifeboatError('CORRUPT', `${what}: segment header of ${len} bytes does not fit`);
  let meta: SegmentMeta;
  try {
    meta = JSON.parse(buf.toString('utf8', 12, 12 + len)) as SegmentMeta;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: unreadable segment header`, { cause: err });
  }
  if (meta?.v !== 1) throw new LifeboatError('UNSUPPORTED_FORMAT', `${what}: segment format ${String(meta?.v)}`);
  const stream = buf.subarray(12 + len);
  checkMeta(meta, stream.length, what);
  return { meta, stream };
}

function checkMeta(meta: SegmentMeta, streamBytes: number, what: string): void {
  const bad = (why: string) => new LifeboatError('CORRUPT', `${what}: ${why}`);
  if (typeof meta.replid !== 'string' || !/^[0-9a-f]{40}$/.test(meta.replid)) throw bad('no replication id');
  if (!Number.isSafeInteger(meta.start) || !Number.isSafeInteger(meta.end) || meta.start < 0 || meta.end <= meta.start) throw bad('bad offsets');
  if (meta.end - meta.start !== streamBytes) throw bad(`${streamBytes} stream bytes for offsets ${meta.start}..${meta.end}`);
  if (!Array.isArray(meta.marks) || meta.marks.length === 0) throw bad('no cut points');
  let prev = meta.start;
  let prevTime = 0;
  for (const m of meta.marks) {
    if (!Array.isArray(m) || m.length !== 2 || !Number.isSafeInteger(m[0]) || !Number.isSafeInteger(m[1])) throw bad('a malformed cut point');
    if (m[0] <= prev || m[0] > meta.end || m[1] < prevTime) throw bad('cut points out of order');
    prev = m[0];
    prevTime = m[1];
  }
  if (prev !== meta.end) throw bad('the last cut point is not the end');
}

/** Joins neighbouring segments (each starting where the one before ended) into one. */
export function mergeSegments(parts: readonly Segment[]): Segment {
  const first = parts[0];
  if (!first) throw new Error('mergeSegments: nothing to merge');
  const marks: Mark[] = [];
  let prev: Segment | undefined;
  for (const p of parts) {
    if (prev && prev.meta.end !== p.meta.start) {
      throw new LifeboatError('CORRUPT', `command segments ending at ${offsetKey(prev.meta.end)} and starting at ${offsetKey(p.meta.start)} do not join`);
    }
    marks.push(...p.meta.marks);
    prev = p;
  }
  const last = parts[parts.length - 1] as Segment;
  return { meta: { v: 1, replid: last.meta.replid, start: first.meta.start, end: last.meta.end, marks }, stream: Buffer.concat(parts.map((p) => p.stream)) };
}

/**
 * The segments that carry history on from offset `from` to the newest end, in order.
 * After a compaction that stopped half way both the merged object and its parts exist;
 * the one reaching furthest is taken at each step. Returns the chain and, when it stops
 * short of the newest segment, where the gap begins.
 */
export function chainFrom(from: number, names: readonly SegmentName[]): { chain: SegmentName[]; gapAt?: number } {
  const chain: SegmentName[] = [];
  let at = from;
  for (;;) {
    let best: SegmentName | undefined;
    for (const n of names) {
      if (n.start <= at && n.end > at && (!best || n.end > best.end)) best = n;
    }
    if (!best) break;
    chain.push(best);
    at = best.end;
  }
  const newest = names.reduce((m, n) => Math.max(m, n.end), -1);
  return newest > at ? { chain, gapAt: at } : { chain };
}

/**
 * Where to cut a chain's stream for a restore to `time` (Unix ms): the last mark at or
 * before it, or undefined when even the first mark is later (nothing after the base).
 */
export function cutAt(segments: readonly SegmentMeta[], time: number): number | undefined {
  let cut: number | undefined;
  for (const s of segments) {
    for (const [offset, t] of s.marks) {
      if (t > time) return cut;
      cut = offset;
    }
  }
  return cut;
}
