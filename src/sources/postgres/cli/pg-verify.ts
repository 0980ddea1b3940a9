/**
 * lifeboat pg verify — restore a point into a private scratch cluster, let it
 * recover, run amcheck and the user's queries, report the measured RTO. Exit 13
 * (CORRUPT) when any check fails, after the report is printed.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../../errors.js';
import { abortVerifies, pgVerify, type PgVerifyReport } from '../verify.js';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { archiveGetCommand, targetOf } from './pg-options.js';
import { printJson } from '../../../cli/output/render.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { restoreRequestOptions } from '../../../config/model.js';

interface VerifyFlags {
  name: string;
  time?: string;
  lsn?: string;
  latest?: boolean;
  query: string[];
  keep?: boolean;
  serviceUser?: string;
}

function printHuman(r: PgVerifyReport, name: string): void {
  for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
  for (const c of r.checks) {
    const [first, ...rest] = c.detail.split('\n');
    console.log(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.name}: ${first ?? ''}`);
    for (const line of rest) console.log(`        ${line}`);
  }
  const timing = r.rto_seconds === null ? 'did not come up' : `RTO ${r.rto_seconds}s (restore ${r.restore_seconds}s, recovery ${r.recovery_seconds}s)`;
  console.log(`${r.ok ? 'verified' : 'FAILED'}: base backup ${r.snapshot.slice(0, 8)} of ${name} along timeline ${r.timeline}, ${timing}`);
  if (r.scratch_dir) console.log(`scratch data directory kept (stopped): ${r.scratch_dir}/data`);
}

export function register(pg: Command): void {
  pg.command('verify')
    .description('restore into a private scratch cluster, recover, run amcheck and queries; report the RTO')
    .requiredOption('--name <name>', 'cluster name')
    .addOption(flagOf(restoreRequestOptions().shape.time, { arg: '<rfc3339>', description: 'recover to this time' }))
    .option('--lsn <lsn>', 'recover to this LSN')
    .option('--latest', 'recover all archived WAL (default)')
    .option('--query <sql>', 'must return a first value that is not false/null/0 (repeatable; runs in the postgres db)', collect, [])
    .option('--keep', 'keep the scratch data directory (stopped) for inspection')
    .option('--service-user <name>', 'run as root: the OS user the scratch server runs as (default postgres)')
    .action(async (f: VerifyFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const target = targetOf(f);
      const command = (await archiveGetCommand(g, 'verify'))(f.name);
      // Interrupted: stop and remove the scratch cluster instead of leaving it running.
      const onSignal = () => {
        process.stderr.write('interrupted: stopping the scratch cluster…\n');
        void abortVerifies().finally(() => process.exit(130));
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      await withRepo(g, async (repo) => {
        const r = await pgVerify(repo, {
          name: f.name,
          target,
          archiveGetCommand: command,
          queries: f.query,
          ...(f.keep ? { keep: true } : {}),
          ...(f.serviceUser ? { serviceUser: f.serviceUser } : {}),
          ...(!g.json && !g.quiet ? { onPhase: (p: string) => process.stderr.write(`${p}…\n`) } : {}),
        });
        if (g.json) printJson(r);
        else if (!g.quiet || !r.ok) printHuman(r, f.name);
        const failed = r.checks.find((c) => !c.ok);
        if (!r.ok) {
          throw new LifeboatError('CORRUPT', `verification of ${f.name} failed: ${failed?.name ?? 'unknown check'}`, {
            hint: failed?.detail.split('\n')[0] ?? '',
          });
        }
      });
    });
}
