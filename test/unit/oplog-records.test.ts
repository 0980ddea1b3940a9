/** Record framing, record times, the segment format and retention of the oplog kind (src/sources/oplog/). */
import { describe, expect, it } from 'vitest';
import { countRecords, fieldTime, markRecords, MAX_RECORD, recordEnds } from '../../src/sources/oplog/records.js';
import { chainFrom, decodeSegment, encodeSegment, parseSegmentName, segmentName, type SegmentMeta } from '../../src/sources/oplog/segment.js';
import { trimOplog } from '../../src/sources/oplog/log-retention.js';
import type { Repository } from '../../src/repo/repository.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';

const u32 = (s: string) => {
  const b = Buffer.from(s);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(b.length);
  return Buffer.concat([h, b]);
};

describe('oplog records', () => {
  it('finds whole records only: a partial last line or frame waits', () => {
    expect(recordEnds(Buffer.from('{"a":1}\n{"a":2}\n{"a"'), 'jsonl', 0)).toEqual([8, 16]);
    const bin = Buffer.concat([u32('ab'), u32('cde'), u32('fghij').subarray(0, 6)]);
    expect(recordEnds(bin, 'u32be', 0)).toEqual([6, 13]);
    expect(countRecords(bin.subarray(0, 13), 'u32be')).toBe(2);
  });

  it('refuses a frame larger than the limit with its offset', () => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(MAX_RECORD);
    expect(() => recordEnds(h, 'u32be', 100)).toThrow(/at offset 100 is larger than the 64 MiB limit/);
  });

  it('reads a time field as RFC 3339, Unix ms or Unix s, nested with a dot; anything else has none', () => {
    const line = (o: unknown) => Buffer.from(`${JSON.stringify(o)}\n`);
    expect(fieldTime(line({ ts: '2026-12-02T10:00:00.250Z' }), 'jsonl', 'ts')).toBe(Date.parse('2026-12-02T10:00:00.250Z'));
    expect(fieldTime(line({ ts: 1764669600123 }), 'jsonl', 'ts')).toBe(1764669600123);
    expect(fieldTime(line({ ts: 1764669600 }), 'jsonl', 'ts')).toBe(1764669600000);
    expect(fieldTime(line({ meta: { at: 1764669600 } }), 'jsonl', 'meta.at')).toBe(1764669600000);
    expect(fieldTime(line({ ts: 'yesterday' }), 'jsonl', 'ts')).toBeUndefined();
    expect(fieldTime(Buffer.from('not json\n'), 'jsonl', 'ts')).toBeUndefined();
    expect(fieldTime(u32('{"ts":1764669600123}'), 'u32be', 'ts')).toBe(1764669600123);
  });

  it('marks runs of records with monotonic times; a record without a time goes with the one before', () => {
    const buf = Buffer.from(['{"ts":1000000000001}', '{"ts":1000000000001}', '{"x":1}', '{"ts":1000000000005}', '{"ts":1000000000003}'].map((l) => `${l}\n`).join(''));
    const ends = recordEnds(buf, 'jsonl', 0);
    const t = markRecords(buf, ends, 100, { format: 'jsonl', timeField: 'ts', seen: 2e12, after: 0 });
    expect(t.untimed).toBe(1);
    expect(t.marks).toEqual([
      [100 + (ends[2] as number), 1000000000001],
      [100 + (ends[4] as number), 1000000000005],
    ]);
    const shipTime = markRecords(buf, ends, 0, { format: 'jsonl', seen: 1234, after: 0 });
    expect(shipTime.marks).toEqual([[buf.length, 1234]]);
  });
});

const ident = { dev: 1, ino: 2, headLen: 4, head: 'a'.repeat(64) };
const meta = (start: number, end: number, time: number): SegmentMeta => ({ v: 1, format: 'jsonl', start, end, records: 1, untimed: 0, marks: [[end, time]], file: ident });

describe('oplog segments', () => {
  it('round-trips, names sort in history order, and damage is refused', () => {
    const m = meta(0, 4, 5000);
    const enc = encodeSegment({ meta: m, data: Buffer.from('{}\n\n') });
    expect(decodeSegment(enc, 's').meta).toEqual(m);
    expect(parseSegmentName(segmentName(m))).toMatchObject({ start: 0, end: 4, lastTime: 5000 });
    expect(() => decodeSegment(enc.subarray(0, enc.length - 1), 's')).toThrow(/3 bytes for offsets 0..4/);
    expect(() => encodeSegment({ meta: { ...m, marks: [[2, 1]] }, data: Buffer.from('{}\n\n') })).toThrow(/last cut point/);
  });

  it('chains overlapping segments of two shippers without reading a byte twice, and reports a gap', () => {
    const n = (s: number, e: number) => ({ start: s, end: e, lastTime: 0, file: `${s}-${e}` });
    expect(chainFrom(0, [n(0, 10), n(0, 25), n(10, 20), n(20, 30)]).chain.map((c) => c.file)).toEqual(['0-25', '20-30']);
    expect(chainFrom(0, [n(0, 10), n(20, 30)])).toMatchObject({ gapAt: 10 });
  });
});

describe('oplog retention', () => {
  function fakeRepo(files: Array<[gen: string, start: number, end: number, time: number]>) {
    const deleted: string[] = [];
    const repo = {
      listLogs: async () => files.map(([g, s, e, t]) => ({ timeline: g, file: segmentName(meta(s, e, t)), size: 1 })),
      store: { delete: async (key: string) => void deleted.push(key) },
    } as unknown as Repository;
    return { repo, deleted };
  }
  const g1 = '000000000001aaaaaaaa';
  const g2 = '000000000002aaaaaaaa';
  const snap = { source: { kind: 'oplog', name: 'ops' }, time: new Date(0).toISOString() } as unknown as Snapshot;
  const segs: Array<[string, number, number, number]> = [
    [g1, 0, 10, 1000],
    [g1, 10, 20, 2000],
    [g2, 0, 10, 3000],
    [g2, 10, 20, 4000],
  ];

  it('keeps everything while a marker remains and no window is asked for', async () => {
    const { repo, deleted } = fakeRepo(segs);
    expect((await trimOplog(repo, 'ops', [snap], undefined, { dryRun: false, busy: false })).removed).toBe(0);
    expect(deleted).toEqual([]);
  });

  it('removes segments older than the window, never the newest (a restarted replicator continues from it)', async () => {
    const { repo, deleted } = fakeRepo(segs);
    const r = await trimOplog(repo, 'ops', [snap], 3500, { dryRun: false, busy: false });
    expect(r.removed).toBe(3);
    expect(deleted).toHaveLength(3);
    expect(deleted.some((k) => k.includes(`${g2}/${segmentName(meta(10, 20, 4000))}`))).toBe(false);
    const all = fakeRepo(segs);
    expect((await trimOplog(all.repo, 'ops', [], undefined, { dryRun: false, busy: false })).removed).toBe(3);
    const busy = fakeRepo(segs);
    expect((await trimOplog(busy.repo, 'ops', [], undefined, { dryRun: false, busy: true })).removed).toBe(2);
    const dry = fakeRepo(segs);
    expect((await trimOplog(dry.repo, 'ops', [], undefined, { dryRun: true, busy: false })).removed).toBe(3);
    expect(dry.deleted).toEqual([]);
  });
});
