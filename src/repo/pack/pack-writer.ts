/**
 * Collects sealed blobs into packs of about 16 MiB, uploads them with bounded
 * concurrency, and writes index files naming only packs whose upload finished:
 * packs → index → (caller) snapshot, the order that keeps every crash recoverable.
 *
 * Each pack is written to a file of its own in the caller's spill directory
 * (repo/pack/spill.ts: `withPackWriter`) as its blobs come, and stored from that file:
 * no pack is held in memory, open or waiting for its upload (held in memory, a stream
 * backup had up to four, ~64 MiB, and a file backup its tree pack twice over while
 * sealing it).
 *
 * Blobs are entered into the in-memory index as soon as they are accepted, under a
 * reserved pack handle, so concurrent producers deduplicate against blobs that are
 * still on their way to the store.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsc, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { seal, blobId, type MasterKey } from '../../codec/crypto.js';
import { fromSystemError, isLifeboatError, LifeboatError } from '../../errors.js';
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
  /** A directory of the caller's where packs are written as files (see above). */
  spillDir: string;
}

export interface PackWriterStats {
  packs: number;
  blobs: number;
  storedBytes: number;
  rawBytes: number;
}

/** A pack's file in the spill directory, and its writes not yet finished. */
interface PackFile {
  path: string;
  handle: Promise<FileHandle>;
  writes: Set<Promise<void>>;
}

interface OpenPack {
  handle: number;
  file: PackFile;
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
  /** Packs between their last blob and their upload's start (settle() waits for them). */
  private readonly finishing = new Set<Promise<void>>();
  /** Set by settle(): a blob added after it (a straggler of a failed backup) is refused, not left in an open file. */
  private settled = false;

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
    if (this.settled) throw new LifeboatError('FAILED', 'a blob was added after its writer was settled (its run ended)');
    if (this.deps.index.has(id)) return;
    let pack = this.open.get(type);
    if (!pack) {
      pack = { handle: this.deps.index.reservePack(), file: this.openFile(this.deps.spillDir), entries: [], size: 0, hash: createHash('sha256') };
      this.open.set(type, pack);
    }
    const entry: PackEntry = { type, id, offset: pack.size, length: sealed.length, rawLength };
    // Offsets and the hash are taken in the order blobs come; the file's writes are
    // positional, so concurrent adds may finish in any order.
    const written = this.write(pack.file, sealed, pack.size);
    pack.entries.push(entry);
    pack.hash.update(sealed);
    pack.size += sealed.length;
    this.deps.index.add(id, { packIndex: pack.handle, offset: entry.offset, length: sealed.length, rawLength, type });
    this.stats.blobs++;
    this.stats.rawBytes += rawLength;
    if (pack.size >= PACK_TARGET_SIZE) await this.finishPack(type);
    else await written;
  }

  /** A new pack file in `dir`, created exclusively (nothing, a symlink included, may be there). */
  private openFile(dir: string): PackFile {
    const file = path.join(dir, `${randomBytes(12).toString('hex')}.tmp`);
    const handle = fs.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    handle.catch(() => {}); // awaited by every write and by finishPack
    return { path: file, handle, writes: new Set() };
  }

  /** Writes `data` at `position` of the pack's file; a failure fails the writer (NO_SPACE and the like, with a hint). */
  private write(file: PackFile, data: Uint8Array, position: number): Promise<void> {
    const p = (async () => {
      try {
        const fh = await file.handle;
        for (let done = 0; done < data.length; ) {
          done += (await fh.write(data, done, data.length - done, position + done)).bytesWritten;
        }
      } catch (err) {
        this.failure ??= packWriteError(err, path.dirname(file.path));
        throw this.failure;
      }
    })();
    file.writes.add(p);
    void p.then(() => file.writes.delete(p), () => {});
    return p;
  }

  private finishPack(type: BlobType): Promise<void> {
    const done = this.sealPack(type);
    this.finishing.add(done);
    void done.then(() => this.finishing.delete(done), () => this.finishing.delete(done));
    return done;
  }

  private async sealPack(type: BlobType): Promise<void> {
    const pack = this.open.get(type);
    if (!pack) return;
    this.open.delete(type);
    const footer = packFooter(this.deps.key, pack.entries);
    pack.hash.update(footer);
    const packId = pack.hash.digest();
    this.deps.index.setPackId(pack.handle, packId);
    const { file } = pack;
    const size = pack.size + footer.length;
    try {
      await this.write(file, footer, pack.size);
      await Promise.all([...file.writes]);
      // A failed close can be the first report of a failed write (NFS, quotas): the
      // pack is not stored then. The workers' closeSync fails their job the same way.
      await (await file.handle).close();
    } catch (err) {
      this.failure ??= packWriteError(err, path.dirname(file.path));
      await discardFile(file);
      throw this.failure;
    }
    await this.storePack(packId, { path: file.path, size }, pack.entries);
  }

  /**
   * Uploads a finished pack (one built here, or by a worker) in the background and
   * indexes it once stored. Waits while too many uploads run. Blobs of packs built
   * elsewhere enter the in-memory index now, under the pack's final id.
   *
   * A worker's pack comes as a file (repo/pack/spill.ts): it is stored with
   * `putFile` (a local store links it into place; others read it when they upload) and
   * removed once the upload has settled, stored or not. Waiting packs are then files,
   * not memory: what this holds per pack is its blob list.
   */
  async storePack(packId: Buffer, file: LocalFile, entries: PackEntry[], external = false): Promise<void> {
    const removeFile = () => fs.rm(file.path, { force: true }).catch(() => {});
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
        await putFile(this.deps.store, key, file);
        this.stats.packs++;
        this.stats.storedBytes += file.size;
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

  /**
   * Waits until no upload runs, whatever their outcome (a failed backup's cleanup), and
   * closes and removes the files of packs left open. The caller then removes the spill
   * directory.
   */
  async settle(): Promise<void> {
    this.settled = true;
    while (this.finishing.size > 0) await Promise.allSettled([...this.finishing]);
    const open = [...this.open.values()];
    this.open.clear();
    for (const pack of open) await discardFile(pack.file);
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

/** Lets a pack file's writes end, closes it (one that never opened has nothing to close) and removes it; best effort. */
async function discardFile(file: PackFile): Promise<void> {
  await Promise.allSettled([...file.writes]);
  const fh = await file.handle.catch(() => undefined);
  await fh?.close().catch(() => {});
  await fs.rm(file.path, { force: true }).catch(() => {});
}

/**
 * A failed write of a pack file in the spill directory `dir` (here or in a chunk worker)
 * as a one-line error whose hint names that directory: for S3 or Azure it lies in the
 * cache directory, not on the destination's disk.
 */
export function packWriteError(err: unknown, dir: string): LifeboatError {
  const what = `writing a pack in ${dir}`;
  const mapped = fromSystemError(err, what);
  if (isLifeboatError(mapped, 'NO_SPACE')) {
    return new LifeboatError('NO_SPACE', mapped.message, {
      hint: `free space on the disk of ${path.dirname(dir)}, where packs are written before they are stored (a local repository's tmp/, else the cache directory: LIFEBOAT_CACHE_DIR moves it); data already stored is intact`,
      cause: err,
    });
  }
  if (isLifeboatError(mapped)) return mapped;
  return new LifeboatError('FAILED', `${what}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`, {
    hint: 'the directory for packs being written was removed or changed while they were written; run the command again',
    cause: err,
  });
}
