/**
 * Pack files: sealed blobs back to back, then a sealed header listing them, then the
 * header's length as a little-endian u32. The header lets `check`, `prune` and the
 * resume path rebuild the index from the packs alone. A pack's name is the SHA-256
 * of its bytes, so any copy can be verified without the key.
 *
 * Header entry (45 bytes): type u8 | blob id (32) | offset u32 | length u32 | raw length u32
 */
import { LifeboatError } from '../../errors.js';
import { SEAL_OVERHEAD, seal, unseal, type MasterKey } from '../../codec/crypto.js';
import type { BlobType } from '../format.js';

export const ENTRY_LEN = 45;
/** Where each field of an entry starts (after the type byte at 0). */
export const ENTRY_ID = 1;
export const ENTRY_OFFSET = 33;
export const ENTRY_LENGTH = 37;
export const ENTRY_RAW_LENGTH = 41;
export const TRAILER_LEN = 4;

export interface PackEntry {
  type: BlobType;
  id: Buffer;
  offset: number;
  length: number;
  rawLength: number;
}

export function encodeEntries(entries: readonly PackEntry[]): Buffer {
  const buf = Buffer.allocUnsafe(entries.length * ENTRY_LEN);
  entries.forEach((e, i) => {
    const b = i * ENTRY_LEN;
    buf[b] = e.type;
    e.id.copy(buf, b + ENTRY_ID);
    buf.writeUInt32LE(e.offset, b + ENTRY_OFFSET);
    buf.writeUInt32LE(e.length, b + ENTRY_LENGTH);
    buf.writeUInt32LE(e.rawLength, b + ENTRY_RAW_LENGTH);
  });
  return buf;
}

export function decodeEntries(buf: Buffer, what: string): PackEntry[] {
  if (buf.length % ENTRY_LEN !== 0) {
    throw new LifeboatError('CORRUPT', `${what}: malformed blob list`);
  }
  const out: PackEntry[] = [];
  for (let b = 0; b < buf.length; b += ENTRY_LEN) {
    const type = buf[b];
    if (type !== 0 && type !== 1) throw new LifeboatError('CORRUPT', `${what}: unknown blob type ${type}`);
    out.push({
      type,
      id: Buffer.from(buf.subarray(b + ENTRY_ID, b + ENTRY_ID + 32)),
      offset: buf.readUInt32LE(b + ENTRY_OFFSET),
      length: buf.readUInt32LE(b + ENTRY_LENGTH),
      rawLength: buf.readUInt32LE(b + ENTRY_RAW_LENGTH),
    });
  }
  return out;
}

/** Builds the header + trailer that close a pack whose blobs are `entries`. */
export function packFooter(key: MasterKey, entries: readonly PackEntry[]): Buffer {
  const header = seal(key, encodeEntries(entries), { codec: 'none', level: 0 }, { kind: 'pack-header' });
  const trailer = Buffer.allocUnsafe(TRAILER_LEN);
  trailer.writeUInt32LE(header.length, 0);
  return Buffer.concat([header, trailer]);
}

/** Reads the blob list of a pack from its last bytes (the whole pack or its tail). */
export function parsePackHeader(key: MasterKey, tail: Uint8Array, packSize: number, what: string): PackEntry[] {
  const buf = Buffer.from(tail.buffer, tail.byteOffset, tail.byteLength);
  if (buf.length < TRAILER_LEN) throw new LifeboatError('CORRUPT', `${what}: too short to be a pack`);
  const headerLen = buf.readUInt32LE(buf.length - TRAILER_LEN);
  if (headerLen + TRAILER_LEN > buf.length || headerLen + TRAILER_LEN > packSize) {
    throw new LifeboatError('CORRUPT', `${what}: header length ${headerLen} out of range`, {
      hint: 'the pack is truncated or damaged; run `lifeboat check --read-data`',
    });
  }
  const header = buf.subarray(buf.length - TRAILER_LEN - headerLen, buf.length - TRAILER_LEN);
  // Every entry names a sealed blob of at least SEAL_OVERHEAD bytes before the header.
  const maxEntries = Math.ceil((packSize - TRAILER_LEN - headerLen) / SEAL_OVERHEAD);
  const entries = decodeEntries(unseal(key, header, `${what} header`, { kind: 'pack-header' }, maxEntries * ENTRY_LEN), what);
  const dataEnd = packSize - TRAILER_LEN - headerLen;
  for (const e of entries) {
    if (e.offset + e.length > dataEnd) throw new LifeboatError('CORRUPT', `${what}: blob entry past the data`);
  }
  return entries;
}
