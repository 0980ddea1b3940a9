/** lifeboat migrate: upgrades a format 1 repository to format 2 in place (docs/format.md, "Migration"). */
import type { Command } from 'commander';
import { migrate } from '../../repo/maintenance/migrate.js';
import { cliWarn, getPassword, withStore, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

export function register(program: Command): void {
  program
    .command('migrate')
    .description('upgrade a format 1 repository to format 2 in place (crash-safe: run it again to resume)')
    .option('--dry-run', 'count what would be rewritten; write nothing')
    .action(async (f: { dryRun?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withStore(g, async (store) => {
        // Tests crash a run at its Nth step (every step boundary is a point a real crash may hit).
        const crashAt = Number(process.env.LIFEBOAT_TEST_MIGRATE_CRASH_AT ?? 0);
        let steps = 0;
        const onStep = () => {
          if (crashAt > 0 && ++steps === crashAt) process.kill(process.pid, 'SIGKILL');
        };
        const r = await migrate(store, await getPassword(g), { dryRun: f.dryRun ?? false, warn: cliWarn, onStep });
        if (g.json) return printJson(r);
        if (g.quiet) return;
        if (r.from === 'done') {
          console.log('already format 2: nothing to migrate');
          return;
        }
        const what = `${r.indexes} index files, ${r.lists} retiring lists, ${r.snapshots} snapshots, ${r.drills} drill records, ${r.state} state objects, ${r.logs} archived logs`;
        if (r.dryRun) {
          console.log(`would rewrite ${what} in format 2, and delete ${r.oldSlots} format 1 key slot(s) (add those passwords again with \`key add\`)`);
          return;
        }
        console.log(`migrated to format 2: rewrote ${what}; deleted ${r.oldSlots} format 1 key slot(s)`);
        if (r.oldSlots > 1) console.log('other passwords of the format 1 repository no longer open it: add them again with `lifeboat key add`');
        console.log('blobs stay in format 1 under an older key epoch; `lifeboat prune --reseal` rewrites them under the new one');
      });
    });
}
