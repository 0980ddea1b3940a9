/**
 * lifeboat repair — copies what one destination of a repository lacks from another;
 * `lifeboat repair config` restores a lost or damaged `config` from its sealed copy.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { readConfigCopy, repairConfig } from '../../repo/config-copy.js';
import { openWithPassword } from '../../repo/keys.js';
import { openKeyring } from '../../repo/keyring.js';
import { authenticator, isRepositoryKey, repairDestinations } from '../../repo/maintenance/repair.js';
import { MultiStore } from '../../storage/wrappers/multi.js';
import { cliWarn, getPassword, keyOpener, withRepo, withStore, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

export function register(program: Command): void {
  const repair = program
    .command('repair')
    .description('restore full redundancy: copy objects one destination lacks from another (lifeboat.yaml repositories)')
    .option('--dry-run', 'only count what would be copied')
    .action(async (f: { dryRun?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const store = repo.store;
        if (!(store instanceof MultiStore)) {
          throw new LifeboatError('USAGE', `${store.location} has one destination: nothing to repair from`, {
            hint: 'repair works on a repository of lifeboat.yaml with several stores; `lifeboat check` verifies one, `lifeboat repair config` restores its config',
          });
        }
        const copy = await readConfigCopy(store, repo.key);
        const r = await repairDestinations(store.stores, { dryRun: f.dryRun ?? false, authenticate: authenticator(repo, copy), knows: isRepositoryKey });
        if (g.json) return printJson(r);
        for (const [loc, n] of Object.entries(r.copied)) console.log(`${loc}: ${n} objects ${f.dryRun ? 'missing' : 'copied'}`);
        for (const k of r.foreign) process.stderr.write(`warning: ${k} is no part of a repository: not copied\n`);
        if (r.unrecoverable.length > 0) {
          throw new LifeboatError('CORRUPT', `${r.unrecoverable.length} objects have no good copy on any destination, e.g. ${r.unrecoverable[0]}`, {
            hint: 'run `lifeboat check --read-data` to see which snapshots they affect',
          });
        }
      });
    });
  repair
    .command('config')
    .description("restore a lost or damaged repository config from its sealed copy (state/config); needs the password")
    .action(async (_f: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(g, async (store) => {
        // No config to read first: the key slots are opened directly, a format 2
        // repository's (it has keyring generations) through its keyring.
        let format2 = false;
        for await (const _ of store.list('keyring/')) {
          format2 = true;
          break;
        }
        const master = format2
          ? (await openKeyring(store, (await keyOpener(g)) ?? (await getPassword(g)), cliWarn)).master
          : (await openWithPassword(store, await getPassword(g))).master;
        const r = await repairConfig(store, master);
        if (g.json) return printJson({ action: r.action, id: r.config.id, location: store.location });
        if (g.quiet) return;
        console.log(
          r.action === 'restored'
            ? `config of repository ${r.config.id.slice(0, 10)} restored from its sealed copy`
            : r.action === 'copy-written'
            ? `sealed copy of the config written (state/config); a lost config can now be restored`
            : `config of repository ${r.config.id.slice(0, 10)} is intact`,
        );
      });
    });
}
