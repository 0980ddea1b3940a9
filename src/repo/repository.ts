/**
 * The Repository: encrypted, content-addressed blobs in packs, an index, snapshot
 * manifests and key slots, on top of one Store. Opening one authenticates the
 * password against the key slots and loads the index into a compact table.
 */
import { randomBytes } from 'node:crypto';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { blobId, newMasterKey, sealedKeyId, type EpochKey, seal, sealMeta, sha256, unseal, unsealMeta, type MasterKey, type OpenedMeta, type SealContext } from '../codec/crypto.js';
import { DEFAULT_COMPRESSION, type Compression } from '../codec/compression.js';
import { listAll, type ByteRange, type ObjectInfo, type Store } from '../storage/store.js';
import { AppendOnlyStore } from '../storage/wrappers/append-only.js';
import { mapLimit } from '../util/limit.js';
import { toHex } from '../util/bytes.js';
import { createKeySlot, openWithPassword } from './keys.js';
import { loadSessions, sessionObject } from './sessions.js';
import { initKeyring, openKeyring, type OpenedKeyring, type SlotOpener, type SlotRole, type Warn } from './keyring.js';
import { blobContext, BLOB_TREE, keys, type BlobType, newConfig, packIdFromKey, parseConfig, type RepoConfig } from './format.js';
import { BlobIndex, type BlobLocation } from './index/blob-index.js';
import { openIndexCache } from './index/index-cache.js';
import { decodeIndex, encodeIndex, forEachIndexedPackRaw, type IndexedPack } from './index/index-file.js';
import { parsePackHeader } from './pack/pack.js';
import { PackWriter } from './pack/pack-writer.js';
import { decodeManifest, pickSnapshot, type Snapshot, type SnapshotManifest } from './snapshot/snapshot.js';
import { decodeTree, encodeTree, type Tree } from './snapshot/tree.js';
import { readTombstones } from './tombstones.js';
import { CONFIG_COPY, configNotFound, refuseInitOverRepository, sealConfigCopy, verifyConfig } from './config-copy.js';
import { isDamage, parseJson, type DamagedObject } from './damage.js';
import { MAX_INDEX_FILE, MAX_LOG_FILE, MAX_PACK_LIST, MAX_RECORD, MAX_TREE_BLOB, dataBlobLimit } from './limits.js';

// Re-exported: much of the code imports it from here.
export { PROGRAM_VERSION } from '../version.js';

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


function notInIndex(id: Uint8Array): LifeboatError {
  return new LifeboatError('CORRUPT', `blob ${toHex(id).slice(0, 16)} is referenced but not in the index`, {
    hint: 'run `lifeboat check`; the data it belongs to cannot be restored from this repository',
  });
}

export class Repository {
  index = new BlobIndex();
  /** Index files already merged into `index`. */
  private readonly loadedIndexes = new Set<string>();
  /**
   * Where a large repository's index may be kept on disk (set by backups; see
   * index/index-cache.ts). Unset: the whole index is loaded into memory.
   */
  indexCacheDir: string | undefined;
  compression: Compression = DEFAULT_COMPRESSION;
  /**
   * Told about a damaged object that was skipped (a snapshot, a retiring list): one
   * line naming it. The CLI prints these as warnings; the core never prints.
   */
  onWarning: (message: string) => void = () => {};

  private constructor(
    readonly store: Store,
    readonly config: RepoConfig,
    public key: MasterKey,
    readonly slotId: string,
    /** Version 2: the opened keyring (its role, generation and what it was granted). */
    public keyring?: OpenedKeyring,
  ) {}

  /** What the key slot in use may do (not what this run was limited to with --append-only). */
  get role(): SlotRole {
    return this.keyring?.role ?? (this.v1AppendOnlySlot ? 'append' : 'full');
  }

  /** Version 1: the slot that opened is an append-only one. */
  private v1AppendOnlySlot = false;

  /** Creates a repository in an empty location (format version 2 unless `version` says 1). */
  static async init(store: Store, password: string, opts: { version?: 1 | 2 } = {}): Promise<Repository> {
    if (await store.stat(keys.config, { sure: true })) {
      throw new LifeboatError('REPO_EXISTS', `${store.location}: a repository already exists here`, {
        hint: 'use it as it is, or choose another location',
      });
    }
    await refuseInitOverRepository(store);
    const version = opts.version ?? 2;
    const config = newConfig(toHex(randomBytes(32)), version);
    const raw = Buffer.from(JSON.stringify(config, null, 2));
    let repo: Repository;
    if (version === 1) {
      const master = newMasterKey(1);
      repo = new Repository(store, config, master, await createKeySlot(store, password, master));
    } else {
      const keyring = await initKeyring(store, password);
      repo = new Repository(store, config, keyring.master, keyring.slotId, keyring);
    }
    await store.put(CONFIG_COPY, sealConfigCopy(repo.key, raw), { ifAbsent: true });
    // The config is written last: a location with a config is a complete repository.
    await store.put(keys.config, raw, { ifAbsent: true });
    rawConfigs.set(config, raw);
    return repo;
  }

  /** Takes a changed keyring (key add, remove, rotate): new objects are sealed under its current epoch. */
  useKeyring(k: OpenedKeyring): void {
    this.keyring = k;
    // A migrated repository still holds format 1 objects (docs/format.md, "Migration").
    const readsV1 = this.config.migrating ? 'all' : this.config.v1Blobs ? 'blobs' : undefined;
    const master = this.sessions.size === 0 ? k.master : { ...k.master, epochs: new Map([...this.sessions, ...k.master.epochs]) };
    this.key = readsV1 ? { ...master, readsV1 } : master;
    this.keyringCheckedAt = Date.now();
  }

  /**
   * Full keys: the session keys of write-only clients (repo/sessions.ts), read as older
   * epochs by every read path. Each with the time its session object says it was made.
   */
  readonly sessions = new Map<number, EpochKey & { created?: string }>();

  /** Full keys: unwraps every `sessions/` object, so what write-only clients sealed can be read. */
  async loadSessionKeys(warn: Warn = this.onWarning): Promise<void> {
    const recipient = this.keyring?.role === 'full' ? this.keyring.payload.writeRecipient?.privateKey : undefined;
    if (!recipient || !this.keyring) return;
    this.sessions.clear();
    for (const [id, e] of await loadSessions(this.store, recipient, warn)) this.sessions.set(id, e);
    this.useKeyring(this.keyring);
  }

  private sessionStored = false;

  /**
   * Write-only keys: stores this run's session object (its key wrapped to the write
   * recipient) once, before anything is sealed with the key. Idempotent.
   */
  async startSession(): Promise<void> {
    if (this.role !== 'write' || this.sessionStored || !this.keyring) return;
    const pub = this.keyring.payload.writeRecipient?.publicKey;
    if (!pub) throw new LifeboatError('CORRUPT', 'keyring: a write-only grant without a write recipient');
    const { name, bytes } = sessionObject(this.key, pub, this.slotId);
    await this.store.put(name, bytes, { ifAbsent: true });
    this.sessionStored = true;
  }

  private keyringCheckedAt = Date.now();

  /**
   * Long-running writers (replicators, streamers) call this before sealing: once a
   * minute it reads the newest keyring generation, so a rotation reaches them and
   * nothing new is sealed under an epoch that `prune --reseal` is about to destroy.
   */
  async followKeyring(intervalMs = 60_000): Promise<void> {
    // A write-only client's key is its session key, whatever the epoch.
    if (!this.keyring?.reopen || this.keyring.role === 'write' || Date.now() - this.keyringCheckedAt < intervalMs) return;
    this.keyringCheckedAt = Date.now();
    const next = await this.keyring.reopen();
    if (next.generation !== this.keyring.generation) this.useKeyring(next);
  }
  /** Opened append-only (by flag, configuration or key slot): deletes and overwrites are refused. */
  get appendOnly(): boolean {
    return this.store instanceof AppendOnlyStore;
  }


  static async readConfig(store: Store): Promise<RepoConfig> {
    let raw: Uint8Array;
    try {
      // Parsing is the check: a retrying or multi-destination store reads a garbled copy again.
      raw = await store.get(keys.config, undefined, { verify: isJson });
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

  /**
   * Opens with a password (or, format 2, a key command or PKCS#11 opener); pass the
   * config when the caller has already read it. The plain config is authenticated by
   * its sealed copy, except for `migrate`, which rewrites both (`trustConfig`).
   */
  static async open(store: Store, password: string | SlotOpener, config?: RepoConfig, warn?: Warn, opts: { trustConfig?: boolean } = {}): Promise<Repository> {
    config ??= await Repository.readConfig(store);
    if (config.version === 2) {
      const k = await openKeyring(store, password, warn);
      const s = k.role !== 'full' && !(store instanceof AppendOnlyStore) ? new AppendOnlyStore(store) : store;
      const repo = new Repository(s, config, k.master, k.slotId, k);
      repo.useKeyring(k);
      // A write-only key cannot open the sealed copy of the config (it holds no epoch
      // key): it trusts the plain config (docs/security.md says what that allows).
      if (!opts.trustConfig && k.role !== 'write') await verifyConfig(store, repo.key, rawConfigs.get(config) ?? (await store.get(keys.config)));
      await repo.loadSessionKeys(warn ?? (() => {}));
      return repo;
    }
    if (typeof password !== 'string') {
      throw new LifeboatError('UNSUPPORTED_FORMAT', `key commands and PKCS#11 keys open repositories of format version 2 only; this one is version ${config.version}`, {
        hint: 'open it with its password, or upgrade it with `lifeboat migrate`',
      });
    }
    const { master, slotId, appendOnly } = await openWithPassword(store, password);
    // The plain config is authenticated by its sealed copy; a repository made before
    // copies existed has none (`check` says so, `lifeboat repair config` writes one).
    if (!opts.trustConfig) await verifyConfig(store, master, rawConfigs.get(config) ?? (await store.get(keys.config)));
    // An append-only slot binds this client to adding; see docs/storage.md for why
    // the server must enforce it too.
    const repo = new Repository(appendOnly && !(store instanceof AppendOnlyStore) ? new AppendOnlyStore(store) : store, config, master, slotId);
    repo.v1AppendOnlySlot = appendOnly;
    return repo;
  }

  // ---- index -------------------------------------------------------------

  /**
   * Loads index files not loaded yet into the in-memory table.
   *
   * Index entries are claims by whoever wrote them, so they are checked against the
   * packs: an entry naming a pack missing from data/ is dropped (a pack pruned since,
   * or one that never existed). index/ is listed before data/, so an index file
   * written meanwhile still finds its packs (they were stored before it). An index
   * file that vanishes between listing and reading was rewritten by a prune, which
   * stores the replacement first: the listing is taken again to find it.
   *
   * `lists`: the retiring lists to honour, when the caller has just listed them.
   */
  async loadIndex(lists?: ReadonlyArray<RetiringList & { trusted?: boolean }>): Promise<void> {
    // Retiring packs are known before any entry is added, so that a blob also stored
    // in a live pack (a prune repacked it) is always found there, whatever order the
    // index files load in: the retiring pack may be deleted while this process runs.
    for (const l of lists ?? (await this.listRetiring())) {
      if (l.trusted === false) continue;
      for (const hex of l.packs) this.index.retirePack(hex);
    }
    for (let round = 0; round < 4; round++) {
      let files = (await listAll(this.store, 'index/')).filter((f) => !this.loadedIndexes.has(f.key));
      if (files.length === 0) return;
      // A large repository: the entries of most index files come from the cache file.
      const cache = this.indexCacheDir && !this.index.disk && this.loadedIndexes.size === 0 ? await this.openIndexCache(files) : undefined;
      if (cache) files = files.filter((f) => !cache.covered.has(f.key));
      const disk = cache?.base ?? this.index.disk;
      const present = new Set<string>();
      const basePresent = cache ? new Uint8Array((cache.base.packCount >>> 3) + 1) : undefined;
      for await (const o of this.store.list('data/')) {
        const hex = packIdFromKey(o.key);
        let inBase = false;
        if (disk) {
          disk.findPack(Buffer.from(hex, 'hex'), (h) => {
            inBase = true;
            if (basePresent) basePresent[h >>> 3]! |= 1 << (h & 7);
          });
        }
        if (!inBase) present.add(hex);
      }
      if (cache) {
        this.index.attachBase(cache.base, (h) => (basePresent![h >>> 3]! & (1 << (h & 7))) !== 0);
        for (const k of cache.covered) this.loadedIndexes.add(k);
      }
      // A pack the cache file names is present when the listing found it (the table knows).
      const isPresent = (hex: string) => present.has(hex) || this.index.basePackPresent(hex);
      let vanished = false;
      await mapLimit(files, 8, async (f) => {
        try {
          // Checked whole before any entry is added: a damaged file adds nothing.
          forEachIndexedPackRaw((await this.getMeta(f.key, f.key, { kind: 'index' }, MAX_INDEX_FILE)).payload, f.key, (packId, entries) => {
            if (isPresent(packId.toString('hex'))) this.index.addEntries(this.index.addPack(packId), entries);
          });
        } catch (err) {
          if (isDamage(err)) {
            // Skipped, named once, and not read again by this process (every missing
            // blob would otherwise re-read it). Its packs are still stored: a backup
            // indexes them again from their own headers; `check` names the file.
            this.onWarning(`${f.key} skipped: ${(err as Error).message}`);
            this.loadedIndexes.add(f.key);
            return;
          }
          if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
          vanished = true;
          return;
        }
        this.loadedIndexes.add(f.key);
      });
      if (!vanished) return;
    }
  }

  /**
   * Loads index files written since the last load, once for all concurrent callers
   * (a restore whose packs were pruned under it asks from many tasks at once).
   */
  refreshIndex(): Promise<void> {
    this.refreshing ??= this.loadIndex().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private refreshing: Promise<void> | undefined;

  /**
   * Lists of packs prunes have marked for deletion (docs/prune.md). `trusted: false`
   * marks a list not written by a key allowed to delete: loadIndex ignores it and prune
   * never sweeps it.
   */
  async listRetiring(): Promise<Array<RetiringList & { key: string; trusted?: boolean }>> {
    const out: Array<RetiringList & { key: string; trusted?: boolean }> = [];
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
  async readRetiring(key: string): Promise<RetiringList & { trusted?: boolean }> {
    const m = await this.getMeta(key, key, { kind: 'prune' }, MAX_PACK_LIST);
    const list = parseJson<RetiringList>(m.payload, key);
    if (typeof list.time !== 'string' || !Array.isArray(list.packs)) throw new LifeboatError('CORRUPT', `${key}: not a retiring list`, { hint: 'run `lifeboat check`' });
    return m.trusted === undefined ? list : { ...list, trusted: m.trusted };
  }

  async saveRetiring(list: RetiringList): Promise<string> {
    const sealed = sealMeta(this.key, Buffer.from(JSON.stringify(list)), this.compression, { kind: 'prune' });
    const key = keys.retiring(toHex(sha256(sealed)));
    await this.store.put(key, sealed, { ifAbsent: true });
    return key;
  }

  /**
   * Forgets the in-memory index. After a failed write it may name blobs of packs that
   * never reached the store; the next operation reloads what is really there.
   */
  resetIndex(): void {
    this.index.disk?.close();
    this.index = new BlobIndex();
    this.loadedIndexes.clear();
  }

  private openIndexCache(files: ObjectInfo[]) {
    return openIndexCache(
      {
        repoId: this.config.id,
        idKey: this.key.idKey,
        readIndexRaw: async (key) => (await this.getMeta(key, key, { kind: 'index' }, MAX_INDEX_FILE)).payload,
        onWarning: (m) => this.onWarning(m),
      },
      files,
      this.indexCacheDir as string,
    );
  }

  /**
   * After a backup: an index kept on disk is dropped (the next operation, a prune or
   * check, needs the whole index in memory and loads it), and the next load is in
   * memory unless asked again.
   */
  releaseDiskIndex(): void {
    this.indexCacheDir = undefined;
    if (this.index.disk) this.resetIndex();
  }

  async readIndexFile(key: string): Promise<IndexedPack[]> {
    return decodeIndex((await this.getMeta(key, key, { kind: 'index' }, MAX_INDEX_FILE)).payload, key);
  }

  /**
   * Reads and opens a sealed object. The store is given the check, so a retrying or
   * multi-destination store reads again, or from another copy, when the bytes fail
   * authentication; the plaintext of the check that passed is kept, not opened twice.
   */
  async getUnsealed(key: string, what: string, ctx: SealContext, range: ByteRange | undefined, maxPlain: number): Promise<Buffer> {
    return this.getChecked(key, range, (data) => unseal(this.key, data, what, ctx, maxPlain));
  }

  /** A sealed metadata object, with whether a full key slot wrote it (see `sealMeta`). */
  getMeta(key: string, what: string, ctx: SealContext, maxPlain: number): Promise<OpenedMeta> {
    return this.getChecked(key, undefined, (data) => unsealMeta(this.key, data, what, ctx, maxPlain));
  }

  private async getChecked<T>(key: string, range: ByteRange | undefined, open: (data: Uint8Array) => T): Promise<T> {
    let opened: { value: T } | undefined;
    const verify = (data: Uint8Array): boolean => {
      try {
        opened = { value: open(data) };
        return true;
      } catch {
        return false;
      }
    };
    const sealed = await this.store.get(key, range, { verify });
    if (opened) return opened.value;
    // Backends ignore the check: open here, which raises CORRUPT when it fails.
    try {
      return open(sealed);
    } catch (err) {
      if (isLifeboatError(err, 'CORRUPT') && (await this.learnSessionOf(sealed))) return open(sealed);
      throw err;
    }
  }

  /**
   * Full keys: an object sealed under a key id this key lacks may be a write-only
   * client's whose session began after this repository was opened (a backup that ran
   * while a prune or restore did): the session objects are read again, once for all
   * concurrent callers. True when the key id is now held.
   */
  private async learnSessionOf(sealed: Uint8Array): Promise<boolean> {
    const keyId = sealedKeyId(sealed);
    if (keyId === undefined || this.key.epochs.has(keyId) || !this.keyring?.payload.writeRecipient?.privateKey) return false;
    this.learning ??= this.loadSessionKeys().finally(() => (this.learning = undefined));
    await this.learning;
    return this.key.epochs.has(keyId);
  }

  private learning: Promise<void> | undefined;

  /** The most a blob of this type and recorded length may expand to. */
  blobLimit(loc: Pick<BlobLocation, 'type' | 'rawLength'>): number {
    return Math.min(loc.rawLength, loc.type === BLOB_TREE ? MAX_TREE_BLOB : dataBlobLimit(this.config.chunker.max));
  }

  /** A whole object whose name is the SHA-256 of its bytes (packs, snapshots). */
  private getNamedByHash(key: string, id: string): Promise<Uint8Array> {
    return this.store.get(key, undefined, { verify: (data) => toHex(sha256(data)) === id });
  }

  /** Adds a pack's entries (a pack on a retiring list loaded earlier stays retiring). */
  addToIndex(pack: IndexedPack): void {
    const handle = this.index.addPack(pack.packId);
    for (const e of pack.entries) {
      this.index.add(e.id, { packIndex: handle, offset: e.offset, length: e.length, rawLength: e.rawLength, type: e.type });
    }
  }

  async writeIndex(packs: readonly IndexedPack[]): Promise<void> {
    if (packs.length === 0) return;
    const sealed = sealMeta(this.key, encodeIndex(packs), this.compression, { kind: 'index' });
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
      // A pack a sweeping prune has just dropped from the index files is on a retiring
      // list until it is deleted: indexing it again would leave an index file naming a
      // pack that is gone a moment later.
      const hex = packIdFromKey(o.key);
      if (!this.index.hasPack(hex) && !this.index.isRetiringPack(hex)) orphans.push(o);
    }
    const recovered: IndexedPack[] = [];
    await mapLimit(orphans, 4, async (o) => {
      try {
        // Its blobs become dedup targets, so the whole pack must be what its name says.
        // (A pack on a retiring list stays retiring: the index knows the lists.)
        const data = await this.store.get(o.key);
        const packId = Buffer.from(packIdFromKey(o.key), 'hex');
        if (!sha256(data).equals(packId)) return;
        const entries = parsePackHeader(this.key, data, data.length, o.key);
        recovered.push({ packId, entries });
      } catch (err) {
        // A damaged orphan is not used; `check` reports it, prune will remove it. One
        // deleted since the listing (a prune swept it) is simply gone.
        if (!isLifeboatError(err, 'CORRUPT') && !isLifeboatError(err, 'NOT_FOUND')) throw err;
      }
    });
    for (const p of recovered) this.addToIndex(p);
    await this.writeIndex(recovered);
    return recovered.length;
  }

  // ---- blobs -------------------------------------------------------------

  lookup(id: Uint8Array): BlobLocation {
    const loc = this.index.get(id);
    if (!loc) throw notInIndex(id);
    return loc;
  }

  /**
   * Like lookup, but a blob missing from the index is looked for again in index files
   * written since it was loaded (a prune rewrites them while others read).
   */
  async locate(id: Uint8Array): Promise<BlobLocation> {
    for (let attempt = 0; ; attempt++) {
      const loc = this.index.get(id);
      if (loc) return loc;
      if (attempt === 2) throw notInIndex(id);
      await this.refreshIndex();
    }
  }

  packKey(loc: Pick<BlobLocation, 'packIndex'>): string {
    return keys.pack(this.index.packId(loc.packIndex).toString('hex'));
  }

  /**
   * Runs `read` on the copies of a blob, best first, until one succeeds. A copy whose
   * pack is missing (pruned since the index was loaded) marks the pack gone; a damaged
   * copy is passed over. When every copy failed and one was missing, or the blob is
   * not indexed, index files written since are loaded and the copies tried again
   * (twice at most): a prune stores a blob's new home before deleting the old one.
   */
  async withBlobCopy<T>(id: Uint8Array, read: (loc: BlobLocation, packKey: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const locs = this.index.locations(id);
      let missing = locs.length === 0;
      for (const loc of locs) {
        try {
          return await read(loc, this.packKey(loc));
        } catch (err) {
          if (isLifeboatError(err, 'NOT_FOUND')) {
            this.index.markGone(loc.packIndex);
            missing = true;
          } else if (!isLifeboatError(err, 'CORRUPT')) throw err;
          last = err;
        }
      }
      if (!missing) break; // only damaged copies: loading the index again will not help
      await this.refreshIndex();
    }
    throw last ?? notInIndex(id);
  }

  /** Loads, authenticates and checks one blob against its id, from any copy that works. */
  loadBlob(id: Uint8Array): Promise<Buffer> {
    return this.withBlobCopy(id, (loc, key) => this.loadBlobAt(id, loc, key));
  }

  private async loadBlobAt(id: Uint8Array, loc: BlobLocation, key: string): Promise<Buffer> {
    if (loc.type === BLOB_TREE) {
      // Tree packs hold only trees, and walking a snapshot reads most of them: fetch
      // each whole once instead of one request per directory.
      const pack = await this.treePacks.get(key, () => this.getNamedByHash(key, packIdFromKey(key)));
      if (loc.offset + loc.length > pack.length) {
        throw new LifeboatError('CORRUPT', `${key} is shorter than its index says`, { hint: 'run `lifeboat check --read-data`' });
      }
      const sealed = pack.subarray(loc.offset, loc.offset + loc.length);
      try {
        return this.openBlob(id, sealed, key, BLOB_TREE, this.blobLimit(loc));
      } catch (err) {
        if (isLifeboatError(err, 'CORRUPT') && (await this.learnSessionOf(sealed))) return this.openBlob(id, sealed, key, BLOB_TREE, this.blobLimit(loc));
        throw err;
      }
    }
    const plain = await this.getUnsealed(key, `blob ${toHex(id).slice(0, 16)} in ${key}`, blobContext(loc.type), { offset: loc.offset, length: loc.length }, this.blobLimit(loc));
    return this.checkBlobId(id, plain, key);
  }

  /** Whole tree packs recently read, up to 64 MiB. */
  private readonly treePacks = new ByteCache(64 * 1024 * 1024);

  /** Opens a sealed blob of `type` and checks it against its id. */
  openBlob(id: Uint8Array, sealed: Uint8Array, where: string, type: BlobType, maxPlain: number): Buffer {
    return this.checkBlobId(id, unseal(this.key, sealed, `blob ${toHex(id).slice(0, 16)} in ${where}`, blobContext(type), maxPlain), where);
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

  /** A pack writer that builds its packs in files in `spillDir` (`withPackWriter` in repo/pack/spill.ts makes one and cleans up). */
  newPackWriter(opts: { spillDir: string; uploadConcurrency?: number }): PackWriter {
    return new PackWriter(
      { store: this.store, key: this.key, index: this.index, writeIndex: (packs) => this.writeIndex(packs), spillDir: opts.spillDir },
      this.compression,
      opts.uploadConcurrency,
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
    await this.followKeyring();
    const sealed = seal(this.key, data, logCompression(this.compression), { kind: 'log', name: key });
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
    const existing = await this.getUnsealed(key, key, { kind: 'log', name: key }, undefined, MAX_LOG_FILE);
    if (existing.equals(Buffer.from(data.buffer, data.byteOffset, data.byteLength))) return 'exists';
    throw new LifeboatError('ALREADY_EXISTS', `${file} is already archived for ${source} with different content`, {
      hint: 'two clusters may be archiving under one name, or the file is damaged; the archived copy was kept',
    });
  }

  /** The archived log file, or undefined when it is not in the archive. */
  async getLog(source: string, timeline: string, file: string): Promise<Buffer | undefined> {
    const key = keys.log(source, timeline, file);
    try {
      return await this.getUnsealed(key, key, { kind: 'log', name: key }, undefined, MAX_LOG_FILE);
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

  /**
   * Version 1 names a snapshot by the SHA-256 of its sealed bytes; version 2 by an
   * HMAC of its manifest, so a snapshot re-sealed under a new key epoch keeps its id.
   */
  async saveSnapshot(manifest: SnapshotManifest): Promise<string> {
    const plain = Buffer.from(JSON.stringify(manifest));
    if (this.key.version === 1) {
      const sealed = seal(this.key, plain, this.compression, { kind: 'snapshot' });
      const id = toHex(sha256(sealed));
      await this.store.put(keys.snapshot(id), sealed, { ifAbsent: true });
      return id;
    }
    const signed = Buffer.from(JSON.stringify({ ...manifest, writer: this.slotId }));
    const id = snapshotId(this.key, signed);
    await this.store.put(keys.snapshot(id), sealMeta(this.key, signed, this.compression, { kind: 'snapshot', name: keys.snapshot(id) }), { ifAbsent: true });
    return id;
  }

  /** Re-seals a version 2 snapshot under the current epoch, keeping its id (`prune --reseal`). */
  async resealSnapshot(id: string): Promise<void> {
    const name = keys.snapshot(id);
    const m = await this.getMeta(name, `snapshot ${id.slice(0, 8)}`, { kind: 'snapshot', name }, MAX_RECORD);
    if (m.trusted === false) {
      // Re-tagging would launder a restricted writer's snapshot into a trusted one.
      await this.store.put(name, sealMeta({ ...this.key, macKey: undefined }, m.payload, this.compression, { kind: 'snapshot', name }));
    } else {
      await this.store.put(name, sealMeta(this.key, m.payload, this.compression, { kind: 'snapshot', name }));
    }
  }

  async loadSnapshot(id: string): Promise<Snapshot> {
    const name = keys.snapshot(id);
    const legacy = this.key.readsV1 === 'all' && (await this.store.get(name, { offset: 0, length: 1 }))[0] === 1;
    if (this.key.version === 1 || legacy) {
      const sealed = await this.getNamedByHash(name, id);
      if (toHex(sha256(sealed)) !== id) {
        throw new LifeboatError('CORRUPT', `snapshot ${id.slice(0, 8)} does not match its name`, {
          hint: 'the snapshot object was damaged; run `lifeboat check`',
        });
      }
      return decodeManifest(unseal(this.key, sealed, `snapshot ${id.slice(0, 8)}`, { kind: 'snapshot' }, MAX_RECORD), id);
    }
    const m = await this.getMeta(name, `snapshot ${id.slice(0, 8)}`, { kind: 'snapshot', name }, MAX_RECORD);
    if (snapshotId(this.key, m.payload) !== id) {
      throw new LifeboatError('CORRUPT', `snapshot ${id.slice(0, 8)} does not match its name`, {
        hint: 'the snapshot object was damaged or replaced; run `lifeboat check`',
      });
    }
    const snap = decodeManifest(m.payload, id);
    if (m.trusted !== undefined) snap.trusted = m.trusted;
    return snap;
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

  /** Ids of snapshots `forget` removed, by tombstones this key can verify (src/repo/tombstones.ts). */
  async forgottenIds(): Promise<Set<string>> {
    return new Set((await readTombstones(this.store, this.key)).map((t) => t.snapshotId));
  }

  /**
   * Every snapshot that opens, and the objects of `snapshots/` that do not: damaged
   * ones, and forgotten ones put back (a tombstone names them), which are never listed.
   */
  async scanSnapshots(): Promise<{ snapshots: Snapshot[]; damaged: DamagedObject[] }> {
    const forgotten = await this.forgottenIds();
    const objects = await listAll(this.store, 'snapshots/');
    const damaged: DamagedObject[] = objects
      .filter((i) => forgotten.has(i.key.slice('snapshots/'.length)))
      .map((i) => ({ key: i.key, error: 'this snapshot was forgotten (forgotten/ holds its tombstone): a copy put back is ignored' }));
    const infos = objects.filter((i) => !forgotten.has(i.key.slice('snapshots/'.length)));
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

/** A version 2 snapshot's id: HMAC of its manifest under the idKey (stable across re-sealing). */
function snapshotId(key: MasterKey, manifest: Uint8Array): string {
  return toHex(blobId(key, Buffer.concat([Buffer.from('lifeboat snapshot\0'), manifest])));
}

function isJson(data: Uint8Array): boolean {
  try {
    JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8'));
    return true;
  } catch {
    return false;
  }
}
