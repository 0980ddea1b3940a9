/**
 * Transaction numbers read from stored history (transactions.ts), with a fake of the
 * three repository calls it uses: numbers stored in the segments are taken as they
 * are, history written without them is counted from the oldest stored segment, the
 * same on every read; `--before-txn` stops where the transaction before ended (the
 * start of its segment for the first of one); `--around` takes a quarter before the
 * moment; an unknown number names the numbers stored.
 */
import { describe, expect, it } from 'vitest';
import { encodeSegment, segmentName, type Commit, type Position, type Segment } from '../../src/sources/sqlite/segment.js';
import { findTransaction, restorePoint, transactionsAround } from '../../src/sources/sqlite/transactions.js';

const PAGE = 512;
const GEN = '0190000000000abcdef01';

/** n one-frame transactions from `start`, seen at times[i], numbered from `seq` when given. */
function segment(start: Position, times: number[], seq?: number): Segment {
  const frameSize = 24 + PAGE;
  const frames = Buffer.alloc(times.length * frameSize);
  const commits: Commit[] = times.map((time, i) => {
    frames.writeUInt32BE(2 + i, i * frameSize);
    frames.writeUInt32BE(10, i * frameSize + 4);
    return { cycle: start.cycle, frame: start.frame + i + 1, time, end: (i + 1) * frameSize, ...(seq !== undefined ? { seq: seq + i } : {}) };
  });
  return {
    meta: { v: 1, pageSize: PAGE, start, end: { cycle: start.cycle, frame: start.frame + times.length }, commits, tail: { salt1: 1, salt2: 2, checkpointSeq: 0, checksum: [3, 4] } },
    frames,
  };
}

function fakeRepo(segs: Segment[]) {
  const objects = new Map(segs.map((s) => [segmentName(s.meta), encodeSegment(s)]));
  const snapshot = {
    id: 'f'.repeat(64),
    time: new Date(500).toISOString(),
    source: { kind: 'sqlite', name: 'app' },
    consistency: { file: 'app.db', journalMode: 'wal', pageSize: PAGE, pages: 10, generation: GEN, position: { cycle: 0, frame: 0 } },
  };
  return {
    listSnapshots: async () => [snapshot],
    listLogs: async () => [...objects.keys()].map((file) => ({ timeline: GEN, file, size: 0 })),
    getLog: async (_source: string, _gen: string, file: string) => objects.get(file),
  } as unknown as Parameters<typeof findTransaction>[0];
}

const times = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i * 10);

describe('sqlite transaction numbers', () => {
  it('takes stored numbers, and --before-txn ends where the one before ended', async () => {
    const repo = fakeRepo([segment({ cycle: 0, frame: 0 }, times(1000, 3), 1), segment({ cycle: 0, frame: 3 }, times(2000, 4), 4)]);
    const t4 = await findTransaction(repo, 'app', 4);
    expect(t4).toMatchObject({ seq: 4, generation: GEN, position: { cycle: 0, frame: 4 }, before: { cycle: 0, frame: 3 }, time: 2000, pages: [2] });
    expect(restorePoint(t4, false)).toEqual({ generation: GEN, position: { cycle: 0, frame: 3 } });
    expect(restorePoint(t4, true)).toEqual({ generation: GEN, position: { cycle: 0, frame: 4 } });
    expect((await findTransaction(repo, 'app', 1)).before).toEqual({ cycle: 0, frame: 0 });
    await expect(findTransaction(repo, 'app', 8)).rejects.toThrow(/no transaction 8 in generation .* \(stored: 4 to 7\)/);
  });

  it('counts history written without numbers from the oldest stored segment, the same on every read', async () => {
    const repo = fakeRepo([segment({ cycle: 0, frame: 0 }, times(1000, 3)), segment({ cycle: 0, frame: 3 }, times(2000, 4)), segment({ cycle: 0, frame: 7 }, times(3000, 2))]);
    for (let i = 0; i < 2; i++) {
      expect((await findTransaction(repo, 'app', 1)).position).toEqual({ cycle: 0, frame: 1 });
      expect((await findTransaction(repo, 'app', 8)).position).toEqual({ cycle: 0, frame: 8 });
    }
    const around = await transactionsAround(repo, 'app', { around: new Date(2015), limit: 4 });
    // A quarter (1) seen before the moment, the rest from the first seen at or after it.
    expect(around.txns.map((t) => t.seq)).toEqual([5, 6, 7, 8]);
    expect(around.txns.map((t) => t.time)).toEqual([2010, 2020, 2030, 3000]);
  });

  it('numbers a resumed stretch without stored numbers on from the one before', async () => {
    const repo = fakeRepo([segment({ cycle: 0, frame: 0 }, times(1000, 3), 1), segment({ cycle: 0, frame: 3 }, times(2000, 2))]);
    const around = await transactionsAround(repo, 'app', { around: new Date(0), limit: 10 });
    expect(around.txns.map((t) => t.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await findTransaction(repo, 'app', 5)).time).toBe(2010);
  });
});
