/**
 * Records in a journal's bytes: where whole records end (a partial last one waits),
 * and each record's time. Two framings: `jsonl`, a record per line ending in "\n";
 * `u32be`, a 4-byte big-endian length and then that many bytes. A record's time is
 * its time field (JSON; for u32be, a payload that is JSON) as RFC 3339 or a number of
 * Unix ms (or seconds, below 10^11), else `seen`, the moment the bytes were read
 * (with a time field configured, a record lacking it takes the time of the record
 * before it, and is counted as untimed).
 * Times are kept monotonic (a record is never earlier than the one before it), so
 * "the records up to T" is always a prefix of the journal: replaying a prefix is what
 * rebuilds a state.
 */
import { LifeboatError } from '../../errors.js';
import type { RecordFormat } from './options.js';
import type { Mark } from './segment.js';

/** A record larger than this is refused rather than buffered (memory is bounded by it). */
export const MAX_RECORD = 64 << 20;

/** Where the whole records in `buf` end (offsets relative to it), at most `limit` of them counted. */
export function recordEnds(buf: Buffer, format: RecordFormat, where: number): number[] {
  const ends: number[] = [];
  if (format === 'jsonl') {
    let i = buf.indexOf(0x0a);
    while (i >= 0) {
      ends.push(i + 1);
      i = buf.indexOf(0x0a, i + 1);
    }
    return ends;
  }
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = buf.readUInt32BE(at);
    if (len + 4 > MAX_RECORD) throw tooLarge(len + 4, where + at);
    if (at + 4 + len > buf.length) break;
    at += 4 + len;
    ends.push(at);
  }
  return ends;
}

/** The bytes a u32be record starting at the front of `head` needs, or undefined when the header is incomplete. */
export function u32Length(head: Buffer, where: number): number | undefined {
  if (head.length < 4) return undefined;
  const n = head.readUInt32BE(0) + 4;
  if (n > MAX_RECORD) throw tooLarge(n, where);
  return n;
}

export function tooLarge(bytes: number, where: number): LifeboatError {
  return new LifeboatError('SOURCE_CORRUPT', `a record of ${bytes} bytes at offset ${where} is larger than the ${MAX_RECORD >> 20} MiB limit`, {
    hint: 'the journal is damaged or not in this format (--format jsonl or u32be); records larger than 64 MiB are not shipped',
  });
}

/** A record's time from its field, or undefined when it has none that reads as a time. */
export function fieldTime(record: Buffer, format: RecordFormat, field: string): number | undefined {
  const body = format === 'jsonl' ? record.subarray(0, record.length - 1) : record.subarray(4);
  if (body.length === 0) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  for (const part of field.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  if (typeof v === 'number' && Number.isFinite(v) && v >= 0) return Math.floor(v >= 1e11 ? v : v * 1000);
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(v)) {
    const t = Date.parse(v.replace(' ', 'T'));
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

export interface Timed {
  marks: Mark[];
  untimed: number;
  /** The newest (monotonic) time. */
  last: number;
}

/**
 * The cut points of records ending at `ends` (relative to `buf`, which starts at
 * journal offset `base`): one mark per run of records sharing a time.
 */
export function markRecords(buf: Buffer, ends: readonly number[], base: number, opts: { format: RecordFormat; timeField?: string | undefined; seen: number; after: number }): Timed {
  const marks: Array<[number, number]> = [];
  let untimed = 0;
  let last = opts.after;
  let from = 0;
  for (const end of ends) {
    let t: number | undefined;
    if (opts.timeField !== undefined) {
      t = fieldTime(buf.subarray(from, end), opts.format, opts.timeField);
      if (t === undefined) untimed++;
    }
    // Without a time of its own a record goes with the one before it (it was written after it).
    last = Math.max(last, t ?? (opts.timeField !== undefined && last > 0 ? last : opts.seen));
    const prev = marks[marks.length - 1];
    if (prev && prev[1] === last) prev[0] = base + end;
    else marks.push([base + end, last]);
    from = end;
  }
  return { marks, untimed, last };
}

/** How many records `data` (whole records of `format`) holds. */
export function countRecords(data: Buffer, format: RecordFormat): number {
  if (format === 'jsonl') {
    let n = 0;
    let i = data.indexOf(0x0a);
    while (i >= 0) {
      n++;
      i = data.indexOf(0x0a, i + 1);
    }
    return n;
  }
  let n = 0;
  for (let at = 0; at + 4 <= data.length; at += 4 + data.readUInt32BE(at)) n++;
  return n;
}
