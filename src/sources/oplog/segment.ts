/**
 * The segments oplog shipping stores: `logs/oplog.NAME/<generation>/<segment>`.
 *
 * A generation is one file's history from its first byte: the journal as one inode
 * held it, until it is rotated away (renamed, a new file created) or truncated. A
 * segment holds whole records, verbatim, from byte `start` to `end` of that file; each
 * starts where the one before ended. `marks` are cut points: record boundaries with
 * the time of every record up to them (Unix ms; a record's time is its time field or
 * when it was read, never less than the time before it: see records.ts), so a restore
 * that stops at a mark writes exactly the records of a moment and never half of one.
 * `file` identifies the file the bytes were read from (device, inode, a hash of its
 * first bytes), so a restarted replicator knows whether it may continue.
 *
 * Object name: `<start>-<end>-<last mark time>`, offsets 16 hex digits and the time 12
 * hex digits of Unix ms, so names sort in history order. Content: `LBOPSEG1`, a 4-byte
 * big-endian length, that many bytes of JSON (SegmentMeta), then the record bytes.
 */
import { LifeboatError } from '../../errors.js';
import type { FileIdentity } from './point.js';

/** A record boundary and the time of every record before it (Unix ms). */
export type Mark = readonly [offset: number, time: number];

export interface SegmentMeta {
  v: 1;
  format: 'jsonl' | 'u32be';
  start: number;
  end: number;
  records: number;
  /** Records whose time field was missing or unreadable: they carry the time they were read. */
  untimed: number;
  /** Ascending in both; the last is at `end`. */
  marks: Mark[];
  file: FileIdentity;
}

export interface Segment {
  meta: SegmentMeta;
  data: Buffer;
}

export interface SegmentName {
  start: number;
  end: number;
  lastTime: number;
  file: string;
}

const MAGIC = Buffer.from('LBOPSEG1', 'latin1');
const MAX_META = 16 << 20;

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');

export function segmentName(meta: SegmentMeta): string {
  const last = meta.marks[meta.marks.length - 1];
  return `${hex(meta.start, 16)}-${hex(meta.end, 16)}-${hex(last?.[1] ?? 0, 12)}`;
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
  checkMeta(seg.meta, seg.data.length, 'segment');
  const meta = Buffer.from(JSON.stringify(seg.meta), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(meta.length);
  return Buffer.concat([MAGIC, len, meta, seg.data]);
}

/** Reads a stored segment; CORRUPT for anything that is not a whole, self-consistent one. */
export function decodeSegment(buf: Buffer, what: string): Segment {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new LifeboatError('CORRUPT', `${what} is not an oplog segment`);
  const len = buf.readUInt32BE(8);
  if (len > MAX_META || 12 + len > buf.length) throw new LifeboatError('CORRUPT', `${what}: segment header of ${len} bytes does not fit`);
  let meta: SegmentMeta;
  try {
    meta = JSON.parse(buf.toString('utf8', 12, 12 + len)) as SegmentMeta;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: unreadable segment header`, { cause: err });
  }
  if (meta?.v !== 1) throw new LifeboatError('UNSUPPORTED_FORMAT', `${what}: segment format ${String(meta?.v)}`);
  const data = buf.subarray(12 + len);
  checkMeta(meta, data.length, what);
  return { meta, data };
}

function checkMeta(meta: SegmentMeta, bytes: number, what: string): void {
  const bad = (why: string) => new LifeboatError('CORRUPT', `${what}: ${why}`, { hint: '`lifeboat check` reads every stored object' });
  if (meta.format !== 'jsonl' && meta.format !== 'u32be') throw bad('unknown record format');
  if (!Number.isSafeInteger(meta.start) || !Number.isSafeInteger(meta.end) || meta.start < 0 || meta.end <= meta.start) throw bad('bad offsets');
  if (meta.end - meta.start !== bytes) throw bad(`${bytes} bytes for offsets ${meta.start}..${meta.end}`);
  if (!Number.isSafeInteger(meta.records) || meta.records < 1 || !Number.isSafeInteger(meta.untimed)) throw bad('bad record count');
  const f = meta.file;
  if (!f || !Number.isSafeInteger(f.ino) || !Number.isSafeInteger(f.dev) || !Number.isSafeInteger(f.headLen) || typeof f.head !== 'string') throw bad('no file identity');
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

/**
 * The segments that carry a generation on from offset `from` to its newest end, in
 * order. Two shippers of the same generation (a backup beside a replicator) may store
 * overlapping segments; the one reaching furthest is taken at each step, so no byte is
 * read twice. Returns where the chain stops short of the newest end, if it does.
 */
export function chainFrom(from: number, names: readonly SegmentName[]): { chain: SegmentName[]; gapAt?: number } {
  const chain: SegmentName[] = [];
  let at = from;
  for (;;) {
    let best: SegmentName | undefined;
    for (const n of names) if (n.start <= at && n.end > at && (!best || n.end > best.end)) best = n;
    if (!best) break;
    chain.push(best);
    at = best.end;
  }
  const newest = names.reduce((m, n) => Math.max(m, n.end), -1);
  return newest > at ? { chain, gapAt: at } : { chain };
}
