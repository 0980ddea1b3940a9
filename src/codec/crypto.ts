/**
 * Sealed objects: compression then AES-256-GCM, as one reversible pipeline. Every
 * blob, pack header, index, tree and snapshot is stored in this envelope:
 *
 *   byte 0      format (1 or 2)
 *   bytes 1-4   key id (big endian u32): which epoch key sealed it
 *   byte 5      codec id (0 none, 1 zstd, 2 lz4, 3 gzip)
 *   bytes 6-17  random 96-bit nonce
 *   ...         ciphertext
 *   last 16     GCM tag
 *
 * Format 1 authenticates bytes 0-5 as associated data. Format 2 (repositories of
 * version 2) adds the object's kind and name to the associated data, so an object is
 * accepted only as what and where it was written: a log segment cannot stand in for
 * another, a blob cannot be read as a snapshot. See docs/format.md.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { CipherGCM } from 'node:crypto';
import { LifeboatError } from '../errors.js';
import { CODEC, compress, decompress, MAX_PLAIN, type Compression, type ReusableDecompressor } from './compression.js';

export const SEAL_FORMAT = 1;
export const SEAL_FORMAT_V2 = 2;
export const HEADER_LEN = 6;
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const SEAL_OVERHEAD = HEADER_LEN + NONCE_LEN + TAG_LEN;

/**
 * What a sealed object is and, for objects whose name is not the hash of their bytes,
 * where it lives. Format 2 binds both into the associated data.
 */
export type ObjectKind =
  | 'data'
  | 'tree'
  | 'pack-header'
  | 'index'
  | 'snapshot'
  | 'prune'
  | 'drill'
  | 'state'
  | 'log'
  | 'config'
  | 'keyring';

export interface SealContext {
  kind: ObjectKind;
  /** The object's key in the store, for kinds stored under a chosen name. */
  name?: string;
}

/** One epoch's keys: encryption, and (for full key slots only) metadata authentication. */
export interface EpochKey {
  encKey: Buffer;
  macKey?: Buffer;
  /**
   * A write-only client's session key (repo/sessions.ts): what it sealed is never
   * trusted metadata, even for a reader that holds metadata keys.
   */
  session?: boolean;
}

/** The secrets a repository is opened with (never stored unwrapped). */
export interface MasterKey {
  /** 1: envelopes of format 1, one key; 2: format 2, keys by epoch. */
  version: 1 | 2;
  /** AES-256-GCM key new objects are sealed with (the current epoch's). */
  encKey: Buffer;
  /** HMAC-SHA-256 key for blob ids (and the chunker's gear table); never rotated. */
  idKey: Buffer;
  /** Short public id of encKey, written into every object header. */
  keyId: number;
  /** The current epoch's metadata authentication key; only full key slots hold it. */
  macKey?: Buffer | undefined;
  /** Every epoch this key can read, by key id (the current one included). */
  epochs: Map<number, EpochKey>;
  /**
   * A version 2 key that still reads format 1 envelopes: of every kind while a
   * repository is being migrated, of blobs and pack headers (whose integrity the blob
   * id and the pack's name give) once it has been (docs/format.md, "Migration").
   */
  readsV1?: 'all' | 'blobs' | undefined;
}

/** A MasterKey as plain data, for worker threads. */
export interface KeyMaterial {
  version: 1 | 2;
  idKey: Uint8Array;
  current: number;
  epochs: Array<{ keyId: number; encKey: Uint8Array; macKey?: Uint8Array }>;
  readsV1?: 'all' | 'blobs';
}

export function newMasterKey(version: 1 | 2 = 2): MasterKey {
  const encKey = randomBytes(32);
  return masterKeyFrom(encKey, randomBytes(32), { version, macKey: version === 2 ? randomBytes(32) : undefined });
}

export function keyIdOf(encKey: Buffer): number {
  return createHash('sha256').update('lifeboat key id\0').update(encKey).digest().readUInt32BE(0);
}

/** A key of one epoch (version 1 keys have exactly one). */
export function masterKeyFrom(encKey: Buffer, idKey: Buffer, opts: { version?: 1 | 2; macKey?: Buffer | undefined } = {}): MasterKey {
  const keyId = keyIdOf(encKey);
  const epoch: EpochKey = opts.macKey ? { encKey, macKey: opts.macKey } : { encKey };
  return { version: opts.version ?? 1, encKey, idKey, keyId, macKey: opts.macKey, epochs: new Map([[keyId, epoch]]) };
}

export function exportKey(key: MasterKey): KeyMaterial {
  return {
    version: key.version,
    idKey: key.idKey,
    current: key.keyId,
    epochs: [...key.epochs].map(([keyId, e]) => ({ keyId, encKey: e.encKey, ...(e.macKey ? { macKey: e.macKey } : {}) })),
    ...(key.readsV1 ? { readsV1: key.readsV1 } : {}),
  };
}

export function importKey(m: KeyMaterial): MasterKey {
  const epochs = new Map<number, EpochKey>();
  for (const e of m.epochs) {
    epochs.set(e.keyId, { encKey: Buffer.from(e.encKey), ...(e.macKey ? { macKey: Buffer.from(e.macKey) } : {}) });
  }
  const current = epochs.get(m.current);
  if (!current) throw new Error('key material without its current epoch');
  return {
    version: m.version,
    encKey: current.encKey,
    idKey: Buffer.from(m.idKey),
    keyId: m.current,
    macKey: current.macKey,
    epochs,
    ...(m.readsV1 ? { readsV1: m.readsV1 } : {}),
  };
}

/** Blob id: HMAC-SHA-256 keyed by the repository, so storage alone cannot confirm content. */
export function blobId(key: Pick<MasterKey, 'idKey'>, plaintext: Uint8Array): Buffer {
  return createHmac('sha256', key.idKey).update(plaintext).digest();
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function contextBytes(ctx: SealContext): Buffer {
  return Buffer.from(`lifeboat v2\0${ctx.kind}\0${ctx.name ?? ''}`, 'utf8');
}

/**
 * Compresses (unless it would not shrink the data) and encrypts. Returns the sealed
 * envelope, ready to store.
 */
export function seal(key: MasterKey, plaintext: Uint8Array, compression: Compression, ctx: SealContext): Buffer {
  const { codec, body } = sealBody(plaintext, compression);
  return encrypt(key.encKey, key.keyId, codec, body, key.version === 2 ? ctx : undefined);
}

/**
 * The first half of `seal`: the codec and the body to encrypt (the compressed form, or
 * the plaintext itself). `compressFn` may return a view into a buffer it reuses
 * (`ReusableCompressor`): the body is then valid until its next call.
 */
export function sealBody(
  plaintext: Uint8Array,
  compression: Compression,
  compressFn: (data: Uint8Array) => Uint8Array = (d) => compress(d, compression),
): { codec: number; body: Uint8Array } {
  if (compression.codec !== 'none' && plaintext.length >= 64) {
    const packed = compressFn(plaintext);
    // Keep the compressed form only when it saves at least 1/32: a tiny saving is
    // not worth the decompression on every restore.
    if (packed.length < plaintext.length - (plaintext.length >> 5)) return { codec: CODEC[compression.codec], body: packed };
  }
  return { codec: CODEC.none, body: plaintext };
}

/**
 * The second half of `seal`: encrypts `body` into `out` at `at` (which must have room
 * for SEAL_OVERHEAD + body.length bytes) instead of a new buffer; returns the length
 * written. The same envelope `seal` returns.
 */
export function sealInto(key: MasterKey, codec: number, body: Uint8Array, ctx: SealContext, out: Buffer, at: number): number {
  return encryptInto(key.encKey, key.keyId, codec, body, key.version === 2 ? ctx : undefined, out, at);
}

/** Encrypts; with a context the envelope is format 2 and the context is authenticated. */
export function encrypt(encKey: Buffer, keyId: number, codec: number, body: Uint8Array, ctx?: SealContext): Buffer {
  const out = Buffer.allocUnsafe(SEAL_OVERHEAD + body.length);
  encryptInto(encKey, keyId, codec, body, ctx, out, 0);
  return out;
}

function encryptInto(encKey: Buffer, keyId: number, codec: number, body: Uint8Array, ctx: SealContext | undefined, out: Buffer, at: number): number {
  const end = at + SEAL_OVERHEAD + body.length;
  if (end > out.length) throw new RangeError(`no room to seal ${body.length} bytes at ${at} of ${out.length}`);
  const cipher = startCipher(encKey, keyId, codec, ctx, out.subarray(at, at + HEADER_LEN + NONCE_LEN));
  const start = at + HEADER_LEN + NONCE_LEN;
  // update() allocates its output; copied in, it is the only per-call garbage left.
  let n = cipher.update(body).copy(out, start);
  n += cipher.final().copy(out, start + n);
  cipher.getAuthTag().copy(out, start + n);
  return end - at;
}

/**
 * `sealInto` for a writer that appends to a file: the same envelope as pieces to be
 * written back to back (header and nonce, ciphertext, tag), without copying the
 * ciphertext into a buffer of its own.
 */
export function sealParts(key: MasterKey, codec: number, body: Uint8Array, ctx: SealContext): Buffer[] {
  const head = Buffer.allocUnsafe(HEADER_LEN + NONCE_LEN);
  const cipher = startCipher(key.encKey, key.keyId, codec, key.version === 2 ? ctx : undefined, head);
  const parts = [head, cipher.update(body)];
  const rest = cipher.final();
  if (rest.length > 0) parts.push(rest);
  parts.push(cipher.getAuthTag());
  return parts;
}

/**
 * Random bytes drawn 4 KiB at a time, each used for one nonce only. A call into the
 * CSPRNG per 12-byte nonce cost ~3% of a backup worker's CPU; the bytes are the same
 * CSPRNG's, so a nonce is as unpredictable and as unlikely to repeat as before (and a
 * nonce is public anyway: it is stored beside the ciphertext).
 */
const noncePool = { bytes: Buffer.alloc(0), at: 0 };
const NONCE_POOL_BYTES = 4096;

function takeNonce(into: Buffer, at: number): void {
  if (noncePool.at + NONCE_LEN > noncePool.bytes.length) {
    noncePool.bytes = randomFillSync(Buffer.allocUnsafeSlow(NONCE_POOL_BYTES));
    noncePool.at = 0;
  }
  const { bytes } = noncePool;
  for (let i = 0; i < NONCE_LEN; i++) into[at + i] = bytes[noncePool.at + i]!;
  noncePool.at += NONCE_LEN;
}

/** Writes the envelope's header and a fresh nonce into `head` and returns the cipher they start. */
function startCipher(encKey: Buffer, keyId: number, codec: number, ctx: SealContext | undefined, head: Buffer): CipherGCM {
  head[0] = ctx ? SEAL_FORMAT_V2 : SEAL_FORMAT;
  head.writeUInt32BE(keyId >>> 0, 1);
  head[5] = codec;
  takeNonce(head, HEADER_LEN);
  const cipher = createCipheriv('aes-256-gcm', encKey, head.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN));
  const header = head.subarray(0, HEADER_LEN);
  cipher.setAAD(ctx ? Buffer.concat([header, contextBytes(ctx)]) : header);
  return cipher;
}

/**
 * The key id an envelope names, from its first bytes (at least 5: re-sealing reads
 * only the header), or undefined if they are not an envelope's.
 */
export function sealedKeyId(sealed: Uint8Array): number | undefined {
  if (sealed.length < 5 || (sealed[0] !== SEAL_FORMAT && sealed[0] !== SEAL_FORMAT_V2)) return undefined;
  return Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength).readUInt32BE(1);
}

/**
 * Decrypts and authenticates with one raw key; returns [codec, body]. Tampering raises
 * CORRUPT. With a context only a format 2 envelope is accepted, without one only format 1.
 */
export function decrypt(encKey: Buffer, keyId: number, sealed: Uint8Array, what: string, ctx?: SealContext): [number, Buffer] {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const format = ctx ? SEAL_FORMAT_V2 : SEAL_FORMAT;
  if (buf.length < SEAL_OVERHEAD || buf[0] !== format) {
    throw new LifeboatError('CORRUPT', `${what}: not a sealed object of format ${format} (bad header)`, {
      hint: 'run `lifeboat check --read-data` to find damaged data',
    });
  }
  if (buf.readUInt32BE(1) !== keyId >>> 0) {
    throw new LifeboatError('CORRUPT', `${what}: sealed with an unknown key id ${buf.readUInt32BE(1)}`, {
      hint: 'the object belongs to another repository, to a key epoch that was destroyed, or was tampered with',
    });
  }
  const nonce = buf.subarray(HEADER_LEN, HEADER_LEN + NONCE_LEN);
  const tag = buf.subarray(buf.length - TAG_LEN);
  const decipher = createDecipheriv('aes-256-gcm', encKey, nonce);
  decipher.setAAD(ctx ? Buffer.concat([buf.subarray(0, HEADER_LEN), contextBytes(ctx)]) : buf.subarray(0, HEADER_LEN));
  decipher.setAuthTag(tag);
  try {
    const body = decipher.update(buf.subarray(HEADER_LEN + NONCE_LEN, buf.length - TAG_LEN));
    // GCM's final() checks the tag and returns no bytes: no second copy of the body.
    const rest = decipher.final();
    return [buf[5] as number, rest.length > 0 ? Buffer.concat([body, rest]) : body];
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: failed authentication (damaged, tampered with, or stored under another name)`, {
      hint: 'run `lifeboat check --read-data`; restore from another copy if it persists',
      cause: err,
    });
  }
}

function readsV1(key: MasterKey, ctx: SealContext): boolean {
  return key.readsV1 === 'all' || (key.readsV1 === 'blobs' && (ctx.kind === 'data' || ctx.kind === 'tree' || ctx.kind === 'pack-header'));
}

/** Opens an envelope with whichever epoch key it names. */
function open(key: MasterKey, sealed: Uint8Array, what: string, ctx: SealContext): [number, Buffer, number] {
  const keyId = sealed.length >= SEAL_OVERHEAD ? sealedKeyId(sealed) : undefined;
  const epoch = keyId === undefined ? undefined : key.epochs.get(keyId);
  const v1 = key.version === 1 || (sealed[0] === SEAL_FORMAT && readsV1(key, ctx));
  if (keyId !== undefined && !epoch) {
    throw new LifeboatError('CORRUPT', `${what}: sealed with key id ${keyId}, which this key does not hold`, {
      hint: 'the object belongs to another repository, to a key epoch that was destroyed, or to a key slot role that may not read it',
    });
  }
  const [codec, body] = decrypt(epoch?.encKey ?? key.encKey, keyId ?? key.keyId, sealed, what, v1 ? undefined : ctx);
  return [codec, body, keyId ?? key.keyId];
}

export { MAX_PLAIN };

/**
 * `unseal` with the plaintext decoded into `into`'s kept buffer: a view valid until
 * that decompressor's next call (a restore worker, which only checks and writes it).
 */
export function unsealInto(into: ReusableDecompressor, key: MasterKey, sealed: Uint8Array, what: string, ctx: SealContext, maxPlain = MAX_PLAIN): Uint8Array {
  const [codec, body] = open(key, sealed, what, ctx);
  return into.decompress(body, codec, maxPlain, what);
}

/** Authenticates, decrypts and decompresses a sealed object. */
export function unseal(key: MasterKey, sealed: Uint8Array, what: string, ctx: SealContext, maxPlain = MAX_PLAIN): Buffer {
  const [codec, body] = open(key, sealed, what, ctx);
  const out = decompress(body, codec, maxPlain, what);
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

// ---- authenticated metadata ----------------------------------------------------

/**
 * Metadata (snapshots, index files, retiring lists, drill records) of a version 2
 * repository carries a tag made with the sealing epoch's metadata key, which only full
 * key slots hold. Append-only and write-only clients can write metadata but cannot
 * tag it, so `prune`, `forget` and retention know which metadata the administrator
 * wrote and never decide a deletion from anything else.
 *
 * Plaintext layout: u8 flags (1 = tagged) | 32-byte HMAC when tagged | payload.
 */
const META_TAGGED = 1;

function metaTag(macKey: Buffer, ctx: SealContext, payload: Uint8Array): Buffer {
  return createHmac('sha256', macKey).update(contextBytes(ctx)).update('\0meta\0').update(payload).digest();
}

export function sealMeta(key: MasterKey, payload: Uint8Array, compression: Compression, ctx: SealContext): Buffer {
  if (key.version === 1) return seal(key, payload, compression, ctx);
  const head = key.macKey ? Buffer.concat([Buffer.from([META_TAGGED]), metaTag(key.macKey, ctx, payload)]) : Buffer.from([0]);
  return seal(key, Buffer.concat([head, payload]), compression, ctx);
}

export interface OpenedMeta {
  payload: Buffer;
  /**
   * true: written by a full key slot (its tag verified); false: written by a restricted
   * slot (untagged, or a tag that does not verify); undefined: this key cannot tell
   * (a version 1 repository, or a restricted key that holds no metadata key).
   */
  trusted: boolean | undefined;
}

export function unsealMeta(key: MasterKey, sealed: Uint8Array, what: string, ctx: SealContext, maxPlain = MAX_PLAIN): OpenedMeta {
  const [codec, body, keyId] = open(key, sealed, what, ctx);
  const plain = decompress(body, codec, maxPlain, what);
  const buf = Buffer.isBuffer(plain) ? plain : Buffer.from(plain.buffer, plain.byteOffset, plain.byteLength);
  if (key.version === 1 || (sealed[0] === SEAL_FORMAT && readsV1(key, ctx))) return { payload: buf, trusted: undefined };
  const flags = buf[0];
  if (flags === undefined || (flags !== 0 && flags !== META_TAGGED) || (flags === META_TAGGED && buf.length < 33)) {
    throw new LifeboatError('CORRUPT', `${what}: malformed metadata header`, { hint: 'run `lifeboat check`' });
  }
  const payload = buf.subarray(flags === META_TAGGED ? 33 : 1);
  const epoch = key.epochs.get(keyId);
  const macKey = epoch?.macKey;
  if (!macKey) return { payload, trusted: epoch?.session ? false : undefined };
  if (flags !== META_TAGGED) return { payload, trusted: false };
  const ok = timingSafeEqual(buf.subarray(1, 33), metaTag(macKey, ctx, payload));
  return { payload, trusted: ok };
}
