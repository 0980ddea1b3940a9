/**
 * What the log segments of the kinds addressed by byte offset (Redis's command stream,
 * an application's operation log) share: the object name, the framing, the check of
 * their cut points, and the chain a restore reads. Each kind's segment.ts keeps its
 * own magic and header fields (docs/redis.md, docs/oplog.md).
 *
 * Name: `<start>-<end>-<last mark time>`, offsets 16 hex digits and the time 12 hex
 * digits of Unix ms, so names sort in history order. Content: an 8-byte magic, a 4-byte
 * big-endian length, that many bytes of JSON (the header, `v: 1`), then the body.
 */
import { LifeboatError } from '../errors.js';

/** A cut point: an offset where the log may be cut, and when everything before it had arrived or was written (Unix ms). */
export type Mark = readonly [offset: number, time: number];

export interface SegmentName {
  start: number;
  end: number;
  lastTime: number;
  file: string;
}

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');

export function offsetKey(n: number): string {
  return hex(n, 16);
}

export function segmentName(meta: { start: number; end: number; marks: readonly Mark[] }): string {
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

export function frameSegment(magic: Buffer, meta: object, body: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([magic, len, json, body]);
}

/**
 * The header and body of a stored segment: CORRUPT when it is not one of `label`
 * (`a Redis command segment`), its header does not fit or is not JSON;
 * UNSUPPORTED_FORMAT for a header version other than 1. The header is not checked further.
 */
export function unframeSegment(buf: Buffer, magic: Buffer, maxMeta: number, what: string, label: string): { meta: unknown; body: Buffer } {
  if (buf.length < 12 || !buf.subarray(0, 8).equals(magic)) throw new LifeboatError('CORRUPT', `${what} is not ${label}`);
  const len = buf.readUInt32BE(8);
  if (len > maxMeta || 12 + len > buf.length) throw new LifeboatError('CORRUPT', `${what}: segment header of ${len} bytes does not fit`);
  let meta: { v?: unknown } | null;
  try {
    meta = JSON.parse(buf.toString('utf8', 12, 12 + len)) as { v?: unknown } | null;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: unreadable segment header`, { cause: err });
  }
  if (meta?.v !== 1) throw new LifeboatError('UNSUPPORTED_FORMAT', `${what}: segment format ${String(meta?.v)}`);
  return { meta, body: buf.subarray(12 + len) };
}

/** Throws `bad(why)` unless start < end are safe offsets, `bytes` long, and `marks` ascend in offset and time, the last at `end`. */
export function checkOffsetsAndMarks(
  meta: { start: unknown; end: unknown; marks: unknown },
  bytes: number,
  bad: (why: string) => Error,
  noun = 'bytes',
): void {
  const { start, end, marks } = meta;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || (start as number) < 0 || (end as number) <= (start as number)) throw bad('bad offsets');
  if ((end as number) - (start as number) !== bytes) throw bad(`${bytes} ${noun} for offsets ${String(start)}..${String(end)}`);
  if (!Array.isArray(marks) || marks.length === 0) throw bad('no cut points');
  let prev = start as number;
  let prevTime = 0;
  for (const m of marks as unknown[]) {
    if (!Array.isArray(m) || m.length !== 2 || !Number.isSafeInteger(m[0]) || !Number.isSafeInteger(m[1])) throw bad('a malformed cut point');
    if (m[0] <= prev || m[0] > (end as number) || m[1] < prevTime) throw bad('cut points out of order');
    prev = m[0] as number;
    prevTime = m[1] as number;
  }
  if (prev !== end) throw bad('the last cut point is not the end');
}

/**
 * The segments that carry history on from offset `from` to the newest end, in order.
 * Where segments overlap (a compaction stopped half way, or two shippers of one
 * generation) the one reaching furthest is taken at each step, so no byte is read
 * twice. Returns the chain and, when it stops short of the newest end, where the gap begins.
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
