/**
 * `lifeboat copy`: chosen snapshots (and their log archives) from one repository to
 * another, for an offsite copy. Repositories have their own keys, so every blob is
 * opened with the source's key and sealed again with the destination's; the blob
 * boundaries of the source are kept (the destination deduplicates them against each
 * other, and against later copies, but not against its own backups of the same data,
 * which its own chunker cut elsewhere). A snapshot already copied (same `original`)
 * is skipped, so copy can run on a schedule.
 *
 * Memory: one blob at a time per tree level, and a set of trees already copied.
 */
import { LifeboatError } from '../../errors.js';
import { BLOB_DATA } from '../../repo/format.js';
import { acquireLock } from '../../repo/lock.js';
import type { PackWriter } from '../../repo/pack/pack-writer.js';
import { withPackWriter } from '../../repo/pack/spill.js';
import type { Repository } from '../../repo/repository.js';
import { pickSnapshot, type Snapshot, type SnapshotManifest } from '../../repo/snapshot/snapshot.js';
import type { Tree, TreeNode } from '../../repo/snapshot/tree.js';
import { findSourceKind } from '../../sources/registry.js';
import { copyGroupPoints, withPointSnapshots } from '../group/points-keep.js';
import { realLater, throttleProgress, type ProgressFn } from '../progress.js';

export interface CopyOptions {
  /** Snapshot ids (prefixes) or "latest"; empty: every snapshot. */
  snapshots: string[];
  onSnapshot?: (from: Snapshot, to: string | undefined) => void;
  /**
   * Files and bytes copied so far against the totals of the snapshots to copy (their
   * summaries); a subtree shared with one copied before counts at once. At most every
   * 100 ms, and once with phase 'done'.
   */
  onProgress?: ProgressFn;
}

export interface CopyResult {
  copied: Array<{ from: string; to: string }>;
  skipped: string[];
  logs: number;
  /** Consistency-group points stored in the destination (engine/group/points-keep.ts). */
  points: number;
  addedBytes: number;
}

export async function copySnapshots(from: Repository, to: Repository, opts: CopyOptions): Promise<CopyResult> {
  if (from.config.id === to.config.id) {
    throw new LifeboatError('USAGE', 'source and destination are the same repository', { hint: 'copy to another repository' });
  }
  const readLock = await acquireLock(from.store, 'shared', 'copy (source)');
  const writeLock = await acquireLock(to.store, 'shared', 'copy (destination)');
  const emit = throttleProgress(opts.onProgress, 100, Date.now, realLater);
  try {
    await from.loadIndex();
    await to.loadIndex();
    const all = await from.listSnapshots();
    // The snapshots a group point ties to a chosen one travel with it.
    const chosen = opts.snapshots.length === 0 ? all : await withPointSnapshots(from, all, opts.snapshots.map((ref) => pickSnapshot(all, ref)));
    const done = new Set((await to.listSnapshots()).map((s) => s.original ?? s.id));
    const result: CopyResult = { copied: [], skipped: [], logs: 0, points: 0, addedBytes: 0 };
    await withPackWriter(to, async (writer) => {
      const trees = new Map<string, CopiedTree>();
      const todo = chosen.filter((s) => !done.has(s.id));
      const progress: CopyProgress = {
        files: 0,
        bytes: 0,
        totalFiles: todo.reduce((n, s) => n + (s.summary?.totalFiles ?? 0), 0),
        totalBytes: todo.reduce((n, s) => n + (s.summary?.totalBytes ?? 0), 0),
        emit,
      };
      for (const snap of chosen) {
        if (done.has(snap.id)) {
          result.skipped.push(snap.id);
          opts.onSnapshot?.(snap, undefined);
          continue;
        }
        const { id: tree } = await copyTree(from, to, writer, snap.tree, trees, progress);
        await writer.flush();
        const { id: _old, ...manifest } = snap;
        const copy: SnapshotManifest = { ...manifest, tree, original: snap.id };
        // The source's lock only guards reads: a pack pruned there fails the copy (NOT_FOUND).
        writeLock.assertHeld();
        const id = await to.saveSnapshot(copy);
        result.copied.push({ from: snap.id, to: id });
        opts.onSnapshot?.(snap, id);
        done.add(snap.id);
      }
      await writer.flush();
      progress.emit({ phase: 'done', files: progress.files, bytes: progress.bytes, errors: 0 }, true);
      result.addedBytes = writer.stats.storedBytes;
    });
    result.logs = await copyLogs(from, to, chosen);
    result.points = await copyGroupPoints(from, to, chosen);
    return result;
  } finally {
    emit.cancel();
    await writeLock.release();
    await readLock.release();
  }
}

/** A tree copied: its id in the destination and the files and bytes below it (for progress). */
interface CopiedTree {
  id: string;
  files: number;
  bytes: number;
}

interface CopyProgress {
  files: number;
  bytes: number;
  totalFiles: number;
  totalBytes: number;
  emit: ReturnType<typeof throttleProgress>;
}

function advance(p: CopyProgress, files: number, bytes: number): void {
  p.files += files;
  p.bytes += bytes;
  p.emit({ phase: 'copy', files: p.files, bytes: p.bytes, totalFiles: p.totalFiles, totalBytes: p.totalBytes, errors: 0 });
}

/** Re-seals a tree and everything under it; returns its id in the destination. */
async function copyTree(from: Repository, to: Repository, writer: PackWriter, id: string, trees: Map<string, CopiedTree>, progress: CopyProgress): Promise<CopiedTree> {
  const known = trees.get(id);
  if (known) {
    // Copied before (in this snapshot or an earlier one): as much done at once.
    advance(progress, known.files, known.bytes);
    return known;
  }
  const tree: Tree = await from.loadTree(id);
  const nodes: TreeNode[] = [];
  let files = 0;
  let bytes = 0;
  for (const node of tree.nodes) {
    if (node.type === 'dir' && node.subtree) {
      const sub = await copyTree(from, to, writer, node.subtree, trees, progress);
      files += sub.files;
      bytes += sub.bytes;
      nodes.push({ ...node, subtree: sub.id });
    } else if (node.content) {
      const content: string[] = [];
      for (const hex of node.content) {
        const plain = await from.loadBlob(Buffer.from(hex, 'hex'));
        content.push((await writer.addPlain(BLOB_DATA, plain)).toString('hex'));
        advance(progress, 0, plain.length);
      }
      advance(progress, 1, 0);
      files++;
      bytes += node.size ?? 0;
      nodes.push({ ...node, content });
    } else nodes.push(node);
  }
  const copied: CopiedTree = { id: await to.saveTree(writer, { nodes }), files, bytes };
  trees.set(id, copied);
  return copied;
}

/**
 * Log archives of the sources among the snapshots whose kind has one (WAL segments,
 * SQLite log segments), so a copied base backup can still be brought to any moment.
 */
async function copyLogs(from: Repository, to: Repository, snaps: Snapshot[]): Promise<number> {
  const sources = new Set<string>();
  for (const s of snaps) {
    // Each kind with a log names the log sources a copy must carry.
    const log = findSourceKind(s.source.kind)?.log;
    if (log && s.source.name) for (const source of log.sources(s.source.name)) sources.add(source);
  }
  let n = 0;
  for (const source of sources) {
    // An object gone between the listing and its read was merged into a larger one by
    // compaction (written before its parts were deleted, and after the listing) or
    // deleted by retention: a fresh listing finds the merged one, or nothing missing.
    // Skipping it silently would leave the copy's history with a gap. A listing taken
    // while compaction ran can also miss both a part and the merged object without any
    // read failing, so there is always a second pass: what was written before it began
    // is in its listing.
    for (let pass = 0; ; pass++) {
      const have = new Set((await to.listLogs(source)).map((l) => `${l.timeline}/${l.file}`));
      let vanished = 0;
      for (const l of await from.listLogs(source)) {
        if (have.has(`${l.timeline}/${l.file}`)) continue;
        const data = await from.getLog(source, l.timeline, l.file);
        if (!data) {
          vanished++;
          continue;
        }
        if ((await to.putLog(source, l.timeline, l.file, data)) === 'stored') n++;
      }
      if (vanished === 0 && pass >= 1) break;
      if (pass >= 4) {
        throw new LifeboatError('BUSY', `log objects of ${source} kept vanishing while they were copied (compaction or retention in the source repository); the copy's log may have a gap`, {
          hint: 'run the copy again: it copies only what the destination lacks',
        });
      }
    }
  }
  return n;
}
