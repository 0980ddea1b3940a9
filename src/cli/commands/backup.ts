/** lifeboat backup: snapshots files and directories into the repository. */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { backup } from '../../engine/backup/archiver.js';
import { startScan } from '../../engine/backup/scan.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { duration, printJson, progressFor } from '../output/render.js';
import { flagOf, parseThreads, parseTime } from './options.js';
import { sourceCommonOptions } from '../../config/model.js';
import { filesOptions } from '../../sources/files/options.js';
import { checkSourceName } from '../../engine/source-name.js';
import { checkSnapshotTime } from '../../repo/snapshot/snapshot.js';

interface BackupFlags {
  tag: string[];
  host?: string;
  exclude: string[];
  time?: string;
  threads?: number;
  name?: string;
  scan: boolean;
}

export function register(program: Command): void {
  program
    .command('backup')
    .description('back up files and directories')
    .argument('<path...>', 'files or directories to back up')
    .addOption(flagOf(sourceCommonOptions().shape.tags, { arg: '<tag>', description: 'tag the snapshot (repeatable)' }))
    .option('--host <name>', 'host name recorded in the snapshot (default: this host)')
    .addOption(flagOf(filesOptions().shape.exclude, { arg: '<glob>', description: 'skip paths matching the pattern (repeatable)' }))
    .option('--time <rfc3339>', "set the snapshot's time (imports and tests; not more than 5 minutes ahead of now)")
    .option('--name <name>', 'name this source (drill, forget and the daemon find its snapshots by it)')
    .option('--threads <n>', 'worker threads (default: one per core, at least 2)', parseThreads)
    .option('--no-scan', 'do not count the files first (progress then shows no percentage or ETA)')
    .action(async (paths: string[], flags: BackupFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const time = flags.time === undefined ? undefined : parseTime(flags.time);
      if (time) checkSnapshotTime(time); // before the repository is opened: nothing is read or written
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        // Totals for the percentage and ETA, counted beside the backup, which never waits for them.
        const scan = bar.shown && flags.scan ? startScan({ paths, excludes: flags.exclude }, (t) => bar.setTotals(t)) : undefined;
        const result = await backup(repo, {
          paths,
          tags: flags.tag,
          excludes: flags.exclude,
          ...(flags.host ? { hostname: flags.host } : {}),
          ...(time ? { time } : {}),
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          ...(flags.name ? { source: { kind: 'files', name: checkSourceName(flags.name) } } : {}),
          onProgress: bar.update,
        }).finally(() => {
          scan?.stop();
          bar.done();
        });
        const s = result.snapshot;
        for (const e of result.errors) process.stderr.write(`warning: ${e.message}\n`);
        if (g.json) {
          printJson({ id: s.id, short_id: s.id.slice(0, 8), time: s.time, parent: s.parent ?? null, summary: s.summary, errors: result.errors });
        } else if (!g.quiet) {
          const m = s.summary;
          console.log(
            `snapshot ${s.id.slice(0, 8)} saved: ${m.totalFiles} files (${formatBytes(m.totalBytes)}), ` +
              `${m.filesNew} new, ${m.filesChanged} changed, ${m.filesUnmodified} unmodified; ` +
              `added ${formatBytes(m.addedBytes)} in ${duration(m.durationMs)}`,
          );
        }
        if (result.errors.length > 0) {
          throw new LifeboatError('PARTIAL', `${result.errors.length} item(s) could not be read; snapshot ${s.id.slice(0, 8)} holds the rest`, {
            hint: 'see the warnings above',
          });
        }
      }, { writeOnly: true, command: 'backup' });
    });
}
