/**
 * Collects sealed blobs into packs of about 16 MiB, uploads them with bounded
 * concurrency, and writes index files naming only packs whose upload finished:
 * packs → index → (caller) snapshot, the order that keeps every crash recoverable.
 *
 * Blobs are entered into the in-memory index as soon as they are accepted, under a
 * reserved pack handle, so concurrent producers deduplicate against blobs that are
 * still on their way to the store.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { seal, blobId, type MasterKey } from '../../codec/crypto.js';
import type { Compression } from '../../codec/compression.js';
import { putFile, type LocalFile, type Store } from '../../storage/store.js';
import { Semaphore } from '../../util/limit.js';
import { blobContext, keys, PACK_TARGET_SIZE, type BlobType } from '../format.js';
import type { BlobIndex } from '../index/blob-index.js';
import type { IndexedPack } from '../index/index-file.js';
import { packFooter, type PackEntry } from './pack.js';

export interface PackWriterDeps {
  store: Pick<Store, 'put' | 'putFile'>;
  key: MasterKey;
  index: BlobIndex;
  /** Stores an index file naming these (already stored) packs. */
  writeIndex(packs: readonly IndexedPack[]): Promise<void>;
}

export interface PackWriterStats {
  packs: number;
  blobs: number;
  storedBytes: number;
  rawBytes: number;
}

interface OpenPack {
  handle: number;
  parts: Buffer[];
  entries: PackEntry[];
  size: number;
  hash: ReturnType<typeof createHash>;
}

/** Write an index file at least after this many packs, so a crash loses little. */
const INDEX_EVERY_PACKS = 8;

export class PackWriter {
  readonly stats: PackWriterStats = { packs: 0, blobs: 0, storedBytes: 0, rawBytes: 0 };
  private readonly open = new Map<BlobType, OpenPack>();
  private readonly uploads = new Set<Promise<void>>();
  private readonly slots: Semaphore;
  private finished: IndexedPack[] = [];
  private failure: unknown;

  constructor(
    private readonly deps: PackWriterDeps,
    private readonly compression: Compression,
    uploadConcurrency = 2,
  ) {
    this.slots = new Semaphore(uploadConcurrency);
  }

  /** Seals a plaintext blob here (trees, small metadata) and adds it; returns its id. */
  async addPlain(type: BlobType, plaintext: Uint8Array): Promise<Buffer> {
    const id = blobId(this.deps.key, plaintext);
    if (!this.deps.index.has(id)) {
      await this.addSealed(type, id, seal(this.deps.key, plaintext, this.compression, blobContext(type)), plaintext.length);
    }
    return id;
  }

  /**
   * Adds an already sealed blob. Resolves once the blob is in an open pack; waits
   * when too many packs are uploading (back-pressure). A blob already in the index is
   * ignored.
   */
  async addSealed(type: BlobType, id: Buffer, sealed: Buffer, rawLength: number): Promise<void> {
    this.throwIfFailed();
    if (this.deps.index.has(id)) return;
    let pack = this.open.get(type);
    if (!pack) {
      pack = { handle: this.deps.index.reservePack(), parts: [], entries: [], size: 0, hash: createHash('sha256') };
      this.open.set(type, pack);
    }
    const entry: PackEntry = { type, id, offset: pack.size, length: sealed.length, rawLength };
    pack.parts.push(sealed);
    pack.entries.push(entry);
    pack.hash.update(sealed);
    pack.size += sealed.length;
    this.deps.index.add(id, { packIndex: pack.handle, offset: entry.offset, length: sealed.length, rawLength, type });
    this.stats.blobs++;
    this.stats.rawBytes += rawLength;
    if (pack.size >= PACK_TARGET_SIZE) await this.finishPack(type);
  }

  private async finishPack(type: BlobType): Promise<void> {
    const pack = this.open.get(type);
    if (!pack) return;
    this.open.delete(type);
    const footer = packFooter(this.deps.key, pack.entries);
    pack.hash.update(footer);
    const packId = pack.hash.digest();
    this.deps.index.setPackId(pack.handle, packId);
    const bytes = Buffer.concat([...pack.parts, footer]);
    pack.parts.length = 0;
    await this.storePack(packId, bytes, pack.entries);
  }

  /**
   * Uploads a finished pack (one built here, or by a worker) in the background and
   * indexes it once stored. Waits while too many uploads run. Blobs of packs built
   * elsewhere enter the in-memory index now, under the pack's final id.
   *
   * A worker's pack comes as a file (engine/backup/spill.ts): it is stored with
   * `putFile` (a local store links it into place; others read it when they upload) and
   * removed once the upload has settled, stored or not. Waiting packs are then files,
   * not memory: what this holds per pack is its blob list.
   */
  async storePack(packId: Buffer, body: Buffer | LocalFile, entries: PackEntry[], external = false): Promise<void> {
    const file = Buffer.isBuffer(body) ? undefined : body;
    const size = Buffer.isBuffer(body) ? body.length : body.size;
    const removeFile = async () => {
      if (file) await fs.rm(file.path, { force: true }).catch(() => {});
    };
    if (external) {
      const handle = this.deps.index.addPack(packId);
      for (const e of entries) {
        if (this.deps.index.add(e.id, { packIndex: handle, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.type })) {
          this.stats.blobs++;
          this.stats.rawBytes += e.rawLength;
        }
      }
    }
    await this.slots.acquire();
    if (this.failure !== undefined) {
      this.slots.release();
      await removeFile();
      throw this.failure;
    }
    const upload = (async () => {
      try {
        const key = keys.pack(packId.toString('hex'));
        if (file) await putFile(this.deps.store, key, file);
        else await this.deps.store.put(key, body as Buffer);
        this.stats.packs++;
        this.stats.storedBytes += size;
        this.finished.push({ packId, entries });
        if (this.finished.length >= INDEX_EVERY_PACKS) await this.writeIndex();
      } catch (err) {
        this.failure ??= err;
      } finally {
        await removeFile();
        this.slots.release();
      }
    })();
    this.uploads.add(upload);
    void upload.finally(() => this.uploads.delete(upload));
  }

  /** Waits until no upload runs, whatever their outcome (a failed backup's cleanup). */
  async settle(): Promise<void> {
    while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
  }

  private async writeIndex(): Promise<void> {
    if (this.finished.length === 0) return;
    const packs = this.finished;
    this.finished = [];
    await this.deps.writeIndex(packs);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  /**
   * Closes open packs, waits for every upload and writes the final index. When this
   * resolves, everything added is durable and indexed.
   */
  async flush(): Promise<void> {
    for (const type of [...this.open.keys()]) await this.finishPack(type);
    while (this.uploads.size > 0) await Promise.all([...this.uploads]);
    this.throwIfFailed();
    await this.writeIndex();
  }

}
