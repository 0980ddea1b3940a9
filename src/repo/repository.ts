/**
 * The Repository: encrypted, content-addressed blobs in packs, an index, snapshot
 * manifests and key slots, on top of one Store. Opening one authenticates the
 * password against the key slots and loads the index into a compact table.
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { blobId, newMasterKey, seal, sha256, unseal, type MasterKey } from '../codec/crypto.js';
import { DEFAULT_COMPRESSION, type Compression } from '../codec/compression.js';
import { listAll, type ByteRange, type Store } from '../storage/store.js';
import { AppendOnlyStore } from '../storage/wrappers/append-only.js';
import { mapLimit } from '../util/limit.js';
import { toHex } from '../util/bytes.js';
import { createKeySlot, openWithPassword } from './keys.js';
import { BLOB_TREE, keys, newConfig, packIdFromKey, parseConfig, type RepoConfig } from './format.js';
import { BlobIndex, type BlobLocation } from './index/blob-index.js';
import { decodeIndex, encodeIndex, type IndexedPack } from './index/index-file.js';
import { parsePackHeader } from './pack/pack.js';
import { PackWriter } from './pack/pack-writer.js';
import { decodeManifest, pickSnapshot, type Snapshot, type SnapshotManifest } from './snapshot/snapshot.js';
import { decodeTree, encodeTree, type Tree } from './snapshot/tree.js';
import { CONFIG_COPY, configNotFound, refuseInitOverRepository, sealConfigCopy, verifyConfig } from './config-copy.js';
import { isDamage, parseJson, type DamagedObject } from './damage.js';
import { MAX_INDEX_FILE, MAX_LOG_FILE, MAX_PACK_LIST, MAX_RECORD, MAX_TREE_BLOB, dataBlobLimit } from './limits.js';

export const PROGRAM_VERSION = '0.1.0';

/**
 * Log files are archived one by one while the database waits (archive_command runs
 * once per 16 MiB segment): zstd level 1 compresses WAL twice as fast as level 3 for
 * a few percent more space. An explicitly chosen codec is kept.
 */
function logCompression(c: Compression): Compression {
  return c.codec === 'zstd' && c === DEFAULT_COMPRESSION ? { codec: 'zstd', level: 1 } : c;
}

/** A small LRU of byte arrays by key, bounded by total size; concurrent loads share one fetch. */
class ByteCache {
  private readonly entries = new Map<string, Promise<Uint8Array>>();
  private readonly sizes = new Map<string, number>();
  private total = 0;

  constructor(private readonly limit: number) {}

  async get(key: string, load: () => Promise<Uint8Array>): Promise<Uint8Array> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const p = load();
    this.entries.set(key, p);
    try {
      const bytes = await p;
      this.sizes.set(key, bytes.length);
      this.total += bytes.length;
      for (const [k] of this.entries) {
        if (this.total <= this.limit || k === key) break;
        this.entries.delete(k);
        this.total -= this.sizes.get(k) ?? 0;
        this.sizes.delete(k);
      }
      return bytes;
    } catch (err) {
      this.entries.delete(key);
      throw err;
    }
  }
}

/** The exact bytes each config was parsed from, so opening can compare them with the sealed copy. */
const rawConfigs = new WeakMap<RepoConfig, Buffer>();

/** What a prune marked: packs no snapshot needed at `time` (the marking host's clock). */
export interface RetiringList {
  time: string;
  hostname: string;
  packs: string[];
}

export class Repository {
  index = new BlobIndex();
  /** Index files already merged into `index`. */
  private readonly loadedIndexes = new Set<string>();
  compression: Compression = DEFAULT_COMPRESSION;
  /**
   * Told about a damaged object that was skipped (a snapshot, a retiring list): one
   * line naming it. The CLI prints these as warnings; the core never prints.
   */
  onWarning: (message: string) => void = () => {};

  private constructor(
    readonly store: Store,
    readonly config: RepoConfig,
    readonly key: MasterKey,
    readonly slotId: string,
  ) {}

  /** Creates a repository in an empty location. */
  static async init(store: Store, password: string): Promise<Repository> {
    if (await store.stat(keys.config)) {
      throw new LifeboatError('REPO_EXISTS', `${store.location}: a repository already exists here`, {
        hint: 'use it as it is, or choose another location',
      });
    }
    await refuseInitOverRepository(store);
    const config = newConfig(toHex(randomBytes(32)));
    const raw = Buffer.from(JSON.stringify(config, null, 2));
    const master = newMasterKey();
    const slotId = await createKeySlot(store, password, master);
    await store.put(CONFIG_COPY, sealConfigCopy(master, raw), { ifAbsent: true });
    // The config is written last: a location with a config is a complete repository.
    await store.put(keys.config, raw, { ifAbsent: true });
    rawConfigs.set(config, raw);
    return new Repository(store, config, master, slotId);
  }
  /** Opened append-only (by flag, configuration or key slot): deletes and overwrites are refused. */
  get appendOnly(): boolean {
    return this.store instanceof AppendOnlyStore;
  }


  static async readConfig(store: Store): Promise<RepoConfig> {
    let raw: Uint8Array;
    try {
      raw = await store.get(keys.config);
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) throw await configNotFound(store);
      throw err;
    }
    let config: RepoConfig;
    try {
      config = parseConfig(raw, store.location);
    } catch (err) {
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
      throw new LifeboatError('CORRUPT', err.message, { hint: '`lifeboat repair config` restores it from its sealed copy', cause: err });
    }
    rawConfigs.set(config, Buffer.from(raw));
    return config;
  }

  /** Opens with a password; pass the config when the caller has already read it. */
  static async open(store: Store, password: string, config?: RepoConfig): Promise<Repository> {
    config ??= await Repository.readConfig(store);
    const { master, slotId, appendOnly } = await openWithPassword(store, password);
    // The plain config is authenticated by its sealed copy; a repository made before
    // copies existed has none (`check` says so, `lifeboat repair config` writes one).
    await verifyConfig(store, master, rawConfigs.get(config) ?? (await store.get(keys.config)));
    // An append-only slot binds this client to adding; see docs/storage.md for why
    // the server must enforce it too.
    return new Repository(appendOnly && !(store instanceof AppendOnlyStore) ? new AppendOnlyStore(store) : store, config, master, slotId);
  }

  // ---- index -------------------------------------------------------------

  /** Loads index files not loaded yet into the in-memory table. */
  async loadIndex(): Promise<void> {
    // Retiring packs are known before any entry is added, so that a blob also stored
    // in a live pack (a prune repacked it) is always found there, whatever order the
    // index files load in: the retiring pack may be deleted while this process runs.
    const retiring = new Set((await this.listRetiring()).flatMap((r) => r.packs));
    const files = (await listAll(this.store, 'index/')).filter((f) => !this.loadedIndexes.has(f.key));
    await mapLimit(files, 8, async (f) => {
      for (const pack of await this.readIndexFile(f.key)) this.addToIndex(pack, retiring);
      this.loadedIndexes.add(f.key);
    });
    for (const hex of retiring) this.index.retirePack(hex);
  }

  /** Lists of packs prunes have marked for deletion (docs/prune.md). */
  async listRetiring(): Promise<Array<RetiringList & { key: string }>> {
    const out: Array<RetiringList & { key: string }> = [];
    for (const o of await listAll(this.store, 'prune/')) {
      try {
        out.push({ ...(await this.readRetiring(o.key)), key: o.key });
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) continue; // swept by another prune meanwhile
        // Skipping keeps its packs: no prune can sweep a list it cannot read.
        if (isDamage(err)) this.onWarning(`${o.key} skipped: ${(err as Error).message}`);
        else throw err;
      }
    }
    return out;
  }

  /** One retiring list; CORRUPT when it does not authenticate or is not a list. */
  async readRetiring(key: string): Promise<RetiringList> {
    const list = parseJson<RetiringList>(await this.getUnsealed(key, key, undefined, MAX_PACK_LIST), key);
    if (typeof list.time !== 'string' || !Array.isArray(list.packs)) throw new LifeboatError('CORRUPT', `${key}: not a retiring list`, { hint: 'run `lifeboat check`' });
    return list;
  }

  async saveRetiring(list: RetiringList): Promise<string> {
    const sealed = seal(this.key, Buffer.from(JSON.stringify(list)), this.compression);
    const key = keys.retiring(toHex(sha256(sealed)));
    await this.store.put(key, sealed, { ifAbsent: true });
    return key;
  }

  /**
   * Forgets the in-memory index. After a failed write it may name blobs of packs that
   * never reached the store; the next operation reloads what is really there.
   */
  resetIndex(): void {
    this.index = new BlobIndex();
    this.loadedIndexes.clear();
  }

  async readIndexFile(key: string): Promise<IndexedPack[]> {
    return decodeIndex(await this.getUnsealed(key, key, undefined, MAX_INDEX_FILE), key);
  }

  /**
   * Reads and opens a sealed object. The store is given the check, so a retrying or
   * multi-destination store reads again, or from another copy, when the bytes fail
   * authentication; the plaintext of the check that passed is kept, not opened twice.
   */
  async getUnsealed(key: string, what: string, range: ByteRange | undefined, maxPlain: number): Promise<Buffer> {
    let plain: Buffer | undefined;
    const verify = (data: Uint8Array): boolean => {
      try {
        plain = unseal(this.key, data, what, maxPlain);
        return true;
      } catch {
        return false;
      }
    };
    const sealed = await this.store.get(key, range, { verify });
    // Backends ignore the check: open here, which raises CORRUPT when it fails.
    return plain ?? unseal(this.key, sealed, what, maxPlain);
  }

  /** The most a blob of this type and recorded length may expand to. */
  blobLimit(loc: Pick<BlobLocation, 'type' | 'rawLength'>): number {
    return Math.min(loc.rawLength, loc.type === BLOB_TREE ? MAX_TREE_BLOB : dataBlobLimit(this.config.chunker.max));
  }

  /** A whole object whose name is the SHA-256 of its bytes (packs, snapshots). */
  private getNamedByHash(key: string, id: string): Promise<Uint8Array> {
    return this.store.get(key, undefined, { verify: (data) => toHex(sha256(data)) === id });
  }

  addToIndex(pack: IndexedPack, retiring?: ReadonlySet<string>): void {
    const handle = this.index.addPack(pack.packId);
    const hex = pack.packId.toString('hex');
    if (retiring?.has(hex)) this.index.retirePack(hex);
    for (const e of pack.entries) {
      this.index.add(e.id, { packIndex: handle, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.type });
    }
  }

  async writeIndex(packs: readonly IndexedPack[]): Promise<void> {
    if (packs.length === 0) return;
    const sealed = seal(this.key, encodeIndex(packs), this.compression);
    const key = keys.index(toHex(sha256(sealed)));
    await this.store.put(key, sealed);
    this.loadedIndexes.add(key);
  }

  /**
   * Finds packs that are stored but named by no index (left by an interrupted backup)
   * and indexes them from their own headers, so the next backup reuses them instead
   * of uploading the same data again. Returns how many packs were recovered.
   */
  async indexOrphanPacks(): Promise<number> {
    const orphans: Array<{ key: string; size: number }> = [];
    for await (const o of this.store.list('data/')) {
      if (!this.index.hasPack(packIdFromKey(o.key))) orphans.push(o);
    }
    const recovered: IndexedPack[] = [];
    await mapLimit(orphans, 4, async (o) => {
      try {
        // Its blobs become dedup targets, so the whole pack must be what its name says.
        const data = await this.store.get(o.key);
        const packId = Buffer.from(packIdFromKey(o.key), 'hex');
        if (!sha256(data).equals(packId)) return;
        const entries = parsePackHeader(this.key, data, data.length, o.key);
        recovered.push({ packId, entries });
      } catch (err) {
        // A damaged orphan is not used; `check` reports it, prune will remove it.
        if (!isLifeboatError(err, 'CORRUPT')) throw err;
      }
    });
    for (const p of recovered) this.addToIndex(p);
    await this.writeIndex(recovered);
    return recovered.length;
  }

  // ---- blobs -------------------------------------------------------------

  lookup(id: Uint8Array): BlobLocation {
    const loc = this.index.get(id);
    if (!loc) {
      throw new LifeboatError('CORRUPT', `blob ${toHex(id).slice(0, 16)} is referenced but not in the index`, {
        hint: 'run `lifeboat check`; the data it belongs to cannot be restored from this repository',
      });
    }
    return loc;
  }

  packKey(loc: Pick<BlobLocation, 'packIndex'>): string {
    return keys.pack(this.index.packId(loc.packIndex).toString('hex'));
  }

  /** Loads, authenticates and checks one blob against its id. */
  async loadBlob(id: Uint8Array): Promise<Buffer> {
    const loc = this.lookup(id);
    const key = this.packKey(loc);
    if (loc.type === BLOB_TREE) {
      // Tree packs hold only trees, and walking a snapshot reads most of them: fetch
      // each whole once instead of one request per directory.
      const pack = await this.treePacks.get(key, () => this.getNamedByHash(key, packIdFromKey(key)));
      if (loc.offset + loc.length > pack.length) {
        throw new LifeboatError('CORRUPT', `${key} is shorter than its index says`, { hint: 'run `lifeboat check --read-data`' });
      }
      return this.openBlob(id, pack.subarray(loc.offset, loc.offset + loc.length), key, this.blobLimit(loc));
    }
    const plain = await this.getUnsealed(key, `blob ${toHex(id).slice(0, 16)} in ${key}`, { offset: loc.offset, length: loc.length }, this.blobLimit(loc));
    return this.checkBlobId(id, plain, key);
  }

  /** Whole tree packs recently read, up to 64 MiB. */
  private readonly treePacks = new ByteCache(64 * 1024 * 1024);

  openBlob(id: Uint8Array, sealed: Uint8Array, where: string, maxPlain: number): Buffer {
    return this.checkBlobId(id, unseal(this.key, sealed, `blob ${toHex(id).slice(0, 16)} in ${where}`, maxPlain), where);
  }

  private checkBlobId(id: Uint8Array, plain: Buffer, where: string): Buffer {
    if (!blobId(this.key, plain).equals(id)) {
      throw new LifeboatError('CORRUPT', `blob ${toHex(id).slice(0, 16)} in ${where} does not match its id`, {
        hint: 'run `lifeboat check --read-data`',
      });
    }
    return plain;
  }

  async loadTree(id: string): Promise<Tree> {
    return decodeTree(await this.loadBlob(Buffer.from(id, 'hex')), `tree ${id.slice(0, 16)}`);
  }

  newPackWriter(uploadConcurrency = 2): PackWriter {
    return new PackWriter(
      { store: this.store, key: this.key, index: this.index, writeIndex: (packs) => this.writeIndex(packs) },
      this.compression,
      uploadConcurrency,
    );
  }

  async saveTree(writer: PackWriter, tree: Tree): Promise<string> {
    return toHex(await writer.addPlain(BLOB_TREE, encodeTree(tree)));
  }

  // ---- log archive (WAL segments, SQLite frames) ----------------------------

  /**
   * Archives one log file, sealed. Idempotent: the same content again succeeds (the
   * caller may retry after a crash); different content under an existing name is
   * refused, because silently keeping either copy could lose history.
   * Returns 'stored' or 'exists'.
   */
  async putLog(source: string, timeline: string, file: string, data: Uint8Array, opts: { replace?: boolean } = {}): Promise<'stored' | 'exists'> {
    const key = keys.log(source, timeline, file);
    const sealed = seal(this.key, data, logCompression(this.compression));
    if (opts.replace) {
      // Growing files (a streamed segment's .partial) are replaced atomically.
      await this.store.put(key, sealed);
      return 'stored';
    }
    try {
      await this.store.put(key, sealed, { ifAbsent: true });
      return 'stored';
    } catch (err) {
      if (!isLifeboatError(err, 'ALREADY_EXISTS')) throw err;
    }
    const existing = await this.getUnsealed(key, key, undefined, MAX_LOG_FILE);
    if (existing.equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) return 'exists';
    throw new LifeboatError('ALREADY_EXISTS', `${file} is already archived for ${source} with different content`, {
      hint: 'two clusters may be archiving under one name, or the file is damaged; the archived copy was kept',
    });
  }

  /** The archived log file, or undefined when it is not in the archive. */
  async getLog(source: string, timeline: string, file: string): Promise<Buffer | undefined> {
    const key = keys.log(source, timeline, file);
    try {
      return await this.getUnsealed(key, key, undefined, MAX_LOG_FILE);
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  async listLogs(source: string): Promise<Array<{ timeline: string; file: string; size: number }>> {
    const out: Array<{ timeline: string; file: string; size: number }> = [];
    for await (const o of this.store.list(`logs/${source}/`)) {
      const [timeline, file] = o.key.slice(`logs/${source}/`.length).split('/');
      if (timeline && file) out.push({ timeline, file, size: o.size });
    }
    return out.sort((a, b) => a.file.localeCompare(b.file));
  }

  // ---- snapshots ---------------------------------------------------------

  async saveSnapshot(manifest: SnapshotManifest): Promise<string> {
    const sealed = seal(this.key, Buffer.from(JSON.stringify(manifest)), this.compression);
    const id = toHex(sha256(sealed));
    await this.store.put(keys.snapshot(id), sealed, { ifAbsent: true });
    return id;
  }

  async loadSnapshot(id: string): Promise<Snapshot> {
    const sealed = await this.getNamedByHash(keys.snapshot(id), id);
    if (toHex(sha256(sealed)) !== id) {
      throw new LifeboatError('CORRUPT', `snapshot ${id.slice(0, 8)} does not match its name`, {
        hint: 'the snapshot object was damaged; run `lifeboat check`',
      });
    }
    return decodeManifest(unseal(this.key, sealed, `snapshot ${id.slice(0, 8)}`, MAX_RECORD), id);
  }

  /**
   * Every snapshot, oldest first. A damaged, foreign or junk object in `snapshots/`
   * is left out with a warning naming it: one bad object must not hide the others.
   */
  async listSnapshots(): Promise<Snapshot[]> {
    const { snapshots, damaged } = await this.scanSnapshots();
    for (const d of damaged) this.onWarning(`${d.key} skipped: ${d.error}`);
    return snapshots;
  }

  /** Every snapshot that opens, and the objects of `snapshots/` that do not. */
  async scanSnapshots(): Promise<{ snapshots: Snapshot[]; damaged: DamagedObject[] }> {
    const infos = await listAll(this.store, 'snapshots/');
    const damaged: DamagedObject[] = [];
    const all = await mapLimit(infos, 8, async (i) => {
      try {
        return await this.loadSnapshot(i.key.slice('snapshots/'.length));
      } catch (err) {
        if (isLifeboatError(err, 'NOT_FOUND')) return undefined; // forgotten meanwhile
        if (!isDamage(err)) throw err;
        damaged.push({ key: i.key, error: (err as Error).message });
        return undefined;
      }
    });
    const snapshots = all.filter((s): s is Snapshot => s !== undefined);
    snapshots.sort((a, b) => Date.parse(a.time) - Date.parse(b.time) || a.id.localeCompare(b.id));
    return { snapshots, damaged: damaged.sort((a, b) => a.key.localeCompare(b.key)) };
  }

  async findSnapshot(ref: string): Promise<Snapshot> {
    return pickSnapshot(await this.listSnapshots(), ref);
  }
}
