/**
 * lifeboat command backup | restore — any program's stdout stored as a snapshot, and
 * a stored dump piped into a load command's stdin or written to a new file. The
 * commands are argv after `--` (never run by a shell), a preset, or a `kind: command`
 * source of lifeboat.yaml (the daemon's jobs: its env and cwd never reach argv).
 */
import type { Command } from 'commander';
import { findConfig, withRepo, type GlobalOptions } from '../../../cli/context.js';
import { collect } from '../../../cli/commands/options.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { ProgressBar, duration, printJson } from '../../../cli/output/render.js';
import type { SourceConfig } from '../../../config/config.js';
import { parseTargetTime } from '../../../engine/target-time.js';
import { LifeboatError } from '../../../errors.js';
import { formatBytes } from '../../../util/bytes.js';
import { commandBackup } from '../backup.js';
import { commandPoint } from '../point.js';
import { presetCommands } from '../presets.js';
import { commandRestore } from '../restore.js';
import type { CommandSpec } from '../run.js';
import { sourceCommands, type SourceCommands } from '../spec.js';
import { stopSignal } from '../../../cli/stop-signal.js';

/** The `kind: command` source of lifeboat.yaml named `name`, if the configuration has one. */
async function configured(g: GlobalOptions, name: string): Promise<SourceCommands | undefined> {
  const config = await findConfig(g);
  const source: SourceConfig | undefined = config?.sources.get(name);
  if (!config || !source || source.kind !== 'command') return undefined;
  return sourceCommands(source, config.file);
}

export function register(program: Command): void {
  const cmd = program.command('command').description('dump commands as sources: a program\'s stdout stored deduplicated, restored into a load command\'s stdin');

  cmd
    .command('backup')
    .description('run a dump command and store its stdout as a snapshot (only if it exits 0); without a command after --, the source of lifeboat.yaml named --name')
    .argument('[argv...]', 'the dump command and its arguments, after --')
    .requiredOption('--name <name>', 'name in the repository')
    .option('--preset <preset>', 'mariadb, neo4j, mongodb or etcd: the dump command of that tool (docs/command.md); arguments after -- are added to it')
    .option('--database <name>', 'with --preset: the database to dump')
    .option('--tag <tag>', 'tag the snapshot (repeatable)', collect, [])
    .action(async (argv: string[], f: { name: string; preset?: string; database?: string; tag: string[] }, c: Command) => {
      const g = c.optsWithGlobals<GlobalOptions>();
      let dump: CommandSpec;
      let preset = f.preset;
      if (f.database !== undefined && f.preset === undefined) throw new LifeboatError('USAGE', '--database goes with --preset', { hint: 'without a preset, name the database in the dump command' });
      if (f.preset !== undefined) dump = { argv: presetCommands(f.preset, { database: f.database, dumpArgs: argv }).dump };
      else if (argv.length > 0) dump = { argv };
      else {
        const source = await configured(g, f.name);
        if (!source) {
          throw new LifeboatError('USAGE', `no dump command given, and lifeboat.yaml names no command source "${f.name}"`, {
            hint: 'give the command after --, e.g. `lifeboat command backup --name all -- pg_dumpall`, or --preset',
          });
        }
        dump = source.dump;
        preset = source.preset;
      }
      await withRepo(g, async (repo) => {
        const bar = new ProgressBar(!g.json && !g.quiet);
        const stop = stopSignal();
        const s = await commandBackup(repo, { name: f.name, dump, preset, tags: f.tag, signal: stop.signal, onProgress: bar.update }).finally(() => {
          bar.done();
          stop.release();
        });
        const point = commandPoint(s);
        if (g.json) return printJson({ ...snapshotJson(s), point });
        if (!g.quiet && point) {
          console.log(
            `snapshot ${s.id.slice(0, 8)} of ${f.name}: ${formatBytes(point.bytes)} from ${point.argv[0] ?? ''} in ${duration(point.durationMs)}, ` +
              `added ${formatBytes(s.summary.addedBytes)}`,
          );
        }
      });
    });

  cmd
    .command('restore')
    .description('pipe a stored dump into a load command (after --, or the source\'s with --load) or write it to a new file; the load command\'s exit status decides success')
    .argument('<name>', 'the source name given at backup')
    .argument('[argv...]', 'the load command and its arguments, after --')
    .option('--latest', 'the newest dump (the default)')
    .option('--time <rfc3339>', 'the newest dump at or before this moment, e.g. 2026-11-21T14:30:05Z')
    .option('--snapshot <id>', 'this snapshot (an id prefix)')
    .option('-o, --output <file>', 'write the dump to this new file instead (never overwritten)')
    .option('--load', "pipe it into the source's load command from lifeboat.yaml (its preset's, or `load`)")
    .action(async (name: string, argv: string[], f: { latest?: boolean; time?: string; snapshot?: string; output?: string; load?: boolean }, c: Command) => {
      const g = c.optsWithGlobals<GlobalOptions>();
      const chosen = [f.time !== undefined && '--time', f.latest && '--latest', f.snapshot !== undefined && '--snapshot'].filter(Boolean);
      if (chosen.length > 1) throw new LifeboatError('USAGE', `give one of --time, --latest and --snapshot, not ${chosen.join(' and ')}`, { hint: 'without any, the newest dump is restored' });
      const ways = [f.output !== undefined && '--output', f.load && '--load', argv.length > 0 && 'a load command after --'].filter(Boolean);
      if (ways.length !== 1) {
        throw new LifeboatError('USAGE', ways.length ? `give one of --output, --load and a load command, not ${ways.join(' and ')}` : 'nothing to restore to', {
          hint: '--output FILE writes a new file; --load pipes into the source\'s load command; or give the load command after --',
        });
      }
      const time = f.time === undefined ? undefined : parseTargetTime(f.time);
      const source = f.output === undefined ? await configured(g, name) : undefined;
      let load: CommandSpec | undefined;
      if (f.load) {
        if (!source?.load) throw new LifeboatError('USAGE', `--load needs lifeboat.yaml to name a command source "${name}" with a load command or a preset`, { hint: 'give --config FILE, or the load command after --' });
        load = source.load;
      } else if (argv.length > 0) {
        // The configured environment and directory still apply (a password in env).
        load = { argv, env: source?.dump.env, cwd: source?.dump.cwd };
      }
      await withRepo(g, async (repo) => {
        const bar = new ProgressBar(!g.json && !g.quiet && f.output !== undefined);
        const r = await commandRestore(repo, { name, snapshot: f.snapshot, time, output: f.output, load, onProgress: bar.update }).finally(() => bar.done());
        if (g.json) return printJson({ snapshot: r.snapshot.id, time: r.snapshot.time, bytes: r.bytes, output: r.output, load: r.load, duration_ms: r.durationMs });
        if (!g.quiet) {
          const where = r.output ?? `${r.load?.[0] ?? ''} (exited 0)`;
          console.log(`restored dump ${r.snapshot.id.slice(0, 8)} of ${name} (${r.snapshot.time}, ${formatBytes(r.bytes)}) to ${where} in ${duration(r.durationMs)}`);
        }
      });
    });
}
