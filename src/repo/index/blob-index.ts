/**
 * The in-memory blob index: blob id → (pack, offset, length, raw length, type).
 *
 * A JS Map of objects costs ~200-300 bytes per entry and stresses the garbage
 * collector; repositories grow to millions of blobs. This is an open-addressing hash
 * table in one Buffer of fixed 48-byte slots (32-byte id + four u32), keyed by the
 * id's first 4 bytes (ids are HMAC outputs, so uniformly distributed), with linear
 * probing and a load factor of at most 3/4. Cost: 64-128 bytes per blob, i.e.
 * 64-128 MB per million blobs (about a TiB of data at 1 MiB chunks), held off the JS
 * heap. Pack ids live once in a side table.
 *
 * A blob may be stored more than once (two backups racing, a repack, an index file a
 * client wrote wrongly or on purpose). The slot holds the *primary* copy; the others
 * sit in a small side map, so a load whose pack is gone or damaged falls back to
 * another copy. The primary is chosen by one rule, the same in every process whatever
 * order index files load in: a pack neither gone nor retiring first, then the lowest
 * pack id. prune relies on that rule being shared (docs/prune.md).
 *
 * A large repository's entries can live on disk instead (disk-index.ts, attached as
 * the *base*): the table then holds only index files newer than the cache file and
 * this run's blobs. Base packs get handles from BASE up; a lookup merges the copies
 * of both and applies the same rule. Whole-table walks (marks, forEach) are for
 * prune and check, which keep everything in memory, and refuse a base.
 */
import { endianness } from 'node:os';
import { BLOB_TREE, type BlobType } from '../format.js';
import { ENTRY_ID, ENTRY_LEN, ENTRY_LENGTH, ENTRY_OFFSET, ENTRY_RAW_LENGTH } from '../pack/pack.js';
import type { DiskIndex } from './disk-index.js';

const SLOT = 48;
/** A slot in u32 words: the id's 8, then handle and flags, offset, length, raw length. */
const WORDS = SLOT >>> 2;
const LITTLE_ENDIAN = endianness() === 'LE';
const EMPTY = 0xffffffff;
const TREE_FLAG = 0x80000000;
/** The blob has other copies in `alternates`. */
const ALT_FLAG = 0x40000000;
const HANDLE_MASK = 0x3fffffff;
/** Handles of the base's packs start here (handle − BASE is the cache file's handle). */
const BASE = 0x20000000;

export interface BlobLocation {
  packIndex: number;
  offset: number;
  length: number;
  rawLength: number;
  type: BlobType;
}

export class BlobIndex {
  private table: Buffer;
  /**
   * The same memory as u32 words in this machine's byte order (the table lives only in
   * this process): fields are read and written without Buffer's bounds checks, and a
   * probe rejects a slot by its id's first word before comparing all 32 bytes.
   */
  private words: Uint32Array;
  private capacity: number;
  private count = 0;
  private readonly packIds: Buffer[] = [];
  private readonly packByHex = new Map<string, number>();
  /**
   * Packs a prune has marked for deletion: their blobs still load (snapshots may
   * reference them until the prune is sure they do not) but are not deduplicated
   * against, so nothing new comes to depend on them.
   */
  private readonly retiring = new Set<number>();
  /** Retiring packs by id, including ones not registered yet (known before their entries load). */
  private readonly retiringHex = new Set<string>();
  /** Packs found missing while this process runs (pruned since the index was loaded). */
  private readonly gone = new Set<number>();
  /** Handles reserved for packs still being written: never judged gone. */
  private readonly pending = new Set<number>();
  /** Other copies of blobs stored more than once, by blob id (hex). */
  private readonly alternates = new Map<string, BlobLocation[]>();

  /** Entries kept on disk (see the module comment). */
  private base: DiskIndex | undefined;
  /** One bit per base pack: set when the pack is not in data/ (see `attachBase`). */
  private baseAbsent: Uint8Array | undefined;

  constructor(initialCapacity = 1 << 12) {
    this.capacity = initialCapacity;
    this.table = BlobIndex.emptyTable(initialCapacity);
    this.words = wordsOf(this.table);
  }

  /**
   * Every byte 0xff, so every slot's handle reads EMPTY (one memset, not a loop over
   * slots). A buffer of its own, so its words are aligned.
   */
  private static emptyTable(capacity: number): Buffer {
    return Buffer.allocUnsafeSlow(capacity * SLOT).fill(0xff);
  }

  get size(): number {
    return this.count + (this.base?.entryCount ?? 0);
  }

  /** The on-disk part, when attached. */
  get disk(): DiskIndex | undefined {
    return this.base;
  }

  /**
   * Puts the entries of a cache file under this table. `present(handle)` tells
   * whether the base pack with that handle is in data/ now: one that is not is never
   * offered, as if its entries had been dropped at load. Retiring packs already
   * known apply to the base's packs too.
   */
  attachBase(base: DiskIndex, present: (handle: number) => boolean): void {
    this.base = base;
    this.baseAbsent = new Uint8Array((base.packCount >>> 3) + 1);
    for (let h = 0; h < base.packCount; h++) if (!present(h)) this.baseAbsent[h >>> 3]! |= 1 << (h & 7);
    for (const hex of this.retiringHex) base.findPack(Buffer.from(hex, 'hex'), (h) => this.retiring.add(BASE + h));
  }

  private isGone(handle: number): boolean {
    if (handle >= BASE && this.baseAbsent) {
      const h = handle - BASE;
      if ((this.baseAbsent[h >>> 3]! & (1 << (h & 7))) !== 0) return true;
    }
    return this.gone.has(handle);
  }

  private requireMemory(what: string): void {
    if (this.base) throw new Error(`blob index: ${what} needs the whole index in memory, not an on-disk one`);
  }

  get packCount(): number {
    this.requireMemory('packCount');
    return this.packIds.length;
  }

  /** Bytes held by the table (for docs and tests of the memory bound). */
  get byteSize(): number {
    return this.table.length + this.packIds.length * 32;
  }

  /** Registers a pack id (idempotent) and returns its small integer handle. */
  addPack(packId: Buffer): number {
    const hex = packId.toString('hex');
    let i = this.packByHex.get(hex);
    if (i === undefined) {
      i = this.packIds.length;
      this.packIds.push(Buffer.from(packId));
      this.packByHex.set(hex, i);
      if (this.retiringHex.has(hex)) this.retiring.add(i);
    }
    return i;
  }

  /** Reserves a handle for a pack whose id is not known yet (a pack being written). */
  reservePack(): number {
    this.packIds.push(Buffer.alloc(32));
    this.pending.add(this.packIds.length - 1);
    return this.packIds.length - 1;
  }

  /** Names a reserved pack once its bytes (and so its id) are final. */
  setPackId(handle: number, packId: Buffer): void {
    const old = this.packIds[handle];
    if (!old) throw new Error(`no pack handle ${handle}`);
    packId.copy(old);
    this.packByHex.set(packId.toString('hex'), handle);
    this.pending.delete(handle);
  }

  packId(handle: number): Buffer {
    if (handle >= BASE && this.base) return this.base.packId(handle - BASE);
    const id = this.packIds[handle];
    if (!id) throw new Error(`no pack handle ${handle}`);
    return id;
  }

  hasPack(hex: string): boolean {
    return this.packByHex.has(hex) || this.basePack(hex) !== undefined;
  }

  /** Whether the cache file names this pack and data/ held it when the file was attached. */
  basePackPresent(hex: string): boolean {
    let found = false;
    this.base?.findPack(Buffer.from(hex, 'hex'), (h) => {
      if (!this.isGone(BASE + h)) found = true;
    });
    return found;
  }

  private basePack(hex: string): number | undefined {
    if (!this.base) return undefined;
    let found: number | undefined;
    this.base.findPack(Buffer.from(hex, 'hex'), (h) => (found ??= BASE + h));
    return found;
  }

  /** The slot of the id at `at` in `id`, or −1 − the empty slot where it would go. */
  private find(id: Uint8Array, at = 0): number {
    const mask = this.capacity - 1;
    const b0 = id[at]!, b1 = id[at + 1]!, b2 = id[at + 2]!, b3 = id[at + 3]!;
    const hash = b0 | (b1 << 8) | (b2 << 16) | (b3 << 24);
    let i = hash & mask;
    // The id's first 4 bytes as the table's first word of the slot holds them.
    const first = (LITTLE_ENDIAN ? hash : (b0 << 24) | (b1 << 16) | (b2 << 8) | b3) >>> 0;
    const words = this.words;
    for (;;) {
      const w = i * WORDS;
      if (words[w + 8] === EMPTY) return -1 - i;
      if (words[w] === first && this.table.compare(id, at, at + 32, i * SLOT, i * SLOT + 32) === 0) return i;
      i = (i + 1) & mask;
    }
  }

  /** Whether a new backup may reuse the blob: it is indexed in a pack neither retiring nor gone. */
  has(id: Uint8Array): boolean {
    const i = this.find(id);
    // The primary is always the best copy, so it alone answers.
    if (i >= 0 && this.usable(this.read(i * SLOT).packIndex)) return true;
    return this.baseHas(id);
  }

  /**
   * `has` for an id in hex, as trees hold them (a parent snapshot's content, compared by
   * every unchanged file of a backup): decoded into one scratch buffer, not a Buffer per
   * id (~3% of an unchanged backup's CPU). A malformed id is not indexed.
   */
  hasHex(hex: string): boolean {
    return hex.length === 64 && this.hexScratch.write(hex, 'hex') === 32 && this.has(this.hexScratch);
  }

  private readonly hexScratch = Buffer.alloc(32);

  /** Whether the base holds a copy the rule above allows to reuse. */
  private baseHas(id: Uint8Array): boolean {
    if (!this.base) return false;
    let ok = false;
    this.base.lookup(id, (e) => {
      if (this.usable(BASE + e.handle)) ok = true;
    });
    return ok;
  }

  /** Whether a retiring list names the pack, whether or not it is indexed. */
  isRetiringPack(hex: string): boolean {
    return this.retiringHex.has(hex);
  }

  isRetiring(handle: number): boolean {
    return this.retiring.has(handle);
  }

  private usable(handle: number): boolean {
    return !this.retiring.has(handle) && !this.isGone(handle);
  }

  /** Marks a pack as retiring (see `retiring`); idempotent, and valid before the pack is registered. */
  retirePack(hex: string): void {
    this.retiringHex.add(hex);
    this.base?.findPack(Buffer.from(hex, 'hex'), (h) => this.retiring.add(BASE + h));
    const handle = this.packByHex.get(hex);
    if (handle === undefined || this.retiring.has(handle)) return;
    this.retiring.add(handle);
    this.repickAll(handle);
  }

  /**
   * Records that a pack is missing from the store (a prune deleted it after this
   * process loaded the index): its copies are no longer offered. A pack still being
   * written is never judged gone.
   */
  markGone(handle: number): void {
    if (this.pending.has(handle) || this.isGone(handle)) return;
    this.gone.add(handle);
    this.repickAll(handle);
  }

  /** The primary location, or undefined when the blob is not indexed or its only pack is gone. */
  get(id: Uint8Array): BlobLocation | undefined {
    if (this.base) return this.locations(id)[0];
    const i = this.find(id);
    if (i < 0) return undefined;
    const loc = this.read(i * SLOT);
    return this.gone.has(loc.packIndex) ? undefined : loc;
  }

  /** Every known copy of the blob, best first (the order `get` and prune use); gone packs left out. */
  locations(id: Uint8Array): BlobLocation[] {
    const i = this.find(id);
    const all: BlobLocation[] = [];
    if (i >= 0) {
      const base = i * SLOT;
      all.push(this.read(base));
      if ((this.words[(base >>> 2) + 8]! & ALT_FLAG) !== 0) all.push(...(this.alternates.get(toHexId(id)) ?? []));
    }
    if (this.base) {
      // A pack named by both the cache file and a newer index file is offered once.
      const seen = new Set(all.map((l) => this.packId(l.packIndex).toString('hex')));
      this.base.lookup(id, (e) => {
        const handle = BASE + e.handle;
        const hex = this.packId(handle).toString('hex');
        if (seen.has(hex)) return;
        seen.add(hex);
        all.push({ packIndex: handle, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.tree ? BLOB_TREE : 0 });
      });
    }
    return all.filter((l) => !this.isGone(l.packIndex)).sort((a, b) => this.compare(a, b));
  }

  /** Visits the non-primary copies of blobs stored more than once. */
  forEachAlternate(fn: (loc: BlobLocation) => void): void {
    this.requireMemory('forEachAlternate');
    for (const alts of this.alternates.values()) for (const l of alts) fn(l);
  }

  private read(base: number): BlobLocation {
    const w = base >>> 2;
    const p = this.words[w + 8]!;
    return {
      packIndex: p & HANDLE_MASK,
      offset: this.words[w + 9]!,
      length: this.words[w + 10]!,
      rawLength: this.words[w + 11]!,
      type: (p & TREE_FLAG) !== 0 ? BLOB_TREE : 0,
    };
  }

  private write(base: number, loc: BlobLocation, alt: boolean): void {
    this.put(base >>> 2, loc.packIndex, loc.type, loc.offset, loc.length, loc.rawLength, alt);
  }

  private put(w: number, handle: number, type: number, offset: number, length: number, rawLength: number, alt: boolean): void {
    const words = this.words;
    words[w + 8] = (handle | (type === BLOB_TREE ? TREE_FLAG : 0) | (alt ? ALT_FLAG : 0)) >>> 0;
    words[w + 9] = offset;
    words[w + 10] = length;
    words[w + 11] = rawLength;
  }

  /** Negative when copy `a` is preferred to `b`: usable first, then not gone, then the lower pack id. */
  private compare(a: BlobLocation, b: BlobLocation): number {
    const rank = (l: BlobLocation) => (this.isGone(l.packIndex) ? 2 : this.retiring.has(l.packIndex) ? 1 : 0);
    return rank(a) - rank(b) || this.packId(a.packIndex).compare(this.packId(b.packIndex)) || a.packIndex - b.packIndex;
  }

  /**
   * Adds a copy of a blob. A copy in a pack already recorded for this blob is ignored;
   * another becomes the primary when it is preferred (see `compare`), an alternate
   * otherwise. Returns true when the blob was not available for deduplication before.
   */
  add(id: Uint8Array, loc: BlobLocation): boolean {
    if ((this.count + 1) * 4 > this.capacity * 3) this.grow(this.capacity * 2);
    const i = this.find(id);
    if (i < 0) {
      const base = (-1 - i) * SLOT;
      this.table.set(id.subarray(0, 32), base);
      this.write(base, loc, false);
      this.count++;
      return !this.baseHas(id);
    }
    const base = i * SLOT;
    const cur = this.read(base);
    if (cur.packIndex === loc.packIndex) return false;
    const hex = toHexId(id);
    const alts = this.alternates.get(hex) ?? [];
    if (alts.some((a) => a.packIndex === loc.packIndex)) return false;
    const wasUsable = this.usable(cur.packIndex) || this.baseHas(id);
    if (this.compare(loc, cur) < 0) {
      alts.push(cur);
      this.write(base, loc, true);
    } else {
      alts.push({ ...loc });
      this.write(base, cur, true);
    }
    this.alternates.set(hex, alts);
    return !wasUsable && this.usable(loc.packIndex);
  }

  /** Chooses the primary again for blobs with several copies, one of them in pack `handle`. */
  private repickAll(handle: number): void {
    for (const [hex, alts] of this.alternates) {
      const id = Buffer.from(hex, 'hex');
      const i = this.find(id);
      if (i < 0) continue;
      const base = i * SLOT;
      const cur = this.read(base);
      if (cur.packIndex !== handle && !alts.some((a) => a.packIndex === handle)) continue;
      const all = [cur, ...alts].sort((a, b) => this.compare(a, b));
      this.write(base, all[0] as BlobLocation, true);
      this.alternates.set(hex, all.slice(1));
    }
  }

  /**
   * Adds the entries of pack `handle` as index files and pack headers store them
   * (ENTRY_LEN bytes each: type, id, offset, length, raw length; types already
   * checked), with no object per entry: how an index file is loaded. A blob already
   * indexed takes add()'s path (another copy).
   */
  addEntries(handle: number, entries: Buffer): void {
    const n = entries.length / ENTRY_LEN;
    let capacity = this.capacity;
    while ((this.count + n) * 4 > capacity * 3) capacity *= 2;
    if (capacity !== this.capacity) this.grow(capacity);
    for (let b = 0; b < entries.length; b += ENTRY_LEN) {
      const type = entries[b]!;
      const offset = entries.readUInt32LE(b + ENTRY_OFFSET);
      const length = entries.readUInt32LE(b + ENTRY_LENGTH);
      const rawLength = entries.readUInt32LE(b + ENTRY_RAW_LENGTH);
      const i = this.find(entries, b + ENTRY_ID);
      if (i >= 0) {
        this.add(Buffer.from(entries.subarray(b + ENTRY_ID, b + ENTRY_ID + 32)), { packIndex: handle, offset, length, rawLength, type: type as BlobType });
        continue;
      }
      entries.copy(this.table, (-1 - i) * SLOT, b + ENTRY_ID, b + ENTRY_ID + 32);
      this.put((-1 - i) * WORDS, handle, type, offset, length, rawLength, false);
      this.count++;
    }
  }

  private grow(capacity: number): void {
    this.marks = undefined;
    const oldCap = this.capacity;
    this.capacity = capacity;
    const mask = this.capacity - 1;
    // The entries are distinct: each goes to the first empty slot from its hash, no
    // comparison needed. Slots copied as 12 u32 (tables are fresh allocations, aligned).
    const old = this.table;
    const from = this.words;
    this.table = BlobIndex.emptyTable(this.capacity);
    this.words = wordsOf(this.table);
    const to = this.words;
    const W = WORDS;
    for (let i = 0; i < oldCap; i++) {
      const a = i * W;
      if (from[a + 8] === EMPTY) continue;
      const o = i * SLOT;
      let j = (old[o]! | (old[o + 1]! << 8) | (old[o + 2]! << 16) | (old[o + 3]! << 24)) & mask; // find()'s hash
      while (to[j * W + 8] !== EMPTY) j = (j + 1) & mask;
      const b = j * W;
      for (let k = 0; k < W; k++) to[b + k] = from[a + k]!;
    }
  }

  // ---- marks (prune) ----------------------------------------------------------

  /** One bit per slot; dropped when the table grows (slots move). */
  private marks: Uint8Array | undefined;

  /** False after a resize dropped the marks (see `marks`). */
  get hasMarks(): boolean {
    return this.marks !== undefined;
  }

  clearMarks(): void {
    this.requireMemory('marks');
    this.marks = new Uint8Array((this.capacity >>> 3) + 1);
  }

  /** Marks an indexed blob as referenced; false when it was marked already (or is not indexed). */
  mark(id: Uint8Array): boolean {
    const slot = this.find(id);
    if (slot < 0) return true;
    const m = this.requireMarks();
    const bit = 1 << (slot & 7);
    if (((m[slot >>> 3] as number) & bit) !== 0) return false;
    m[slot >>> 3] = (m[slot >>> 3] as number) | bit;
    return true;
  }

  /** Whether the blob is indexed and marked. */
  isMarkedId(id: Uint8Array): boolean {
    const slot = this.find(id);
    return slot >= 0 && this.isMarked(slot);
  }

  isMarked(slot: number): boolean {
    return ((this.requireMarks()[slot >>> 3] as number) & (1 << (slot & 7))) !== 0;
  }

  private requireMarks(): Uint8Array {
    if (!this.marks) throw new Error('blob index: marks were cleared by a resize; mark again');
    return this.marks;
  }

  packHandle(hex: string): number | undefined {
    return this.packByHex.get(hex) ?? this.basePack(hex);
  }

  /** Visits every primary entry with its slot number; the id buffer is only valid during the callback. */
  forEachSlot(fn: (slot: number, loc: BlobLocation, id: Buffer) => void): void {
    this.requireMemory('forEachSlot');
    for (let i = 0; i < this.capacity; i++) {
      const base = i * SLOT;
      if (this.words[i * WORDS + 8] === EMPTY) continue;
      fn(i, this.read(base), this.table.subarray(base, base + 32));
    }
  }

  /** Visits every entry; the id buffer is only valid during the callback. */
  forEach(fn: (id: Buffer, loc: BlobLocation) => void): void {
    this.requireMemory('forEach');
    for (let i = 0; i < this.capacity; i++) {
      const base = i * SLOT;
      if (this.words[i * WORDS + 8] === EMPTY) continue;
      fn(this.table.subarray(base, base + 32), this.read(base));
    }
  }
}

function wordsOf(table: Buffer): Uint32Array {
  return new Uint32Array(table.buffer, table.byteOffset, table.length >>> 2);
}

function toHexId(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, 32).toString('hex');
}
