import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { CODEC, parseCompression, ReusableCompressor } from '../../src/codec/compression.js';
import { blobId, decrypt, encrypt, HEADER_LEN, masterKeyFrom, newMasterKey, NONCE_LEN, seal, SEAL_OVERHEAD, sealBody, sealInto, sealMeta, sealParts, unseal, unsealMeta, type SealContext } from '../../src/codec/crypto.js';
import { isLifeboatError } from '../../src/errors.js';
import { pseudoRandom } from '../helpers.js';

const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding.js') as typeof import('zstd-napi/binding.js');

describe('sealed objects', () => {
  it('gives every envelope its own random nonce, across refills of the nonce pool, and each opens', () => {
    const key = newMasterKey();
    const ctx: SealContext = { kind: 'data', name: 'data' };
    const body = Buffer.from('the same plaintext every time');
    const nonces = new Set<string>();
    const N = 2000; // the pool holds 341 nonces: several refills
    for (let i = 0; i < N; i++) {
      const sealed = i % 2 ? seal(key, body, parseCompression('none'), ctx) : Buffer.concat(sealParts(key, CODEC.none, body, ctx));
      nonces.add(sealed.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN).toString('hex'));
      expect(unseal(key, sealed, 'x', ctx).equals(body)).toBe(true);
    }
    expect(nonces.size).toBe(N);
    // Not a counter or a pattern: the bytes of 2000 nonces look uniform (each byte value ~94 times).
    const counts = new Array<number>(256).fill(0);
    for (const n of nonces) for (const b of Buffer.from(n, 'hex')) counts[b]!++;
    expect(Math.min(...counts)).toBeGreaterThan(40);
    expect(Math.max(...counts)).toBeLessThan(160);
  });

  const key = newMasterKey();
  const ctx: SealContext = { kind: 'log', name: 'logs/db/1/000000010000000000000001' };
  const text = Buffer.from('lifeboat '.repeat(10_000));

  it.each(['zstd', 'zstd:19', 'lz4', 'gzip', 'none'])('round-trips with %s', (spec) => {
    const sealed = seal(key, text, parseCompression(spec), ctx);
    expect(unseal(key, sealed, 'test', ctx).equals(text)).toBe(true);
    if (spec !== 'none') expect(sealed.length).toBeLessThan(text.length / 10);
    expect(sealed[5]).toBe(spec === 'none' ? CODEC.none : CODEC[spec.split(':')[0] as keyof typeof CODEC]);
  });

  it('stores incompressible data raw', () => {
    const random = pseudoRandom(100_000, 1);
    const sealed = seal(key, random, parseCompression('zstd'), ctx);
    expect(sealed[5]).toBe(CODEC.none);
    expect(sealed.length).toBe(random.length + SEAL_OVERHEAD);
  });

  it('seals into a caller\'s buffer, through a reused compressor, exactly what seal() would accept', () => {
    // The chunk worker's path: one compressor whose output buffer is reused, the
    // envelope written straight into the pack's buffer at an offset.
    for (const spec of ['zstd', 'zstd:1', 'lz4', 'none']) {
      const compression = parseCompression(spec);
      const compressor = new ReusableCompressor(compression);
      const pack = Buffer.alloc(1024 * 1024);
      let at = 7;
      const placed: [number, number, Buffer][] = [];
      // Compressible, incompressible (stored raw), tiny (never compressed), compressible again.
      for (const plain of [text, pseudoRandom(100_000, 2), Buffer.from('x'), Buffer.from('again '.repeat(5000))]) {
        const { codec, body } = sealBody(plain, compression, (d) => compressor.compress(d));
        // Restore workers decode into a kept buffer only frames that declare their size.
        if (codec === CODEC.zstd) expect(zstdBinding.getFrameContentSize(body)).toBe(plain.length);
        const n = sealInto(key, codec, body, ctx, pack, at);
        expect(n).toBe(SEAL_OVERHEAD + body.length);
        expect(pack[at + 5]).toBe(codec);
        placed.push([at, n, plain]);
        at += n;
      }
      // Later compressions did not disturb what earlier ones left in the pack.
      for (const [off, n, plain] of placed) expect(unseal(key, pack.subarray(off, off + n), 'test', ctx).equals(plain)).toBe(true);
      expect(placed[1]![1]).toBe(100_000 + SEAL_OVERHEAD);
      expect(() => sealInto(key, CODEC.none, text, ctx, pack, pack.length - 10)).toThrow(RangeError);
    }
  });

  it('detects any flipped bit, in header, body or tag', () => {
    const sealed = seal(key, text, parseCompression('zstd'), ctx);
    for (const pos of [0, 3, 5, 10, 20, sealed.length - 1]) {
      const bad = Buffer.from(sealed);
      bad[pos] = (bad[pos] as number) ^ 1;
      expect(() => unseal(key, bad, 'test', ctx)).toThrow();
      try {
        unseal(key, bad, 'test', ctx);
      } catch (err) {
        expect(isLifeboatError(err, 'CORRUPT')).toBe(true);
      }
    }
  });

  it('refuses objects of another key', () => {
    const sealed = seal(key, text, parseCompression('none'), ctx);
    expect(() => unseal(newMasterKey(), sealed, 'test', ctx)).toThrow(/does not hold/);
  });

  it('accepts an object only as the kind and under the name it was sealed for (format 2)', () => {
    const sealed = seal(key, text, parseCompression('zstd'), ctx);
    expect(sealed[0]).toBe(2);
    expect(() => unseal(key, sealed, 'renamed', { kind: 'log', name: 'logs/db/1/000000010000000000000002' })).toThrow(/failed authentication/);
    expect(() => unseal(key, sealed, 'as a drill', { kind: 'drill', name: ctx.name ?? '' })).toThrow(/failed authentication/);
    // A format 1 key reads only format 1 envelopes, and a format 2 key refuses them.
    const v1 = masterKeyFrom(key.encKey, key.idKey);
    expect(() => unseal(v1, sealed, 'v1', ctx)).toThrow(/format 1/);
    expect(() => unseal(key, seal(v1, text, parseCompression('none'), ctx), 'v1 object', ctx)).toThrow(/format 2/);
  });

  it('refuses to expand an object beyond the bound its reader gives', () => {
    const zeros = Buffer.alloc(8 * 1024 * 1024);
    const sealed = seal(key, zeros, parseCompression('zstd'), ctx);
    expect(sealed.length).toBeLessThan(4096);
    expect(() => unseal(key, sealed, 'bomb', ctx, 1024 * 1024)).toThrow(/more than/);
  });

  it('tells metadata a full key tagged from metadata a restricted key wrote', () => {
    const meta: SealContext = { kind: 'prune' };
    const payload = Buffer.from('{"packs":[]}');
    const full = sealMeta(key, payload, parseCompression('none'), meta);
    const restricted = { ...key, macKey: undefined, epochs: new Map([[key.keyId, { encKey: key.encKey }]]) };
    const untagged = sealMeta(restricted, payload, parseCompression('none'), meta);
    expect(unsealMeta(key, full, 'full', meta).trusted).toBe(true);
    expect(unsealMeta(key, untagged, 'restricted', meta).trusted).toBe(false);
    expect(unsealMeta(restricted, full, 'read by restricted', meta)).toMatchObject({ trusted: undefined, payload });
    // A restricted writer holds the encryption key: it can lift a tagged plaintext out
    // of a full key's object and seal it as another kind, but the tag then fails.
    const [, tagged] = decrypt(key.encKey, key.keyId, sealMeta(key, payload, parseCompression('none'), { kind: 'index' }), 'index', { kind: 'index' });
    const moved = encrypt(key.encKey, key.keyId, CODEC.none, tagged, meta);
    expect(unsealMeta(key, moved, 'moved', meta).trusted).toBe(false);
    const other = sealMeta(restricted, Buffer.from('{"packs":["ab"]}'), parseCompression('none'), meta);
    expect(unsealMeta(key, other, 'other', meta).trusted).toBe(false);
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
