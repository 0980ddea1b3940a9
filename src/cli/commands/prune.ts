/**
 * lifeboat prune — removes data no snapshot references, without stopping backups:
 * marks what is dead now, and deletes what an earlier run marked once it is safe
 * (docs/prune.md).
 */
import type { Command } from 'commander';
import { trimLogs, type LogTrim } from '../../engine/retention/logs.js';
import { acquireLock, isStale, readLocks } from '../../repo/lock.js';
import { assertPrunable, prune, type PruneResult } from '../../repo/maintenance/prune.js';
import type { Repository } from '../../repo/repository.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { parseDuration } from './options.js';

export interface PruneFlags {
  keepLogsWithin?: string;
  grace: string;
  repackThreshold: string;
  dryRun?: boolean;
}

export function register(program: Command): void {
  program
    .command('prune')
    .description('remove data no snapshot references (backups may keep running)')
    .option('--grace <duration>', 'how long marked data waits before deletion; covers clock skew between hosts', '1h')
    .option('--repack-threshold <percent>', 'repack packs with at least this share of unreferenced data', '50')
    .option('--dry-run', 'only report what would be marked and deleted')
    .option('--keep-logs-within <duration>', 'keep WAL/SQLite frames replayable only this far back (e.g. 7d)')
    .action(async (f: PruneFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const r = await pruneAndReport(repo, g, f);
        if (g.json) printJson(r);
      });
    });
}

/**
 * Prunes and trims log archives under a shared lock; prints the outcome unless the
 * output is JSON (then the caller prints what this returns). Also run by `forget --prune`.
 */
export async function pruneAndReport(repo: Repository, g: GlobalOptions, f: Partial<PruneFlags>): Promise<PruneResult & { logs: LogTrim[] }> {
  const graceMs = f.grace === undefined ? 3_600_000 : f.grace === '0' ? 0 : parseDuration(f.grace, '--grace');
  const threshold = Number(f.repackThreshold ?? '50') / 100;
  const pitr = f.keepLogsWithin === undefined ? undefined : parseDuration(f.keepLogsWithin, '--keep-logs-within');
  const dryRun = f.dryRun ?? false;
  assertPrunable(repo);
  const lock = await acquireLock(repo.store, 'shared', 'prune');
  try {
    const r = await prune(repo, { graceMs, repackThreshold: threshold, dryRun, lock });
    // Log archives follow the snapshots that remain (docs/prune.md).
    const snaps = await repo.listSnapshots();
    const busy = (await readLocks(repo.store)).some((l) => l.id !== lock.id && !isStale(l.record));
    const logs = await trimLogs(repo, snaps, snaps, { dryRun, busy, ...(pitr !== undefined ? { pitrWindowMs: pitr } : {}) });
    if (!g.json && !g.quiet) {
      console.log(`${r.snapshots} snapshots reference ${r.liveBlobs} of ${r.blobs} blobs`);
      console.log(`${dryRun ? 'would delete' : 'deleted'} ${r.deleted} packs (${formatBytes(r.deletedBytes)}) marked by earlier runs`);
      console.log(`${dryRun ? 'would mark' : 'marked'} ${r.retired} packs for deletion (${r.repacked} repacked first); a later prune deletes them`);
      for (const w of r.waiting) console.log(`waiting: ${w.key}: ${w.reason}`);
      if (r.sweepSkipped) console.log(`not swept this time: ${r.sweepSkipped}`);
      for (const s of r.spared) console.log(`kept ${s.pack.slice(0, 16)}: ${s.reason}`);
      for (const t of logs) {
        if (t.skipped) console.log(`${t.kind} ${t.source}: ${t.skipped}`);
        else if (t.removed > 0) console.log(`${t.kind} ${t.source}: ${dryRun ? 'would remove' : 'removed'} ${t.removed} log file(s); replayable from ${t.keptFrom}`);
      }
    }
    return { ...r, logs };
  } finally {
    await lock.release();
  }
}
