/**
 * The on-disk blob index of a large repository: a local, private cache file built
 * from the repository's index files, so a backup's memory does not grow with the
 * repository (docs/design-notes.md, "Blob index on disk").
 *
 * The file holds every entry of the index files it was built from, sorted by blob id
 * in fixed 48-byte records, and the packs they name. What stays in memory is small
 * per blob: a blocked Bloom filter (8 bits per blob, one 64-byte block per lookup),
 * so an id that is not there — a new chunk, the common case of a first backup —
 * reads no page; two u32 fences (first and last id prefix) and a CRC-32 per 4 KiB
 * page. Hits read one page (pread, checked against its CRC-32) through a bounded
 * LRU page cache. A filter larger than `FILTER_IN_MEMORY_MAX` (32 M blobs) is not
 * held: each lookup reads the 512 bytes of it that hold its block from the file
 * (pread, through the kernel's page cache, which is not the process's memory),
 * checked against a CRC-32 taken of those bytes when they were authenticated at open.
 *
 * Layout (little-endian; pages of 4096 bytes):
 *   page 0      header: "LBDX" u32 version | repository id (32) | nine 8-byte
 *               counts and offsets (see HEADER) | HMAC-SHA-256 of the header's first
 *               112 bytes and the meta section
 *   entries     85 records a page: id (32) | u32 pack handle (bit 31: tree) |
 *               u32 offset | u32 length | u32 raw length
 *   pack lookup 113 records a page: pack id (32) | u32 handle, sorted by id
 *   packs       128 pack ids a page, by handle
 *   meta        source index files (32-byte name digests, sorted) | filter |
 *               entry fences | entry page CRC-32s | lookup fences | lookup CRC-32s |
 *               pack page CRC-32s
 *
 * The meta section is authenticated as a whole when the file is opened (a key
 * derived from the repository's id key, so a file of another repository or one
 * written by anybody without the key is refused); every data page is checked against
 * its CRC-32 when read. A damaged page fails the operation and removes the file:
 * the next run builds it again.
 */
import { closeSync, openSync, readSync, rmSync, writeSync, fstatSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { LifeboatError } from '../../errors.js';

export const PAGE = 4096;
export const ENT = 48;
export const ENT_PER_PAGE = 85;
export const PL = 36;
export const PL_PER_PAGE = 113;
export const PB = 32;
export const PB_PER_PAGE = 128;
/** Bytes of a page's check value (CRC-32; see `checkPage`). */
export const DIG = 4;
/** Bytes of a page's fences: the first 4 bytes of its first and of its last id. */
export const FENCE = 8;
export const MAGIC = 'LBDX';
/** 2: the filter block is chosen by the id's first 4 bytes (1: bytes 4-7); a file of 1 is rebuilt. */
export const VERSION = 2;
/** Header bytes covered by the MAC: magic, version, repository id, nine 8-byte fields. */
export const HEADER = 112;
/** Filter bits per blob: ~3% false positives with 6 probes in a 512-bit block. */
export const FILTER_BITS_PER_BLOB = 8;
export const FILTER_BLOCK = 64;
/**
 * The largest filter held in memory (32 MiB: 32 M blobs); above it each lookup reads
 * the `FILTER_CHECKED` bytes of the filter that hold its block from the file, checked
 * against a CRC-32 of them taken while the filter was authenticated at open (8 KB per
 * MB of filter): a bit changed on disk since then is damage, handled as a damaged page is.
 */
export const FILTER_IN_MEMORY_MAX = 32 * 1024 * 1024;
/** Bytes of a filter left in the file read and checked at a time (8 blocks; 4 KiB took twice as long a lookup). */
export const FILTER_CHECKED = 512;
/** Bytes of the metadata read at a time while authenticating a filter left on disk (whole pages). */
const META_READ = 256 * PAGE;

export interface OpenOptions {
  /** Pages the LRU page cache holds (default 2048: 8 MiB). */
  cachePages?: number;
  /** The largest filter held in memory (default `FILTER_IN_MEMORY_MAX`). */
  filterInMemoryMax?: number;
  /** Bytes read at a time while authenticating a filter left in the file (whole pages). */
  window?: number;
}

/** A filter left in the file: where it starts, its length, a CRC-32 per `FILTER_CHECKED` bytes of it. */
interface FilterOnDisk {
  at: number;
  length: number;
  digests: Uint32Array;
}
export const TREE_BIT = 0x80000000;

/** What a lookup sees of one copy. `handle` indexes the file's pack table. */
export interface DiskEntry {
  handle: number;
  tree: boolean;
  offset: number;
  length: number;
  rawLength: number;
}

export function cacheMacKey(idKey: Buffer): Buffer {
  return createHmac('sha256', idKey).update('lifeboat local index cache v1').digest();
}

/**
 * The filter block an id's bits are in: chosen by its first 4 bytes, the bytes it is
 * sorted by, so a builder that adds ids in order finishes the blocks in order and
 * writes the filter out as it goes instead of holding it (~1 MB per million blobs).
 * The bits within the block come from bytes 8-15. Ids are HMAC outputs: uniform.
 */
export function filterBlock(id: Uint8Array, blocks: number): number {
  return Math.floor((((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0) * blocks / 4294967296);
}

/** Sets (`set`) or tests the id's 6 bits in the 64-byte block at byte `at` of `filter`. */
export function filterProbe(filter: Uint8Array, at: number, id: Uint8Array, set: boolean): boolean {
  const h1 = (id[8]! | (id[9]! << 8) | (id[10]! << 16) | (id[11]! << 24)) >>> 0;
  const h2 = (id[12]! | (id[13]! << 8) | (id[14]! << 16) | (id[15]! << 24)) >>> 0;
  for (let j = 0; j < 6; j++) {
    const p = ((j < 3 ? h1 : h2) >>> (9 * (j % 3))) & 511;
    const i = at + (p >>> 3);
    const bit = 1 << (p & 7);
    if (set) filter[i] = filter[i]! | bit;
    else if ((filter[i]! & bit) === 0) return false;
  }
  return true;
}

export function pageDigest(page: Uint8Array): number {
  return crc32(page) >>> 0;
}

export function writeAll(fd: number, data: Uint8Array, pos: number): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, pos + off);
}

export function readAll(fd: number, into: Uint8Array, pos: number): void {
  for (let off = 0; off < into.length; ) {
    const n = readSync(fd, into, off, into.length - off, pos + off);
    if (n === 0) throw new LifeboatError('FAILED', 'local index cache: unexpected end of file', { hint: 'run the command again; the cache is rebuilt' });
    off += n;
  }
}


export class DiskIndex {
  private readonly cache = new Map<number, Buffer>();
  private readonly fences: Uint32Array;
  private readonly plFences: Uint32Array;
  /** Page reads that missed the page cache (for benchmarks). */
  pageReads = 0;
  /** Parts of the filter read from the file (a filter not held in memory; for benchmarks and tests). */
  filterReads = 0;
  private readonly filterPart = Buffer.alloc(FILTER_CHECKED);

  private constructor(
    readonly file: string,
    private fd: number,
    readonly entryCount: number,
    readonly packCount: number,
    /** Sorted 32-byte digests of the index files' names this file was built from. */
    readonly sources: Buffer,
    /** The filter, or where it is in the file when it is not held. */
    private readonly filter: Buffer | FilterOnDisk,
    private readonly blocks: number,
    private readonly entryDigests: Buffer,
    private readonly plDigests: Buffer,
    private readonly pbDigests: Buffer,
    fences: Buffer,
    plFences: Buffer,
    private readonly plStart: number,
    private readonly pbStart: number,
    private readonly cachePages: number,
  ) {
    this.fences = new Uint32Array(fences.buffer, fences.byteOffset, fences.length / 4);
    this.plFences = new Uint32Array(plFences.buffer, plFences.byteOffset, plFences.length / 4);
  }

  /**
   * Opens a cache file, or returns why it cannot be used (missing, another
   * repository's, damaged, another format). Never throws for a bad file.
   */
  static open(file: string, repoId: Buffer, macKey: Buffer, opts: OpenOptions = {}): DiskIndex | string {
    const { cachePages = 2048, filterInMemoryMax = FILTER_IN_MEMORY_MAX, window = META_READ } = opts;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return 'missing';
    }
    try {
      const size = fstatSync(fd).size;
      const header = Buffer.alloc(PAGE);
      if (size < PAGE) throw new Error('too short');
      readAll(fd, header, 0);
      if (header.toString('latin1', 0, 4) !== MAGIC || header.readUInt32LE(4) !== VERSION) throw new Error('not a cache file of this version');
      if (!header.subarray(8, 40).equals(repoId)) throw new Error("another repository's");
      const [n, packs, sourceCount, blocks, entryPages, plPages, pbPages, metaOffset, metaLength] = Array.from({ length: 9 }, (_, i) => header.readUIntLE(40 + i * 8, 6)) as number[] as [number, number, number, number, number, number, number, number, number];
      const expect = sourceCount * 32 + blocks * FILTER_BLOCK + entryPages * (FENCE + DIG) + plPages * (FENCE + DIG) + pbPages * DIG;
      if (metaLength !== expect || metaOffset + metaLength !== size || entryPages !== Math.ceil(n / ENT_PER_PAGE) ||
        plPages !== Math.ceil(packs / PL_PER_PAGE) || pbPages !== Math.ceil(packs / PB_PER_PAGE) || metaOffset !== PAGE * (1 + entryPages + plPages + pbPages)) {
        throw new Error('inconsistent sizes');
      }
      // The metadata is MACed as a whole; a filter that is not held is read through a
      // window, the rest (sources, fences, check values) kept.
      const filterLength = blocks * FILTER_BLOCK;
      const held = filterLength <= filterInMemoryMax;
      const hmac = createHmac('sha256', macKey).update(header.subarray(0, HEADER));
      const readPart = (len: number, pos: number) => {
        const part = Buffer.allocUnsafe(len);
        readAll(fd, part, pos);
        hmac.update(part);
        return part;
      };
      const sources = readPart(sourceCount * 32, metaOffset);
      const filterAt = metaOffset + sources.length;
      let filter: Buffer | FilterOnDisk;
      if (held) filter = readPart(filterLength, filterAt);
      else {
        if (window % PAGE !== 0) throw new Error('the read window must be whole pages');
        const digests = new Uint32Array(Math.ceil(filterLength / FILTER_CHECKED));
        const buf = Buffer.allocUnsafe(Math.min(window, filterLength));
        for (let off = 0; off < filterLength; off += buf.length) {
          const part = buf.subarray(0, Math.min(buf.length, filterLength - off));
          readAll(fd, part, filterAt + off);
          hmac.update(part);
          for (let p = 0; p < part.length; p += FILTER_CHECKED) digests[(off + p) / FILTER_CHECKED] = pageDigest(part.subarray(p, p + FILTER_CHECKED));
        }
        filter = { at: filterAt, length: filterLength, digests };
      }
      const rest = readPart(metaLength - sources.length - filterLength, metaOffset + sources.length + filterLength);
      if (!hmac.digest().equals(header.subarray(HEADER, HEADER + 32))) throw new Error('does not authenticate');
      let at = 0;
      const take = (len: number) => rest.subarray(at, (at += len));
      const fences = take(entryPages * FENCE);
      const entryDigests = take(entryPages * DIG);
      const plFences = take(plPages * FENCE);
      const plDigests = take(plPages * DIG);
      const pbDigests = take(pbPages * DIG);
      return new DiskIndex(file, fd, n, packs, sources, filter, blocks, entryDigests, plDigests, pbDigests, fences, plFences,
        PAGE * (1 + entryPages), PAGE * (1 + entryPages + plPages), cachePages);
    } catch (err) {
      closeSync(fd);
      return (err as Error).message;
    }
  }

  /** Bytes this object holds in memory at most (filter, fences, digests, page cache). */
  get memoryBytes(): number {
    return (Buffer.isBuffer(this.filter) ? this.filter.length : FILTER_CHECKED + this.filter.digests.byteLength) + this.fences.byteLength + this.entryDigests.length + this.plFences.byteLength + this.plDigests.length + this.pbDigests.length + this.sources.length + this.cachePages * PAGE;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.cache.clear();
  }

  /** Whether the file was built from the index file whose name has this digest. */
  coversSource(digest: Buffer): boolean {
    let lo = 0;
    let hi = this.sources.length / 32;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.sources.compare(digest, 0, 32, mid * 32, mid * 32 + 32);
      if (c === 0) return true;
      if (c < 0) lo = mid + 1;
      else hi = mid;
    }
    return false;
  }

  /** False when the blob is certainly not in the file (no disk access). */
  mayContain(id: Uint8Array): boolean {
    const at = filterBlock(id, this.blocks) * FILTER_BLOCK;
    const f = this.filter;
    if (Buffer.isBuffer(f)) return filterProbe(f, at, id, false);
    if (this.fd < 0) throw new Error('index cache closed');
    const p = Math.floor(at / FILTER_CHECKED);
    const part = this.filterPart.subarray(0, Math.min(FILTER_CHECKED, f.length - p * FILTER_CHECKED));
    readAll(this.fd, part, f.at + p * FILTER_CHECKED);
    this.filterReads++;
    if (pageDigest(part) !== f.digests[p]) this.damaged(`filter part ${p}`);
    return filterProbe(part, at - p * FILTER_CHECKED, id, false);
  }

  /** Visits every copy of the blob in the file. */
  lookup(id: Uint8Array, visit: (e: DiskEntry) => void): void {
    if (!this.mayContain(id)) return;
    this.scan(id, this.fences, ENT, ENT_PER_PAGE, this.entryCount, PAGE, this.entryDigests, (page, r) => {
      const h = page.readUInt32LE(r + 32);
      visit({ handle: (h & ~TREE_BIT) >>> 0, tree: (h & TREE_BIT) !== 0, offset: page.readUInt32LE(r + 36), length: page.readUInt32LE(r + 40), rawLength: page.readUInt32LE(r + 44) });
    });
  }

  /** Visits the handles of a pack id (more than one when index files named it twice). */
  findPack(id: Uint8Array, visit: (handle: number) => void): void {
    this.scan(id, this.plFences, PL, PL_PER_PAGE, this.packCount, this.plStart, this.plDigests, (page, r) => visit(page.readUInt32LE(r + 32)));
  }

  packId(handle: number): Buffer {
    if (handle < 0 || handle >= this.packCount) throw new Error(`no pack handle ${handle} in the index cache`);
    const p = Math.floor(handle / PB_PER_PAGE);
    const page = this.page(this.pbStart / PAGE + p, this.pbDigests, p);
    const r = (handle % PB_PER_PAGE) * PB;
    return Buffer.from(page.subarray(r, r + PB));
  }

  /** Every pack id by handle, in order (building the next file). */
  forEachPack(fn: (id: Buffer) => void): void {
    for (let h = 0; h < this.packCount; h++) fn(this.packId(h));
  }

  /** Every entry record (48 bytes, a view valid during the call), in id order, read sequentially. */
  forEachRecord(fn: (record: Buffer) => void): void {
    const pages = Math.ceil(this.entryCount / ENT_PER_PAGE);
    const buf = Buffer.allocUnsafeSlow(PAGE * 256);
    for (let p0 = 0; p0 < pages; p0 += 256) {
      const np = Math.min(256, pages - p0);
      readAll(this.fd, buf.subarray(0, np * PAGE), PAGE * (1 + p0));
      for (let i = 0; i < np; i++) {
        const page = buf.subarray(i * PAGE, (i + 1) * PAGE);
        this.checkPage(page, this.entryDigests, p0 + i);
        const inPage = Math.min(ENT_PER_PAGE, this.entryCount - (p0 + i) * ENT_PER_PAGE);
        for (let r = 0; r < inPage; r++) fn(page.subarray(r * ENT, r * ENT + ENT));
      }
    }
  }

  private scan(id: Uint8Array, fences: Uint32Array, rec: number, perPage: number, count: number, start: number, digests: Buffer, hit: (page: Buffer, r: number) => void): void {
    const p = ((id[0]! << 24) | (id[1]! << 16) | (id[2]! << 8) | id[3]!) >>> 0;
    // fences[2i] and fences[2i+1]: the first 4 bytes of page i's first and last id,
    // both non-decreasing. The id can only be on pages from the first whose last
    // prefix is at least p, while their first prefix is at most p: nearly always one
    // page, and none when p falls between two pages.
    const pages = fences.length >>> 1;
    let lo = 0;
    let hi = pages;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (fences[2 * mid + 1]! < p) lo = mid + 1;
      else hi = mid;
    }
    for (let pg = lo; pg < pages && fences[2 * pg]! <= p; pg++) {
      const page = this.page(start / PAGE + pg, digests, pg);
      const inPage = Math.min(perPage, count - pg * perPage);
      // Binary search on the first 4 bytes for the first record not below id's, then
      // whole ids compared over the (nearly always one-record) run of equal prefixes.
      let a = 0;
      let b = inPage;
      while (a < b) {
        const m = (a + b) >>> 1;
        if (page.readUInt32BE(m * rec) < p) a = m + 1;
        else b = m;
      }
      for (let r = a; r < inPage && page.readUInt32BE(r * rec) === p; r++) {
        if (page.compare(id, 0, 32, r * rec, r * rec + 32) === 0) hit(page, r * rec);
      }
    }
  }

  private page(fileGlobal: number, digests: Buffer, local: number): Buffer {
    const hit = this.cache.get(fileGlobal);
    if (hit) {
      this.cache.delete(fileGlobal);
      this.cache.set(fileGlobal, hit);
      return hit;
    }
    if (this.fd < 0) throw new Error('index cache closed');
    const page = Buffer.allocUnsafeSlow(PAGE);
    readAll(this.fd, page, fileGlobal * PAGE);
    this.pageReads++;
    this.checkPage(page, digests, local);
    this.cache.set(fileGlobal, page);
    if (this.cache.size > this.cachePages) this.cache.delete(this.cache.keys().next().value as number);
    return page;
  }

  private checkPage(page: Buffer, digests: Buffer, local: number): void {
    // CRC-32 against damage (3x cheaper than SHA-256 per read here); the table of
    // check values itself is under the metadata's HMAC.
    if (pageDigest(page) === digests.readUInt32LE(local * DIG)) return;
    this.damaged(`page ${local}`);
  }

  private damaged(what: string): never {
    // Removed so the next run builds it again; this run stops rather than guess.
    rmSync(this.file, { force: true });
    throw new LifeboatError('FAILED', `local index cache ${this.file} is damaged (${what}); it was removed`, {
      hint: 'run the command again: the cache is rebuilt from the repository',
    });
  }
}
