/**
 * Snapshots of a SQLite database: a consistent page image (see
 * sources/sqlite/database.ts) streamed through the repository's chunker, so the
 * second snapshot of a large database stores only the chunks around changed pages.
 * `lifeboat sqlite backup` takes one; the replicator takes one at the start of each
 * generation and then periodically.
 */
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import {
  beginRead,
  endRead,
  imagePages,
  journalMode,
  openDatabase,
  readImagePoint,
  type Connection,
  type ImagePoint,
} from '../../sources/sqlite/database.js';
import { backupStream } from '../backup/stream.js';
import { sourceKey } from '../source-name.js';
import type { ProgressFn } from '../progress.js';
import type { Position, WalTail } from './segment.js';

/** The log-archive source for database NAME: `logs/sqlite.NAME/...`. */
export function logSource(name: string): string {
  return sourceKey('sqlite', name);
}

/** `--name` defaults to the file's name without its extension: memory.db is "memory". */
export function defaultName(file: string): string {
  return path.parse(file).name;
}

/** What a SQLite snapshot records in its manifest. */
export interface SqliteConsistency {
  file: string;
  journalMode: string;
  pageSize: number;
  pages: number;
  /** Set on the replicator's snapshots: the generation and where in it the image stands. */
  generation?: string;
  position?: Position;
  /** The WAL cycle at the image, so a restarted replicator can check it may continue. */
  wal?: WalTail & { frame: number };
}

export interface ImageSnapshotOptions {
  name: string;
  tags?: string[];
  onProgress?: ProgressFn;
  /**
   * Called with the image's point once it is fixed, before any byte is stored; it
   * returns what the replicator adds to the record, or null to give up (the WAL
   * moved to a cycle it cannot place).
   */
  place?: (point: ImagePoint) => Pick<SqliteConsistency, 'generation' | 'position'> | null;
}

/**
 * Takes a snapshot through `conn`, which must not be in a transaction: it holds a
 * read transaction from before the image is fixed until it is stored. Resolves to
 * undefined when `place` gave up.
 */
export async function imageSnapshot(repo: Repository, conn: Connection, file: string, opts: ImageSnapshotOptions): Promise<Snapshot | undefined> {
  const source = { kind: 'sqlite', name: opts.name };
  logSource(opts.name);
  const mode = journalMode(conn);
  beginRead(conn, file);
  try {
    const { point, overlay } = await readImagePoint(file);
    const placed = opts.place ? opts.place(point) : {};
    if (placed === null) return undefined;
    const consistency: SqliteConsistency = {
      file,
      journalMode: mode,
      pageSize: point.pageSize,
      pages: point.pages,
      ...placed,
      ...(point.wal
        ? {
            wal: {
              salt1: point.wal.salt1,
              salt2: point.wal.salt2,
              checkpointSeq: point.wal.checkpointSeq,
              checksum: point.cursor.checksum,
              frame: point.cursor.frame,
            },
          }
        : {}),
    };
    return await backupStream(repo, Readable.from(imagePages(file, point, overlay)), {
      path: `/sqlite/${opts.name}/${path.basename(file)}`,
      source,
      tags: opts.tags ?? [],
      time: new Date(),
      beforeSnapshot: async () => consistency as unknown as Record<string, unknown>,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
  } finally {
    endRead(conn);
  }
}

export interface SqliteBackupOptions {
  file: string;
  name?: string;
  tags?: string[];
  busyTimeoutMs?: number;
  onProgress?: ProgressFn;
}

/**
 * One consistent snapshot while writers keep writing. In WAL mode writers are not
 * held up at all; in rollback-journal mode the read transaction holds writers back
 * until the file is read, as any reader of such a database does.
 */
export async function sqliteBackup(repo: Repository, opts: SqliteBackupOptions): Promise<Snapshot> {
  const file = path.resolve(opts.file);
  const name = opts.name ?? defaultName(file);
  logSource(name);
  const conn = openDatabase(file, { readonly: true, ...(opts.busyTimeoutMs !== undefined ? { busyTimeoutMs: opts.busyTimeoutMs } : {}) });
  try {
    return (await imageSnapshot(repo, conn, file, {
      name,
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    })) as Snapshot;
  } finally {
    conn.close();
  }
}
