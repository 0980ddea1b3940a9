import { describe, expect, it } from 'vitest';
import { segmentCarries } from '../../src/sources/postgres/wal-reach.js';

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
