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
 * Transaction numbers (docs/redis.md): `firstTxn` is the number, in its generation, of
 * the first transaction (scanner.ts's TxnTracker: a write command, or a whole MULTI…EXEC
 * block) ending in the segment, `txns` how many end in it. The replicator counts them as
 * it ships; where each one ends is found again by scanning the stored bytes the same
 * way, so the header stays small. Segments written before 2026-12-03 lack both.
 *
 * Name and framing are src/engine/log-segment.ts's (a listing alone tells how far a
 * generation reaches). Content: `LBRDSEG1`, a 4-byte big-endian length, that many
 * bytes of JSON (SegmentMeta), then the stream bytes from `start` to `end`.
 */
import { LifeboatError } from '../../errors.js';
import { CommandScanner } from './scanner.js';
import { checkOffsetsAndMarks, frameSegment, offsetKey, unframeSegment, type Mark } from '../../engine/log-segment.js';

export { chainFrom, offsetKey, parseSegmentName, segmentName, type Mark, type SegmentName } from '../../engine/log-segment.js';

export interface SegmentMeta {
  v: 1;
  /** The replication id the offsets belong to (after a +CONTINUE the server may name a new one; offsets carry on). */
  replid: string;
  start: number;
  end: number;
  /** Ascending; the last is at `end`. */
  marks: Mark[];
  /** The number of the first transaction ending in this segment (1 for a generation's first), with `txns`; absent in older segments. */
  firstTxn?: number;
  /** How many transactions end in this segment (0: only housekeeping such as PING). */
  txns?: number;
  /** The database selected where the segment starts (by the last SELECT before it); absent when none was yet, or in older segments. */
  db?: number;
}

export interface Segment {
  meta: SegmentMeta;
  /** Exactly end − start bytes. */
  stream: Buffer;
}

const MAGIC = Buffer.from('LBRDSEG1', 'latin1');
/** A segment's header is small; a larger one is damage, refused before it is parsed. */
const MAX_META = 64 << 20;

export function encodeSegment(seg: Segment): Buffer {
  checkMeta(seg.meta, seg.stream.length, 'segment');
  return frameSegment(MAGIC, seg.meta, seg.stream);
}

/** Reads a stored segment; CORRUPT for anything that is not a whole, self-consistent one. */
export function decodeSegment(buf: Buffer, what: string): Segment {
  const { meta, body } = unframeSegment(buf, MAGIC, MAX_META, what, 'a Redis command segment');
  checkMeta(meta as SegmentMeta, body.length, what);
  return { meta: meta as SegmentMeta, stream: body };
}

function checkMeta(meta: SegmentMeta, streamBytes: number, what: string): void {
  const bad = (why: string) => new LifeboatError('CORRUPT', `${what}: ${why}`);
  if (typeof meta.replid !== 'string' || !/^[0-9a-f]{40}$/.test(meta.replid)) throw bad('no replication id');
  checkOffsetsAndMarks(meta, streamBytes, bad, 'stream bytes');
  if ((meta.firstTxn === undefined) !== (meta.txns === undefined)) throw bad('half a transaction count');
  if (meta.firstTxn !== undefined && !(Number.isSafeInteger(meta.firstTxn) && meta.firstTxn >= 1 && Number.isSafeInteger(meta.txns) && (meta.txns as number) >= 0)) {
    throw bad('a malformed transaction count');
  }
  if (meta.db !== undefined && !(Number.isSafeInteger(meta.db) && meta.db >= 0)) throw bad('a malformed database number');
}

/** The number of the last transaction ending in a segment (firstTxn − 1 when none does), or undefined for an unnumbered one. */
export function lastTxn(meta: Pick<SegmentMeta, 'firstTxn' | 'txns'>): number | undefined {
  return meta.firstTxn === undefined ? undefined : meta.firstTxn + (meta.txns ?? 0) - 1;
}

/** The database selected where a segment ends: its `db`, or the last SELECT in it. */
export function dbAtEnd(seg: Segment): number | undefined {
  let db = seg.meta.db;
  new CommandScanner().scan(seg.stream, (_end, kind, n) => {
    if (kind === 'select') db = n;
  });
  return db;
}

/** Joins neighbouring segments (each starting where the one before ended) into one. */
export function mergeSegments(parts: readonly Segment[]): Segment {
  const first = parts[0];
  if (!first) throw new Error('mergeSegments: nothing to merge');
  const marks: Mark[] = [];
  let prev: Segment | undefined;
  // Numbers carry over only when every part has them and each continues the one before.
  let txns: number | undefined = 0;
  for (const p of parts) {
    if (prev && prev.meta.end !== p.meta.start) {
      throw new LifeboatError('CORRUPT', `command segments ending at ${offsetKey(prev.meta.end)} and starting at ${offsetKey(p.meta.start)} do not join`);
    }
    if (prev && p.meta.firstTxn !== undefined && lastTxn(prev.meta) !== undefined && p.meta.firstTxn !== (lastTxn(prev.meta) as number) + 1) {
      throw new LifeboatError('CORRUPT', `command segments ${offsetKey(prev.meta.start)} and ${offsetKey(p.meta.start)} number their transactions apart (${lastTxn(prev.meta)}, then ${p.meta.firstTxn})`);
    }
    txns = txns === undefined || p.meta.txns === undefined ? undefined : txns + p.meta.txns;
    marks.push(...p.meta.marks);
    prev = p;
  }
  const last = parts[parts.length - 1] as Segment;
  const numbered = txns !== undefined && first.meta.firstTxn !== undefined ? { firstTxn: first.meta.firstTxn, txns } : {};
  const db = first.meta.db !== undefined ? { db: first.meta.db } : {};
  return { meta: { v: 1, replid: last.meta.replid, start: first.meta.start, end: last.meta.end, marks, ...numbered, ...db }, stream: Buffer.concat(parts.map((p) => p.stream)) };
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
