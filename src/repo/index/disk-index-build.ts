/**
 * Builds the on-disk blob index's cache file (the format is described in
 * disk-index.ts) with bounded memory: records are spread over bucket files by their
 * first id byte and each bucket is sorted in memory.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, mkdtempSync } from 'node:fs';
import { createHmac, type Hmac } from 'node:crypto';
import * as path from 'node:path';
import {
  DIG, ENT, ENT_PER_PAGE, FENCE, FILTER_BITS_PER_BLOB, FILTER_BLOCK, filterBlock, filterProbe, HEADER, MAGIC, PAGE, pageDigest,
  PB, PB_PER_PAGE, PL, PL_PER_PAGE, readAll, TREE_BIT, VERSION, writeAll,
} from './disk-index.js';

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
  /** The sort's keys and order, kept across buckets for the same reason (~12 bytes a record). */
  private readonly work: SortWork = { keys: new Float64Array(0), order: new Uint32Array(0) };
  /**
   * Every bucket's buffer is a slice of this one allocation: 256 buffers of 64 KiB each
   * would come from malloc's arenas, which keep what is freed resident (~18 MB at the
   * metadata's read-back after a 100 M-blob build); one large block is returned whole.
   * Its pages are touched only as buckets fill.
   */
  private slab: Buffer | undefined;
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
      const size = Math.floor(this.bufBytes / this.rec) * this.rec;
      this.slab ??= Buffer.allocUnsafeSlow(256 * size);
      buf = this.slab.subarray(b * size, (b + 1) * size);
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

  /**
   * Writes out the buckets that already have a file and drops their buffers (256 of
   * `bufBytes`), before `finish` allocates the file's metadata: at 100 M blobs that is
   * 18 MB less at the build's peak. Buckets held only in memory keep theirs.
   */
  release(): void {
    for (let b = 0; b < 256; b++) {
      if (this.fds[b] === undefined || !this.bufs[b]) continue;
      this.flush(b);
      this.bufs[b] = Buffer.alloc(0);
    }
    // Buckets held only in memory keep their slices, and with them the slab.
    this.slab = undefined;
  }

  /** Calls `emit` with every record in order (a view valid during the call), and removes the buckets. */
  drain(emit: (record: Buffer) => void): void {
    for (let b = 0; b < 256; b++) {
      if (!this.bufs[b]) continue;
      const inMemory = this.fds[b] === undefined;
      if (inMemory) {
        sortEmit(this.bufs[b]!.subarray(0, this.fill[b]!), this.rec, emit, this.work);
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
    this.slab = undefined;
    this.work.keys = new Float64Array(0);
    this.work.order = new Uint32Array(0);
  }

  private drainFile(fd: number, size: number, lo: number, hi: number, emit: (record: Buffer) => void): void {
    if (size <= this.bucketBytes || hi - lo <= 1) {
      // Buckets of HMAC ids differ in size by well under 1/16: one allocation serves them all
      // (doubling up to bucketBytes held up to 13 MB more than the largest bucket at 100 M blobs).
      if (this.scratch.length < size) this.scratch = Buffer.allocUnsafeSlow(size + Math.ceil(size / 16 / this.rec) * this.rec);
      const buf = this.scratch.subarray(0, size);
      readAll(fd, buf, 0);
      sortEmit(buf, this.rec, emit, this.work);
      return;
    }
    // Not uniform (ids are HMAC outputs, so only a hostile index does this): split by range.
    const parts = 16;
    const step = Math.ceil((hi - lo) / parts);
    const sub: Array<{ fd: number; size: number; file: string }> = [];
    for (let i = 0; i < parts; i++) {
      // Named by the whole range: part 0 of a range starts where the range does.
      const file = path.join(this.dir, `${this.name}.split.${lo}-${hi}.${i}`);
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

/**
 * A sort's working arrays, reused from bucket to bucket: a fresh pair per bucket (256 of
 * them, ~5 MB each at 100 M blobs) is memory outside V8's heap that only a GC returns,
 * and V8 lets ~64 MB of it pile up first.
 */
interface SortWork {
  keys: Float64Array;
  order: Uint32Array;
}

/** Sorts records by their bytes (the id first) and emits them in order. */
function sortEmit(buf: Buffer, rec: number, emit: (record: Buffer) => void, work: SortWork): void {
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
    if (work.keys.length < n) {
      const room = n + (n >> 4);
      work.keys = new Float64Array(room);
      work.order = new Uint32Array(room);
    }
    const keys = work.keys.subarray(0, n);
    for (let i = 0; i < n; i++) keys[i] = buf.readUInt32BE(i * rec) * mul + i;
    keys.sort();
    order = work.order.subarray(0, n);
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



/** Blocks of the filter held at once while it is written (1 MiB). */
const FILTER_WINDOW = 16384;

/**
 * Writes the filter at `start` of the file as ids arrive in sorted order: their blocks
 * (filterBlock) only grow, so a window of blocks is final once an id falls past it.
 * Each window is added to the MAC as it is written, in the file's order.
 */
class FilterWriter {
  private readonly window: Buffer;
  /** The first block in the window. */
  private base = 0;

  constructor(
    private readonly fd: number,
    private readonly start: number,
    private readonly blocks: number,
    private readonly mac: Hmac,
    private readonly size = FILTER_WINDOW,
  ) {
    this.window = Buffer.alloc(size * FILTER_BLOCK);
  }

  add(id: Uint8Array): void {
    const b = filterBlock(id, this.blocks);
    if (b < this.base) throw new Error('index cache: entries out of order');
    while (b >= this.base + this.size) this.next();
    filterProbe(this.window, (b - this.base) * FILTER_BLOCK, id, true);
  }

  /** Writes the rest (the blocks after the last id are empty). */
  finish(): void {
    while (this.base < this.blocks) this.next();
  }

  private next(): void {
    const part = this.window.subarray(0, Math.min(this.size, this.blocks - this.base) * FILTER_BLOCK);
    writeAll(this.fd, part, this.start + this.base * FILTER_BLOCK);
    this.mac.update(part);
    this.window.fill(0);
    this.base += this.size;
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
  /** Filter blocks held while the filter is written (tests make it small to write many windows). */
  filterWindow?: number;
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
   * Writes the file to `dest` atomically (temporary name, fsync, rename). The filter
   * (most of the metadata: 1 byte a blob) is written out as the sorted entries set its
   * bits and MACed as it goes, so building never holds it whole; `DiskIndex.open`
   * reads the metadata back (at 100 M blobs this kept the build's peak to that of
   * opening the file, instead of the filter's 100 MB above the sort's buffers).
   */
  finish(dest: string): void {
    const n = this.entries.count;
    const out = path.join(this.dir, `.${path.basename(dest)}.${process.pid}.${Date.now()}.tmp`);
    const fd = openSync(out, 'w', 0o600);
    try {
      const blocks = Math.max(1, Math.ceil((n * FILTER_BITS_PER_BLOB) / (FILTER_BLOCK * 8)));
      const entryPages = Math.ceil(n / ENT_PER_PAGE);
      const plPages = Math.ceil(this.packCount / PL_PER_PAGE);
      const pbPages = Math.ceil(this.packCount / PB_PER_PAGE);
      const plStart = PAGE + entryPages * PAGE;
      const pbStart = plStart + plPages * PAGE;
      const metaOffset = pbStart + pbPages * PAGE;
      this.entries.release();
      this.lookup.release();
      // The metadata after the filter: fences and page digests, filled in as pages are written.
      const sizes = [entryPages * FENCE, entryPages * DIG, plPages * FENCE, plPages * DIG, pbPages * DIG];
      const tail = Buffer.alloc(sizes.reduce((a, b) => a + b, 0));
      let at = 0;
      const [eFences, eDig, lFences, lDig, pDig] = sizes.map((len) => tail.subarray(at, (at += len))) as [Buffer, Buffer, Buffer, Buffer, Buffer];
      const sourcesB = Buffer.alloc(this.sources.length * 32);
      this.sources.sort(Buffer.compare).forEach((src, i) => src.copy(sourcesB, i * 32));
      const metaLength = sourcesB.length + blocks * FILTER_BLOCK + tail.length;
      const header = Buffer.alloc(PAGE);
      header.write(MAGIC, 0, 'latin1');
      header.writeUInt32LE(VERSION, 4);
      this.opts.repoId.copy(header, 8, 0, 32);
      [n, this.packCount, this.sources.length, blocks, entryPages, plPages, pbPages, metaOffset, metaLength].forEach((v, i) => header.writeUIntLE(v, 40 + i * 8, 6));
      // The MAC covers the header's fields, then the metadata in its order.
      const mac = createHmac('sha256', this.opts.macKey).update(header.subarray(0, HEADER)).update(sourcesB);
      writeAll(fd, sourcesB, metaOffset);
      const filter = new FilterWriter(fd, metaOffset + sourcesB.length, blocks, mac, this.opts.filterWindow);
      const ew = new PageWriter(fd, PAGE, ENT, ENT_PER_PAGE, eFences, eDig);
      this.entries.drain((r) => {
        filter.add(r);
        ew.add(r);
      });
      ew.flush();
      filter.finish();
      const lw = new PageWriter(fd, plStart, PL, PL_PER_PAGE, lFences, lDig);
      this.lookup.drain((r) => lw.add(r));
      lw.flush();
      const pw = new PageWriter(fd, pbStart, PB, PB_PER_PAGE, pFences(pbPages), pDig);
      const chunk = Buffer.allocUnsafeSlow(PB * PB_PER_PAGE * 64);
      for (let pos = 0; pos < this.packCount * PB; pos += chunk.length) {
        const len = Math.min(chunk.length, this.packCount * PB - pos);
        readAll(this.packsFd, chunk.subarray(0, len), pos);
        for (let r = 0; r < len; r += PB) pw.add(chunk.subarray(r, r + PB));
      }
      pw.flush();
      if (ew.pages !== entryPages || lw.pages !== plPages || pw.pages !== pbPages) throw new Error('index cache: page counts differ from the records added');
      writeAll(fd, tail, metaOffset + metaLength - tail.length);
      mac.update(tail).digest().copy(header, HEADER);
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
