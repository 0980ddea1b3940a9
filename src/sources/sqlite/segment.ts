/**
 * The log objects SQLite replication stores: `logs/sqlite.NAME/<generation>/<segment>`.
 *
 * A generation is one unbroken history of a database file: it starts with a snapshot
 * and continues with segments of WAL frames, each starting exactly where the previous
 * one ended. A position is (cycle, frame): `cycle` counts WAL restarts within the
 * generation and `frame` the frames into that cycle; positions compare as pairs.
 *
 * A segment holds whole transactions, with the time each was first seen, so a restore
 * can stop between any two of them. Frames are kept as SQLite wrote them (24-byte
 * header and page): the header gives the page number and, on a commit frame, the
 * database size. Compaction concatenates neighbours into one object; no transaction
 * is dropped, so compacted history keeps every restore point.
 *
 * Object name: `<start>-<end>-<last commit time>`, each position 16 hex digits
 * (cycle, frame) and the time 12 hex digits of Unix milliseconds, so names sort in
 * history order and a listing alone tells how far a generation reaches.
 */
import { LifeboatError } from '../../errors.js';
import type { Checksum } from './wal.js';

export interface Position {
  cycle: number;
  frame: number;
}

export interface Commit {
  cycle: number;
  /** Frame number of the commit frame within its cycle (1-based). */
  frame: number;
  /** When the transaction was first seen, Unix ms. */
  time: number;
  /** Byte offset in the frame area just after this transaction's last frame. */
  end: number;
  /**
   * The transaction's number in its generation: 1 for the first shipped after the
   * generation's first snapshot, one more for each after it (transactions.ts). Written
   * by replicators since 2026-12-03; older segments lack it and are numbered by
   * counting (transactions.ts).
   */
  seq?: number;
}

/** The WAL cycle a segment ended in, so a restarted replicator can check it may continue. */
export interface WalTail {
  salt1: number;
  salt2: number;
  checkpointSeq: number;
  checksum: Checksum;
}

export interface SegmentMeta {
  v: 1;
  pageSize: number;
  start: Position;
  end: Position;
  commits: Commit[];
  tail: WalTail;
}

export interface Segment {
  meta: SegmentMeta;
  frames: Buffer;
}

const MAGIC = Buffer.from('LBSQSEG1', 'latin1');

export function comparePos(a: Position, b: Position): number {
  return a.cycle - b.cycle || a.frame - b.frame;
}

export function posKey(p: Position): string {
  return p.cycle.toString(16).padStart(8, '0') + p.frame.toString(16).padStart(8, '0');
}

function parsePos(key: string): Position {
  return { cycle: parseInt(key.slice(0, 8), 16), frame: parseInt(key.slice(8), 16) };
}

export interface SegmentName {
  start: Position;
  end: Position;
  lastTime: number;
  file: string;
}

export function segmentName(meta: SegmentMeta): string {
  const last = meta.commits[meta.commits.length - 1];
  return `${posKey(meta.start)}-${posKey(meta.end)}-${(last?.time ?? 0).toString(16).padStart(12, '0')}`;
}

export function parseSegmentName(file: string): SegmentName | undefined {
  const m = /^([0-9a-f]{16})-([0-9a-f]{16})-([0-9a-f]{12})$/.exec(file);
  if (!m) return undefined;
  return { start: parsePos(m[1] as string), end: parsePos(m[2] as string), lastTime: parseInt(m[3] as string, 16), file };
}

export function encodeSegment(seg: Segment): Buffer {
  const meta = Buffer.from(JSON.stringify(seg.meta), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(meta.length);
  return Buffer.concat([MAGIC, len, meta, seg.frames]);
}

export function decodeSegment(buf: Buffer, what: string): Segment {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) {
    throw new LifeboatError('CORRUPT', `${what} is not a SQLite log segment`);
  }
  const len = buf.readUInt32BE(8);
  let meta: SegmentMeta;
  try {
    meta = JSON.parse(buf.toString('utf8', 12, 12 + len)) as SegmentMeta;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: unreadable segment header`, { cause: err });
  }
  if (meta.v !== 1) throw new LifeboatError('UNSUPPORTED_FORMAT', `${what}: segment format ${String(meta.v)}`);
  return { meta, frames: buf.subarray(12 + len) };
}

/** Joins neighbouring segments (each starting where the one before ended) into one. */
export function mergeSegments(parts: readonly Segment[]): Segment {
  const first = parts[0];
  if (!first) throw new Error('mergeSegments: nothing to merge');
  const commits: Commit[] = [];
  let base = 0;
  let prev: Segment | undefined;
  for (const p of parts) {
    if (prev && comparePos(prev.meta.end, p.meta.start) !== 0) {
      throw new LifeboatError('CORRUPT', `log segments ${posKey(prev.meta.end)} and ${posKey(p.meta.start)} do not join`);
    }
    for (const c of p.meta.commits) commits.push({ ...c, end: c.end + base });
    base += p.frames.length;
    prev = p;
  }
  const last = parts[parts.length - 1] as Segment;
  return {
    meta: { v: 1, pageSize: first.meta.pageSize, start: first.meta.start, end: last.meta.end, commits, tail: last.meta.tail },
    frames: Buffer.concat(parts.map((p) => p.frames)),
  };
}

/**
 * The segments that carry history on from `from` to the newest end, in order. After
 * a compaction that stopped half way both the merged object and its parts exist; the
 * longest object starting at each point is taken. Returns the chain and, when the
 * chain stops short of the newest segment, where the gap begins.
 */
export function chainFrom(from: Position, names: readonly SegmentName[]): { chain: SegmentName[]; gapAt?: Position } {
  const sorted = [...names].sort((a, b) => comparePos(a.start, b.start) || comparePos(b.end, a.end));
  const chain: SegmentName[] = [];
  let at = from;
  for (;;) {
    // A segment containing `at` (the snapshot may fall inside one), reaching furthest.
    let best: SegmentName | undefined;
    for (const n of sorted) {
      if (comparePos(n.start, at) <= 0 && comparePos(n.end, at) > 0 && (!best || comparePos(n.end, best.end) > 0)) best = n;
    }
    if (!best) break;
    chain.push(best);
    at = best.end;
  }
  const newest = sorted.reduce<Position | undefined>((m, n) => (!m || comparePos(n.end, m) > 0 ? n.end : m), undefined);
  return newest && comparePos(newest, at) > 0 ? { chain, gapAt: at } : { chain };
}
