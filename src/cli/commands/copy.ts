/** lifeboat copy — chosen snapshots, with their log archives, into another repository. */
import type { Command } from 'commander';
import { copySnapshots } from '../../engine/copy/copy.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson, progressFor } from '../output/render.js';

interface CopyFlags {
  fromRepo: string;
  fromPasswordFile?: string;
  toRepo: string;
  toPasswordFile?: string;
}

export function register(program: Command): void {
  program
    .command('copy [snapshots...]')
    .description('copy snapshots (default: all) and their log archives to another repository, re-encrypting them')
    .requiredOption('--from-repo <location>', 'repository to copy from (a lifeboat.yaml name or a location)')
    .option('--from-password-file <file>', 'its password (default: the global password options)')
    .requiredOption('--to-repo <location>', 'repository to copy into (must exist: lifeboat init)')
    .option('--to-password-file <file>', 'its password (default: the global password options)')
    .action(async (snapshots: string[], f: CopyFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const from: GlobalOptions = { ...g, repo: f.fromRepo, ...(f.fromPasswordFile ? { passwordFile: f.fromPasswordFile } : {}) };
      const to: GlobalOptions = { ...g, repo: f.toRepo, ...(f.toPasswordFile ? { passwordFile: f.toPasswordFile } : {}) };
      await withRepo(from, (source) =>
        withRepo(to, async (target) => {
          const bar = progressFor(g);
          const r = await copySnapshots(source, target, {
            snapshots,
            onSnapshot: (s, id) => {
              if (g.json || g.quiet) return;
              bar.done(); // the line is the bar's: clear it, the next event redraws it below
              console.log(id ? `copied ${s.id.slice(0, 8)} -> ${id.slice(0, 8)}` : `${s.id.slice(0, 8)} is already there`);
            },
            onProgress: bar.update,
          }).finally(() => bar.done());
          if (g.json) return printJson(r);
          if (!g.quiet) console.log(`${r.copied.length} copied, ${r.skipped.length} already there, ${r.logs} log files, ${r.points} group point(s); added ${formatBytes(r.addedBytes)}`);
        }),
      );
    });
}
