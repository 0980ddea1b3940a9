/**
 * lifeboat prune — removes data no snapshot references, without stopping backups:
 * marks what is dead now, and deletes what an earlier run marked once it is safe
 * (docs/prune.md). A thin shell: parses the flags, opens the repository, calls
 * engine/prune.ts and renders its result.
 */
import type { Command } from 'commander';
import { pruneRepository, type PruneRepositoryResult } from '../../engine/prune.js';
import type { Repository } from '../../repo/repository.js';
import { formatBytes } from '../../util/bytes.js';
import { cliWarn, withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { flagOf, parseDuration } from './options.js';
import { retentionOptions } from '../../config/model.js';
import { durationMs, type Duration } from '../../util/duration.js';

export interface PruneFlags {
  keepLogsWithin?: Duration;
  grace: string;
  repackThreshold: string;
  dryRun?: boolean;
  reseal?: boolean;
}

export function register(program: Command): void {
  program
    .command('prune')
    .description('remove data no snapshot references (backups may keep running)')
    .option('--grace <duration>', 'how long marked data waits before deletion; covers clock skew between hosts', '1h')
    .option('--repack-threshold <percent>', 'repack packs with at least this share of unreferenced data', '50')
    .option('--dry-run', 'only report what would be marked and deleted')
    .option('--reseal', 're-seal data of older key epochs under the current one, then destroy the old epochs (format 2; after `key rotate` or `key remove`)')
    .addOption(flagOf(retentionOptions().shape.keep_logs_within))
    .action(async (f: PruneFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const r = await pruneAndReport(repo, g, f);
        if (g.json) printJson(r);
      });
    });
}

/**
 * Prunes and trims log archives (engine/prune.ts); prints the outcome unless the
 * output is JSON (then the caller prints what this returns). Also run by `forget --prune`.
 */
export async function pruneAndReport(repo: Repository, g: GlobalOptions, f: Partial<PruneFlags>): Promise<PruneRepositoryResult> {
  const graceMs = f.grace === undefined ? 3_600_000 : parseDuration(f.grace, '--grace', { zero: true });
  const pitr = f.keepLogsWithin === undefined ? undefined : durationMs(f.keepLogsWithin);
  const r = await pruneRepository(repo, {
    graceMs,
    repackThreshold: Number(f.repackThreshold ?? '50') / 100,
    dryRun: f.dryRun ?? false,
    reseal: f.reseal ?? false,
    warn: cliWarn,
    ...(pitr !== undefined ? { pitrWindowMs: pitr } : {}),
  });
  if (!g.json && !g.quiet) printPrune(r, f.dryRun ?? false);
  return r;
}

function printPrune(r: PruneRepositoryResult, dryRun: boolean): void {
  console.log(`${r.snapshots} snapshots reference ${r.liveBlobs} of ${r.blobs} blobs`);
  console.log(`${dryRun ? 'would delete' : 'deleted'} ${r.deleted} packs (${formatBytes(r.deletedBytes)}) marked by earlier runs`);
  console.log(`${dryRun ? 'would mark' : 'marked'} ${r.retired} packs for deletion (${r.repacked} repacked first); a later prune deletes them`);
  for (const w of r.waiting) console.log(`waiting: ${w.key}: ${w.reason}`);
  const resealed = r.reseal;
  if (resealed) {
    console.log(`re-sealed ${resealed.blobs} blobs of ${resealed.packs} packs and ${resealed.objects} other objects under the current key epoch`);
    if (resealed.droppedSessions.length > 0) console.log(`deleted the session keys ${resealed.droppedSessions.join(', ')} of write-only clients: nothing sealed under them remains`);
    if (resealed.droppedEpochs.length > 0) console.log(`destroyed key epochs ${resealed.droppedEpochs.join(', ')}: nothing sealed under them remains`);
    const left = Object.entries(resealed.remaining);
    if (left.length > 0) console.log(`still sealed under older epochs: ${left.map(([e, n]) => `${n} object(s) of epoch ${e}`).join(', ')}; a later prune deletes the old packs, the next \`prune --reseal\` destroys the epochs`);
    if (resealed.kept) console.log(`older epochs kept: ${resealed.kept}`);
  }
  if (r.sweepSkipped) console.log(`not swept this time: ${r.sweepSkipped}`);
  for (const s of r.spared) console.log(`kept ${s.pack.slice(0, 16)}: ${s.reason}`);
  for (const t of r.logs) {
    if (t.skipped) console.log(`${t.kind} ${t.source}: ${t.skipped}`);
    else if (t.removed > 0) console.log(`${t.kind} ${t.source}: ${dryRun ? 'would remove' : 'removed'} ${t.removed} log file(s); replayable from ${t.keptFrom}`);
  }
  for (const t of r.points) console.log(`group ${t.group}: ${dryRun ? 'would drop' : 'dropped'} ${t.removed.length} point(s) whose data is gone (${t.removed[0]?.reason ?? ''}${t.removed.length > 1 ? ', ...' : ''}); ${t.kept} kept`);
}
