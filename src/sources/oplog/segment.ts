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
 * A generation that continues a restored copy of the journal (fork.ts) carries `fork`
 * in every segment: the stored pieces of history (generation, from, to) whose bytes
 * the file's first `fork.bytes` bytes are; its own records start there.
 *
 * Name and framing are src/engine/log-segment.ts's, shared with Redis's command
 * segments. Content: `LBOPSEG1`, a 4-byte big-endian length, that many bytes of JSON
 * (SegmentMeta), then the record bytes.
 */
import { LifeboatError } from '../../errors.js';
import { checkOffsetsAndMarks, frameSegment, unframeSegment, type Mark } from '../../engine/log-segment.js';
import type { FileIdentity } from './point.js';

/** A mark is a record boundary and the time of every record before it (Unix ms). */
export { chainFrom, parseSegmentName, segmentName, type Mark, type SegmentName } from '../../engine/log-segment.js';

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
  /** The generation continues a restored copy: its bytes [0, bytes) are these pieces of history, in order. */
  fork?: Fork;
}

/** A piece of stored history: bytes [from, to) of a generation's file. */
export type Piece = readonly [generation: string, from: number, to: number];

export interface Fork {
  bytes: number;
  pieces: Piece[];
}

export interface Segment {
  meta: SegmentMeta;
  data: Buffer;
}

const MAGIC = Buffer.from('LBOPSEG1', 'latin1');
const MAX_META = 16 << 20;

export function encodeSegment(seg: Segment): Buffer {
  checkMeta(seg.meta, seg.data.length, 'segment');
  return frameSegment(MAGIC, seg.meta, seg.data);
}

/** Reads a stored segment; CORRUPT for anything that is not a whole, self-consistent one. */
export function decodeSegment(buf: Buffer, what: string): Segment {
  const { meta, body } = unframeSegment(buf, MAGIC, MAX_META, what, 'an oplog segment');
  checkMeta(meta as SegmentMeta, body.length, what);
  return { meta: meta as SegmentMeta, data: body };
}

function checkMeta(meta: SegmentMeta, bytes: number, what: string): void {
  const bad = (why: string) => new LifeboatError('CORRUPT', `${what}: ${why}`, { hint: '`lifeboat check` reads every stored object' });
  if (meta.format !== 'jsonl' && meta.format !== 'u32be') throw bad('unknown record format');
  if (!Number.isSafeInteger(meta.records) || meta.records < 1 || !Number.isSafeInteger(meta.untimed)) throw bad('bad record count');
  const f = meta.file;
  if (!f || !Number.isSafeInteger(f.ino) || !Number.isSafeInteger(f.dev) || !Number.isSafeInteger(f.headLen) || typeof f.head !== 'string') throw bad('no file identity');
  checkOffsetsAndMarks(meta, bytes, bad);
  if (meta.fork !== undefined && !validFork(meta.fork, meta.start)) throw bad('bad fork record');
}

/** Pieces that are ordered, non-empty, of 20-hex generations, and add up to `bytes` (≤ where the segment starts). */
export function validFork(f: Fork, start = Infinity): boolean {
  if (!f || !Number.isSafeInteger(f.bytes) || f.bytes < 1 || f.bytes > start || !Array.isArray(f.pieces) || f.pieces.length > 100_000) return false;
  let sum = 0;
  for (const p of f.pieces) {
    if (!Array.isArray(p) || p.length !== 3 || typeof p[0] !== 'string' || !/^[0-9a-f]{20}$/.test(p[0])) return false;
    if (!Number.isSafeInteger(p[1]) || !Number.isSafeInteger(p[2]) || p[1] < 0 || p[2] <= p[1]) return false;
    sum += p[2] - p[1];
  }
  return sum === f.bytes;
}
