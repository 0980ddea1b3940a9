#!/usr/bin/env node
/**
 * The lifeboat command line. Each command lives in commands/<verb>.ts (a kind of
 * source's own commands in src/sources/<kind>/cli/) and is a thin shell over the engine; this file wires them up and turns errors into one line, a
 * hint and a stable exit code (docs/exit-codes.md).
 *
 * Only the module of the command being run is loaded: the CLI starts once per job the
 * daemon runs and once per call of a script, and loading all nineteen command modules
 * (with the engine code behind each) cost more than the node process itself.
 */
import { Command, Option } from 'commander';
import { failIfStalled, reportError } from './output/errors.js';
import { destinationsLeftOut } from './left-out.js';
import { registerKeyOptions } from './key-options.js';
import { PROGRAM_VERSION } from '../version.js';
import { flagOf } from './commands/options.js';
import { repositoryOptions } from '../config/model.js';
import { sourceKinds } from '../sources/registry.js';
// Every kind of source registers itself, cheaply: its commands (`lifeboat pg …`) load on demand.
import '../sources/all.js';

interface CommandModule {
  register(program: Command): void;
}

/**
 * Every command module with the top-level command names it registers, in the order
 * `--help` lists them. A name missing here still works (the verb is unknown, so every
 * module loads); test/unit/cli-main.test.ts checks that the table is complete.
 */
export const COMMAND_MODULES: ReadonlyArray<{ names: readonly string[]; load: () => Promise<CommandModule> }> = [
  { names: ['init'], load: () => import('./commands/init.js') },
  { names: ['backup'], load: () => import('./commands/backup.js') },
  { names: ['snapshots'], load: () => import('./commands/snapshots.js') },
  { names: ['ls'], load: () => import('./commands/ls.js') },
  { names: ['dump'], load: () => import('./commands/dump.js') },
  { names: ['diff'], load: () => import('./commands/diff.js') },
  { names: ['restore'], load: () => import('./commands/restore.js') },
  { names: ['check'], load: () => import('./commands/check.js') },
  { names: ['forget'], load: () => import('./commands/forget.js') },
  { names: ['prune'], load: () => import('./commands/prune.js') },
  { names: ['drill'], load: () => import('./commands/drill.js') },
  { names: ['key'], load: () => import('./commands/key.js') },
  { names: ['migrate'], load: () => import('./commands/migrate.js') },
  { names: ['unlock'], load: () => import('./commands/unlock.js') },
  { names: ['copy'], load: () => import('./commands/copy.js') },
  { names: ['repair'], load: () => import('./commands/repair.js') },
  { names: ['group'], load: () => import('./commands/group.js') },
  { names: ['window'], load: () => import('./commands/window.js') },
  { names: ['recover'], load: () => import('./commands/recover.js') },
  // Each kind of source brings its own commands (src/sources/<kind>/cli/).
  ...sourceKinds().flatMap((k) => (k.commands ? [{ names: k.commands.words, load: k.commands.load }] : [])),
  { names: ['quickstart'], load: () => import('./commands/quickstart.js') },
  { names: ['serve', 'config', 'token', 'runbook', 'catalog'], load: () => import('./commands/daemon.js') },
];

/**
 * The command word of argv (arguments after `node lifeboat`), skipping the global
 * options and their values; undefined when there is none or when an argument before
 * it is not a global option this program knows (commander then reports it).
 */
export function commandWord(program: Command, args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (!a.startsWith('-') || a === '-') return a;
    const flag = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    const opt = program.options.find((o) => o.long === flag || o.short === flag);
    if (!opt) return undefined;
    // A value in the same argument (--repo=x) takes nothing more.
    if (opt.required && !a.includes('=')) i++;
    else if (opt.optional && !a.includes('=') && args[i + 1] !== undefined && !args[i + 1]!.startsWith('-')) i++;
  }
  return undefined;
}

/**
 * The program with the command argv names registered, or every command when argv
 * names none this table knows (help, an unknown word, no word at all).
 */
export async function buildProgram(args: readonly string[] = process.argv.slice(2)): Promise<Command> {
  const program = new Command('lifeboat')
    .description('Backup and disaster recovery for databases and the files around them')
    .version(PROGRAM_VERSION)
    .option('-r, --repo <url>', 'repository location (or LIFEBOAT_REPOSITORY)')
    .addOption(flagOf(repositoryOptions().shape.password_file, { short: '-p', arg: '<file>', description: 'read the password from a file (or LIFEBOAT_PASSWORD_FILE / LIFEBOAT_PASSWORD)' }))
    .option('--json', 'print results as JSON')
    .option('-q, --quiet', 'print only errors')
    .option('--progress <mode>', 'auto (a bar on a terminal) | json (one JSON object per line on stderr) | none (or LIFEBOAT_PROGRESS)')
    .addOption(new Option('--compression <codec>', 'zstd[:level] | lz4 | gzip[:level] | none, for data written').env('LIFEBOAT_COMPRESSION'))
    .option('-c, --config <file>', 'configuration file naming repositories (or LIFEBOAT_CONFIG; default ./lifeboat.yaml if present)')
    .option('--limit-upload <KiB/s>', 'upload bandwidth limit per destination')
    .option('--limit-download <KiB/s>', 'download bandwidth limit per destination')
    .option('--append-only', 'add only: refuse every delete and overwrite (forget, prune)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerKeyOptions(program);
  const word = commandWord(program, args);
  const one = word === undefined ? undefined : COMMAND_MODULES.find((m) => m.names.includes(word));
  // `--version` alone needs no command; help and unknown words need them all.
  const versionOnly = word === undefined && args.some((a) => a === '-V' || a === '--version') && !args.some((a) => a === '-h' || a === '--help');
  const wanted = one ? [one] : versionOnly ? [] : COMMAND_MODULES;
  // Imported together, registered in table order: --help lists commands the same way each time.
  const modules = await Promise.all(wanted.map((m) => m.load()));
  for (const c of modules) c.register(program);
  // Subcommands inherit exit handling so usage errors get our exit code.
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) {
      sub.exitOverride();
      for (const leaf of sub.commands) leaf.exitOverride();
    }
  }
  return program;
}

async function main(): Promise<void> {
  let code = 0;
  try {
    const args = process.argv.slice(2);
    // The daemon's jobs: the same program, its command read from a spec (job.ts),
    // loaded only for them.
    const job = args[0] === 'job' ? await import('./job.js') : undefined;
    if (job?.isJobEntry(args)) await job.runJob(buildProgram, args);
    else await (await buildProgram(args)).parseAsync(process.argv);
    const degraded = destinationsLeftOut();
    if (degraded) throw degraded;
  } catch (err) {
    code = reportError(err);
  }
  process.exitCode = code;
}

// Runs when loaded as compiled JavaScript (bin/lifeboat.js); test/unit/cli-main.test.ts
// imports the TypeScript source for its table and must not parse vitest's argv.
if (import.meta.url.endsWith('.js')) failIfStalled(main());
