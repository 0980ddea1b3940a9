/**
 * lifeboat prune — removes data no snapshot references, without stopping backups:
 * marks what is dead now, and deletes what an earlier run marked once it is safe
 * (docs/prune.md).
 */
import type { Command } from 'commander';
import { acquireLock } from '../../repo/lock.js';
import { assertPrunable, prune } from '../../repo/maintenance/prune.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { parseDuration } from './sqlite.js';

interface PruneFlags {
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
    .action(async (f: PruneFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const graceMs = f.grace === '0' ? 0 : parseDuration(f.grace, '--grace');
      const threshold = Number(f.repackThreshold) / 100;
      await withRepo(g, async (repo) => {
        assertPrunable(repo);
        const lock = await acquireLock(repo.store, 'shared', 'prune');
        try {
          const r = await prune(repo, { graceMs, repackThreshold: threshold, dryRun: f.dryRun ?? false, lock });
          if (g.json) return printJson(r);
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
