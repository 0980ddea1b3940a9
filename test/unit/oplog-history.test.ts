/**
 * Which history an oplog restore follows (history.ts historyFor): generations one after
 * another, or a restored copy's pieces and then the generation that continues it; a
 * restore to a moment before that generation's first record follows the old file.
 */
import { describe, expect, it } from 'vitest';
import { historyFor, type GenerationInfo } from '../../src/sources/oplog/history.js';
import { validFork } from '../../src/sources/oplog/segment.js';

const id = (n: number) => n.toString(16).padStart(12, '0') + 'aaaaaaaa';
const gen = (n: number, firstTime: number, fork?: GenerationInfo['fork']): GenerationInfo => ({ id: id(n), names: [], firstTime, ...(fork ? { fork } : {}) });

describe('oplog history', () => {
  it('concatenates generations without forks, and follows a fork from its pieces', () => {
    const rotated = [gen(1, 100), gen(2, 200)];
    expect(historyFor(rotated, Infinity)).toEqual([[id(1), 0, Infinity], [id(2), 0, Infinity]]);
    expect(historyFor(rotated, 150)).toEqual([[id(1), 0, Infinity]]);
    // Generation 3 continues a copy of generation 1 up to byte 40 and generation 2 up to byte 10.
    const forked = [...rotated, gen(3, 300, { bytes: 50, pieces: [[id(1), 0, 40], [id(2), 0, 10]] }), gen(4, 400)];
    expect(historyFor(forked, Infinity)).toEqual([[id(1), 0, 40], [id(2), 0, 10], [id(3), 50, Infinity], [id(4), 0, Infinity]]);
    expect(historyFor(forked, 350)).toEqual([[id(1), 0, 40], [id(2), 0, 10], [id(3), 50, Infinity]]);
    // Before generation 3's first own record the journal was still the old one.
    expect(historyFor(forked, 250)).toEqual([[id(1), 0, Infinity], [id(2), 0, Infinity]]);
  });

  it('accepts only forks whose pieces are well formed and add up to their length', () => {
    expect(validFork({ bytes: 50, pieces: [[id(1), 0, 40], [id(2), 0, 10]] })).toBe(true);
    expect(validFork({ bytes: 51, pieces: [[id(1), 0, 40], [id(2), 0, 10]] })).toBe(false);
    expect(validFork({ bytes: 10, pieces: [[id(1), 5, 5], [id(2), 0, 10]] })).toBe(false);
    expect(validFork({ bytes: 10, pieces: [['../x', 0, 10]] })).toBe(false);
    expect(validFork({ bytes: 50, pieces: [[id(1), 0, 50]] }, 40)).toBe(false);
  });
});
