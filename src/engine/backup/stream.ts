/**
 * Backs up a byte stream (a dump tool's stdout) as a snapshot holding one file at a
 * chosen path. The stream is cut by the repository's own FastCDC chunker, so a second
 * dump that differs in a few places stores only the chunks around those places.
 *
 * Memory stays bounded: at most one maximum-size chunk (8 MiB by default) waits to be
 * cut, and the pack writer holds back the producer while its uploads are busy; the
 * stream is read only as fast as blobs are stored (async iteration is back-pressure).
 *
 * Blobs are sealed here in the main thread rather than by the chunk workers: a dump
 * arrives as one sequential stream, and the dump tool, not sealing, is its bottleneck.
 */
import * as os from 'node:os';
import type { Readable } from 'node:stream';
import { FastCDC, gearTable } from '../../chunker/fastcdc.js';
import { LifeboatError } from '../../errors.js';
import { BLOB_DATA } from '../../repo/format.js';
import { acquireLock, type HeldLock } from '../../repo/lock.js';
import type { PackWriter } from '../../repo/pack/pack-writer.js';
import { PROGRAM_VERSION, type Repository } from '../../repo/repository.js';
import { checkSnapshotTime, usableParent, type Snapshot, type SnapshotManifest } from '../../repo/snapshot/snapshot.js';
import { isSafeName, type TreeNode } from '../../repo/snapshot/tree.js';
import { throttleProgress, type ProgressFn } from '../progress.js';
import { withPackWriter } from '../../repo/pack/spill.js';
import { indexCacheDir } from './write-cache.js';

export interface StreamBackupOptions {
  /** Absolute snapshot path of the one file, e.g. /postgres-dump/main/app.dump. */
  path: string;
  source: { kind: string; name?: string };
  tags?: string[];
  hostname?: string;
  /** Snapshot time (tests, imports); default: when the stream started. */
  time?: Date;
  /**
   * Called once the whole stream is stored and before the snapshot is written. It
   * decides whether the stream was complete (a dump tool's exit status): throwing
   * here means no snapshot is saved. What it returns becomes the consistency record.
   */
  beforeSnapshot?: () => Promise<Record<string, unknown> | undefined>;
  onProgress?: ProgressFn;
}

/** Splits a snapshot path into safe tree names, or says why it cannot be one. */
export function snapshotPathParts(p: string): string[] {
  const parts = p.split('/').filter(Boolean);
  if (!p.startsWith('/') || parts.length === 0 || !parts.every(isSafeName)) {
    throw new LifeboatError('USAGE', `"${p}" cannot be a path in a snapshot`, {
      hint: 'use an absolute path without "." or ".." components',
    });
  }
  return parts;
}

/**
 * Stores `input` as the only file of a new snapshot. Takes a shared lock for the
 * duration. On any failure (the stream errors, `beforeSnapshot` throws, the store
 * refuses a pack) no snapshot is written; packs already uploaded become orphans that
 * the next backup reuses.
 */
export async function backupStream(repo: Repository, input: Readable, opts: StreamBackupOptions): Promise<Snapshot> {
  const parts = snapshotPathParts(opts.path);
  opts = { ...opts, path: `/${parts.join('/')}` };
  const lock = await acquireLock(repo.store, 'shared', `backup stream ${opts.path}`);
  try {
    repo.indexCacheDir ??= indexCacheDir(repo);
    await repo.loadIndex();
    await repo.indexOrphanPacks();
    return await run(repo, input, opts, parts, lock).catch((err: unknown) => {
      repo.resetIndex();
      throw err;
    });
  } finally {
    repo.releaseDiskIndex();
    await lock.release();
  }
}

async function run(repo: Repository, input: Readable, opts: StreamBackupOptions, parts: string[], lock: Pick<HeldLock, 'assertHeld'>): Promise<Snapshot> {
  const started = Date.now();
  if (opts.time) checkSnapshotTime(opts.time, started);
  const time = opts.time ?? new Date(started);
  // Packs are written to files, not held in memory (pack-writer.ts).
  return withPackWriter(repo, async (writer) => {
    const emit = throttleProgress(opts.onProgress);
    let bytes = 0;
    const content = await storeChunks(repo, writer, input, (n) => {
      bytes += n;
      emit({ phase: 'backup', files: 0, bytes, errors: 0 });
    });
    const rootTree = await saveTrees(repo, writer, parts, content, bytes, time);
    await writer.flush();
    const consistency = opts.beforeSnapshot ? await opts.beforeSnapshot() : undefined;
    const hostname = opts.hostname ?? os.hostname();
    const parent = await findParent(repo, hostname, opts);
    const manifest: SnapshotManifest = {
      version: 1,
      time: time.toISOString(),
      hostname,
      username: os.userInfo().username,
      paths: [opts.path],
      tags: opts.tags ?? [],
      excludes: [],
      tree: rootTree,
      ...(parent ? { parent: parent.id } : {}),
      source: opts.source,
      ...(consistency ? { consistency } : {}),
      summary: {
        filesNew: parent ? 0 : 1,
        filesChanged: parent ? 1 : 0,
        filesUnmodified: 0,
        dirs: parts.length - 1,
        totalBytes: bytes,
        totalFiles: 1,
        addedBytes: writer.stats.storedBytes,
        processedBytes: bytes,
        errors: 0,
        durationMs: Date.now() - started,
      },
      programVersion: PROGRAM_VERSION,
    };
    lock.assertHeld();
    const id = await repo.saveSnapshot(manifest);
    emit({ phase: 'done', files: 1, bytes, errors: 0 }, true);
    return { ...manifest, id };
  });
}

/**
 * Cuts the stream into content-defined chunks and stores each as a data blob;
 * returns their ids in order. `buf` is the only buffer: the chunker needs `max`
 * bytes to decide a cut, so it never holds more than that plus one read. Safe to run
 * for several streams at once on one writer (the bucket source does).
 */
export async function storeChunks(
  repo: Pick<Repository, 'key' | 'config'>,
  writer: Pick<PackWriter, 'addPlain'>,
  input: Readable,
  progressed: (n: number) => void,
  sizeHint?: number,
): Promise<string[]> {
  const cdc = new FastCDC(gearTable(repo.key.idKey), repo.config.chunker);
  const { max } = cdc.params;
  // A stream known to be small (an object of a listed size) starts with a buffer of
  // its size, so many small streams at once do not each hold 2 × max; it grows to
  // 2 × max if the stream turns out longer.
  let buf = Buffer.allocUnsafe(sizeHint !== undefined && sizeHint < 2 * max ? Math.max(1, sizeHint) : 2 * max);
  let fill = 0;
  const ids: string[] = [];
  const cutAndStore = async (eof: boolean): Promise<void> => {
    let start = 0;
    for (;;) {
      const end = cdc.cut(buf, start, fill, eof);
      if (end < 0 || end === start) break;
      // addPlain hashes and seals the bytes before it resolves, so the view may be reused after.
      ids.push((await writer.addPlain(BLOB_DATA, buf.subarray(start, end))).toString('hex'));
      progressed(end - start);
      start = end;
    }
    buf.copyWithin(0, start, fill);
    fill -= start;
  };
  for await (const piece of input as AsyncIterable<Buffer | string>) {
    const data = typeof piece === 'string' ? Buffer.from(piece) : piece;
    let off = 0;
    while (off < data.length) {
      if (fill === buf.length && buf.length < 2 * max) buf = Buffer.concat([buf.subarray(0, fill)], 2 * max);
      const n = Math.min(data.length - off, buf.length - fill);
      data.copy(buf, fill, off, off + n);
      fill += n;
      off += n;
      if (fill >= max) await cutAndStore(false);
    }
  }
  await cutAndStore(true);
  return ids;
}

/**
 * Writes the file's node and one tree per directory on its path, deepest first;
 * returns the root tree id. Directories are recorded as owned by whoever ran the
 * backup, mode 0700: a dump may hold every row of a database.
 */
async function saveTrees(repo: Repository, writer: PackWriter, parts: string[], content: string[], size: number, time: Date): Promise<string> {
  const ns = (BigInt(time.getTime()) * 1_000_000n).toString();
  const owner = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const meta = { ...owner, mtime: ns, ctime: ns, inode: '0', dev: '0' };
  let node: TreeNode = { name: parts[parts.length - 1] as string, type: 'file', mode: 0o600, nlink: 1, size, content, ...meta };
  for (let i = parts.length - 2; i >= -1; i--) {
    const subtree = await repo.saveTree(writer, { nodes: [node] });
    if (i < 0) return subtree;
    node = { name: parts[i] as string, type: 'dir', mode: 0o700, nlink: 2, subtree, ...meta };
  }
  throw new Error('unreachable');
}

/** The newest earlier snapshot of the same source and path, so `diff` can compare them. */
async function findParent(repo: Repository, hostname: string, opts: StreamBackupOptions): Promise<Snapshot | undefined> {
  const same = (s: Snapshot) =>
    s.hostname === hostname &&
    s.source.kind === opts.source.kind &&
    s.source.name === opts.source.name &&
    s.paths.length === 1 &&
    s.paths[0] === opts.path;
  return (await repo.listSnapshots()).reverse().find((s) => usableParent(s) && same(s));
}
