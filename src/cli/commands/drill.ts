/**
 * lifeboat drill — restore the latest backup of each source (or one) into a scratch
 * place, run its integrity checks, and report measured RTO and RPO; --history lists
 * the drills recorded in the repository.
 */
import type { Command } from 'commander';
import { drill, drillHistory, sourceLabel, sourcesOf, type DrillRecord } from '../../engine/drill/drill.js';
import { LifeboatError } from '../../errors.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { selfCommand } from '../self-command.js';
import { collect, flagOf } from './options.js';
import { postgresOptions } from '../../sources/postgres/options.js';

const seconds = (s: number | null) => (s === null ? '—' : `${s.toFixed(1)} s`);

export function register(program: Command): void {
  program
    .command('drill')
    .description('restore the latest backup of each source into a scratch place, check it, measure RTO and RPO')
    .option('--source <name>', 'one source: a database name, a backed-up path, or kind:name')
    .option('--history', 'list the drills recorded in the repository')
    .addOption(flagOf(postgresOptions().shape.dsn, { arg: '<url>', description: 'PostgreSQL: the source server, to measure RPO against its WAL position (with --source)' }))
    .option('--check <check>', "the source's own check (repeatable, with --source): a PostgreSQL query that must return true, a Redis `COMMAND ARG… => REPLY`", collect, [])
    .action(async (f: { source?: string; history?: boolean; dsn?: string; check: string[] }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        if (f.history) {
          const all = (await drillHistory(repo)).filter((d) => !f.source || d.source === f.source || d.source.endsWith(`:${f.source}`));
          if (g.json) return printJson(all);
          for (const d of all) console.log(`${d.time}  ${d.ok ? 'ok    ' : 'FAILED'}  ${d.source}  RTO ${seconds(d.rto_seconds)}  RPO ${seconds(d.rpo_seconds)}${d.error ? `  ${d.error}` : ''}`);
          return;
        }
        let sources = sourcesOf(await repo.listSnapshots());
        if (f.source) sources = sources.filter((s) => s.name === f.source || sourceLabel(s) === f.source);
        if (sources.length === 0) {
          throw new LifeboatError('NOT_FOUND', f.source ? `no backups of source "${f.source}"` : 'the repository has no backups to drill', {
            hint: '`lifeboat snapshots` lists what is there',
          });
        }
        if (f.dsn && !f.source) throw new LifeboatError('USAGE', '--dsn needs --source', { hint: 'the dsn belongs to one PostgreSQL source: name it with --source' });
        if (f.check.length > 0 && !f.source) throw new LifeboatError('USAGE', '--check needs --source', { hint: 'checks belong to one source: name it with --source' });
        const records: DrillRecord[] = [];
        const lifeboat = await selfCommand(g, 'drill');
        for (const s of sources) {
          const r = await drill(repo, s, { lifeboat, ...(f.dsn ? { sourceDsn: f.dsn } : {}), ...(f.check.length > 0 ? { checks: f.check } : {}) });
          records.push(r);
          if (!g.json && !g.quiet) {
            console.log(`${r.ok ? 'ok    ' : 'FAILED'}  ${r.source}  RTO ${seconds(r.rto_seconds)}  RPO ${seconds(r.rpo_seconds)}`);
            for (const c of r.checks) console.log(`        ${c.ok ? '✓' : '✗'} ${c.name}: ${c.detail}`);
          }
        }
        if (g.json) printJson(f.source ? records[0] : records);
        const failed = records.find((r) => !r.ok);
        if (failed) {
          throw new LifeboatError('FAILED', `drill of ${failed.source} failed: ${failed.error ?? 'a check failed'}`, {
            hint: 'the backup cannot be trusted to restore; run `lifeboat check --read-data` and take a new backup',
          });
        }
      });
    });
}
