/**
 * Bounded decompression: every codec refuses to produce more than the reader's bound,
 * and a few KiB of sealed zstd declaring (or streaming) more than 1 GiB is refused
 * without the process allocating it.
 */
import { gzipSync } from 'node:zlib';
import { compressSync as lz4Compress } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { CODEC, compress, decompress, ReusableDecompressor } from '../../src/codec/compression.js';
import { encrypt, newMasterKey, unseal, unsealInto } from '../../src/codec/crypto.js';
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

describe('ReusableDecompressor (a restore worker decodes every blob into one buffer)', () => {
  it('returns each plaintext exactly, one after another, in a buffer that grows to the largest', () => {
    const d = new ReusableDecompressor();
    const sizes = [100_000, 10, 2 * MiB, 500, 2 * MiB - 1];
    let buffer: ArrayBufferLike | undefined;
    for (const [i, size] of sizes.entries()) {
      const plain = Buffer.alloc(size, i + 1);
      const out = d.decompress(compress(plain, { codec: 'zstd', level: 3 }), CODEC.zstd, size);
      expect(Buffer.from(out).equals(plain)).toBe(true);
      if (size < 2 * MiB && buffer) expect(out.buffer).toBe(buffer); // reused, not allocated
      if (size === 2 * MiB) buffer = out.buffer;
    }
  });

  it('keeps every bound: one byte less than declared is refused, as are bombs with and without a declared size', () => {
    const d = new ReusableDecompressor();
    const plain = Buffer.alloc(100_000, 3);
    const frame = compress(plain, { codec: 'zstd', level: 3 });
    refused(() => d.decompress(frame, CODEC.zstd, plain.length - 1));
    refused(() => d.decompress(zstdBomb(true), CODEC.zstd, 16 * MiB));
    refused(() => d.decompress(zstdBomb(false), CODEC.zstd, 16 * MiB));
    // Two frames back to back (not what Lifeboat writes) take the general path.
    const two = Buffer.concat([frame, frame]);
    expect(Buffer.from(d.decompress(two, CODEC.zstd, 2 * plain.length)).equals(Buffer.concat([plain, plain]))).toBe(true);
    refused(() => d.decompress(two, CODEC.zstd, 2 * plain.length - 1));
  });

  it('other codecs and sealed objects give what unseal gives', () => {
    const d = new ReusableDecompressor();
    const plain = Buffer.alloc(50_000, 9);
    expect(Buffer.from(d.decompress(gzipSync(plain), CODEC.gzip, plain.length)).equals(plain)).toBe(true);
    const key = newMasterKey();
    const ctx = { kind: 'data' as const };
    const sealed = encrypt(key.encKey, key.keyId, CODEC.zstd, compress(plain, { codec: 'zstd', level: 3 }), ctx);
    expect(Buffer.from(unsealInto(d, key, sealed, 'blob', ctx, plain.length)).equals(unseal(key, sealed, 'blob', ctx, plain.length))).toBe(true);
    refused(() => unsealInto(d, key, sealed, 'blob', ctx, plain.length - 1));
  });
});
