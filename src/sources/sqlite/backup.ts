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
  beginReadAtImage,
  endRead,
  imagePages,
  journalMode,
  openDatabase,
  readImagePoint,
  type Connection,
  type Image,
  type ImagePoint,
} from './database.js';
import type { GraphDeclaration } from '../graph/options.js';
import type { GraphFacts } from '../graph/record.js';
import { checkSqliteGraph, measureSqliteGraph } from './graph.js';
import { backupStream } from '../../engine/backup/stream.js';
import type { ProgressFn } from '../../engine/progress.js';
import { LiveFiles } from './live-files.js';
import type { Position, WalTail } from './segment.js';

import { logSource } from './names.js';

export { logSource };

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
  /** The declared graph measured in the image's own read transaction (docs/graph.md). */
  graph?: GraphFacts;
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
  /** Sees every run of the image's pages as it is stored (the replicator's page model). */
  onPages?: (firstPage: number, pages: Buffer, pageSize: number) => void;
  /** A declared graph: checked against the schema (USAGE when it does not fit), then measured and recorded. */
  graph?: GraphDeclaration;
}

/**
 * Takes a snapshot through `conn`, which must not be in a transaction: it holds a
 * read transaction from before the image is fixed until it is stored. The file is read
 * through `files` (descriptors the caller keeps open until its connections are closed).
 * Resolves to undefined when `place` gave up.
 */
export async function imageSnapshot(repo: Repository, conn: Connection, files: LiveFiles, opts: ImageSnapshotOptions): Promise<Snapshot | undefined> {
  const file = files.file;
  const source = { kind: 'sqlite', name: opts.name };
  logSource(opts.name);
  const mode = journalMode(conn);
  if (opts.graph) checkSqliteGraph(conn, opts.graph, `the source ${file}`);
  try {
    // With a graph to count, the transaction's snapshot must be the image's own point.
    let image: Image;
    let exact = true;
    if (opts.graph) {
      const pinned = await beginReadAtImage(conn, files);
      exact = pinned !== undefined;
      image = pinned ?? (await readImagePoint(files));
    } else {
      beginRead(conn, file);
      image = await readImagePoint(files);
    }
    const { point } = image;
    const placed = opts.place ? opts.place(point) : {};
    if (placed === null) return undefined;
    // Measured before any byte is stored: a query that fails at run time fails the backup early.
    const graph: GraphFacts | undefined = opts.graph ? { declaration: opts.graph, exact, ...measureSqliteGraph(conn, opts.graph, { dangling: false }) } : undefined;
    const consistency: SqliteConsistency = {
      file,
      journalMode: mode,
      pageSize: point.pageSize,
      pages: point.pages,
      ...placed,
      ...(point.cycle
        ? {
            wal: {
              salt1: point.cycle.salt1,
              salt2: point.cycle.salt2,
              checkpointSeq: point.wal?.checkpointSeq ?? 0,
              checksum: point.cursor.checksum,
              frame: point.cursor.frame,
            },
          }
        : {}),
      ...(graph ? { graph } : {}),
    };
    return await backupStream(repo, Readable.from(observed(imagePages(files, image), point.pageSize, opts.onPages)), {
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

async function* observed(
  runs: AsyncGenerator<Buffer>,
  pageSize: number,
  onPages: ImageSnapshotOptions['onPages'],
): AsyncGenerator<Buffer> {
  let next = 1;
  for await (const run of runs) {
    onPages?.(next, run, pageSize);
    next += run.length / pageSize;
    yield run;
  }
}

export interface SqliteBackupOptions {
  file: string;
  name?: string;
  tags?: string[];
  busyTimeoutMs?: number;
  onProgress?: ProgressFn;
  /** The source's declared graph (its `graph:` in lifeboat.yaml). */
  graph?: GraphDeclaration;
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
  let files: LiveFiles | undefined;
  try {
    files = await LiveFiles.open(file);
    return (await imageSnapshot(repo, conn, files, {
      name,
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.graph ? { graph: opts.graph } : {}),
    })) as Snapshot;
  } finally {
    conn.close();
    await files?.close(); // after the connection: see sources/sqlite/live-files.ts
  }
}
