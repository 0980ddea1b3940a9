/**
 * The prune use case, as `lifeboat prune` and `forget --prune` run it: under a shared
 * lock, mark what no snapshot references and delete what earlier runs marked
 * (repo/maintenance/prune.ts), optionally re-seal data of older key epochs
 * (repo/maintenance/reseal.ts), then trim the log archives to the snapshots that
 * remain (engine/retention/logs.ts). The caller renders the result; nothing here prints.
 */
import { trimLogs, type LogTrim } from './retention/logs.js';
import { trimGroupPoints, type PointTrim } from './group/points-keep.js';
import { acquireLock, isStale, readLocks } from '../repo/lock.js';
import type { Warn } from '../repo/keyring.js';
import { assertPrunable, prune, type PruneResult } from '../repo/maintenance/prune.js';
import { reseal, type ResealResult } from '../repo/maintenance/reseal.js';
import type { Repository } from '../repo/repository.js';

export interface PruneRepositoryOptions {
  /** How long marked data waits before deletion; covers clock skew between hosts. */
  graceMs: number;
  /** Packs with at least this share (0..1) of unreferenced data are repacked. */
  repackThreshold: number;
  dryRun: boolean;
  /** Re-seal data of older key epochs under the current one and destroy unused epochs. */
  reseal: boolean;
  /** Keep WAL / SQLite frames replayable only this far back (ms); unset: as far as the snapshots need. */
  pitrWindowMs?: number;
  /** Called for what an operator should hear about while re-sealing. */
  warn?: Warn;
}

export interface PruneRepositoryResult extends PruneResult {
  logs: LogTrim[];
  /** Consistency-group points dropped with the data they needed (engine/group/points-keep.ts). */
  points: PointTrim[];
  reseal?: ResealResult;
}

/**
 * Prunes the repository and trims its log archives. Not idempotent in effect (each run
 * advances the mark-then-delete cycle, docs/prune.md) but always safe to run again.
 * Fails with the lock's error when an exclusive lock is held, and with assertPrunable's
 * when the repository may not be pruned (append-only, write-only key).
 */
export async function pruneRepository(repo: Repository, opts: PruneRepositoryOptions): Promise<PruneRepositoryResult> {
  const { graceMs, repackThreshold, dryRun } = opts;
  assertPrunable(repo);
  const lock = await acquireLock(repo.store, 'shared', 'prune');
  try {
    let r = await prune(repo, { graceMs, repackThreshold, dryRun, lock });
    let resealed: ResealResult | undefined;
    if (opts.reseal) {
      const warn = opts.warn ? { warn: opts.warn } : {};
      resealed = await reseal(repo, { graceMs, dryRun, ...warn });
      // With no grace the old packs can go at once: a second pass sweeps their list and
      // a second re-seal then finds their epochs unused and destroys them.
      if (graceMs === 0 && !dryRun && resealed.packs > 0) {
        const again = await prune(repo, { graceMs, repackThreshold, dryRun, lock });
        r = { ...again, retired: r.retired + again.retired, repacked: r.repacked + again.repacked, deleted: r.deleted + again.deleted, deletedBytes: r.deletedBytes + again.deletedBytes, swept: r.swept + again.swept };
        const second = await reseal(repo, { graceMs, dryRun, ...warn });
        resealed = { ...second, packs: resealed.packs, blobs: resealed.blobs, objects: resealed.objects + second.objects };
      }
    }
    // Log archives follow the snapshots that remain (docs/prune.md).
    const { snapshots: snaps, damaged } = await repo.scanSnapshots();
    for (const d of damaged) repo.onWarning(`${d.key} skipped: ${d.error}`);
    const busy = (await readLocks(repo.store)).some((l) => l.id !== lock.id && !isStale(l.record));
    const logs = await trimLogs(repo, snaps, snaps, { dryRun, busy, damaged, ...(opts.pitrWindowMs !== undefined ? { pitrWindowMs: opts.pitrWindowMs } : {}) });
    const points = await trimGroupPoints(repo, { dryRun, ...(opts.pitrWindowMs !== undefined ? { pitrWindowMs: opts.pitrWindowMs } : {}) });
    return { ...r, logs, points, ...(resealed ? { reseal: resealed } : {}) };
  } finally {
    await lock.release();
  }
}
