/**
 * FastCDC content-defined chunking (Xia et al., 2016/2020), written here because no
 * maintained npm package exists. A 32-bit gear hash rolls over the data; a cut is
 * made where the hash's top bits are zero. "Normalized chunking" uses a harder mask
 * below the average size and an easier one above it, which narrows the size
 * distribution; "cut-point skipping" starts hashing only after `min` bytes.
 *
 * The gear table is derived from the repository's id key, so chunk boundaries (and
 * with them file sizes) do not leak to someone who sees only the stored blob sizes.
 */
import { createHash } from 'node:crypto';

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

/**
 * 512 KiB / 1 MiB / 8 MiB: large chunks keep the index small (about a million blobs
 * per TiB) and the per-blob overhead negligible, while still deduplicating within
 * database files whose pages change sparsely. Files smaller than `min` are one blob.
 */
export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

export function gearTable(idKey: Uint8Array): Uint32Array {
  const table = new Uint32Array(256);
  for (let block = 0; block < 32; block++) {
    const digest = createHash('sha256').update('lifeboat gear\0').update(idKey).update(String(block)).digest();
    for (let j = 0; j < 8; j++) table[block * 8 + j] = digest.readUInt32LE(j * 4);
  }
  return table;
}

function topMask(bits: number): number {
  // The gear hash shifts left, so the top bits depend on the last 32 bytes and the
  // bottom bits on only the last few: masks must sit at the top.
  return ((2 ** bits - 1) * 2 ** (32 - bits)) >>> 0;
}

export class FastCDC {
  readonly params: ChunkerParams;
  /** The gear table read as int32: the hash then stays in int32 arithmetic (below). */
  private readonly gear: Int32Array;
  private readonly maskS: number;
  private readonly maskL: number;

  constructor(gear: Uint32Array, params: ChunkerParams = DEFAULT_CHUNKER) {
    if (!(params.min > 64 && params.min <= params.avg && params.avg <= params.max)) {
      throw new Error(`bad chunker parameters ${JSON.stringify(params)}`);
    }
    if (gear.length !== 256) throw new Error(`a gear table has 256 entries, not ${gear.length}`);
    this.gear = new Int32Array(gear.buffer, gear.byteOffset, 256);
    this.params = params;
    const bits = Math.round(Math.log2(params.avg));
    this.maskS = topMask(bits + 2) | 0;
    this.maskL = topMask(bits - 2) | 0;
  }

  /**
   * Finds the end of the chunk that starts at `start` in buf[start, end). Returns the
   * cut position, or -1 when more data is needed to decide (fewer than `max` bytes
   * available and the input has not ended).
   */
  cut(buf: Uint8Array, start: number, end: number, eof: boolean): number {
    const { min, avg, max } = this.params;
    const len = end - start;
    if (len <= min) return eof ? end : -1;
    if (len < max && !eof) return -1;
    const limit = start + Math.min(len, max);
    const normal = Math.min(start + avg, limit);
    const gear = this.gear;
    const maskS = this.maskS;
    const maskL = this.maskL;
    // The hash is kept as an int32 (`| 0`), not a uint32 (`>>> 0`): the same 32 bits
    // and the same cuts, but V8 then never leaves int32 arithmetic; with the loop
    // unrolled by four, ~1.55x faster (347-422 -> 224-234 ms for 256 MiB:
    // bench/chunker-speed.mjs, docs/performance.md).
    let fp = 0;
    let i = start + min;
    for (const n4 = normal - 3; i < n4; i += 4) {
      fp = ((fp << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((fp & maskS) === 0) return i + 1;
      fp = ((fp << 1) + (gear[buf[i + 1] as number] as number)) | 0;
      if ((fp & maskS) === 0) return i + 2;
      fp = ((fp << 1) + (gear[buf[i + 2] as number] as number)) | 0;
      if ((fp & maskS) === 0) return i + 3;
      fp = ((fp << 1) + (gear[buf[i + 3] as number] as number)) | 0;
      if ((fp & maskS) === 0) return i + 4;
    }
    for (; i < normal; i++) {
      fp = ((fp << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((fp & maskS) === 0) return i + 1;
    }
    for (const l4 = limit - 3; i < l4; i += 4) {
      fp = ((fp << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((fp & maskL) === 0) return i + 1;
      fp = ((fp << 1) + (gear[buf[i + 1] as number] as number)) | 0;
      if ((fp & maskL) === 0) return i + 2;
      fp = ((fp << 1) + (gear[buf[i + 2] as number] as number)) | 0;
      if ((fp & maskL) === 0) return i + 3;
      fp = ((fp << 1) + (gear[buf[i + 3] as number] as number)) | 0;
      if ((fp & maskL) === 0) return i + 4;
    }
    for (; i < limit; i++) {
      fp = ((fp << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((fp & maskL) === 0) return i + 1;
    }
    return limit;
  }

  /** Splits a complete buffer into chunk lengths (tests and small inputs). */
  split(buf: Uint8Array): number[] {
    const out: number[] = [];
    let start = 0;
    while (start < buf.length) {
      const c = this.cut(buf, start, buf.length, true);
      out.push(c - start);
      start = c;
    }
    return out;
  }
}
