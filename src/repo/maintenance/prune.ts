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
 *     backup may still reference its packs). One prune sweeps at a time (sweep-lock.ts).
 *     A pack on the list is deleted only when every blob its own header lists that a
 *     snapshot needs has a verified surviving copy elsewhere (sweep.ts: the index is
 *     never trusted for this); index files are rewritten without it first.
 *
 * Crash safety: new packs and their index before the list; index files rewritten
 * before any pack is deleted; the list deleted last. A crash leaves at worst packs no
 * index names, which the next backup re-indexes and the next prune retires again.
 */
import * as os from 'node:os';
import { LifeboatError } from '../../errors.js';
import { BLOB_DATA, BLOB_TREE, keys } from '../format.js';
import { readLocks, isStale, type HeldLock } from '../lock.js';
import type { Repository } from '../repository.js';
import type { BlobIndex } from '../index/blob-index.js';
import { withPackWriter } from '../pack/spill.js';
import { acquireSweepLock, SWEEP_LOCK_ID, type SweepLock } from './sweep-lock.js';
import { dropFromIndexFiles, SweepPlanner } from './sweep.js';

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
  /** Packs on swept lists that were kept (a live blob's surviving copy, or an unreadable header). */
  spared: Array<{ pack: string; reason: string }>;
  /** Why this run did not sweep lists that were due (another prune was sweeping). */
  sweepSkipped?: string;
}

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const now = opts.now ?? Date.now;
  const graceMs = opts.graceMs ?? 3_600_000;
  const threshold = opts.repackThreshold ?? 0.5;
  // The order is what makes the sweep safe (docs/prune.md): lists, then locks, then
  // snapshots. A process that loaded the index before a list existed either still
  // holds its lock when the locks are read, or has ended, and then its snapshot was
  // stored before the snapshots are listed, so its blobs are marked.
  const lists = (await repo.listRetiring()).filter((l) => l.trusted !== false);
  await repo.loadIndex(lists);
  const locksAt = now();
  const locks = (await readLocks(repo.store)).filter((l) => l.id !== opts.lock?.id && l.id !== SWEEP_LOCK_ID && !isStale(l.record, locksAt));
  const snapshots = await repo.listSnapshots();
  const index = repo.index;
  const unindexed = await markAll(repo, snapshots.map((s) => s.tree), opts);
  const isLive = (id: Buffer) => index.isMarkedId(id) || unindexed.has(id.toString('hex'));

  // Live and dead bytes per pack. A blob counts as live in its primary copy only;
  // its other copies are dead weight, so a pack of duplicates is retired.
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
  index.forEachAlternate((loc) => (dead[loc.packIndex] = (dead[loc.packIndex] ?? 0) + loc.length));

  const result: PruneResult = { snapshots: snapshots.length, blobs: index.size, liveBlobs, retired: 0, repacked: 0, deleted: 0, deletedBytes: 0, swept: 0, waiting: [], spared: [] };

  // ---- sweep lists from earlier runs -----------------------------------------
  const candidates = new Set<string>();
  const sweepable: string[] = [];
  for (const list of lists) {
    const markedAt = Date.parse(list.time);
    if (locksAt - markedAt < graceMs) {
      result.waiting.push({ key: list.key, reason: `marked ${Math.round((locksAt - markedAt) / 1000)} s ago; waits ${Math.round(graceMs / 1000)} s` });
      continue;
    }
    const older = locks.find((l) => Date.parse(l.record.time) <= markedAt + graceMs);
    if (older) {
      result.waiting.push({ key: list.key, reason: `"${older.record.command}" (${older.record.hostname} pid ${older.record.pid}) started before it was safe` });
      continue;
    }
    for (const hex of list.packs) candidates.add(hex);
    sweepable.push(list.key);
  }
  const swept = new Set<string>();
  if (sweepable.length > 0 && opts.dryRun) {
    const plan = await new SweepPlanner(repo, isLive).plan(candidates);
    result.deleted = plan.doomed.size;
    for (const [pack, reason] of plan.spared) result.spared.push({ pack, reason });
    for (const [hex] of plan.doomed) swept.add(hex);
  } else if (sweepable.length > 0) {
    const lock = await acquireSweepLock(repo.store, 'prune sweep');
    if ('busy' in lock) {
      result.sweepSkipped = lock.busy;
    } else {
      try {
        await sweep(repo, lock, new SweepPlanner(repo, isLive), candidates, sweepable, result);
        for (const hex of candidates) swept.add(hex);
      } finally {
        await lock.release();
      }
    }
  }

  // ---- mark this run's retiring list -----------------------------------------
  const retire: string[] = [];
  const repack: number[] = [];
  for (let h = 0; h < packs; h++) {
    const hex = index.packId(h).toString('hex');
    if (swept.has(hex) || index.isRetiring(h) || !index.hasPack(hex)) continue;
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
    if (!(await saveRetiring(repo, retire, graceMs, now, opts.lock?.id))) result.waiting.push({ key: 'new list', reason: 'withdrawn: a process started while it was being stored; the next run marks again' });
  }
  result.retired = retire.length;
  return result;
}

/**
 * Marks every blob the snapshots reference; returns the referenced data blobs that
 * are in no index (they still count as live: a pack whose header lists one keeps it).
 * Loading a tree may load index files written since (its pack was pruned under us),
 * which can grow the table and drop the marks: then the marking starts again.
 */
async function markAll(repo: Repository, trees: string[], opts: PruneOptions): Promise<Set<string>> {
  for (let attempt = 0; ; attempt++) {
    repo.index.clearMarks();
    const unindexed = new Set<string>();
    try {
      let walked = 0;
      for (const t of trees) {
        await markTree(repo, unindexed, t);
        opts.onProgress?.('mark', ++walked, trees.length);
      }
      if (repo.index.hasMarks) return unindexed;
    } catch (err) {
      if (repo.index.hasMarks || attempt >= 2) throw err;
    }
    if (attempt >= 2) throw new Error('blob index: marks were cleared by a resize three times');
  }
}

async function markTree(repo: Repository, unindexed: Set<string>, treeHex: string): Promise<void> {
  const index = repo.index;
  const id = Buffer.from(treeHex, 'hex');
  if (!index.mark(id)) return; // a shared subtree, walked before
  const tree = await repo.loadTree(treeHex);
  for (const node of tree.nodes) {
    for (const c of node.content ?? []) {
      const blob = Buffer.from(c, 'hex');
      if (index.mark(blob) && !index.isMarkedId(blob)) unindexed.add(c);
    }
    if (node.subtree) await markTree(repo, unindexed, node.subtree);
  }
}

/**
 * Deletes what the plan dooms, under the sweep lock: index files first, then packs
 * (each after checking again that the surviving copies of its live blobs are still
 * stored), then the lists. Deleting what is already gone is not an error.
 */
async function sweep(repo: Repository, lock: SweepLock, planner: SweepPlanner, candidates: Set<string>, lists: string[], result: PruneResult): Promise<void> {
  const plan = await planner.plan(candidates);
  for (const [pack, reason] of plan.spared) result.spared.push({ pack, reason });
  const lost = () => new LifeboatError('LOCKED', 'prune: another prune took over the sweep lock; stopped sweeping', { hint: 'run prune again later' });
  if (!(await lock.held())) throw lost();
  await dropFromIndexFiles(repo, new Set(plan.doomed.keys()));
  for (const [hex, survivors] of plan.doomed) {
    if (!(await lock.held())) throw lost();
    let kept = false;
    for (const s of survivors) {
      if (!(await repo.store.stat(keys.pack(s)))) {
        kept = true;
        result.spared.push({ pack: hex, reason: `the surviving copy in ${s.slice(0, 16)} is gone` });
        break;
      }
    }
    if (kept) continue;
    await repo.store.delete(keys.pack(hex));
    result.deleted++;
    result.deletedBytes += plan.sizes.get(hex) ?? 0;
  }
  for (const key of lists) await repo.store.delete(key);
  result.swept = lists.length;
}

/**
 * Stores a retiring list and checks that no process could have missed it: one whose
 * lock is later than the list's time plus the grace (so it does not block the sweep)
 * yet earlier than the moment the list was certainly stored may have loaded the index
 * without it. Such a list is withdrawn (deleted; our own lock keeps any sweep off it
 * meanwhile) and the next run marks again. Returns whether the list stands.
 */
async function saveRetiring(repo: Repository, packs: string[], graceMs: number, now: () => number, ownLock: string | undefined): Promise<boolean> {
  const markedAt = now();
  const key = await repo.saveRetiring({ time: new Date(markedAt).toISOString(), hostname: os.hostname(), packs });
  const storedAt = now();
  const missed = (await readLocks(repo.store)).some((l) => {
    const t = Date.parse(l.record.time);
    return l.id !== ownLock && l.id !== SWEEP_LOCK_ID && !isStale(l.record, storedAt) && t > markedAt + graceMs && t <= storedAt + graceMs;
  });
  if (missed) await repo.store.delete(key);
  return !missed;
}

async function repackLive(repo: Repository, index: BlobIndex, packs: Set<number>): Promise<number> {
  const todo: Array<{ id: Buffer; type: number }> = [];
  index.forEachSlot((slot, loc, id) => {
    if (packs.has(loc.packIndex) && index.isMarked(slot)) todo.push({ id: Buffer.from(id), type: loc.type });
  });
  for (const p of packs) index.retirePack(index.packId(p).toString('hex'));
  await withPackWriter(repo, async (writer) => {
    for (const b of todo) {
      const plain = await repo.loadBlob(b.id);
      await writer.addPlain(b.type === BLOB_TREE ? BLOB_TREE : BLOB_DATA, plain);
    }
    await writer.flush();
  });
  return packs.size;
}

export function assertPrunable(repo: Repository): void {
  if (repo.appendOnly) {
    throw new LifeboatError('PERMISSION', `append-only: ${repo.store.location} refuses prune`, {
      hint: 'this client may only add; run prune with a key that is not append-only',
    });
  }
}

