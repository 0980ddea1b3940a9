/**
 * Snapshot manifests: what was backed up, when, from where, and the root tree. Each
 * is sealed and stored as snapshots/<sha256 of its bytes>; users name them by any
 * unique prefix of that id, or "latest".
 */
import { LifeboatError } from '../../errors.js';

export interface SnapshotSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** Bytes of file content in the snapshot. */
  totalBytes: number;
  totalFiles: number;
  /** Bytes (after compression and encryption) this backup added to the repository. */
  addedBytes: number;
  /** Bytes of new content read and chunked. */
  processedBytes: number;
  errors: number;
  durationMs: number;
}

export interface SnapshotManifest {
  version: 1;
  time: string;
  hostname: string;
  username: string;
  paths: string[];
  tags: string[];
  excludes: string[];
  tree: string;
  parent?: string;
  source: { kind: string; name?: string };
  /** Where a database was consistent (LSN, WAL frame, binlog position); set by database sources. */
  consistency?: Record<string, unknown>;
  summary: SnapshotSummary;
  programVersion: string;
  /** Set by `lifeboat copy`: the id of the snapshot this one was copied from. */
  original?: string;
  /** Version 2: the key slot that wrote it. */
  writer?: string;
}

export interface Snapshot extends SnapshotManifest {
  id: string;
  /**
   * Version 2, read with a full key: whether a full key slot wrote it (its metadata tag
   * verified). false: a restricted (append-only) slot wrote it; retention never lets
   * such a snapshot displace the administrator's. Undefined where it cannot be told.
   */
  trusted?: boolean;
}

export function decodeManifest(raw: Buffer, id: string): Snapshot {
  let m: SnapshotManifest;
  try {
    m = JSON.parse(raw.toString('utf8')) as SnapshotManifest;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `snapshot ${id.slice(0, 8)}: not valid JSON`, { cause: err });
  }
  if (m.version !== 1 || typeof m.tree !== 'string' || typeof m.time !== 'string') {
    throw new LifeboatError('CORRUPT', `snapshot ${id.slice(0, 8)}: malformed manifest`);
  }
  return { ...m, id };
}

/** Picks one snapshot by "latest" or an id prefix, from newest to oldest. */
export function pickSnapshot(all: readonly Snapshot[], ref: string): Snapshot {
  if (ref === 'latest') {
    const newest = [...all].sort((a, b) => Date.parse(b.time) - Date.parse(a.time))[0];
    if (!newest) {
      throw new LifeboatError('NOT_FOUND', 'the repository has no snapshots yet', {
        hint: 'make one with `lifeboat backup PATH`',
      });
    }
    return newest;
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) {
    throw new LifeboatError('USAGE', `"${ref}" is not a snapshot id`, {
      hint: 'give "latest" or at least 4 hex digits of an id from `lifeboat snapshots`',
    });
  }
  const matches = all.filter((s) => s.id.startsWith(ref));
  if (matches.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no snapshot ${ref}`, { hint: '`lifeboat snapshots` lists them' });
  }
  if (matches.length > 1) throw new LifeboatError('USAGE', `snapshot id prefix ${ref} is ambiguous`);
  return matches[0] as Snapshot;
}
