/**
 * lifeboat pg timelines — the timelines in a source's WAL archive, which of them are
 * production's history (the ones restores follow), and moving one that is not aside
 * (`--move-aside N`) or back (`--move-back N`).
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../../errors.js';
import { moveTimeline, timelinesReport, type TimelinesReport } from '../timeline-archive.js';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { printJson } from '../../../cli/output/render.js';
import { timelineOf } from './pg-options.js';

interface Flags {
  name: string;
  moveAside?: string;
  moveBack?: string;
}

function printHuman(r: TimelinesReport): void {
  const chain = r.production.chain.map((l) => (l.until ? `${l.timeline} (until ${l.until})` : `${l.timeline}`)).join(' → ');
  console.log(`production's history of ${r.name}: timeline ${chain}`);
  console.log(`  because ${r.production.basis}`);
  for (const t of r.timelines) {
    const wal = t.firstSegment ? `${t.firstSegment} … ${t.lastSegment}` : 'no WAL';
    const branch = t.parent === null ? '' : `, from ${t.parent} at ${t.branchLsn}`;
    console.log(`timeline ${t.timeline}${branch}: ${wal} (${t.files} files${t.streamed ? ', streamed' : ''}) — ${t.onProduction ? 'production' : t.state}`);
    if (!t.onProduction) {
      console.log(`  ${t.reason}`);
      console.log(`  move it aside: ${t.command}`);
    }
  }
  for (const a of r.aside) console.log(`timeline ${a.timeline}: moved aside (${a.files} files); restores ignore it. Bring it back: ${a.command}`);
}

export function register(pg: Command): void {
  pg.command('timelines')
    .description("list the timelines in the WAL archive (which are production's history); move one that is not aside, or back")
    .requiredOption('--name <name>', 'cluster name')
    .option('--move-aside <n>', 'move timeline N out of the archive (kept under logs/…~aside/, restores ignore it)')
    .option('--move-back <n>', 'return timeline N from aside into the archive')
    .action(async (f: Flags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (f.moveAside !== undefined && f.moveBack !== undefined) throw new LifeboatError('USAGE', 'give --move-aside or --move-back, not both');
      const aside = timelineOf(f.moveAside);
      const back = timelineOf(f.moveBack);
      await withRepo(g, async (repo) => {
        if (aside !== undefined || back !== undefined) {
          const r = await moveTimeline(repo, f.name, (aside ?? back)!, aside !== undefined ? 'aside' : 'back');
          if (g.json) printJson(r);
          else if (!g.quiet) {
            console.log(
              r.direction === 'aside'
                ? `moved timeline ${r.timeline} of ${f.name} aside (${r.moved} files); restores ignore it. Undo: lifeboat pg timelines --name ${f.name} --move-back ${r.timeline}`
                : `moved timeline ${r.timeline} of ${f.name} back into the archive (${r.moved} files)`,
            );
          }
          return;
        }
        const r = await timelinesReport(repo, f.name);
        if (g.json) printJson(r);
        else printHuman(r);
      });
    });
}
