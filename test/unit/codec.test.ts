import { describe, expect, it } from 'vitest';
import { CODEC, parseCompression } from '../../src/codec/compression.js';
import { blobId, newMasterKey, seal, SEAL_OVERHEAD, unseal } from '../../src/codec/crypto.js';
import { isLifeboatError } from '../../src/errors.js';
import { pseudoRandom } from '../helpers.js';

describe('sealed objects', () => {
  const key = newMasterKey();
  const text = Buffer.from('lifeboat '.repeat(10_000));

  it.each(['zstd', 'zstd:19', 'lz4', 'gzip', 'none'])('round-trips with %s', (spec) => {
    const sealed = seal(key, text, parseCompression(spec));
    expect(unseal(key, sealed, 'test').equals(text)).toBe(true);
    if (spec !== 'none') expect(sealed.length).toBeLessThan(text.length / 10);
    expect(sealed[5]).toBe(spec === 'none' ? CODEC.none : CODEC[spec.split(':')[0] as keyof typeof CODEC]);
  });

  it('stores incompressible data raw', () => {
    const random = pseudoRandom(100_000, 1);
    const sealed = seal(key, random, parseCompression('zstd'));
    expect(sealed[5]).toBe(CODEC.none);
    expect(sealed.length).toBe(random.length + SEAL_OVERHEAD);
  });

  it('detects any flipped bit, in header, body or tag', () => {
    const sealed = seal(key, text, parseCompression('zstd'));
    for (const pos of [0, 3, 5, 10, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[pos] = (bad[pos] as number) ^ 1;
      expect(() => unseal(key, bad, 'test')).toThrow();
      try {
        unseal(key, bad, 'test');
      } catch (err) {
        expect(isLifeboatError(err, 'CORRUPT')).toBe(true);
      }
    }
  });

  it('refuses objects of another key', () => {
    const sealed = seal(key, text, parseCompression('none'));
    expect(() => unseal(newMasterKey(), sealed, 'test')).toThrow(/unknown key id/);
  });

  it('derives blob ids from the keyed HMAC, not a plain hash', () => {
    const other = newMasterKey();
    expect(blobId(key, text).equals(blobId(key, Buffer.from(text)))).toBe(true);
    expect(blobId(key, text).equals(blobId(other, text))).toBe(false);
  });

  it('rejects unknown compression names and levels', () => {
    expect(() => parseCompression('brotli')).toThrow(/unknown compression/);
    expect(() => parseCompression('zstd:99')).toThrow(/level/);
  });
});
