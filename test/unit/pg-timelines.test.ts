/**
 * Which timelines in a WAL archive are production's (timelines.ts), on made-up
 * archives: a copy's timeline beside a production that went on, a promoted copy
 * before and after its first base backup, streamed evidence, and the parser of
 * recovery target times.
 */
import { describe, expect, it } from 'vitest';
import { productionHistory, timelineWarnings, type BackupRef, type TimelineFacts } from '../../src/sources/postgres/timelines.js';
import { parseTargetTime } from '../../src/engine/target-time.js';
import { LifeboatError } from '../../src/errors.js';

const SEG = 16n * 1024n * 1024n;

/** A timeline holding segments FROM..TO, branched from PARENT at LSN (in segments, may be fractional). */
function tl(timeline: number, from: number, to: number, opts: { parent?: [number, bigint]; streamed?: boolean; ancestors?: Array<[number, bigint]> } = {}): TimelineFacts {
  const segments = new Set<bigint>();
  for (let s = from; s <= to; s++) segments.add(BigInt(s));
  return {
    timeline,
    segments,
    files: segments.size,
    streamed: opts.streamed ?? false,
    ...(opts.parent ? { history: [...(opts.ancestors ?? []), opts.parent] } : {}),
  };
}

const facts = (...list: TimelineFacts[]) => new Map(list.map((f) => [f.timeline, f]));
const backup = (id: string, timeline: number, start: bigint, stopTime: string): BackupRef => ({ id: id.padEnd(64, '0'), timeline, startLsn: start, stopLsn: start + 1000n, stopTime });
const B1 = backup('b1', 1, 2n * SEG, '2026-12-01T00:00:00Z');

describe("production's history in a WAL archive", () => {
  it('a copy restored into segment 5 archived timeline 2 while production went on to segment 9: timeline 2 is foreign', () => {
    const h = productionHistory(facts(tl(1, 2, 9), tl(2, 5, 7, { parent: [1, 5n * SEG + 4096n] })), [B1]);
    expect(h.chain).toEqual([{ timeline: 1 }]);
    expect(h.timelines.map((t) => [t.timeline, t.onProduction, t.state])).toEqual([
      [1, true, 'production'],
      [2, false, 'foreign'],
    ]);
    const [w] = timelineWarnings('main', h);
    expect(w).toMatch(/^timeline 2 in the archive of main is not on production's history \(foreign: .*went on past that point.*\); restores ignore it\./);
    expect(w).toContain('lifeboat pg timelines --name main --move-aside 2');
  });

  it('a branch at a segment boundary is diverged from as soon as the parent holds that segment', () => {
    const h = productionHistory(facts(tl(1, 2, 5), tl(2, 5, 6, { parent: [1, 5n * SEG] })), [B1]);
    expect(h.timelines.find((t) => t.timeline === 2)!.state).toBe('foreign');
  });

  it('a promoted copy nothing vouches for is not followed ("unconfirmed"); its first base backup makes it production, with its ancestry', () => {
    const f = facts(tl(1, 2, 5), tl(2, 5, 8, { parent: [1, 5n * SEG + 512n] }));
    const before = productionHistory(f, [B1]);
    expect(before.head).toBe(1);
    expect(before.timelines.find((t) => t.timeline === 2)!.state).toBe('unconfirmed');
    const after = productionHistory(f, [B1, backup('b2', 2, 7n * SEG, '2026-12-02T00:00:00Z')]);
    expect(after.chain).toEqual([{ timeline: 1, until: 5n * SEG + 512n }, { timeline: 2 }]);
    expect(after.timelines.every((t) => t.onProduction)).toBe(true);
    expect(timelineWarnings('main', after)).toEqual([]);
  });

  it('WAL pg stream received on a child moves production there; a copy of the past beside it stays foreign', () => {
    const f = facts(
      tl(1, 2, 5),
      tl(2, 5, 9, { parent: [1, 5n * SEG + 512n], streamed: true }),
      tl(3, 3, 4, { parent: [1, 3n * SEG + 100n] }),
      tl(4, 9, 9, { parent: [3, 4n * SEG], ancestors: [[1, 3n * SEG + 100n]] }),
    );
    const h = productionHistory(f, [B1]);
    expect(h.chain.map((l) => l.timeline)).toEqual([1, 2]);
    expect(h.basis).toMatch(/pg stream received WAL on timeline 2/);
    const state = Object.fromEntries(h.timelines.map((t) => [t.timeline, t.state]));
    expect(state).toEqual({ 1: 'production', 2: 'production', 3: 'foreign', 4: 'foreign' });
    expect(h.timelines.find((t) => t.timeline === 4)!.reason).toMatch(/branched from timeline 3, which is not on production's history/);
  });

  it('streamed WAL on a child whose parent also went on past the branch: ambiguous, not followed', () => {
    const h = productionHistory(facts(tl(1, 2, 9), tl(2, 5, 9, { parent: [1, 5n * SEG + 512n], streamed: true })), [B1]);
    expect(h.head).toBe(1);
    expect(h.timelines.find((t) => t.timeline === 2)!.state).toBe('ambiguous');
  });

  it('a timeline whose history file is missing is foreign', () => {
    const h = productionHistory(facts(tl(1, 2, 5), tl(3, 6, 7)), [B1]);
    expect(h.timelines.find((t) => t.timeline === 3)).toMatchObject({ onProduction: false, state: 'foreign', parent: null });
  });
});

describe('recovery target times', () => {
  const now = new Date('2026-12-02T12:00:00Z');
  const refused = (text: string): LifeboatError => {
    try {
      parseTargetTime(text, now);
    } catch (err) {
      return err as LifeboatError;
    }
    throw new Error(`${text} was accepted`);
  };

  it('accepts RFC 3339 times with a zone, in the past', () => {
    expect(parseTargetTime('2026-12-02T11:59:59.250Z', now).toISOString()).toBe('2026-12-02T11:59:59.250Z');
    expect(parseTargetTime('2026-12-02T12:30:00+01:00', now).toISOString()).toBe('2026-12-02T11:30:00.000Z');
    expect(parseTargetTime('2026-12-02 11:00:00Z', now).toISOString()).toBe('2026-12-02T11:00:00.000Z');
  });

  it('refuses a time without a zone, a time in the future, and what is not a time (USAGE, with a hint)', () => {
    for (const [text, message] of [
      ['2026-12-02T11:00:00', /has no time zone/],
      ['2026-12-02', /not an RFC 3339 time/],
      ['2026-12-02T12:00:01Z', /is in the future/],
      ['2026-12-02T13:30:00+01:00', /is in the future/],
      ['yesterday', /not an RFC 3339 time/],
    ] as const) {
      const err = refused(text);
      expect(err.code, text).toBe('USAGE');
      expect(err.message).toMatch(message);
      expect(err.hint).toBeTruthy();
    }
    expect(refused('2026-12-03T00:00:00Z').hint).toMatch(/--latest/);
  });
});
