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

/** A summary with every count at 0, for a backup to fill in. */
export function emptySummary(): SnapshotSummary {
  return { filesNew: 0, filesChanged: 0, filesUnmodified: 0, dirs: 0, totalBytes: 0, totalFiles: 0, addedBytes: 0, processedBytes: 0, errors: 0, durationMs: 0 };
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
  /** Set by `lifeboat migrate`: the format 1 id this snapshot had. */
  migratedFrom?: string;
}

export interface Snapshot extends SnapshotManifest {
  id: string;
  /**
   * Set when loading, not stored in the manifest: false when a restricted
   * (append-only or write-only) key slot wrote it; undefined or true: trusted.
   * Retention counts untrusted snapshots apart, so they never take a trusted one's place.
   */
  trusted?: boolean;
}

/**
 * How far ahead of this machine's clock a snapshot's time may be and still count as
 * "now": clocks of backup hosts drift by seconds, rarely by minutes. Beyond it a
 * snapshot is future-dated: backup refuses to write one, `snapshots` flags it,
 * `latest` passes over it and retention neither counts nor removes it (a snapshot
 * dated 2099 would otherwise be the newest for ever and push every real one out).
 */
export const CLOCK_SKEW_MS = 5 * 60_000;

/** Whether a snapshot time lies beyond now plus the clock-skew allowance. */
export function isFutureDated(time: string, now = Date.now()): boolean {
  return Date.parse(time) > now + CLOCK_SKEW_MS;
}

/** Refuses a snapshot time given explicitly (backup --time) that lies in the future. */
export function checkSnapshotTime(time: Date, now = Date.now()): void {
  if (time.getTime() > now + CLOCK_SKEW_MS) {
    throw new LifeboatError('USAGE', `snapshot time ${time.toISOString()} is in the future`, {
      hint: `give a time no later than now (${new Date(now).toISOString()}) plus ${CLOCK_SKEW_MS / 60_000} minutes of clock skew, or leave --time out`,
    });
  }
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

export interface PickOptions {
  /** The current time (ms); default Date.now(). */
  now?: number;
  /** Called with a one-line warning when "latest" passes over future-dated snapshots. */
  onWarning?: (message: string) => void;
}

/**
 * Picks one snapshot by "latest" or an id prefix, from newest to oldest. "latest" is
 * the newest snapshot that is not future-dated, trusted or not (a restricted writer's
 * fresh snapshot is still the newest data); only when every snapshot is future-dated
 * is the newest of those chosen, with a warning.
 */
export function pickSnapshot(all: readonly Snapshot[], ref: string, opts: PickOptions = {}): Snapshot {
  if (ref === 'latest') {
    const now = opts.now ?? Date.now();
    const sorted = [...all].sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
    const future = sorted.filter((s) => isFutureDated(s.time, now));
    const newest = sorted.find((s) => !isFutureDated(s.time, now)) ?? sorted[0];
    if (!newest) {
      throw new LifeboatError('NOT_FOUND', 'the repository has no snapshots yet', {
        hint: 'make one with `lifeboat backup PATH`',
      });
    }
    if (future.length > 0) {
      const which = future.map((s) => `${s.id.slice(0, 8)} (${s.time})`).join(', ');
      opts.onWarning?.(
        isFutureDated(newest.time, now)
          ? `every snapshot is dated in the future; "latest" is ${newest.id.slice(0, 8)} (${newest.time})`
          : `"latest" passes over ${future.length} future-dated snapshot(s): ${which}; a wrong clock or a forged time wrote them`,
      );
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

/**
 * Whether a backup may take this snapshot as its parent (whose unchanged files it
 * reuses without reading them): never a future-dated one, and never one a restricted
 * key wrote when the reader can tell (a full key): a forged parent would otherwise
 * put its content into the administrator's backups.
 */
export function usableParent(s: Snapshot, now = Date.now()): boolean {
  return s.trusted !== false && !isFutureDated(s.time, now);
}
