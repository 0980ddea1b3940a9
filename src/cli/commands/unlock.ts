/** lifeboat unlock: removes stale locks left by processes that died. */
import type { Command } from 'commander';
import { removeLocks } from '../../repo/lock.js';
import { Repository } from '../../repo/repository.js';
import { withStore, type GlobalOptions } from '../context.js';

export function register(program: Command): void {
  program
    .command('unlock')
    .description('remove stale locks')
    .option('--remove-all', 'remove all locks, even live ones (only when nothing else runs)')
    .action(async (f: { removeAll?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(g, async (store) => {
        await Repository.readConfig(store);
        const n = await removeLocks(store, f.removeAll === true);
        if (!g.quiet) console.log(`removed ${n} lock${n === 1 ? '' : 's'}`);
      });
    });
}
