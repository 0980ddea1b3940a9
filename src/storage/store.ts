/**
 * The Store seam: a flat object store that everything in the repository is built on.
 * Keys are '/'-separated relative names (`data/ab/<id>`, `index/<id>`, ...). Every
 * backend (local disk, memory, S3, Azure) and every wrapper (retry, throttle,
 * append-only, multi) implements exactly this contract, and the shared conformance
 * suite in testing/suite.ts holds each of them to it.
 */
import { LifeboatError, isLifeboatError } from '../errors.js';
import { openChecked } from './local-file.js';

export interface ByteRange {
  offset: number;
  length: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
}

export interface PutOptions {
  /**
   * Create-only: when the key already exists the call fails with ALREADY_EXISTS and
   * the stored object is untouched. Without it, put replaces the object atomically
   * (readers see the old bytes or the new bytes, never a mix).
   */
  ifAbsent?: boolean;
}

export interface GetOptions {
  /**
   * The caller's check of what it read (an AEAD tag, a content hash). Backends ignore
   * it; wrappers use it: `retry` reads again when it fails (a truncated or garbled
   * transfer), `multi` falls back to the next destination. When every attempt fails
   * the check, the last bytes read are returned and the caller reports the damage.
   */
  verify?: (data: Uint8Array) => boolean;
}

/**
 * A finished local file to be stored as one object (a pack a chunk worker wrote).
 * It belongs to the caller: `putFile` neither changes nor removes it. The caller must
 * not change it afterwards either, only remove it: a store may keep a file from its
 * own staging directory as the object itself (a hard link). `size` is what the
 * caller wrote; a file of any other size, or anything but a regular file at `path`,
 * is refused.
 */
export interface LocalFile {
  path: string;
  size: number;
}

export interface StatOptions {
  /**
   * An undefined answer must be certain: a repository on several destinations, whose
   * writes need fewer than all of them, then fails instead of answering "not there"
   * when a destination that could hold the object did not answer. For decisions that
   * "not there" makes final (PostgreSQL's recovery ends at a WAL file not there; a
   * check drops a problem). A check before writing need not be sure.
   */
  sure?: boolean;
}

export interface Store {
  /** Human-readable location, used in messages ("local:/srv/repo"). */
  readonly location: string;

  /**
   * Optional capability: stores the bytes of `file` under `key`, exactly as `put` would
   * (same durability, same `ifAbsent`), without holding them in memory whole (the
   * local store links a file from its staging directory into place and copies any
   * other, so two stores never share one; a wrapper passes it down). Callers use
   * `putFile()` below, which falls back to reading the file and calling `put` when a
   * store has no such method: correct everywhere, cheaper where it exists.
   */
  putFile?(key: string, file: LocalFile, opts?: PutOptions): Promise<void>;

  /**
   * Optional capability: a directory where a caller should create the files it will
   * hand to `putFile` (the local store's own `tmp/`: the same filesystem, so a file is
   * linked into place and never copied, and one left by a crash is swept like any
   * temporary). Files created there must be named `<random>.tmp`, created exclusively
   * and not following symlinks. Undefined when the store has no such place.
   */
  stagingDir?(): Promise<string | undefined>;

  /**
   * Stores `data` under `key`. Durable when the promise resolves: a crash after that
   * never loses the object. Idempotent for identical bytes without `ifAbsent`.
   */
  put(key: string, data: Uint8Array, opts?: PutOptions): Promise<void>;

  /**
   * Reads the whole object, or `range` of it. A missing key raises NOT_FOUND. A range
   * reaching past the end raises CORRUPT (a short object is damage, not a normal case).
   */
  get(key: string, range?: ByteRange, opts?: GetOptions): Promise<Uint8Array>;

  /** Size of the object, or undefined when it does not exist. */
  stat(key: string, opts?: StatOptions): Promise<ObjectInfo | undefined>;

  /**
   * Lists objects whose key starts with `prefix`, in no particular order. Objects
   * being written (temporary files, unfinished uploads) are never listed.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  /** Removes the object. Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;

  /** Releases connections and handles. Safe to call more than once. */
  close(): Promise<void>;
}

/** Collects a listing into an array (listings are small: snapshots, keys, locks, indexes). */
export async function listAll(store: Pick<Store, 'list'>, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of store.list(prefix)) out.push(info);
  return out;
}

/** Stores `file` under `key` through the store's `putFile`, or by reading it and calling `put`. */
export async function putFile(store: Pick<Store, 'put' | 'putFile'>, key: string, file: LocalFile, opts?: PutOptions): Promise<void> {
  if (store.putFile) return store.putFile(key, file, opts);
  return store.put(key, await readLocalFile(file), opts);
}

/** The first store's staging directory among `stores` that has one. */
export async function firstStagingDir(stores: readonly Pick<Store, 'stagingDir'>[]): Promise<string | undefined> {
  for (const s of stores) {
    const dir = await s.stagingDir?.();
    if (dir !== undefined) return dir;
  }
  return undefined;
}

/** The largest file `readLocalFile` reads (a pack is about 16 MiB; Buffers stop at 2 GiB). */
export const MAX_LOCAL_FILE = 1024 * 1024 * 1024;

/**
 * Reads a whole `LocalFile` for stores that cannot take it otherwise. It is opened
 * without following a symlink and must be a regular file of exactly `file.size`
 * bytes (checked before allocating, and bounded by MAX_LOCAL_FILE).
 */
export async function readLocalFile(file: LocalFile): Promise<Buffer> {
  const fh = await openChecked(file, MAX_LOCAL_FILE);
  try {
    const buf = Buffer.allocUnsafe(file.size);
    let done = 0;
    while (done < file.size) {
      const { bytesRead } = await fh.read(buf, done, file.size - done, done);
      if (bytesRead === 0) throw new LifeboatError('FAILED', `${file.path}: shorter than the ${file.size} bytes written`);
      done += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

/** `holdsBytes` for a file: whether `key` now holds exactly the bytes of `file`. */
export async function holdsFile(store: Pick<Store, 'get'>, key: string, file: LocalFile): Promise<boolean> {
  return holdsBytes(store, key, await readLocalFile(file));
}

/** Rejects keys that could escape a store's root or are otherwise malformed. */
export function assertKey(key: string): void {
  if (
    key.length === 0 ||
    key.startsWith('/') ||
    key.endsWith('/') ||
    key.split('/').some((part) => part === '' || part === '.' || part === '..')
  ) {
    throw new Error(`invalid store key: ${JSON.stringify(key)}`);
  }
}

/**
 * Whether `key` now holds exactly `data` (false when it is missing). Wrappers use it
 * to tell "my own earlier attempt landed" from "someone else wrote this key".
 */
export async function holdsBytes(store: Pick<Store, 'get'>, key: string, data: Uint8Array): Promise<boolean> {
  try {
    const stored = await store.get(key);
    return Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength).equals(data);
  } catch (err) {
    if (isLifeboatError(err, 'NOT_FOUND')) return false;
    throw err;
  }
}

/**
 * A zero-length ranged read for backends that speak HTTP, which has no empty range:
 * answered from the object's size (NOT_FOUND when missing, CORRUPT past the end).
 */
export async function emptyRangeRead(store: Pick<Store, 'stat' | 'location'>, key: string, range: ByteRange): Promise<Uint8Array> {
  const info = await store.stat(key);
  if (!info) throw new LifeboatError('NOT_FOUND', `${key} not found in ${store.location}`);
  if (range.offset > info.size) {
    throw new LifeboatError('CORRUPT', `${key} in ${store.location} is shorter than the range ${range.offset}+0 (size ${info.size})`);
  }
  return new Uint8Array(0);
}
