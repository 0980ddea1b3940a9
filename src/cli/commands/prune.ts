/**
 * lifeboat prune — removes data no snapshot references, without stopping backups:
 * marks what is dead now, and deletes what an earlier run marked once it is safe
 * (docs/prune.md).
 */
import type { Command } from 'commander';
import { trimLogs } from '../../engine/retention/logs.js';
import { acquireLock, isStale, readLocks } from '../../repo/lock.js';
import { assertPrunable, prune } from '../../repo/maintenance/prune.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { parseDuration } from './sqlite.js';

interface PruneFlags {
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
      const graceMs = f.grace === '0' ? 0 : parseDuration(f.grace, '--grace');
      const threshold = Number(f.repackThreshold) / 100;
      await withRepo(g, async (repo) => {
        assertPrunable(repo);
        const lock = await acquireLock(repo.store, 'shared', 'prune');
        try {
          const r = await prune(repo, { graceMs, repackThreshold: threshold, dryRun: f.dryRun ?? false, lock });
          // Log archives follow the snapshots that remain (docs/prune.md).
          const snaps = await repo.listSnapshots();
          const busy = (await readLocks(repo.store)).some((l) => l.id !== lock.id && !isStale(l.record));
          const pitr = f.keepLogsWithin === undefined ? undefined : parseDuration(f.keepLogsWithin, '--keep-logs-within');
          const logs = await trimLogs(repo, snaps, snaps, { dryRun: f.dryRun ?? false, busy, ...(pitr !== undefined ? { pitrWindowMs: pitr } : {}) });
          if (g.json) return printJson({ ...r, logs });
          for (const t of logs) {
            if (t.skipped) console.log(`${t.kind} ${t.source}: ${t.skipped}`);
            else if (t.removed > 0) console.log(`${t.kind} ${t.source}: ${f.dryRun ? 'would remove' : 'removed'} ${t.removed} log file(s); replayable from ${t.keptFrom}`);
          }
          if (g.quiet) return;
          console.log(`${r.snapshots} snapshots reference ${r.liveBlobs} of ${r.blobs} blobs`);
          console.log(`${f.dryRun ? 'would delete' : 'deleted'} ${r.deleted} packs (${formatBytes(r.deletedBytes)}) marked by earlier runs`);
          console.log(`${f.dryRun ? 'would mark' : 'marked'} ${r.retired} packs for deletion (${r.repacked} repacked first); a later prune deletes them`);
          for (const w of r.waiting) console.log(`waiting: ${w.key}: ${w.reason}`);
        } finally {
          await lock.release();
        }
      });
    });
}
