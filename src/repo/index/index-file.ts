/**
 * Index files: which blobs live in which packs, so a backup or restore never has to
 * read pack headers. Written after the packs they name (the safety rule), sealed like
 * everything else, named by the SHA-256 of their bytes.
 *
 * Plain layout before sealing: "LBIX" | u8 version | u32 pack count | per pack:
 * pack id (32) | u32 blob count | blob entries as in pack headers (45 bytes each).
 */
import { LifeboatError } from '../../errors.js';
import { decodeEntries, encodeEntries, ENTRY_LEN, type PackEntry } from '../pack/pack.js';

const MAGIC = Buffer.from('LBIX');

export interface IndexedPack {
  packId: Buffer;
  entries: PackEntry[];
}

export function encodeIndex(packs: readonly IndexedPack[]): Buffer {
  const parts: Buffer[] = [MAGIC, Buffer.from([1])];
  const count = Buffer.allocUnsafe(4);
  count.writeUInt32LE(packs.length);
  parts.push(count);
  for (const p of packs) {
    const head = Buffer.allocUnsafe(36);
    p.packId.copy(head, 0);
    head.writeUInt32LE(p.entries.length, 32);
    parts.push(head, encodeEntries(p.entries));
  }
  return Buffer.concat(parts);
}

export function decodeIndex(buf: Buffer, what: string): IndexedPack[] {
  if (buf.length < 9 || !buf.subarray(0, 4).equals(MAGIC) || buf[4] !== 1) {
    throw new LifeboatError('CORRUPT', `${what}: not an index file of format 1`);
  }
  const n = buf.readUInt32LE(5);
  const out: IndexedPack[] = [];
  let pos = 9;
  for (let i = 0; i < n; i++) {
    if (pos + 36 > buf.length) throw new LifeboatError('CORRUPT', `${what}: truncated`);
    const packId = Buffer.from(buf.subarray(pos, pos + 32));
    const count = buf.readUInt32LE(pos + 32);
    pos += 36;
    const end = pos + count * ENTRY_LEN;
    if (end > buf.length) throw new LifeboatError('CORRUPT', `${what}: truncated`);
    out.push({ packId, entries: decodeEntries(buf.subarray(pos, end), what) });
    pos = end;
  }
  return out;
}

/**
 * Visits the packs of an index file without decoding entries into objects (building
 * the on-disk index of a large repository): `entries` is the raw list, 45 bytes an
 * entry as in pack headers, its types already checked.
 */
export function forEachIndexedPackRaw(buf: Buffer, what: string, fn: (packId: Buffer, entries: Buffer) => void): void {
  if (buf.length < 9 || !buf.subarray(0, 4).equals(MAGIC) || buf[4] !== 1) {
    throw new LifeboatError('CORRUPT', `${what}: not an index file of format 1`);
  }
  const n = buf.readUInt32LE(5);
  // The whole file is checked before anything is visited: a damaged one adds nothing.
  const packs: Array<[Buffer, Buffer]> = [];
  let pos = 9;
  for (let i = 0; i < n; i++) {
    if (pos + 36 > buf.length) throw new LifeboatError('CORRUPT', `${what}: truncated`);
    const packId = buf.subarray(pos, pos + 32);
    const end = pos + 36 + buf.readUInt32LE(pos + 32) * ENTRY_LEN;
    if (end > buf.length) throw new LifeboatError('CORRUPT', `${what}: truncated`);
    const entries = buf.subarray(pos + 36, end);
    for (let b = 0; b < entries.length; b += ENTRY_LEN) {
      if (entries[b] !== 0 && entries[b] !== 1) throw new LifeboatError('CORRUPT', `${what}: unknown blob type ${entries[b]}`);
    }
    packs.push([packId, entries]);
    pos = end;
  }
  for (const [packId, entries] of packs) fn(packId, entries);
}
