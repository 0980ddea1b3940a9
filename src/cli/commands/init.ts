/** lifeboat init: creates a repository with one password key slot. */
import type { Command } from 'commander';
import { Repository } from '../../repo/repository.js';
import { getPassword, withStore, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

export function register(program: Command): void {
  program
    .command('init')
    .description('create a new repository')
    .action(async (_opts, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(g, async (store) => {
        const repo = await Repository.init(store, await getPassword(g, 'new'));
        if (g.json) printJson({ id: repo.config.id, location: store.location, version: repo.config.version });
        else if (!g.quiet) console.log(`created repository ${repo.config.id.slice(0, 10)} at ${store.location}`);
      });
    });
}
