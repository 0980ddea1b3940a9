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
 */
import { BLOB_TREE, type BlobType } from '../format.js';

const SLOT = 48;
const EMPTY = 0xffffffff;
const TREE_FLAG = 0x80000000;

export interface BlobLocation {
  packIndex: number;
  offset: number;
  length: number;
  rawLength: number;
  type: BlobType;
}

export class BlobIndex {
  private table: Buffer;
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

  constructor(initialCapacity = 1 << 12) {
    this.capacity = initialCapacity;
    this.table = BlobIndex.emptyTable(initialCapacity);
  }

  private static emptyTable(capacity: number): Buffer {
    const t = Buffer.allocUnsafeSlow(capacity * SLOT);
    for (let i = 0; i < capacity; i++) t.writeUInt32LE(EMPTY, i * SLOT + 32);
    return t;
  }

  get size(): number {
    return this.count;
  }

  get packCount(): number {
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
    }
    return i;
  }

  /** Reserves a handle for a pack whose id is not known yet (a pack being written). */
  reservePack(): number {
    this.packIds.push(Buffer.alloc(32));
    return this.packIds.length - 1;
  }

  /** Names a reserved pack once its bytes (and so its id) are final. */
  setPackId(handle: number, packId: Buffer): void {
    const old = this.packIds[handle];
    if (!old) throw new Error(`no pack handle ${handle}`);
    packId.copy(old);
    this.packByHex.set(packId.toString('hex'), handle);
  }

  packId(handle: number): Buffer {
    const id = this.packIds[handle];
    if (!id) throw new Error(`no pack handle ${handle}`);
    return id;
  }

  hasPack(hex: string): boolean {
    return this.packByHex.has(hex);
  }

  private find(id: Uint8Array): number {
    const mask = this.capacity - 1;
    let i = (id[0]! | (id[1]! << 8) | (id[2]! << 16) | (id[3]! << 24)) & mask;
    for (;;) {
      const base = i * SLOT;
      if (this.table.readUInt32LE(base + 32) === EMPTY) return -1 - i;
      if (this.table.compare(id, 0, 32, base, base + 32) === 0) return i;
      i = (i + 1) & mask;
    }
  }

  /** Whether a new backup may reuse the blob: it is indexed in a pack that is not retiring. */
  has(id: Uint8Array): boolean {
    const i = this.find(id);
    return i >= 0 && !this.retiring.has(this.read(i * SLOT).packIndex);
  }

  /** Marks a pack as retiring (see `retiring`). */
  retirePack(hex: string): void {
    const handle = this.packByHex.get(hex);
    if (handle !== undefined) this.retiring.add(handle);
  }

  get(id: Uint8Array): BlobLocation | undefined {
    const i = this.find(id);
    return i < 0 ? undefined : this.read(i * SLOT);
  }

  private read(base: number): BlobLocation {
    const p = this.table.readUInt32LE(base + 32);
    return {
      packIndex: p & ~TREE_FLAG,
      offset: this.table.readUInt32LE(base + 36),
      length: this.table.readUInt32LE(base + 40),
      rawLength: this.table.readUInt32LE(base + 44),
      type: (p & TREE_FLAG) !== 0 ? BLOB_TREE : 0,
    };
  }

  /** Adds an entry; an id already present keeps its first location. Returns true if added. */
  add(id: Uint8Array, loc: BlobLocation): boolean {
    if ((this.count + 1) * 4 > this.capacity * 3) this.grow();
    const i = this.find(id);
    // A copy in a retiring pack gives way to the new one.
    if (i >= 0 && !this.retiring.has(this.read(i * SLOT).packIndex)) return false;
    const base = i >= 0 ? i * SLOT : (-1 - i) * SLOT;
    if (i >= 0) this.count--;
    this.table.set(id.subarray(0, 32), base);
    this.table.writeUInt32LE((loc.packIndex | (loc.type === BLOB_TREE ? TREE_FLAG : 0)) >>> 0, base + 32);
    this.table.writeUInt32LE(loc.offset, base + 36);
    this.table.writeUInt32LE(loc.length, base + 40);
    this.table.writeUInt32LE(loc.rawLength, base + 44);
    this.count++;
    return true;
  }

  private grow(): void {
    this.marks = undefined;
    const old = this.table;
    const oldCap = this.capacity;
    this.capacity *= 2;
    this.table = BlobIndex.emptyTable(this.capacity);
    this.count = 0;
    for (let i = 0; i < oldCap; i++) {
      const base = i * SLOT;
      if (old.readUInt32LE(base + 32) === EMPTY) continue;
      const id = old.subarray(base, base + 32);
      const j = -1 - this.find(id);
      old.copy(this.table, j * SLOT, base, base + SLOT);
      this.count++;
    }
  }

  // ---- marks (prune) ----------------------------------------------------------

  /** One bit per slot; dropped when the table grows (slots move). */
  private marks: Uint8Array | undefined;

  clearMarks(): void {
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

  isMarked(slot: number): boolean {
    return ((this.requireMarks()[slot >>> 3] as number) & (1 << (slot & 7))) !== 0;
  }

  private requireMarks(): Uint8Array {
    if (!this.marks) throw new Error('blob index: marks were cleared by a resize; mark again');
    return this.marks;
  }

  packHandle(hex: string): number | undefined {
    return this.packByHex.get(hex);
  }

  /** Visits every entry with its slot number; the id buffer is only valid during the callback. */
  forEachSlot(fn: (slot: number, loc: BlobLocation, id: Buffer) => void): void {
    for (let i = 0; i < this.capacity; i++) {
      const base = i * SLOT;
      if (this.table.readUInt32LE(base + 32) === EMPTY) continue;
      fn(i, this.read(base), this.table.subarray(base, base + 32));
    }
  }

  /** Visits every entry; the id buffer is only valid during the callback. */
  forEach(fn: (id: Buffer, loc: BlobLocation) => void): void {
    for (let i = 0; i < this.capacity; i++) {
      const base = i * SLOT;
      if (this.table.readUInt32LE(base + 32) === EMPTY) continue;
      fn(this.table.subarray(base, base + 32), this.read(base));
    }
  }
}
