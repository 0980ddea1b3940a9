/**
 * The on-disk blob index of a large repository: a local, private cache file built
 * from the repository's index files, so a backup's memory does not grow with the
 * repository (docs/design-notes.md, "Blob index on disk").
 *
 * The file holds every entry of the index files it was built from, sorted by blob id
 * in fixed 48-byte records, and the packs they name. What stays in memory is small
 * per blob: a blocked Bloom filter (8 bits per blob, one 64-byte block per lookup),
 * so an id that is not there — a new chunk, the common case of a first backup —
 * never touches the disk; two u32 fences (first and last id prefix) and a
 * CRC-32 per 4 KiB page. Hits read one page (pread, checked against its CRC-32)
 * through a bounded LRU page cache.
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
import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync, mkdtempSync, fstatSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { crc32 } from 'node:zlib';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';

export const PAGE = 4096;
const ENT = 48;
const ENT_PER_PAGE = 85;
const PL = 36;
const PL_PER_PAGE = 113;
const PB = 32;
const PB_PER_PAGE = 128;
/** Bytes of a page's check value (CRC-32; see `checkPage`). */
const DIG = 4;
/** Bytes of a page's fences: the first 4 bytes of its first and of its last id. */
const FENCE = 8;
const MAGIC = 'LBDX';
const VERSION = 1;
/** Header bytes covered by the MAC: magic, version, repository id, nine 8-byte fields. */
const HEADER = 112;
/** Filter bits per blob: ~3% false positives with 6 probes in a 512-bit block. */
const FILTER_BITS_PER_BLOB = 8;
const FILTER_BLOCK = 64;
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

function filterProbe(filter: Buffer, blocks: number, id: Uint8Array, set: boolean): boolean {
  const b = Math.floor(((id[4]! | (id[5]! << 8) | (id[6]! << 16) | (id[7]! << 24)) >>> 0) * blocks / 4294967296) * FILTER_BLOCK;
  const h1 = (id[8]! | (id[9]! << 8) | (id[10]! << 16) | (id[11]! << 24)) >>> 0;
  const h2 = (id[12]! | (id[13]! << 8) | (id[14]! << 16) | (id[15]! << 24)) >>> 0;
  for (let j = 0; j < 6; j++) {
    const p = ((j < 3 ? h1 : h2) >>> (9 * (j % 3))) & 511;
    const at = b + (p >>> 3);
    const bit = 1 << (p & 7);
    if (set) filter[at] = filter[at]! | bit;
    else if ((filter[at]! & bit) === 0) return false;
  }
  return true;
}

function pageDigest(page: Uint8Array): number {
  return crc32(page) >>> 0;
}

// ---- building --------------------------------------------------------------------

/**
 * Sorts fixed-size records keyed by their first 32 bytes with bounded memory:
 * records go to 256 bucket files by their first byte; each bucket is sorted in memory
 * (one larger than `bucketBytes`, from ids that are not uniform, is split again by
 * range first).
 */
class BucketSorter {
  private readonly bufs: Buffer[] = [];
  private readonly fill: number[] = [];
  private readonly fds: Array<number | undefined> = [];
  private readonly sizes: number[] = [];
  /** One buffer for every bucket's sort, grown as needed: freed buffers would pile up until a GC. */
  private scratch: Buffer = Buffer.alloc(0);
  count = 0;

  constructor(
    private readonly dir: string,
    private readonly name: string,
    private readonly rec: number,
    private readonly bufBytes: number,
    private readonly bucketBytes: number,
  ) {}

  add(record: Uint8Array): void {
    const b = record[0]!;
    let buf = this.bufs[b];
    if (!buf) {
      buf = Buffer.allocUnsafeSlow(Math.floor(this.bufBytes / this.rec) * this.rec);
      this.bufs[b] = buf;
      this.fill[b] = 0;
      this.sizes[b] = 0;
    }
    buf.set(record, this.fill[b]!);
    this.fill[b]! += this.rec;
    this.count++;
    if (this.fill[b]! === buf.length) this.flush(b);
  }

  private flush(b: number): void {
    const buf = this.bufs[b]!;
    const n = this.fill[b]!;
    if (n === 0) return;
    this.fds[b] ??= openSync(path.join(this.dir, `${this.name}.${b}`), 'w+', 0o600);
    writeAll(this.fds[b]!, buf.subarray(0, n), this.sizes[b]!);
    this.sizes[b]! += n;
    this.fill[b] = 0;
  }

  /** Calls `emit` with every record in order (a view valid during the call), and removes the buckets. */
  drain(emit: (record: Buffer) => void): void {
    for (let b = 0; b < 256; b++) {
      if (!this.bufs[b]) continue;
      const inMemory = this.fds[b] === undefined;
      if (inMemory) {
        sortEmit(this.bufs[b]!.subarray(0, this.fill[b]!), this.rec, emit);
      } else {
        this.flush(b);
        this.drainFile(this.fds[b]!, this.sizes[b]!, b * 0x1000000, (b + 1) * 0x1000000, emit);
        closeSync(this.fds[b]!);
        this.fds[b] = undefined;
        rmSync(path.join(this.dir, `${this.name}.${b}`), { force: true });
      }
      this.bufs[b] = Buffer.alloc(0);
    }
    this.scratch = Buffer.alloc(0);
  }

  private drainFile(fd: number, size: number, lo: number, hi: number, emit: (record: Buffer) => void): void {
    if (size <= this.bucketBytes || hi - lo <= 1) {
      if (this.scratch.length < size) this.scratch = Buffer.allocUnsafeSlow(Math.max(size, Math.min(this.bucketBytes, this.scratch.length * 2)));
      const buf = this.scratch.subarray(0, size);
      readAll(fd, buf, 0);
      sortEmit(buf, this.rec, emit);
      return;
    }
    // Not uniform (ids are HMAC outputs, so only a hostile index does this): split by range.
    const parts = 16;
    const step = Math.ceil((hi - lo) / parts);
    const sub: Array<{ fd: number; size: number; file: string }> = [];
    for (let i = 0; i < parts; i++) {
      const file = path.join(this.dir, `${this.name}.split.${lo}.${i}`);
      sub.push({ fd: openSync(file, 'w+', 0o600), size: 0, file });
    }
    const chunk = Buffer.allocUnsafeSlow(Math.floor((4 << 20) / this.rec) * this.rec);
    for (let pos = 0; pos < size; pos += chunk.length) {
      const n = Math.min(chunk.length, size - pos);
      readAll(fd, chunk.subarray(0, n), pos);
      for (let r = 0; r < n; r += this.rec) {
        const i = Math.floor((chunk.readUInt32BE(r) - lo) / step);
        const s = sub[i]!;
        writeAll(s.fd, chunk.subarray(r, r + this.rec), s.size);
        s.size += this.rec;
      }
    }
    sub.forEach((s, i) => {
      this.drainFile(s.fd, s.size, lo + i * step, Math.min(hi, lo + (i + 1) * step), emit);
      closeSync(s.fd);
      rmSync(s.file, { force: true });
    });
  }

  abort(): void {
    for (const fd of this.fds) if (fd !== undefined) closeSync(fd);
    this.fds.length = 0;
  }
}

/** Sorts records by their bytes (the id first) and emits them in order. */
function sortEmit(buf: Buffer, rec: number, emit: (record: Buffer) => void): void {
  const n = buf.length / rec;
  if (n === 0) return;
  // buf.compare(target, …, source…) orders source against target: record a against b.
  const cmp = (a: number, b: number) => buf.compare(buf, b * rec, b * rec + rec, a * rec, a * rec + rec);
  const idxBits = Math.max(1, Math.ceil(Math.log2(n + 1)));
  let order: Uint32Array;
  if (idxBits > 21) {
    order = Uint32Array.from(Array.from({ length: n }, (_, i) => i).sort(cmp));
  } else {
    // Native numeric sort of (first 4 id bytes, position) packed in a double, then
    // the rare runs with equal first 4 bytes sorted by their whole bytes.
    const mul = 2 ** idxBits;
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = buf.readUInt32BE(i * rec) * mul + i;
    keys.sort();
    order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = keys[i]! % mul;
    for (let i = 0; i < n; ) {
      const p = Math.floor(keys[i]! / mul);
      let j = i + 1;
      while (j < n && Math.floor(keys[j]! / mul) === p) j++;
      if (j - i > 1) order.set(Array.from(order.subarray(i, j)).sort(cmp), i);
      i = j;
    }
  }
  for (let i = 0; i < n; i++) emit(buf.subarray(order[i]! * rec, order[i]! * rec + rec));
}

/** Pack-by-handle pages are found by number, not searched: their fences go to a scratch buffer. */
function pFences(pages: number): Buffer {
  return Buffer.alloc(pages * FENCE);
}

function writeAll(fd: number, data: Uint8Array, pos: number): void {
  for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off, pos + off);
}

function readAll(fd: number, into: Uint8Array, pos: number): void {
  for (let off = 0; off < into.length; ) {
    const n = readSync(fd, into, off, into.length - off, pos + off);
    if (n === 0) throw new LifeboatError('FAILED', 'local index cache: unexpected end of file', { hint: 'run the command again; the cache is rebuilt' });
    off += n;
  }
}

/** Writes fixed-size records into pages, recording each page's fences (first and last id prefix) and CRC. */
class PageWriter {
  private page = Buffer.alloc(PAGE);
  private inPage = 0;
  pages = 0;

  constructor(
    private readonly fd: number,
    private readonly start: number,
    private readonly rec: number,
    private readonly perPage: number,
    /** Where fences and CRCs go: parts of the one metadata buffer, sized in advance. */
    private readonly fenceBuf: Buffer,
    private readonly digestBuf: Buffer,
  ) {}

  add(record: Uint8Array): void {
    const prefix = ((record[0]! << 24) | (record[1]! << 16) | (record[2]! << 8) | record[3]!) >>> 0;
    if (this.inPage === 0) this.fenceBuf.writeUInt32LE(prefix, this.pages * FENCE);
    this.fenceBuf.writeUInt32LE(prefix, this.pages * FENCE + 4);
    this.page.set(record, this.inPage * this.rec);
    if (++this.inPage === this.perPage) this.flush();
  }

  flush(): void {
    if (this.inPage === 0) return;
    this.page.fill(0, this.inPage * this.rec);
    this.digestBuf.writeUInt32LE(pageDigest(this.page), this.pages * DIG);
    writeAll(this.fd, this.page, this.start + this.pages * PAGE);
    this.pages++;
    this.inPage = 0;
  }
}

export interface BuildOptions {
  repoId: Buffer;
  macKey: Buffer;
  /** Sorting memory per bucket (tests make it small to exercise the split). */
  bucketBytes?: number;
}

/**
 * Builds a cache file: packs and entries are added in any order, `finish` sorts them
 * with bounded memory and writes the file under a temporary name, then renames it.
 */
export class DiskIndexBuilder {
  private readonly tmp: string;
  private readonly entries: BucketSorter;
  private readonly lookup: BucketSorter;
  private readonly packsFd: number;
  private packCount = 0;
  private readonly sources: Buffer[] = [];
  private readonly rec = Buffer.alloc(ENT);
  private readonly plRec = Buffer.alloc(PL);

  constructor(
    private readonly dir: string,
    private readonly opts: BuildOptions,
  ) {
    this.tmp = mkdtempSync(path.join(dir, 'build-'));
    const bucketBytes = opts.bucketBytes ?? 32 << 20;
    this.entries = new BucketSorter(this.tmp, 'entries', ENT, 64 << 10, bucketBytes);
    this.lookup = new BucketSorter(this.tmp, 'packs', PL, 8 << 10, bucketBytes);
    this.packsFd = openSync(path.join(this.tmp, 'packs'), 'w+', 0o600);
  }

  /** Records that the file covers an index file (its name's 32-byte digest). */
  addSource(digest: Buffer): void {
    this.sources.push(Buffer.from(digest));
  }

  /** Adds a pack and returns its handle (a pack added twice gets two handles; lookups see both). */
  addPack(id: Uint8Array): number {
    const h = this.packCount++;
    writeAll(this.packsFd, id.subarray(0, 32), h * PB);
    this.plRec.set(id.subarray(0, 32), 0);
    this.plRec.writeUInt32LE(h, 32);
    this.lookup.add(this.plRec);
    return h;
  }

  addEntry(id: Uint8Array, handle: number, tree: boolean, offset: number, length: number, rawLength: number): void {
    this.rec.set(id.subarray(0, 32), 0);
    this.rec.writeUInt32LE((handle | (tree ? TREE_BIT : 0)) >>> 0, 32);
    this.rec.writeUInt32LE(offset, 36);
    this.rec.writeUInt32LE(length, 40);
    this.rec.writeUInt32LE(rawLength, 44);
    this.entries.add(this.rec);
  }

  /** Adds a raw 48-byte record of another cache file (its handle already valid here). */
  addRecord(record: Uint8Array): void {
    this.entries.add(record);
  }

  /**
   * Writes the file to `dest` atomically (temporary name, fsync, rename). Returns
   * its metadata section, to open it without reading that again (`DiskIndex.open`):
   * the metadata is built in one buffer of its final size, so building holds it once.
   */
  finish(dest: string): Buffer {
    const n = this.entries.count;
    const out = path.join(this.dir, `.${path.basename(dest)}.${process.pid}.${Date.now()}.tmp`);
    const fd = openSync(out, 'w', 0o600);
    let meta: Buffer;
    try {
      const blocks = Math.max(1, Math.ceil((n * FILTER_BITS_PER_BLOB) / (FILTER_BLOCK * 8)));
      const entryPages = Math.ceil(n / ENT_PER_PAGE);
      const plPages = Math.ceil(this.packCount / PL_PER_PAGE);
      const pbPages = Math.ceil(this.packCount / PB_PER_PAGE);
      const sizes = [this.sources.length * 32, blocks * FILTER_BLOCK, entryPages * FENCE, entryPages * DIG, plPages * FENCE, plPages * DIG, pbPages * DIG];
      meta = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      const [sourcesB, filter, eFences, eDig, lFences, lDig, pDig] = sizes.map((len) => meta.subarray(at, (at += len))) as [Buffer, Buffer, Buffer, Buffer, Buffer, Buffer, Buffer];
      const ew = new PageWriter(fd, PAGE, ENT, ENT_PER_PAGE, eFences, eDig);
      this.entries.drain((r) => {
        filterProbe(filter, blocks, r, true);
        ew.add(r);
      });
      ew.flush();
      const plStart = PAGE + entryPages * PAGE;
      const lw = new PageWriter(fd, plStart, PL, PL_PER_PAGE, lFences, lDig);
      this.lookup.drain((r) => lw.add(r));
      lw.flush();
      const pbStart = plStart + lw.pages * PAGE;
      const pw = new PageWriter(fd, pbStart, PB, PB_PER_PAGE, pFences(pbPages), pDig);
      const chunk = Buffer.allocUnsafeSlow(PB * PB_PER_PAGE * 64);
      for (let pos = 0; pos < this.packCount * PB; pos += chunk.length) {
        const len = Math.min(chunk.length, this.packCount * PB - pos);
        readAll(this.packsFd, chunk.subarray(0, len), pos);
        for (let r = 0; r < len; r += PB) pw.add(chunk.subarray(r, r + PB));
      }
      pw.flush();
      if (ew.pages !== entryPages || lw.pages !== plPages || pw.pages !== pbPages) throw new Error('index cache: page counts differ from the records added');
      this.sources.sort(Buffer.compare).forEach((src, i) => src.copy(sourcesB, i * 32));
      const metaOffset = pbStart + pw.pages * PAGE;
      const metaLength = meta.length;
      writeAll(fd, meta, metaOffset);
      const header = Buffer.alloc(PAGE);
      header.write(MAGIC, 0, 'latin1');
      header.writeUInt32LE(VERSION, 4);
      this.opts.repoId.copy(header, 8, 0, 32);
      [n, this.packCount, this.sources.length, blocks, ew.pages, lw.pages, pw.pages, metaOffset, metaLength].forEach((v, i) => header.writeUIntLE(v, 40 + i * 8, 6));
      createHmac('sha256', this.opts.macKey).update(header.subarray(0, HEADER)).update(meta).digest().copy(header, HEADER);
      writeAll(fd, header, 0);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      rmSync(out, { force: true });
      throw err;
    }
    closeSync(fd);
    renameSync(out, dest);
    this.abort();
    return meta;
  }

  /** Removes the temporary files (also after `finish`). */
  abort(): void {
    this.entries.abort();
    this.lookup.abort();
    try {
      closeSync(this.packsFd);
    } catch {
      // closed already
    }
    rmSync(this.tmp, { recursive: true, force: true });
  }
}

// ---- reading ---------------------------------------------------------------------

export class DiskIndex {
  private readonly cache = new Map<number, Buffer>();
  private readonly fences: Uint32Array;
  private readonly plFences: Uint32Array;
  /** Page reads that missed the page cache (for benchmarks). */
  pageReads = 0;

  private constructor(
    readonly file: string,
    private fd: number,
    readonly entryCount: number,
    readonly packCount: number,
    /** Sorted 32-byte digests of the index files' names this file was built from. */
    readonly sources: Buffer,
    private readonly filter: Buffer,
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
  static open(file: string, repoId: Buffer, macKey: Buffer, cachePages = 2048, written?: Buffer): DiskIndex | string {
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
      // `written`: the metadata this process has just written (DiskIndexBuilder.finish).
      let meta = written;
      if (!meta || meta.length !== metaLength) {
        meta = Buffer.alloc(metaLength);
        readAll(fd, meta, metaOffset);
      }
      const mac = createHmac('sha256', macKey).update(header.subarray(0, HEADER)).update(meta).digest();
      if (!mac.equals(header.subarray(HEADER, HEADER + 32))) throw new Error('does not authenticate');
      let at = 0;
      const take = (len: number) => meta.subarray(at, (at += len));
      const sources = take(sourceCount * 32);
      const filter = take(blocks * FILTER_BLOCK);
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
    return this.filter.length + this.fences.byteLength + this.entryDigests.length + this.plFences.byteLength + this.plDigests.length + this.pbDigests.length + this.sources.length + this.cachePages * PAGE;
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
    return filterProbe(this.filter, this.blocks, id, false);
  }

  /** Visits every copy of the blob in the file. */
  lookup(id: Uint8Array, visit: (e: DiskEntry) => void): void {
    if (!filterProbe(this.filter, this.blocks, id, false)) return;
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
    // Removed so the next run builds it again; this run stops rather than guess.
    rmSync(this.file, { force: true });
    throw new LifeboatError('FAILED', `local index cache ${this.file} is damaged (page ${local}); it was removed`, {
      hint: 'run the command again: the cache is rebuilt from the repository',
    });
  }
}
