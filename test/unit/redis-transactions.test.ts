/**
 * Redis transaction numbers (src/sources/redis/transactions.ts) on an in-memory
 * repository: what counts as one transaction (a write command, a whole MULTI…EXEC block;
 * not PING or SELECT), the same numbers, offsets, databases and descriptions however the
 * stream is cut into segments and after they are merged (compaction), keys bounded and
 * values never shown, and the numbers a segment records checked against its bytes.
 * Finding an offset or the generation's end survives compaction merging the segments
 * it listed away before it read them.
 */
import { describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { logSource } from '../../src/sources/redis/names.js';
import { encodeCommand } from '../../src/sources/redis/resp.js';
import { CommandScanner, TxnTracker } from '../../src/sources/redis/scanner.js';
import { decodeSegment, encodeSegment, mergeSegments, segmentName, type Mark, type Segment, type SegmentMeta } from '../../src/sources/redis/segment.js';
import { cutOf, findTransaction, transactionsAround, type DescribedTxn } from '../../src/sources/redis/transactions.js';
import { GENERATION, REPLID, storeBase } from '../redis-history.js';
import { compactGeneration } from '../../src/sources/redis/compact.js';
import { generationEnd } from '../../src/sources/redis/history.js';
import { locateOffset } from '../../src/sources/redis/locate.js';
import { planRestore } from '../../src/sources/redis/restore-plan.js';

const BASE = 1000;
const T0 = Date.parse('2026-12-03T12:00:00Z');

const COMMANDS: Array<Array<string | number>> = [
  ['SELECT', 0],
  ['SET', 'a', 'secret-1'],
  ['PING'],
  ['MULTI'],
  ['SET', 'b', 'secret-2'],
  ['SELECT', 1],
  ['INCRBY', 'c', 5],
  ['EXEC'],
  ['PING'],
  ['DEL', ...Array.from({ length: 11 }, (_, i) => `k:${i}`)],
  ['SELECT', 2],
  ['MSET', 'm1', 'secret-3', 'm2', 'secret-4'],
  ['REPLCONF', 'GETACK', '*'],
  ['FLUSHALL'],
  ['XGROUP', 'CREATE', 'stream', 'g', '$'],
  ['SOMETHINGNEW', 'secret-5'],
];

/** Segments as the replicator ships them, cut after the commands whose indexes are in `cuts` (each a cut point). */
function segments(cuts: number[]): Segment[] {
  const out: Segment[] = [];
  let at = BASE;
  let next = 1;
  let db: number | undefined;
  let from = 0;
  for (const cut of [...cuts, COMMANDS.length - 1]) {
    const stream = Buffer.concat(COMMANDS.slice(from, cut + 1).map((c) => encodeCommand(c)));
    const marks: Mark[] = [];
    const tracker = new TxnTracker();
    let txns = 0;
    let endDb = db;
    new CommandScanner().scan(stream, (end, kind, n) => {
      if (kind === 'select') endDb = n;
      const step = tracker.step(kind);
      if (step === 'txn') txns++;
      if (step !== 'inside') marks.push([at + end, T0 + at + end]);
    });
    const meta: SegmentMeta = { v: 1, replid: REPLID, start: at, end: at + stream.length, marks, firstTxn: next, txns, ...(db !== undefined ? { db } : {}) };
    out.push({ meta, stream });
    next += txns;
    db = endDb;
    at += stream.length;
    from = cut + 1;
  }
  return out;
}

async function repoWith(segs: Segment[], laterBases: number[] = []): Promise<Repository> {
  const repo = await Repository.init(new MemoryStore(), 'pw');
  for (const offset of [BASE, ...laterBases]) {
    await storeBase(repo, 'app', Buffer.from(`REDIS0011 not really ${offset}`), { offset, generation: GENERATION }, new Date(T0 + offset - BASE));
  }
  for (const s of segs) await repo.putLog(logSource('app'), GENERATION, segmentName(s.meta), encodeSegment(s));
  return repo;
}

async function listed(segs: Segment[]): Promise<DescribedTxn[]> {
  const repo = await repoWith(segs);
  return (await transactionsAround(repo, 'app', { around: new Date(T0), limit: 50 })).txns;
}

describe('redis transaction numbers', () => {
  it('numbers write commands and whole blocks, not housekeeping; keys bounded, values never shown', async () => {
    const txns = await listed(segments([2, 8, 11]));
    expect(txns.map((t) => t.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    const brief = txns.map((t) => ({ seq: t.seq, db: t.db, block: t.block, n: t.commandCount, commands: t.commands }));
    expect(brief).toEqual([
      { seq: 1, db: 0, block: false, n: 1, commands: [{ name: 'SET', keys: ['a'], keyCount: 1 }] },
      { seq: 2, db: 0, block: true, n: 2, commands: [{ name: 'SET', keys: ['b'], keyCount: 1 }, { name: 'INCRBY', keys: ['c'], keyCount: 1 }] },
      { seq: 3, db: 1, block: false, n: 1, commands: [{ name: 'DEL', keys: Array.from({ length: 8 }, (_, i) => `k:${i}`), keyCount: 11 }] },
      { seq: 4, db: 2, block: false, n: 1, commands: [{ name: 'MSET', keys: ['m1', 'm2'], keyCount: 2 }] },
      { seq: 5, db: 2, block: false, n: 1, commands: [{ name: 'FLUSHALL', keys: [], keyCount: 0 }] },
      { seq: 6, db: 2, block: false, n: 1, commands: [{ name: 'XGROUP', keys: ['stream'], keyCount: 1 }] },
      { seq: 7, db: 2, block: false, n: 1, commands: [{ name: 'SOMETHINGNEW', keys: [], keyCount: null }] },
    ]);
    expect(JSON.stringify(txns)).not.toMatch(/secret/);
    // The block runs from its MULTI to its EXEC; before it stands the cut point a restore stops at.
    const multiAt = BASE + COMMANDS.slice(0, 3).reduce((n, c) => n + encodeCommand(c).length, 0);
    const execEnd = BASE + COMMANDS.slice(0, 8).reduce((n, c) => n + encodeCommand(c).length, 0);
    expect(txns[1]).toMatchObject({ before: multiAt, end: execEnd });
    expect(cutOf(txns[1]!, false)).toEqual({ generation: GENERATION, offset: multiAt });
    expect(cutOf(txns[1]!, true)).toEqual({ generation: GENERATION, offset: execEnd });
  });

  it('gives the same numbers, offsets, times and databases however the stream is cut, and after a merge', async () => {
    const want = await listed(segments([]));
    const strip = (t: DescribedTxn[]) => t.map(({ time: _t, ...x }) => x);
    for (const cuts of [[0], [2, 8, 11], [0, 1, 2, 8, 9, 10, 11, 12, 13, 14]]) {
      const segs = segments(cuts);
      const got = await listed(segs);
      // Times are when each segment's bytes arrived: the same marks, so the same times.
      expect(got).toEqual(want);
      expect(strip(await listed([mergeSegments(segs)]))).toEqual(strip(want));
      if (segs.length < 3) continue;
      const merged = mergeSegments(segs.slice(1, 3));
      expect(merged.meta).toMatchObject({ firstTxn: segs[1]!.meta.firstTxn, txns: segs[1]!.meta.txns! + segs[2]!.meta.txns! });
      if (segs[1]!.meta.db !== undefined) expect(merged.meta.db).toBe(segs[1]!.meta.db);
    }
  });

  it('lists `limit` around the moment, a quarter before it, from one segment holding them all or from many', async () => {
    for (const cuts of [[], [2, 8, 11]]) {
      const repo = await repoWith(segments(cuts));
      const all = (await transactionsAround(repo, 'app', { around: new Date(T0), limit: 50 })).txns;
      const third = all[3]!;
      const near = await transactionsAround(repo, 'app', { around: new Date(third.time), limit: 4 });
      expect(near.txns.map((x) => x.seq)).toEqual([3, 4, 5, 6]);
      const late = await transactionsAround(repo, 'app', { around: new Date(T0 + 10_000_000), limit: 3 });
      expect(late.txns.map((x) => x.seq)).toEqual([5, 6, 7]);
    }
  });

  it('finds a number, and says which exist when asked for one that does not', async () => {
    const repo = await repoWith(segments([0, 1, 2, 8, 9, 10, 11, 12, 13, 14]));
    for (let n = 1; n <= 7; n++) expect((await findTransaction(repo, 'app', n)).seq).toBe(n);
    await expect(findTransaction(repo, 'app', 8)).rejects.toThrow(/no transaction 8 in generation b{20} \(stored: 1 to 7\)/);
    await expect(findTransaction(repo, 'app', 2, 'c'.repeat(20))).rejects.toThrow(/has no generation c{20}/);
  });

  it('lists and finds across a gap from the base after it, and only what a restore reaches', async () => {
    const segs = segments([2, 8, 9, 11]);
    const gapped = [segs[0]!, segs[1]!, segs[3]!, segs[4]!];
    const alone = await repoWith(gapped);
    expect((await transactionsAround(alone, 'app', { around: new Date(T0), limit: 50 })).txns.map((x) => x.seq)).toEqual([1, 2]);
    const repo = await repoWith(gapped, [segs[3]!.meta.start]);
    expect((await transactionsAround(repo, 'app', { around: new Date(T0), limit: 50 })).txns.map((x) => x.seq)).toEqual([1, 2, 4, 5, 6, 7]);
    expect((await findTransaction(repo, 'app', 5)).seq).toBe(5);
    await expect(findTransaction(repo, 'app', 3)).rejects.toThrow(/no transaction 3 .*\(stored: 1 to 7\)/);
  });

  it('refuses a segment whose recorded count disagrees with its bytes, and merges that number apart', async () => {
    const segs = segments([2, 8]);
    const lying = { ...segs[1]!, meta: { ...segs[1]!.meta, txns: 5 } };
    await expect(listed([segs[0]!, lying, segs[2]!])).rejects.toThrow(/records 5 transactions but holds 1/);
    expect(() => mergeSegments([segs[0]!, { ...segs[1]!, meta: { ...segs[1]!.meta, firstTxn: 9 } }])).toThrow(/number their transactions apart/);
    const { txns: _n, ...half } = segs[0]!.meta;
    expect(() => decodeSegment(encodeSegment({ ...segs[0]!, meta: half }), 's')).toThrow(/half a transaction count/);
    // A part without numbers (older history): the merged segment has none either.
    const { firstTxn: _f, txns: _t, ...bare } = segs[1]!.meta;
    expect(mergeSegments([segs[0]!, { ...segs[1]!, meta: bare }]).meta.firstTxn).toBeUndefined();
  });

  it('finds an offset and the generation\'s end although compaction merged the listed segments away before they were read', async () => {
    const segs = segments([0, 1, 2, 8, 9, 10, 11, 12, 13, 14]);
    const end = segs.at(-1)!.meta.end;
    const holder = segs[3]!.meta.end;
    for (const read of ['locate', 'end', 'end at a base'] as const) {
      const real = await repoWith(segs, read === 'end at a base' ? [end] : []);
      let compacted = false;
      let lists = 0;
      // The first read finds compaction (another process) done: every listed segment merged into larger ones and deleted.
      const repo = {
        listSnapshots: () => real.listSnapshots(),
        listLogs: (source: string) => (lists++, real.listLogs(source)),
        getLog: async (source: string, gen: string, file: string) => {
          if (!compacted) {
            compacted = true;
            expect((await compactGeneration(real, source, gen, T0 + 365 * 86_400_000)).merged).toBeGreaterThan(0);
          }
          return real.getLog(source, gen, file);
        },
      } as unknown as Repository;
      if (read === 'locate') {
        const at = await locateOffset(repo, 'app', REPLID, holder);
        expect(at.found).toMatchObject({ generation: GENERATION, offset: holder });
      } else if (read === 'end') {
        expect(await generationEnd(repo, 'app')).toMatchObject({ generation: GENERATION, offset: end, lastTxn: 7 });
      } else {
        // The newest base sits where the stored stream ends: its number is read from the segment ending there.
        expect(await generationEnd(repo, 'app')).toMatchObject({ generation: GENERATION, offset: end, lastTxn: 7 });
      }
      expect(compacted).toBe(true);
      expect(lists).toBe(2);
    }
  });

  it('plans a restore over a listing that, taken while compaction ran, lacks a segment: one fresh listing before a gap is believed', async () => {
    const segs = segments([0, 1, 2, 8, 9, 10, 11, 12, 13, 14]);
    const real = await repoWith(segs);
    const missing = segmentName(segs[4]!.meta);
    let lists = 0;
    const repo = new Proxy(real, {
      get(target, prop) {
        if (prop === 'listLogs') return async (source: string) => (lists++ === 0 ? (await target.listLogs(source)).filter((l) => l.file !== missing) : target.listLogs(source));
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const plan = await planRestore(repo, 'app', {});
    expect(lists).toBe(2);
    lists = 0;
    expect((await locateOffset(repo, 'app', REPLID, segs[6]!.meta.end)).found).toMatchObject({ offset: segs[6]!.meta.end });
    lists = 0;
    expect(plan.warnings).toEqual([]);
    expect(plan.gapAt).toBeUndefined();
    expect(plan.chain.at(-1)?.end).toBe(segs.at(-1)!.meta.end);
    // A gap that is really there is still reported.
    await real.store.delete(`logs/${logSource('app')}/${GENERATION}/${missing}`);
    const gapped = await planRestore(real, 'app', {});
    expect(gapped.warnings.join(' ')).toMatch(/has a gap after offset/);
  });
});

