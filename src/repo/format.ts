/**
 * The repository's plain `config` object and the constants of format versions 1 and 2.
 * docs/format.md is the specification; this file is its executable half.
 */
import { LifeboatError } from '../errors.js';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../chunker/fastcdc.js';
import type { SealContext } from '../codec/crypto.js';

/** What `init` writes. Version 1 repositories stay readable and writable. */
export const FORMAT_VERSION = 2;
export const SUPPORTED_VERSIONS: readonly number[] = [1, 2];

/**
 * Packs of about 16 MiB: few enough objects that listing and object-store request
 * costs stay low (64 per GiB), small enough that a ranged restore or a prune
 * rewrite touches little unrelated data.
 */
export const PACK_TARGET_SIZE = 16 * 1024 * 1024;

export const BLOB_DATA = 0;
export const BLOB_TREE = 1;
export type BlobType = typeof BLOB_DATA | typeof BLOB_TREE;

export interface RepoConfig {
  version: number;
  id: string;
  created: string;
  chunker: ChunkerParams;
  /** Version 2 only: `lifeboat migrate` is rewriting format 1 objects (all kinds are read in format 1 too). */
  migrating?: true;
  /** Version 2 only: migrated from version 1; blobs and pack headers of format 1 remain readable. */
  v1Blobs?: true;
}

export function newConfig(id: string, version = FORMAT_VERSION): RepoConfig {
  return { version, id, created: new Date().toISOString(), chunker: { ...DEFAULT_CHUNKER } };
}

export function blobContext(type: number): SealContext {
  return { kind: type === BLOB_TREE ? 'tree' : 'data' };
}

export function parseConfig(raw: Uint8Array, location: string): RepoConfig {
  let cfg: RepoConfig;
  try {
    cfg = JSON.parse(Buffer.from(raw).toString('utf8')) as RepoConfig;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${location}: config is not valid JSON`, {
      hint: 'the repository config was damaged; restore it from another copy',
      cause: err,
    });
  }
  if (!SUPPORTED_VERSIONS.includes(cfg.version)) {
    throw new LifeboatError(
      'UNSUPPORTED_FORMAT',
      `${location}: repository format version ${String(cfg.version)} is not supported (this Lifeboat reads versions ${SUPPORTED_VERSIONS.join(' and ')})`,
      { hint: 'use the Lifeboat release that wrote this repository, or a newer one' },
    );
  }
  return cfg;
}

/** Object keys by kind. Packs fan out over 256 folders so no directory grows huge. */
export const keys = {
  config: 'config',
  pack: (id: string) => `data/${id.slice(0, 2)}/${id}`,
  index: (id: string) => `index/${id}`,
  snapshot: (id: string) => `snapshots/${id}`,
  lock: (id: string) => `locks/${id}`,
  /** When each pack was last read and authenticated by `check` (sealed JSON {packId: Unix ms}). */
  verified: 'state/verified',
  /** A prune's list of packs to delete once no backup can depend on them (docs/prune.md). */
  retiring: (id: string) => `prune/${id}`,
  /** Version 2: the keyring of each generation, with a grant per key slot (src/repo/keyring.ts). */
  keyring: (generation: number) => `keyring/${String(generation).padStart(10, '0')}`,
  /** Archived change logs: `logs/<source>/<timeline>/<file>` (WAL segments, history files). */
  log: (source: string, timeline: string, file: string) => `logs/${source}/${timeline}/${file}`,
};

export function packIdFromKey(key: string): string {
  return key.slice(key.lastIndexOf('/') + 1);
}
