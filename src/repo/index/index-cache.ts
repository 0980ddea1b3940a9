/**
 * Chooses, opens, checks and (re)builds the on-disk index of a large repository
 * (disk-index.ts; docs/design-notes.md, "Blob index on disk").
 *
 * The cache file lives at <cache dir>/<repository id>/index/blobs.lbidx, 0600 in a
 * 0700 directory. It records which index files it was built from (by name, which is
 * the SHA-256 of the sealed file, so a name always means the same entries). It is
 * used only while every one of those files is still listed in index/: a prune that
 * rewrote index files makes it stale and it is built again. Index files listed but
 * not in it are loaded into memory as before; when they hold more than OVERLAY_MAX
 * blobs, a new file is built from the old one plus them (no index file is read
 * again). The file only ever answers "which index file entries exist": whether a
 * pack is in data/ and whether it is retiring is decided from the repository on
 * every load, as for the in-memory table. Building writes a temporary file and
 * renames it, so concurrent processes each see a whole file; the last rename wins.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { ObjectInfo } from '../../storage/store.js';
import { isLifeboatError } from '../../errors.js';
import { isDamage } from '../damage.js';
import { BLOB_TREE } from '../format.js';
import { ENTRY_LEN } from '../pack/pack.js';
import { cacheMacKey, DiskIndex, FILTER_IN_MEMORY_MAX } from './disk-index.js';
import { collectAll, collectYoung } from '../../util/gc.js';
import { DiskIndexBuilder } from './disk-index-build.js';
import { forEachIndexedPackRaw } from './index-file.js';

/**
 * Below this many blobs (estimated from the index files' sizes) the in-memory table
 * is used: at most ~50 MB (2^20 slots of 48 bytes), and no file to build.
 * LIFEBOAT_INDEX_DISK_MIN_BLOBS overrides it (tests, benchmarks).
 */
export const DISK_MIN_BLOBS = 500_000;
/** Blobs of newer index files kept in memory before the cache file is rebuilt with them. */
export const OVERLAY_MAX = 262_144;
/** A sealed index file is at least this many bytes per entry (45 plain, not compressible: ids are random). */
const BYTES_PER_ENTRY = ENTRY_LEN;

export interface IndexCacheDeps {
  repoId: string;
  idKey: Buffer;
  /** The plaintext of a sealed index file (CORRUPT when damaged, NOT_FOUND when gone). */
  readIndexRaw(key: string): Promise<Buffer>;
  onWarning(message: string): void;
}

export interface OpenedCache {
  base: DiskIndex;
  /** Index files (keys) whose entries the file holds. */
  covered: Set<string>;
}

export function diskMinBlobs(): number {
  const v = Number(process.env.LIFEBOAT_INDEX_DISK_MIN_BLOBS);
  return Number.isInteger(v) && v >= 0 ? v : DISK_MIN_BLOBS;
}

/** The largest filter the cache file's reader holds in memory (LIFEBOAT_INDEX_FILTER_MAX_BYTES overrides it). */
function filterMaxBytes(): number {
  const raw = process.env.LIFEBOAT_INDEX_FILTER_MAX_BYTES?.trim();
  const v = Number(raw);
  return raw && Number.isInteger(v) && v >= 0 ? v : FILTER_IN_MEMORY_MAX;
}

const NAME = /^index\/([0-9a-f]{64})$/;

/**
 * Returns the cache file for the listed index files, building it when missing,
 * stale, damaged or too far behind; undefined when the repository is small enough
 * for the in-memory table, or when the cache cannot be written (then a warning).
 */
export async function openIndexCache(deps: IndexCacheDeps, files: readonly ObjectInfo[], dir: string, opts: { minBlobs?: number; overlayMax?: number } = {}): Promise<OpenedCache | undefined> {
  const estimate = files.reduce((s, f) => s + f.size, 0) / BYTES_PER_ENTRY;
  if (estimate < (opts.minBlobs ?? diskMinBlobs())) return undefined;
  const repoId = Buffer.from(deps.repoId, 'hex');
  const macKey = cacheMacKey(deps.idKey);
  const file = path.join(dir, 'blobs.lbidx');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    deps.onWarning(`index cache ${dir} not usable (${(err as Error).message}); the index is kept in memory`);
    return undefined;
  }
  const listed = new Map<string, ObjectInfo>();
  for (const f of files) {
    const m = NAME.exec(f.key);
    if (m) listed.set(m[1] as string, f);
  }

  let base: DiskIndex | undefined;
  const opened = DiskIndex.open(file, repoId, macKey, { filterInMemoryMax: filterMaxBytes() });
  if (typeof opened !== 'string') {
    // Stale when any file it was built from is gone (a prune rewrote it).
    let stale = false;
    for (let i = 0; i < opened.sources.length; i += 32) {
      if (!listed.has(opened.sources.toString('hex', i, i + 32))) {
        stale = true;
        break;
      }
    }
    if (stale) opened.close();
    else base = opened;
  }
  const overlay = [...listed].filter(([hex]) => !base?.coversSource(Buffer.from(hex, 'hex')));
  const overlayBlobs = overlay.reduce((s, [, f]) => s + f.size, 0) / BYTES_PER_ENTRY;
  if (!base || overlayBlobs > (opts.overlayMax ?? OVERLAY_MAX)) {
    try {
      const built = await build(deps, dir, file, repoId, macKey, base, base ? overlay : [...listed]);
      base?.close();
      base = built;
    } catch (err) {
      base?.close();
      if (isLifeboatError(err)) throw err;
      deps.onWarning(`index cache ${file} could not be written (${(err as Error).message}); the index is kept in memory`);
      return undefined;
    }
  }
  const covered = new Set<string>();
  for (let i = 0; i < base.sources.length; i += 32) covered.add(`index/${base.sources.toString('hex', i, i + 32)}`);
  return { base, covered };
}

async function build(deps: IndexCacheDeps, dir: string, file: string, repoId: Buffer, macKey: Buffer, old: DiskIndex | undefined, files: Array<[string, ObjectInfo]>): Promise<DiskIndex> {
  const b = new DiskIndexBuilder(dir, { repoId, macKey });
  try {
    if (old) {
      old.forEachPack((id) => b.addPack(id));
      old.forEachRecord((r) => b.addRecord(r));
      for (let i = 0; i < old.sources.length; i += 32) b.addSource(old.sources.subarray(i, i + 32));
    }
    // One file at a time, the next one read while this one is added: bounded memory.
    let next = files.length > 0 ? read(deps, files[0]![1].key) : undefined;
    void next?.catch(() => {}); // awaited below; this only keeps a failure from being reported twice
    for (let i = 0; i < files.length; i++) {
      const [hex, f] = files[i]!;
      const payload = await next;
      next = i + 1 < files.length ? read(deps, files[i + 1]![1].key) : undefined;
      void next?.catch(() => {});
      if (!payload) continue;
      try {
        forEachIndexedPackRaw(payload, f.key, (packId, entries) => {
          const h = b.addPack(packId);
          for (let e = 0; e < entries.length; e += ENTRY_LEN) {
            b.addEntry(entries.subarray(e + 1, e + 33), h, entries[e] === BLOB_TREE, entries.readUInt32LE(e + 33), entries.readUInt32LE(e + 37), entries.readUInt32LE(e + 41));
          }
        });
      } catch (err) {
        if (!isDamage(err)) throw err;
        deps.onWarning(`${f.key} skipped: ${(err as Error).message}`);
        continue;
      }
      b.addSource(Buffer.from(hex, 'hex'));
      // The file's sealed bytes and plaintext are dead now, outside V8's heap: without a
      // scavenge, tens of MB of them wait for V8's external-memory limit (src/util/gc.ts).
      collectYoung();
    }
    b.finish(file);
  } catch (err) {
    b.abort();
    throw err;
  }
  // The build's buffers (the sort's, the fences: tens of MB at 100 M blobs, long-lived
  // enough to be in the old generation) are garbage now: free them before the file's
  // metadata (~1 MB a million blobs) is read back, or the two add up at the peak.
  collectAll();
  const opened = DiskIndex.open(file, repoId, macKey, { filterInMemoryMax: filterMaxBytes() });
  if (typeof opened === 'string') throw new Error(`the file just written does not open: ${opened}`);
  return opened;
}

/** An index file's plaintext; undefined (after a warning) when damaged or vanished: it stays outside the cache. */
async function read(deps: IndexCacheDeps, key: string): Promise<Buffer | undefined> {
  try {
    return await deps.readIndexRaw(key);
  } catch (err) {
    if (isDamage(err)) {
      deps.onWarning(`${key} skipped: ${(err as Error).message}`);
      return undefined;
    }
    if (isLifeboatError(err, 'NOT_FOUND')) return undefined;
    throw err;
  }
}
