/**
 * Bounded decompression: every codec refuses to produce more than the reader's bound,
 * and a few KiB of sealed zstd declaring (or streaming) more than 1 GiB is refused
 * without the process allocating it.
 */
import { gzipSync } from 'node:zlib';
import { compressSync as lz4Compress } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { CODEC, compress, decompress } from '../../src/codec/compression.js';
import { encrypt, newMasterKey, unseal } from '../../src/codec/crypto.js';
import { isLifeboatError } from '../../src/errors.js';
import { BOMB_SIZE, declaredSize, zstdBomb } from '../bombs.js';

const MiB = 1024 * 1024;

function refused(fn: () => unknown): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(isLifeboatError(err, 'CORRUPT'), String(err)).toBe(true);
}

describe('decompress(data, codec, maxOut)', () => {
  const plain = Buffer.alloc(100_000, 7);
  const packed: Array<[string, number, Uint8Array]> = [
    ['zstd', CODEC.zstd, compress(plain, { codec: 'zstd', level: 3 })],
    ['lz4', CODEC.lz4, lz4Compress(plain)],
    ['gzip', CODEC.gzip, gzipSync(plain)],
    ['none', CODEC.none, plain],
  ];

  it.each(packed)('%s: returns the plaintext within the bound and refuses one byte less', (_name, codec, data) => {
    expect(Buffer.from(decompress(data, codec, plain.length)).equals(plain)).toBe(true);
    refused(() => decompress(data, codec, plain.length - 1));
  });

  it('zstd without a declared size is streamed into the bound', () => {
    const frame = zstdBomb(false, 3 * MiB);
    expect(declaredSize(frame)).toBeNull();
    expect(decompress(frame, CODEC.zstd, 3 * MiB).length).toBe(3 * MiB);
    refused(() => decompress(frame, CODEC.zstd, 3 * MiB - 1));
  });

  it('lz4 declaring 4 GiB is refused before anything is allocated', () => {
    const data = Buffer.from(lz4Compress(Buffer.alloc(1000)));
    data.writeUInt32LE(0xffffffff, 0);
    refused(() => decompress(data, CODEC.lz4, 16 * MiB));
  });

  it.each([
    ['declaring its size', true],
    ['not declaring its size', false],
  ])('a sealed zstd bomb %s (>1 GiB from a few KiB) is refused in bounded memory', (_name, declare) => {
    const frame = zstdBomb(declare);
    expect(frame.length).toBeLessThan(256 * 1024);
    expect(declaredSize(frame)).toBe(declare ? BOMB_SIZE : null);
    const key = newMasterKey();
    const sealed = encrypt(key.encKey, key.keyId, CODEC.zstd, frame, { kind: 'snapshot', name: 'snapshots/bomb' });
    global.gc?.();
    const before = process.memoryUsage();
    refused(() => unseal(key, sealed, 'snapshots/bomb', { kind: 'snapshot', name: 'snapshots/bomb' }, 16 * MiB));
    const after = process.memoryUsage();
    // Nothing near the 1.1 GiB it expands to was allocated (or touched).
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(64 * MiB);
    expect(after.rss - before.rss).toBeLessThan(128 * MiB);
    expect(BOMB_SIZE).toBeGreaterThan(1024 * MiB);
  });
});
