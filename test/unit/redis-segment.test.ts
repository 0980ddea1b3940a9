/**
 * Redis command segments and the choices a restore makes from them: the segment
 * format (round trip, damage refused), chains and gaps, cuts at marks, which base and
 * segments a restore to a moment takes (planRestore, on an in-memory repository),
 * and the `COMMAND ARG… => REPLY` checks.
 */
import { describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../src/errors.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { planRestore } from '../../src/sources/redis/restore-plan.js';
import { RespError, encodeCommand } from '../../src/sources/redis/resp.js';
import { chainFrom, cutAt, decodeSegment, encodeSegment, parseSegmentName, segmentName, type SegmentMeta } from '../../src/sources/redis/segment.js';
import { parseCheck, renderReply, splitWords } from '../../src/sources/redis/verify.js';
import { REPLID, storeBase, storeSegments } from '../redis-history.js';

const meta = (start: number, end: number, marks: Array<[number, number]>): SegmentMeta => ({ v: 1, replid: REPLID, start, end, marks });

describe('redis command segments', () => {
  it('round-trips and names itself by offsets and the last mark time', () => {
    const stream = Buffer.concat([encodeCommand(['SELECT', 0]), encodeCommand(['SET', 'a', '1'])]);
    const m = meta(100, 100 + stream.length, [[100 + encodeCommand(['SELECT', 0]).length, 5000], [100 + stream.length, 6000]]);
    const back = decodeSegment(encodeSegment({ meta: m, stream }), 'x');
    expect(back.meta).toEqual(m);
    expect(back.stream.equals(stream)).toBe(true);
    const name = parseSegmentName(segmentName(m));
    expect(name).toMatchObject({ start: 100, end: 100 + stream.length, lastTime: 6000 });
  });

  it('refuses damage: wrong length, marks out of order, last mark not at the end', () => {
    const stream = encodeCommand(['PING']);
    const good = encodeSegment({ meta: meta(0, stream.length, [[stream.length, 1]]), stream });
    expect(() => decodeSegment(good.subarray(0, good.length - 1), 's')).toThrow(/stream bytes/);
    expect(() => encodeSegment({ meta: meta(0, stream.length, [[stream.length - 2, 2], [stream.length, 1]]), stream })).toThrow(/out of order/);
    expect(() => encodeSegment({ meta: meta(0, stream.length, [[2, 1]]), stream })).toThrow(/not the end/);
    expect(() => decodeSegment(Buffer.from('not a segment at all'), 's')).toThrow(/not a Redis command segment/);
  });

  it('chains segments from an offset, prefers the merged one, and reports a gap', () => {
    const n = (start: number, end: number) => ({ start, end, lastTime: end, file: `${start}-${end}` });
    expect(chainFrom(10, [n(10, 20), n(20, 30), n(10, 30), n(30, 40)]).chain.map((c) => c.file)).toEqual(['10-30', '30-40']);
    // A base inside a segment: the segment that covers it starts the chain.
    expect(chainFrom(15, [n(10, 20), n(20, 30)]).chain.map((c) => c.file)).toEqual(['10-20', '20-30']);
    expect(chainFrom(10, [n(10, 20), n(30, 40)])).toEqual({ chain: [n(10, 20)], gapAt: 20 });
  });

  it('cuts at the last mark at or before a time', () => {
    const segs = [meta(0, 30, [[10, 100], [30, 200]]), meta(30, 50, [[40, 300], [50, 400]])];
    expect(cutAt(segs, 99)).toBeUndefined();
    expect(cutAt(segs, 100)).toBe(10);
    expect(cutAt(segs, 299)).toBe(30);
    expect(cutAt(segs, 1e15)).toBe(50);
  });
});

describe('redis restore plan', () => {
  it('takes the base whose generation reaches furthest, and warns of what it cannot reach', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const rdb = Buffer.from('REDIS0010 not parsed here');
    const t0 = Date.now() - 100_000;
    const g1 = '1'.repeat(20);
    const g2 = '2'.repeat(20);
    const old = await storeBase(repo, 'c', rdb, { offset: 0, generation: g1 }, new Date(t0));
    await storeSegments(repo, 'c', g1, 0, [1, 2, 3, 4].map((i) => ({ cmds: [['SET', 'k', i]], time: t0 + i * 1000 })), 2);
    const newer = await storeBase(repo, 'c', rdb, { offset: 900, generation: g2 }, new Date(t0 + 10_000));
    await storeSegments(repo, 'c', g2, 900, [{ cmds: [['SET', 'k', 9]], time: t0 + 11_000 }]);

    const mid = await planRestore(repo, 'c', { time: new Date(t0 + 3500) });
    expect(mid.snapshot.id).toBe(old.id);
    expect(mid.chain.length).toBe(2); // the second segment holds the cut
    expect(mid.warnings).toEqual([]);

    // Between the end of generation 1 and the next base: nothing stored, said so.
    const between = await planRestore(repo, 'c', { time: new Date(t0 + 7000) });
    expect(between.snapshot.id).toBe(old.id);
    expect(between.warnings.join()).toMatch(new RegExp(`between ${new Date(t0 + 4000).toISOString()} and ${new Date(t0 + 10_000).toISOString()}`));

    const latest = await planRestore(repo, 'c', {});
    expect(latest.snapshot.id).toBe(newer.id);
    expect(latest.generation).toBe(g2);

    await expect(planRestore(repo, 'c', { time: new Date(t0 - 1) })).rejects.toThrow(/no backup of "c" at or before/);

    // The first segment after a base is missing: nothing can be replayed, and that is said.
    const g3 = '3'.repeat(20);
    await storeBase(repo, 'd', rdb, { offset: 0, generation: g3 }, new Date(t0));
    await storeSegments(repo, 'd', g3, 0, [1, 2].map((i) => ({ cmds: [['SET', 'k', i]], time: t0 + i * 1000 })), 1, [0]);
    const lost = await planRestore(repo, 'd', {});
    expect(lost.chain).toEqual([]);
    expect(lost.warnings.join()).toMatch(new RegExp(`gap after offset 0: changes between ${new Date(t0).toISOString()} and ${new Date(t0 + 2000).toISOString()}`));
    await expect(planRestore(repo, 'other', {})).rejects.toThrow(/no Redis backups named "other"/);
    const wrong = await planRestore(repo, 'other', { snapshot: old.id }).catch((e: unknown) => e);
    expect(isLifeboatError(wrong, 'WRONG_SOURCE')).toBe(true);
  });
});

describe('redis checks', () => {
  it('splits words with quotes and parses COMMAND => REPLY', () => {
    expect(splitWords(`GET "a key" 'b c' d\\e "x\\"y"`)).toEqual(['GET', 'a key', 'b c', 'd\\e', 'x"y']);
    expect(parseCheck('ZRANGE z 0 -1 => m1\\nm2')).toEqual({ text: 'ZRANGE z 0 -1 => m1\\nm2', args: ['ZRANGE', 'z', '0', '-1'], expected: 'm1\nm2' });
    expect(() => parseCheck('GET a')).toThrow(/no "=> REPLY"/);
    expect(() => parseCheck('CONFIG SET dir /etc => OK')).toThrow(/may not/);
    expect(() => parseCheck('DEBUG SLEEP 10 => OK')).toThrow(/may not/);
    expect(parseCheck('DEBUG DIGEST-VALUE k => x').args).toEqual(['DEBUG', 'DIGEST-VALUE', 'k']);
    expect(() => parseCheck('GET "a => 1')).toThrow(/unbalanced/);
  });

  it('renders replies as the text a check compares', () => {
    expect(renderReply(3)).toBe('3');
    expect(renderReply(null)).toBe('(nil)');
    expect(renderReply('OK')).toBe('OK');
    expect(renderReply(Buffer.from('v'))).toBe('v');
    expect(renderReply([Buffer.from('a'), 2, null])).toBe('a\n2\n(nil)');
    expect(renderReply(new RespError('WRONGTYPE x'))).toBe('(error) WRONGTYPE x');
  });
});
