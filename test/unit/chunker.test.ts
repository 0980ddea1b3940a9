import { describe, expect, it } from 'vitest';
import { FastCDC, gearTable, type ChunkerParams } from '../../src/chunker/fastcdc.js';
import { pseudoRandom } from '../helpers.js';

const small: ChunkerParams = { min: 2048, avg: 8192, max: 65536 };
const gear = gearTable(Buffer.alloc(32, 1));

describe('FastCDC', () => {
  it('respects min and max and covers the input exactly', () => {
    const data = pseudoRandom(2_000_000, 3);
    const sizes = new FastCDC(gear, small).split(data);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(data.length);
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(small.min);
      expect(s).toBeLessThanOrEqual(small.max);
    }
    const mean = data.length / sizes.length;
    expect(mean).toBeGreaterThan(small.avg * 0.6);
    expect(mean).toBeLessThan(small.avg * 2);
  });

  it('cuts at max on data without cut points', () => {
    const sizes = new FastCDC(gear, small).split(Buffer.alloc(300_000));
    expect(sizes.slice(0, -1).every((s) => s === small.max)).toBe(true);
  });

  it('finds the same boundaries after an insertion (content-defined)', () => {
    const data = pseudoRandom(1_000_000, 9);
    const shifted = Buffer.concat([Buffer.from('inserted bytes at the front'), data]);
    const c = new FastCDC(gear, small);
    const ends = (sizes: number[], offset: number) => {
      const out = new Set<number>();
      let pos = 0;
      for (const s of sizes) out.add((pos += s) - offset);
      return out;
    };
    const a = ends(c.split(data), 0);
    const b = ends(c.split(shifted), 27);
    const shared = [...a].filter((x) => b.has(x)).length;
    expect(shared / a.size).toBeGreaterThan(0.9);
  });

  it('needs more data before deciding, unless at end of input', () => {
    const c = new FastCDC(gear, small);
    const data = pseudoRandom(10_000, 5);
    expect(c.cut(data, 0, data.length, false)).toBe(-1);
    expect(c.cut(data, 0, data.length, true)).toBeGreaterThan(0);
    expect(c.cut(data, 0, 1000, true)).toBe(1000);
  });

  it('depends on the repository key (boundaries do not leak across repositories)', () => {
    const data = pseudoRandom(1_000_000, 11);
    const a = new FastCDC(gear, small).split(data);
    const b = new FastCDC(gearTable(Buffer.alloc(32, 2)), small).split(data);
    expect(a).not.toEqual(b);
  });

  /**
   * The chunker as first written (a uint32 hash, one byte a turn): every repository's
   * boundaries were cut by it, so any faster form must cut exactly where it did, or
   * the next backup of unchanged files would store them again.
   */
  function referenceCut(g: Uint32Array, p: ChunkerParams, buf: Uint8Array, start: number, end: number): number {
    const len = end - start;
    if (len <= p.min) return end;
    const limit = start + Math.min(len, p.max);
    const normal = Math.min(start + p.avg, limit);
    const bits = Math.round(Math.log2(p.avg));
    const mask = (b: number) => ((2 ** b - 1) * 2 ** (32 - b)) >>> 0;
    let fp = 0;
    let i = start + p.min;
    for (; i < normal; i++) {
      fp = ((fp << 1) + g[buf[i]!]!) >>> 0;
      if ((fp & mask(bits + 2)) === 0) return i + 1;
    }
    for (; i < limit; i++) {
      fp = ((fp << 1) + g[buf[i]!]!) >>> 0;
      if ((fp & mask(bits - 2)) === 0) return i + 1;
    }
    return limit;
  }

  it('cuts exactly where the first implementation cut, for every key bit and remainder', () => {
    const params: ChunkerParams[] = [small, { min: 2049, avg: 8192, max: 65539 }, { min: 513, avg: 1024, max: 4099 }];
    for (const [k, p] of params.entries()) {
      const g = gearTable(Buffer.alloc(32, 7 + k));
      const c = new FastCDC(g, p);
      // Random data (cuts in both loops), zeros (no cut: the limit), and runs that end
      // at each offset from the unrolled loop's remainder.
      const inputs = [pseudoRandom(2_000_000, 40 + k), Buffer.alloc(300_000), Buffer.concat([pseudoRandom(200_000, 50 + k), Buffer.alloc(p.max * 2)])];
      for (const data of inputs) {
        let cuts = 0;
        for (let start = 0; start < data.length; ) {
          const end = Math.min(data.length, start + p.max + (start % 7));
          const want = referenceCut(g, p, data, start, end);
          expect(c.cut(data, start, end, true), `params ${k}, at ${start}`).toBe(want);
          start = want;
          cuts++;
        }
        expect(cuts).toBeGreaterThan(1);
      }
    }
  });
});
