/**
 * Sealed objects: compression then AES-256-GCM, as one reversible pipeline. Every
 * blob, pack header, index, tree and snapshot is stored in this envelope:
 *
 *   byte 0      format (1)
 *   bytes 1-4   key id (big endian u32): which master key sealed it
 *   byte 5      codec id (0 none, 1 zstd, 2 lz4, 3 gzip)
 *   bytes 6-17  random 96-bit nonce
 *   ...         ciphertext
 *   last 16     GCM tag
 *
 * Bytes 0-5 are authenticated as associated data, so nobody can swap the codec or
 * key id without the tag failing. See docs/format.md.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { LifeboatError } from '../errors.js';
import { CODEC, MAX_PLAIN, compress, decompress, type Compression } from './compression.js';

export const SEAL_FORMAT = 1;
export const HEADER_LEN = 6;
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const SEAL_OVERHEAD = HEADER_LEN + NONCE_LEN + TAG_LEN;

/** The secrets a repository is opened with (never stored unwrapped). */
export interface MasterKey {
  /** AES-256-GCM key for every object. */
  encKey: Buffer;
  /** HMAC-SHA-256 key for blob ids (and the chunker's gear table). */
  idKey: Buffer;
  /** Short public id of encKey, written into every object header. */
  keyId: number;
}

export function newMasterKey(): MasterKey {
  return masterKeyFrom(randomBytes(32), randomBytes(32));
}

export function masterKeyFrom(encKey: Buffer, idKey: Buffer): MasterKey {
  const keyId = createHash('sha256').update('lifeboat key id\0').update(encKey).digest().readUInt32BE(0);
  return { encKey, idKey, keyId };
}

/** Blob id: HMAC-SHA-256 keyed by the repository, so storage alone cannot confirm content. */
export function blobId(key: Pick<MasterKey, 'idKey'>, plaintext: Uint8Array): Buffer {
  return createHmac('sha256', key.idKey).update(plaintext).digest();
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * Compresses (unless it would not shrink the data) and encrypts. Returns the sealed
 * envelope, ready to store.
 */
export function seal(key: MasterKey, plaintext: Uint8Array, compression: Compression): Buffer {
  let codec: number = CODEC.none;
  let body: Uint8Array = plaintext;
  if (compression.codec !== 'none' && plaintext.length >= 64) {
    const packed = compress(plaintext, compression);
    // Keep the compressed form only when it saves at least 1/32: a tiny saving is
    // not worth the decompression on every restore.
    if (packed.length < plaintext.length - (plaintext.length >> 5)) {
      codec = CODEC[compression.codec];
      body = packed;
    }
  }
  return encrypt(key.encKey, key.keyId, codec, body);
}

export function encrypt(encKey: Buffer, keyId: number, codec: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(SEAL_OVERHEAD + body.length);
  out[0] = SEAL_FORMAT;
  out.writeUInt32BE(keyId >>> 0, 1);
  out[5] = codec;
  const nonce = randomBytes(NONCE_LEN);
  nonce.copy(out, HEADER_LEN);
  const cipher = createCipheriv('aes-256-gcm', encKey, nonce);
  cipher.setAAD(out.subarray(0, HEADER_LEN));
  const start = HEADER_LEN + NONCE_LEN;
  let n = cipher.update(body).copy(out, start);
  n += cipher.final().copy(out, start + n);
  cipher.getAuthTag().copy(out, start + n);
  return out;
}

/** Decrypts and authenticates; returns [codec, body]. Tampering raises CORRUPT. */
export function decrypt(encKey: Buffer, keyId: number, sealed: Uint8Array, what: string): [number, Buffer] {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  if (buf.length < SEAL_OVERHEAD || buf[0] !== SEAL_FORMAT) {
    throw new LifeboatError('CORRUPT', `${what}: not a sealed object (bad header)`, {
      hint: 'run `lifeboat check --read-data` to find damaged data',
    });
  }
  if (buf.readUInt32BE(1) !== keyId >>> 0) {
    throw new LifeboatError('CORRUPT', `${what}: sealed with an unknown key id ${buf.readUInt32BE(1)}`, {
      hint: 'the object belongs to another repository or was tampered with',
    });
  }
  const nonce = buf.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN);
  const tag = buf.subarray(buf.length - TAG_LEN);
  const decipher = createDecipheriv('aes-256-gcm', encKey, nonce);
  decipher.setAAD(buf.subarray(0, HEADER_LEN));
  decipher.setAuthTag(tag);
  try {
    const body = Buffer.concat([
      decipher.update(buf.subarray(HEADER_LEN + NONCE_LEN, buf.length - TAG_LEN)),
      decipher.final(),
    ]);
    return [buf[5] as number, body];
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: failed authentication (damaged or tampered)`, {
      hint: 'run `lifeboat check --read-data`; restore from another copy if it persists',
      cause: err,
    });
  }
}

/**
 * Authenticates, decrypts and decompresses a sealed object. The plaintext may not
 * exceed `maxPlain` bytes (CORRUPT otherwise): callers pass what the object can hold
 * (src/repo/limits.ts), so a small forged object cannot expand to gigabytes.
 */
export function unseal(key: MasterKey, sealed: Uint8Array, what: string, maxPlain = MAX_PLAIN): Buffer {
  const [codec, body] = decrypt(key.encKey, key.keyId, sealed, what);
  const out = decompress(body, codec, maxPlain, what);
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}
