/** lifeboat restore: brings a snapshot back below a target directory. */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { incompleteOf, restore } from '../../engine/restore/restorer.js';
import { formatBytes } from '../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { progressFor, duration, printJson } from '../output/render.js';
import { collect, flagOf, parseThreads } from './options.js';
import { pickForRestore } from '../../repo/snapshot/select.js';
import { parseTargetTime } from '../../engine/target-time.js';
import { forTerminal } from '../../util/terminal.js';
import { restoreRequestOptions } from '../../config/model.js';

const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);

interface RestoreFlags {
  target: string;
  include: string[];
  delta?: boolean;
  overwrite?: boolean;
  threads?: number;
  source?: string;
  path?: string;
  time?: string;
}

export function register(program: Command): void {
  program
    .command('restore')
    .description('restore a snapshot (each path P comes back as TARGET/P)')
    .argument('<snapshot>', 'snapshot id prefix or "latest"')
    .addOption(flagOf(restoreRequestOptions().shape.target, { short: '-t', arg: '<dir>', description: 'directory to restore into', required: true }))
    .option('--include <glob>', 'restore only paths matching (repeatable)', collect, [])
    .option('--delta', 'the target holds an older copy: rewrite only files that differ, remove what the snapshot lacks')
    .option('--overwrite', 'the target may exist: replace the files the snapshot has (others are left alone); without it an existing target is refused')
    .option('--threads <n>', 'worker threads (default: one per core, at least 2)', parseThreads)
    .option('--source <name>', '"latest"/--time among the snapshots of this source (a name, or kind:name; see `snapshots`)')
    .option('--path <path>', '"latest"/--time among the snapshots that backed up this path')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'with "latest": the newest snapshot taken at or before this moment' }))
    .action(async (ref: string, flags: RestoreFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const time = flags.time === undefined ? undefined : parseTargetTime(flags.time);
      await withRepo(g, async (repo) => {
        // In a repository several sources share, "latest" alone could be any of them.
        const snap = pickForRestore(await repo.listSnapshots(), ref, {
          onWarning: warn,
          ...(flags.source !== undefined ? { source: flags.source } : {}),
          ...(flags.path !== undefined ? { path: flags.path } : {}),
          ...(time ? { time } : {}),
        });
        const bar = progressFor(g);
        const started = Date.now();
        const r = await restore(repo, snap, {
          target: flags.target,
          include: flags.include,
          ...(flags.delta ? { delta: true } : {}),
          ...(flags.overwrite ? { overwrite: true } : {}),
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          // Only when shown: a restore of part of a snapshot counts its trees first for the totals.
          ...(bar.shown ? { onProgress: bar.update } : {}),
        })
          .catch((err: unknown) => {
            printIncomplete(err);
            throw err;
          })
          .finally(() => bar.done());
        for (const e of r.errors) process.stderr.write(`warning: ${forTerminal(e.path)}: ${e.message}\n`);
        if (g.json) printJson({ snapshot: snap.id, target: flags.target, files: r.files, dirs: r.dirs, bytes: r.bytes, errors: r.errors });
        else if (!g.quiet) {
          console.log(`restored snapshot ${snap.id.slice(0, 8)} to ${flags.target}: ${r.files} files, ${r.dirs} dirs, ${formatBytes(r.bytes)} in ${duration(Date.now() - started)}`);
        }
        if (r.errors.length > 0) throw new LifeboatError('PARTIAL', `${r.errors.length} item(s) were not fully restored`, { hint: 'see the warnings above' });
      });
    });
}

/** How many missing files a failed restore names one per line before summing up the rest. */
const LIST_MAX = 20;

/** A restore that stopped part-way names what is missing: one line each, then a count. */
export function printIncomplete(err: unknown): void {
  const list = incompleteOf(err);
  if (!list || list.length === 0) return;
  for (const p of list.slice(0, LIST_MAX)) process.stderr.write(`not restored: ${forTerminal(p)}\n`);
  if (list.length > LIST_MAX) process.stderr.write(`not restored: … and ${list.length - LIST_MAX} more\n`);
  process.stderr.write(`${list.length} file(s) not restored; no partial file was left under its name\n`);
}
