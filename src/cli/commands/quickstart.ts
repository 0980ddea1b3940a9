/**
 * lifeboat quickstart — the main job on the embedded default (a local repository and
 * a SQLite database), in one command and under a minute: replicate, have an
 * accident, restore to just before it, and show the measured RPO and RTO.
 */
import type { Command } from 'commander';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import { runQuickstart } from '../quickstart/scenario.js';
import type { GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';

export function register(program: Command): void {
  program
    .command('quickstart')
    .description('see Lifeboat work: replicate a sample SQLite database, delete rows by accident, restore to just before its transaction')
    .option('--dir <dir>', 'where the sample database and repository go', 'lifeboat-quickstart')
    .option('--seconds <n>', 'how long the sample application writes before the accident', '4')
    .action(async (f: { dir: string; seconds: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const seconds = Number(f.seconds);
      if (!(seconds > 0 && seconds <= 60)) throw new LifeboatError('USAGE', '--seconds must be between 0 and 60');
      const say = (text: string) => {
        if (!g.json && !g.quiet) console.log(text);
      };
      const r = await runQuickstart({
        dir: f.dir,
        writeMs: seconds * 1000,
        rate: 200,
        onStep: (s) => say(s.kind === 'run' ? `\n$ ${s.command}` : s.text.replace(/^/gm, '  ')),
      });
      if (g.json) return printJson(r);
      // Rows written in the last instants before the accident may not have been seen
      // yet: they are the data-loss window, and must be within one interval (1 s).
      const ok = r.integrity === 'ok' && r.foreignKeyViolations === 0 && r.recovered.nodes + r.inWindow === r.accident.nodes && r.rpoSeconds <= 1;
      const rel = (p: string) => path.relative(process.cwd(), p) || p;
      say('');
      say(`${ok ? 'Recovered' : 'NOT recovered'}: ${r.recovered.nodes} of ${r.accident.nodes} deleted memories (${r.recovered.edges} edges) are back in ${rel(r.restored)}`);
      if (r.inWindow > 0) say(`  the other ${r.inWindow} were written inside the data-loss window, just before the accident`);
      say(`  integrity_check: ${r.integrity}; foreign_key_check: ${r.foreignKeyViolations} violations`);
      say(`  restored to just before transaction ${r.accident.txn}, the accident (at ${r.accident.at}): ${r.accident.why}`);
      say(`  RPO (data-loss window): ${r.rpoSeconds.toFixed(2)} s, ${r.lostTransactions} of ${r.committed} transactions committed before the accident not in the restore`);
      say(`  RTO (restore until verified): ${r.rtoSeconds.toFixed(2)} s`);
      say(`  quickstart took ${r.durationSeconds.toFixed(1)} s; the repository password is in ${rel(path.join(r.dir, 'password'))}`);
      say('');
      say(`Next: \`lifeboat --repo ${rel(r.repository)} --password-file ${rel(path.join(r.dir, 'password'))} drill\` restores it once more into scratch`);
      say('  and checks the graph (dangling edges, node and edge counts, query latency: docs/graph.md);');
      say('  then point `lifeboat sqlite replicate` at your own database, and see README.md for files and PostgreSQL.');
      if (!ok) throw new LifeboatError('FAILED', 'the quickstart restore did not bring the deleted rows back', { hint: 'please report this with the output above' });
    });
}
