/**
 * lifeboat check: verifies the repository's structure, and optionally its data, and
 * warns about WAL timelines that are not production's. Those warnings leave the exit
 * code alone: it says whether stored data is whole, and a copy's timeline is
 * whole data that restores already ignore (docs/postgres.md, "Timelines").
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { check } from '../../repo/maintenance/check.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { progressFor, printJson } from '../output/render.js';
import { flagOf, parsePercent } from './options.js';
import { scheduleOptions } from '../../config/model.js';
import { sourceKinds } from '../../sources/registry.js';

export function register(program: Command): void {
  program
    .command('check')
    .description('verify the repository (structure; with --read-data also every pack)')
    .option('--read-data', 'read and authenticate all data')
    .addOption(flagOf(scheduleOptions().shape.read_data_subset, { arg: '<percent>', description: 'read and authenticate a share of the packs, e.g. 10%' }))
    .action(async (flags: { readData?: boolean; readDataSubset?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const subset = flags.readDataSubset === undefined ? undefined : parsePercent(flags.readDataSubset);
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        const r = await check(repo, {
          ...(flags.readData ? { readData: true } : {}),
          ...(subset !== undefined ? { readDataSubset: subset } : {}),
          onProgress: bar.update,
        }).finally(() => bar.done());
        // A repository too damaged to list snapshots has its problems reported above.
        const warnings = [
          ...r.warnings,
          ...(await Promise.all(sourceKinds().map((k) => k.checkWarnings?.(repo) ?? []))).flat(),
        ];
        const epoch = repo.keyring?.payload.epochs.find((e) => e.keyId === repo.keyring?.payload.current);
        if (g.json) printJson({ ...r, warnings, ...(epoch ? { keyEpoch: { id: epoch.keyId.toString(16).padStart(8, '0'), created: epoch.created } } : {}) });
        else {
          for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
          for (const p of r.problems) console.log(`error: ${p.message}`);
          if (!g.quiet) {
            console.log(
              `${r.snapshots} snapshots, ${r.trees} trees, ${r.packs} packs` +
                (r.packsRead ? `, ${r.packsRead} packs read` : '') +
                (r.logsRead ? `, ${r.logsRead} log files read` : '') +
                (r.unindexedPacks ? `, ${r.unindexedPacks} packs not yet indexed (an interrupted backup; the next backup reuses them)` : '') +
                (r.ok ? ': no errors' : `: ${r.problems.length} errors`),
            );
          }
        }
        if (!r.ok) {
          throw new LifeboatError('CORRUPT', `check found ${r.problems.length} problem(s)`, {
            hint: r.problems[0]?.message ?? '',
          });
        }
      });
    });
}
