import { describe, expect, it } from 'vitest';
import { segmentCarries, walReach } from '../../src/sources/postgres/wal-reach.js';
import { segmentName } from '../../src/sources/postgres/wal.js';

describe('segmentCarries', () => {
  const name = Buffer.from('lifeboat-01a23c461076-6b305b52-pgonly');
  it('finds a restore point name in a record, also across a page boundary (the next page header cut out)', () => {
    const seg = Buffer.alloc(4 * 8192, 0x55);
    name.copy(seg, 100);
    expect(segmentCarries(seg, name)).toBe(true);
    const split = Buffer.alloc(4 * 8192, 0x55);
    // 10 bytes end page 1, a 24-byte short header, the rest on page 2.
    name.copy(split, 8192 - 10, 0, 10);
    Buffer.alloc(24, 0xd1).copy(split, 8192);
    name.copy(split, 8192 + 24, 10);
    expect(segmentCarries(split, name)).toBe(true);
  });
  it('does not find it in a segment without it', () => {
    expect(segmentCarries(Buffer.alloc(2 * 8192, 0x55), name)).toBe(false);
  });
});

describe('walReach beside pg stream', () => {
  it('finds a segment the streamer completed between its look for the whole segment and its read of the partial', async () => {
    const SEG = 16 * 1024 * 1024;
    const point = 'lifeboat-01a23c461076-6b305b52-pgonly';
    const file = segmentName(1, 3n, SEG);
    const whole = Buffer.alloc(2 * 8192, 0x55);
    Buffer.from(point).copy(whole, 200);
    let streamed = false;
    const repo = {
      store: {
        stat: async (key: string) => {
          if (key.endsWith(`~stream/00000001/${file}`)) return streamed ? { key, size: whole.length } : undefined;
          if (key.endsWith(`~stream/00000001/${file}.partial`)) return { key, size: whole.length };
          return undefined;
        },
      },
      // The partial is read just after the streamer stored the whole segment and deleted it.
      getLog: async (source: string, _tl: string, object: string) => {
        if (object.endsWith('.partial')) {
          streamed = true;
          return undefined;
        }
        return source.endsWith('~stream') && streamed ? whole : undefined;
      },
    };
    const r = await walReach(repo as never, 'main', 3n * BigInt(SEG) + 100n, [1], SEG, point);
    expect(r).toMatchObject({ reached: true, segment: file });
  });
});

