/**
 * Where a group point's Redis offset may cut the stored stream: only where a command
 * ends outside MULTI…EXEC (sources/redis/locate.ts), checked on real RESP bytes.
 */
import { describe, expect, it } from 'vitest';
import { isBoundary } from '../../src/sources/redis/locate.js';
import { encodeCommand } from '../../src/sources/redis/resp.js';

describe('isBoundary', () => {
  const parts = [
    encodeCommand(['SELECT', '0']),
    encodeCommand(['SET', 'a', '1']),
    encodeCommand(['MULTI']),
    encodeCommand(['SET', 'b', '2']),
    encodeCommand(['INCR', 'c']),
    encodeCommand(['EXEC']),
    encodeCommand(['SET', 'd', 'x'.repeat(300)]),
  ];
  const stream = Buffer.concat(parts);
  const ends = parts.map((_, i) => parts.slice(0, i + 1).reduce((n, p) => n + p.length, 0));

  it('accepts the start, the end and every command end outside a transaction', () => {
    expect(isBoundary(stream, 0)).toBe(true);
    expect(isBoundary(stream, stream.length)).toBe(true);
    for (const i of [0, 1, 5]) expect(isBoundary(stream, ends[i]!), `after command ${i}`).toBe(true);
  });

  it('refuses an offset inside MULTI…EXEC, or inside a command', () => {
    for (const i of [2, 3, 4]) expect(isBoundary(stream, ends[i]!), `after command ${i}`).toBe(false);
    expect(isBoundary(stream, ends[5]! + 10)).toBe(false);
    expect(isBoundary(stream, ends[0]! - 1)).toBe(false);
  });
});
