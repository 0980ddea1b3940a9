/** lifeboat diff: what changed between two snapshots. */
import type { Command } from 'commander';
import { diffTrees } from '../../engine/browse/tree-walk.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { printJson } from '../output/render.js';
import { pickSnapshot } from '../../repo/snapshot/snapshot.js';
import { forTerminal } from '../../util/terminal.js';

const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);

export function register(program: Command): void {
  program
    .command('diff')
    .description('show differences between two snapshots')
    .argument('<snapshot1>')
    .argument('<snapshot2>')
    .action(async (a: string, b: string, _flags: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const all = await repo.listSnapshots();
        const [s1, s2] = [pickSnapshot(all, a, { onWarning: warn }), pickSnapshot(all, b, { onWarning: warn })];
        await repo.loadIndex(); // after choosing: a snapshot's index files are stored before it
        const d = await diffTrees(repo, s1.tree, s2.tree);
        if (g.json) return printJson({ from: s1.id, to: s2.id, ...d });
        const rows: Array<[string, string]> = [
          ...d.removed.map((p): [string, string] => ['-', p]),
          ...d.added.map((p): [string, string] => ['+', p]),
          ...d.modified.map((p): [string, string] => ['M', p]),
          ...d.metadata.map((p): [string, string] => ['U', p]),
        ].sort((x, y) => x[1].localeCompare(y[1]));
        for (const [k, p] of rows) console.log(forTerminal(`${k}    ${p}`));
        console.log(`\n${d.added.length} added, ${d.removed.length} removed, ${d.modified.length} modified, ${d.metadata.length} metadata only`);
      });
    });
}
