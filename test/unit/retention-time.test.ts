/**
 * Retention that a snapshot's claimed time cannot fool: --keep-within counts back
 * from now, future-dated snapshots take no keep slot and are never removed by a rule,
 * restricted writers' snapshots are counted apart, and "latest" passes over the future.
 */
import { describe, expect, it } from 'vitest';
import { applyPolicy, FUTURE_REASON, type Dated } from '../../src/engine/retention/policy.js';
import { CLOCK_SKEW_MS, checkSnapshotTime, isFutureDated, pickSnapshot, type Snapshot } from '../../src/repo/snapshot/snapshot.js';
import { isLifeboatError } from '../../src/errors.js';

const NOW = Date.UTC(2026, 11, 2, 9, 30);
const DAY = 86_400_000;

function snap(id: string, time: number | string, extra: Partial<Dated> = {}): Dated {
  return { id, time: typeof time === 'string' ? time : new Date(time).toISOString(), tags: [], ...extra };
}

/** One real snapshot a day at 02:00 UTC, `days` days back from NOW's day. */
function daily(days: number, prefix = 'real'): Dated[] {
  const today = Date.UTC(2026, 11, 2, 2);
  return Array.from({ length: days }, (_, i) => snap(`${prefix}${i}`, today - i * DAY));
}

/** What an attacker writes: snapshots dated 2099, one a day. */
const forged = Array.from({ length: 8 }, (_, i) => snap(`forged${i}`, `2099-01-0${i + 1}T00:00:00.000Z`));

const ids = (l: Dated[]) => l.map((s) => s.id).sort();

describe('keep rules and future-dated snapshots', () => {
  it('--keep-within counts back from now, so a snapshot dated 2099 does not move the window', () => {
    const real = [snap('a', NOW - DAY), snap('b', NOW - 10 * DAY), snap('c', NOW - 29 * DAY), snap('old', NOW - 40 * DAY)];
    const r = applyPolicy([...real, ...forged], { within: { years: 0, months: 0, days: 30, ms: 0 } }, NOW);
    expect(ids(r.remove)).toEqual(['old']);
    expect(ids(r.keep)).toEqual(ids([...real.slice(0, 3), ...forged]));
    expect(ids(r.future)).toEqual(ids(forged));
  });

  it('future-dated snapshots take no --keep-daily/--keep-last slot and no rule removes them', () => {
    const real = daily(10);
    const r = applyPolicy([...real, ...forged], { daily: 7, last: 1 }, NOW);
    expect(ids(r.keep.filter((s) => s.id.startsWith('real')))).toEqual(ids(real.slice(0, 7)));
    expect(ids(r.remove)).toEqual(ids(real.slice(7)));
    for (const f of forged) expect(r.reasons.get(f.id)).toEqual([FUTURE_REASON]);
    // --min-keep is not met by the forged ones either.
    const floor = applyPolicy([snap('x', NOW - DAY), snap('y', NOW - 2 * DAY), ...forged], { last: 1, minKeep: 2 }, NOW);
    expect(ids(floor.keep.filter((s) => !s.id.startsWith('forged')))).toEqual(['x', 'y']);
  });

  it('a time within the clock-skew allowance is not future-dated, one just beyond is', () => {
    expect(isFutureDated(new Date(NOW + CLOCK_SKEW_MS).toISOString(), NOW)).toBe(false);
    expect(isFutureDated(new Date(NOW + CLOCK_SKEW_MS + 1000).toISOString(), NOW)).toBe(true);
    const skewed = snap('skewed', NOW + 60_000);
    const r = applyPolicy([skewed, snap('older', NOW - DAY)], { last: 1 }, NOW);
    expect(ids(r.keep)).toEqual(['skewed']);
    expect(r.future).toEqual([]);
  });
});

describe('restricted writers are counted apart', () => {
  it('a burst of untrusted snapshots never takes a keep slot from a trusted one', () => {
    const trusted = daily(5, 'admin');
    const burst = Array.from({ length: 10 }, (_, i) => snap(`host${i}`, NOW - i * 60_000, { trusted: false }));
    const r = applyPolicy([...trusted, ...burst], { last: 3, minKeep: 2 }, NOW);
    expect(ids(r.keep)).toEqual(ids([...trusted.slice(0, 3), ...burst.slice(0, 3)]));
    expect(ids(r.remove)).toEqual(ids([...trusted.slice(3), ...burst.slice(3)]));
  });

  it('trusted undefined and true are the same class', () => {
    const r = applyPolicy([snap('a', NOW - DAY, { trusted: true }), snap('b', NOW - 2 * DAY)], { last: 1 }, NOW);
    expect(ids(r.keep)).toEqual(['a']);
  });
});

describe('"latest" and explicit snapshot times', () => {
  const real = { id: 'aaaa1111', time: new Date(NOW - DAY).toISOString() } as Snapshot;
  const future = { id: 'ffff2222', time: '2099-01-01T00:00:00.000Z' } as Snapshot;

  it('"latest" is the newest snapshot that is not future-dated, with a warning', () => {
    const warnings: string[] = [];
    expect(pickSnapshot([real, future], 'latest', { now: NOW, onWarning: (m) => warnings.push(m) }).id).toBe(real.id);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/passes over 1 future-dated snapshot.*ffff2222/);
    // Only future ones: the newest of them, still with a warning.
    expect(pickSnapshot([future], 'latest', { now: NOW, onWarning: (m) => warnings.push(m) }).id).toBe(future.id);
    expect(warnings[1]).toMatch(/every snapshot is dated in the future/);
  });

  it('a snapshot time beyond the allowance is refused with USAGE', () => {
    expect(() => checkSnapshotTime(new Date(NOW + CLOCK_SKEW_MS), NOW)).not.toThrow();
    let err: unknown;
    try {
      checkSnapshotTime(new Date('2099-01-01T00:00:00Z'), NOW);
    } catch (e) {
      err = e;
    }
    expect(isLifeboatError(err, 'USAGE')).toBe(true);
    expect((err as Error).message).toMatch(/2099-01-01T00:00:00.000Z is in the future/);
  });
});
