#!/usr/bin/env node
/**
 * The lifeboat command line. Each command lives in commands/<verb>.ts (a kind of
 * source's own commands in src/sources/<kind>/cli/) and is a thin shell over the engine; this file wires them up and turns errors into one line, a
 * hint and a stable exit code (docs/exit-codes.md).
 */
import { Command, Option } from 'commander';
import { reportError } from './output/errors.js';
import { isJobEntry, runJob } from './job.js';
import { registerKeyOptions } from './context.js';
import { PROGRAM_VERSION } from '../repo/repository.js';
import * as backup from './commands/backup.js';
import * as check from './commands/check.js';
import * as copy from './commands/copy.js';
import * as daemon from './commands/daemon.js';
import * as diff from './commands/diff.js';
import * as drill from './commands/drill.js';
import * as forget from './commands/forget.js';
import * as init from './commands/init.js';
import * as key from './commands/key.js';
import * as ls from './commands/ls.js';
import * as quickstart from './commands/quickstart.js';
import * as prune from './commands/prune.js';
import * as migrateCmd from './commands/migrate.js';
import * as repair from './commands/repair.js';
import * as restore from './commands/restore.js';
import * as snapshots from './commands/snapshots.js';
import * as unlock from './commands/unlock.js';
import { sourceKinds } from '../sources/registry.js';
// Every kind of source registers itself (and brings its own commands: `lifeboat pg …`).
import '../sources/all.js';

/** Each kind's own commands (`lifeboat pg …`), loaded once before the program is built. */
const kindCommands = await Promise.all(sourceKinds().flatMap((k) => (k.commands ? [k.commands()] : [])));

export function buildProgram(): Command {
  const program = new Command('lifeboat')
    .description('Backup and disaster recovery for databases and the files around them')
    .version(PROGRAM_VERSION)
    .option('-r, --repo <url>', 'repository location (or LIFEBOAT_REPOSITORY)')
    .option('-p, --password-file <file>', 'read the password from a file (or LIFEBOAT_PASSWORD_FILE / LIFEBOAT_PASSWORD)')
    .option('--json', 'print results as JSON')
    .option('-q, --quiet', 'print only errors')
    .addOption(new Option('--compression <codec>', 'zstd[:level] | lz4 | gzip[:level] | none, for data written').env('LIFEBOAT_COMPRESSION'))
    .option('-c, --config <file>', 'configuration file naming repositories (or LIFEBOAT_CONFIG; default ./lifeboat.yaml if present)')
    .option('--limit-upload <KiB/s>', 'upload bandwidth limit per destination')
    .option('--limit-download <KiB/s>', 'download bandwidth limit per destination')
    .option('--append-only', 'add only: refuse every delete and overwrite (forget, prune)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerKeyOptions(program);
  for (const c of [init, backup, snapshots, ls, diff, restore, check, forget, prune, drill, key, migrateCmd, unlock, copy, repair]) c.register(program);
  for (const c of kindCommands) c.register(program);
  for (const c of [quickstart, daemon]) c.register(program);
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
    // The daemon's jobs: the same program, its command read from a spec (job.ts).
    if (isJobEntry(process.argv.slice(2))) await runJob(buildProgram, process.argv.slice(2));
    else await buildProgram().parseAsync(process.argv);
  } catch (err) {
    code = reportError(err);
  }
  process.exitCode = code;
}

void main();
