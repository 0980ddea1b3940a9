/** lifeboat forget: removes snapshots by id or by keep rules (restic's semantics). */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { forget, type GroupField } from '../../engine/retention/forget.js';
import type { KeepPolicy } from '../../engine/retention/policy.js';
import { retentionOptions } from '../../config/model.js';
import { durationMs, type Duration } from '../../util/duration.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { collect, flagOf } from './options.js';
import { pruneAndReport } from './prune.js';
import { forTerminal } from '../../util/terminal.js';

/** The keep rules are lifeboat.yaml's retention keys: flags and values come from the model. */
interface ForgetFlags {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  keepWithin?: Duration;
  keepTag: string[];
  minKeep?: string;
  groupBy: string;
  dryRun?: boolean;
  keepLogsWithin?: Duration;
  prune?: boolean;
  source?: string;
  force?: boolean;
}

function count(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new LifeboatError('USAGE', `${flag} takes a whole number, not "${v}"`);
  return Number(v);
}

function policyOf(f: ForgetFlags): KeepPolicy {
  const p: KeepPolicy = {};
  if (f.keepLast !== undefined) p.last = f.keepLast;
  if (f.keepHourly !== undefined) p.hourly = f.keepHourly;
  if (f.keepDaily !== undefined) p.daily = f.keepDaily;
  if (f.keepWeekly !== undefined) p.weekly = f.keepWeekly;
  if (f.keepMonthly !== undefined) p.monthly = f.keepMonthly;
  if (f.keepYearly !== undefined) p.yearly = f.keepYearly;
  const minKeep = count('--min-keep', f.minKeep);
  if (minKeep !== undefined) p.minKeep = minKeep;
  if (f.keepWithin) p.within = f.keepWithin;
  if (f.keepTag.length) p.tags = f.keepTag.map((t) => t.split(',').filter(Boolean));
  return p;
}

function groupBy(text: string): GroupField[] {
  const fields = text.split(',').filter(Boolean);
  for (const f of fields) {
    if (f !== 'host' && f !== 'paths' && f !== 'tags') throw new LifeboatError('USAGE', `cannot group by "${f}"`, { hint: 'use host, paths and/or tags' });
  }
  return fields as GroupField[];
}

export function register(program: Command): void {
  program
    .command('forget')
    .description('remove snapshots by id or by keep rules (data stays until prune)')
    .argument('[snapshot...]', 'snapshot ids to remove')
    .addOption(flagOf(retentionOptions().shape.keep_last, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_hourly, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_daily, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_weekly, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_monthly, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_yearly, { arg: '<n>' }))
    .addOption(flagOf(retentionOptions().shape.keep_within))
    .option('--keep-tag <tags>', 'keep snapshots with all these comma-separated tags (repeatable)', collect, [])
    .option('--min-keep <n>', 'never keep fewer than n snapshots per group')
    .option('--group-by <fields>', 'apply the rules per group of host, paths, tags', 'host,paths')
    .option('--dry-run', 'only show what would be removed and why the rest is kept')
    .option('--source <name>', 'apply the keep rules only to the snapshots of this source (a name, or kind:name)')
    .option('--force', 'remove even when no snapshot older than the last 7 days, or none at all, would remain in a group')
    .option('--prune', 'prune afterwards (marks what the removed snapshots held; see `lifeboat prune`)')
    .addOption(flagOf(retentionOptions().shape.keep_logs_within))
    .action(async (ids: string[], f: ForgetFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const policy = policyOf(f);
      const by = groupBy(f.groupBy);
      await withRepo(g, async (repo) => {
        const pitr = f.keepLogsWithin === undefined ? undefined : durationMs(f.keepLogsWithin);
        const r = await forget(repo, { ids, policy, groupBy: by, ...(f.dryRun ? { dryRun: true } : {}), ...(pitr !== undefined ? { pitrWindowMs: pitr } : {}), ...(f.source ? { source: f.source } : {}), ...(f.force ? { force: true } : {}) });
        const pruned = f.prune && !r.dryRun ? () => pruneAndReport(repo, g, { ...(f.keepLogsWithin ? { keepLogsWithin: f.keepLogsWithin } : {}) }) : undefined;
        if (g.json) return printJson(pruned ? { ...r, prune: await pruned() } : r);
        for (const grp of r.groups) {
          const k = grp.key;
          if (k.host !== undefined || k.paths || k.tags) console.log(forTerminal(`group: host ${k.host ?? '*'}, paths ${(k.paths ?? ['*']).join(' ')}${k.tags ? `, tags ${k.tags.join(',')}` : ''}`));
          if (grp.keep.length) {
            console.log(`  keep ${grp.keep.length}:`);
            for (const s of grp.keep) console.log(`    ${s.id.slice(0, 8)}  ${s.time}  ${s.reasons.join(', ')}`);
          }
          for (const s of grp.future) process.stderr.write(`warning: snapshot ${s.id.slice(0, 8)} is dated ${s.time}, in the future: kept, never counted; remove it with \`lifeboat forget ${s.id.slice(0, 8)}\` if it is forged\n`);
          console.log(`  ${r.dryRun ? 'would remove' : 'removed'} ${grp.remove.length}${grp.remove.length ? ':' : ''}`);
          for (const s of grp.remove) console.log(`    ${s.id.slice(0, 8)}  ${s.time}`);
        }
        for (const a of r.atRisk) {
          process.stderr.write(`warning: ${a.reason}: ${r.dryRun ? 'without --force, forget refuses this' : 'forced'}\n`);
        }
        for (const t of r.sqlite) {
          console.log(`sqlite ${t.source}: ${r.dryRun ? 'would remove' : 'removed'} ${t.removed} log segment(s)${t.keptFrom ? `; replayable from ${t.keptFrom}` : ''}`);
        }
        for (const t of r.segments) {
          console.log(`${t.kind} ${t.source}: ${t.skipped ?? `${r.dryRun ? 'would remove' : 'removed'} ${t.removed} log segment(s)${t.keptFrom ? `; replayable from ${t.keptFrom}` : ''}`}`);
        }
        for (const t of r.points) {
          console.log(`group ${t.group}: ${r.dryRun ? 'would drop' : 'dropped'} ${t.removed.length} point(s) whose data is gone (${t.removed[0]?.reason ?? ''}${t.removed.length > 1 ? ', ...' : ''}); ${t.kept} kept`);
        }
        for (const w of r.wal) {
          console.log(
            w.skipped
              ? `postgres ${w.source}: ${w.skipped}`
              : w.keptFrom
              ? `postgres ${w.source}: ${r.dryRun ? 'would remove' : 'removed'} ${w.removed} WAL file(s) older than ${w.keptFrom}, where the oldest remaining base backup starts`
              : `postgres ${w.source}: no base backup remains; its WAL is kept`,
          );
        }
        await pruned?.();
      });
    });
}
