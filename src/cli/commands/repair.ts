/** lifeboat repair — copies what one destination of a repository lacks from another. */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { repairDestinations } from '../../repo/maintenance/repair.js';
import { MultiStore } from '../../storage/wrappers/multi.js';
import { withStore, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

export function register(program: Command): void {
  program
    .command('repair')
    .description('restore full redundancy: copy objects one destination lacks from another (lifeboat.yaml repositories)')
    .option('--dry-run', 'only count what would be copied')
    .action(async (f: { dryRun?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(g, async (store) => {
        if (!(store instanceof MultiStore)) {
          throw new LifeboatError('USAGE', `${store.location} has one destination: nothing to repair from`, {
            hint: 'repair works on a repository of lifeboat.yaml with several stores; `lifeboat check` verifies one',
          });
        }
        const r = await repairDestinations(store.stores, { dryRun: f.dryRun ?? false });
        if (g.json) return printJson(r);
        for (const [loc, n] of Object.entries(r.copied)) console.log(`${loc}: ${n} objects ${f.dryRun ? 'missing' : 'copied'}`);
        if (r.unrecoverable.length > 0) {
          throw new LifeboatError('CORRUPT', `${r.unrecoverable.length} objects have no good copy on any destination, e.g. ${r.unrecoverable[0]}`, {
            hint: 'run `lifeboat check --read-data` to see which snapshots they affect',
          });
        }
      });
    });
}
