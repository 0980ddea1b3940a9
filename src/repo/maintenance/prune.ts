/**
 * prune: removes data no snapshot references, while backups keep running (a shared
 * lock, never an exclusive one). Two phases, kopia's idea of marking then deleting
 * after a margin; the reasoning and the clock assumptions are in docs/prune.md.
 *
 *  1. Mark. Every snapshot's trees are walked and their blobs marked in a bitmap over
 *     the index's slots (one bit per blob, so a million blobs cost 128 KiB plus the
 *     index itself). Packs with no live blob, and packs mostly dead (whose live blobs
 *     are first copied into new packs), are written to a retiring list. From then on
 *     backups do not deduplicate against those packs, so nothing new depends on them.
 *  2. Sweep, on a later run. A retiring list is swept once it is older than the
 *     grace period and no lock is left from a process that started before it (such a
 *     backup may still reference its packs). The packs on it that the marks of this
 *     run still find dead are removed from the index files first, then deleted.
 *
 * Crash safety: new packs and their index before the list; index files rewritten
 * before any pack is deleted; the list deleted last. A crash leaves at worst packs no
 * index names, which the next backup re-indexes and the next prune retires again.
 */
import * as os from 'node:os';
import { LifeboatError, isLifeboatError } from '../../errors.js';
import { BLOB_DATA, BLOB_TREE, keys } from '../format.js';
import { readLocks, isStale, type HeldLock } from '../lock.js';
import type { Repository } from '../repository.js';
import type { BlobIndex } from '../index/blob-index.js';
import { listAll } from '../../storage/store.js';

export interface PruneOptions {
  /** How long a retiring list waits before it is swept (default 1 h); covers clock skew between hosts. */
  graceMs?: number;
  /** Packs whose dead share is at least this are repacked (0..1, default 0.5). */
  repackThreshold?: number;
  dryRun?: boolean;
  /** The caller's own lock, not counted as a process that could block the sweep. */
  lock?: HeldLock;
  now?: () => number;
  onProgress?: (phase: string, done: number, total: number) => void;
}

export interface PruneResult {
  snapshots: number;
  blobs: number;
  liveBlobs: number;
  /** Packs put on a new retiring list by this run, and repacked ones among them. */
  retired: number;
  repacked: number;
  /** Packs deleted by this run's sweep, the bytes they held, and lists swept or still waiting. */
  deleted: number;
  deletedBytes: number;
  swept: number;
  waiting: Array<{ key: string; reason: string }>;
}

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const now = opts.now ?? Date.now;
  const graceMs = opts.graceMs ?? 3_600_000;
  const threshold = opts.repackThreshold ?? 0.5;
  await repo.loadIndex();
  const index = repo.index;
  index.clearMarks();
  const snapshots = await repo.listSnapshots();
  let walked = 0;
  for (const s of snapshots) {
    await markTree(repo, index, s.tree);
    opts.onProgress?.('mark', ++walked, snapshots.length);
  }

  // Live and dead bytes per pack.
  const packs = index.packCount;
  const live = new Float64Array(packs);
  const dead = new Float64Array(packs);
  let liveBlobs = 0;
  index.forEachSlot((slot, loc) => {
    if (index.isMarked(slot)) {
      live[loc.packIndex] = (live[loc.packIndex] ?? 0) + loc.length;
      liveBlobs++;
    } else dead[loc.packIndex] = (dead[loc.packIndex] ?? 0) + loc.length;
  });

  const result: PruneResult = { snapshots: snapshots.length, blobs: index.size, liveBlobs, retired: 0, repacked: 0, deleted: 0, deletedBytes: 0, swept: 0, waiting: [] };

  // ---- sweep lists from earlier runs -----------------------------------------
  const lists = await repo.listRetiring();
  const locks = (await readLocks(repo.store)).filter((l) => l.id !== opts.lock?.id && !isStale(l.record, now()));
  const doomed = new Set<string>();
  const sweepable: string[] = [];
  for (const list of lists) {
    const markedAt = Date.parse(list.time);
    if (now() - markedAt < graceMs) {
      result.waiting.push({ key: list.key, reason: `marked ${Math.round((now() - markedAt) / 1000)} s ago; waits ${Math.round(graceMs / 1000)} s` });
      continue;
    }
    const older = locks.find((l) => Date.parse(l.record.time) <= markedAt + graceMs);
    if (older) {
      result.waiting.push({ key: list.key, reason: `"${older.record.command}" (${older.record.hostname} pid ${older.record.pid}) started before it was safe` });
      continue;
    }
    for (const hex of list.packs) {
      const handle = index.packHandle(hex);
      // Spared when a snapshot written since the marking references it.
      if (handle !== undefined && (live[handle] ?? 0) > 0) continue;
      doomed.add(hex);
    }
    sweepable.push(list.key);
  }
  if (!opts.dryRun && sweepable.length > 0) {
    await dropFromIndexFiles(repo, doomed);
    for (const hex of doomed) {
      const key = keys.pack(hex);
      const info = await repo.store.stat(key);
      await repo.store.delete(key);
      result.deleted++;
      result.deletedBytes += info?.size ?? 0;
    }
    for (const key of sweepable) await repo.store.delete(key);
  } else {
    result.deleted = doomed.size;
  }
  result.swept = sweepable.length;

  // ---- mark this run's retiring list -----------------------------------------
  const alreadyRetiring = new Set(lists.flatMap((l) => l.packs));
  const retire: string[] = [];
  const repack: number[] = [];
  for (let h = 0; h < packs; h++) {
    const hex = index.packId(h).toString('hex');
    if (doomed.has(hex) || alreadyRetiring.has(hex)) continue;
    const l = live[h] ?? 0;
    const d = dead[h] ?? 0;
    if (d === 0) continue;
    if (l === 0) retire.push(hex);
    else if (d / (l + d) >= threshold) {
      repack.push(h);
      retire.push(hex);
    }
  }
  if (!opts.dryRun && repack.length > 0) result.repacked = await repackLive(repo, index, new Set(repack));
  else result.repacked = repack.length;
  if (!opts.dryRun && retire.length > 0) {
    await repo.saveRetiring({ time: new Date(now()).toISOString(), hostname: os.hostname(), packs: retire });
  }
  result.retired = retire.length;
  return result;
}

async function markTree(repo: Repository, index: BlobIndex, treeHex: string): Promise<void> {
  const id = Buffer.from(treeHex, 'hex');
  if (!index.mark(id)) return; // a shared subtree, walked before
  const tree = await repo.loadTree(treeHex);
  for (const node of tree.nodes) {
    for (const c of node.content ?? []) index.mark(Buffer.from(c, 'hex'));
    if (node.subtree) await markTree(repo, index, node.subtree);
  }
}

/** Copies the live blobs of `packs` into new packs (indexed as they are written). */
async function repackLive(repo: Repository, index: BlobIndex, packs: Set<number>): Promise<number> {
  const writer = repo.newPackWriter();
  const todo: Array<{ id: Buffer; type: number }> = [];
  index.forEachSlot((slot, loc, id) => {
    if (packs.has(loc.packIndex) && index.isMarked(slot)) todo.push({ id: Buffer.from(id), type: loc.type });
  });
  for (const p of packs) index.retirePack(index.packId(p).toString('hex'));
  for (const b of todo) {
    const plain = await repo.loadBlob(b.id);
    await writer.addPlain(b.type === BLOB_TREE ? BLOB_TREE : BLOB_DATA, plain);
  }
  await writer.flush();
  return packs.size;
}

/** Rewrites every index file that names a doomed pack without it; new file first, old one after. */
async function dropFromIndexFiles(repo: Repository, doomed: Set<string>): Promise<void> {
  for (const f of await listAll(repo.store, 'index/')) {
    let packs;
    try {
      packs = await repo.readIndexFile(f.key);
    } catch (err) {
      if (isLifeboatError(err, 'NOT_FOUND')) continue;
      throw err;
    }
    const kept = packs.filter((p) => !doomed.has(p.packId.toString('hex')));
    if (kept.length === packs.length) continue;
    await repo.writeIndex(kept);
    await repo.store.delete(f.key);
  }
}

export function assertPrunable(repo: Repository): void {
  if (repo.appendOnly) {
    throw new LifeboatError('PERMISSION', `append-only: ${repo.store.location} refuses prune`, {
      hint: 'this client may only add; run prune with a key that is not append-only',
    });
  }
}

