/** lifeboat ls: lists what a snapshot holds, below an optional path. */
import type { Command } from 'commander';
import { resolvePath, walkTree, type Entry } from '../../engine/browse/tree-walk.js';
import { nsToSeconds } from '../../sources/files/metadata.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { pickSnapshot } from '../../repo/snapshot/snapshot.js';
import { forTerminal } from '../../util/terminal.js';
import { LifeboatError } from '../../errors.js';
import { emitJobEvent } from '../output/job-events.js';

function line(e: Entry): string {
  const n = e.node;
  const t = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', socket: 's', chardev: 'c', blockdev: 'b' }[n.type];
  const when = new Date(nsToSeconds(n.mtime) * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '');
  const size = String(n.size ?? 0).padStart(12);
  return `${t}${(n.mode & 0o777).toString(8).padStart(4, '0')} ${String(n.uid).padStart(5)} ${String(n.gid).padStart(5)} ${size} ${when} ${e.path}${n.target !== undefined ? ` -> ${n.target}` : ''}`;
}

/** A flag's whole number (at least `min`), or undefined when it was not given. */
function count(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min) throw new LifeboatError('USAGE', `${flag} must be a whole number of at least ${min}, not "${value}"`, { hint: `e.g. ${flag} 1` });
  return n;
}

const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);

export function register(program: Command): void {
  program
    .command('ls')
    .description('list files in a snapshot')
    .argument('<snapshot>', 'snapshot id prefix or "latest"')
    .argument('[path]', 'only below this path', '/')
    .option('-l, --long', 'show type, mode, owner, size and time')
    .option('--depth <n>', 'only this many levels below the path (1: its entries; 0: the path itself)')
    .option('--limit <n>', 'stop after this many entries')
    .action(async (ref: string, p: string, flags: { long?: boolean; depth?: string; limit?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const depth = count(flags.depth, '--depth', 0);
      const limit = count(flags.limit, '--limit', 1);
      await withRepo(g, async (repo) => {
        const snap = pickSnapshot(await repo.listSnapshots(), ref, { onWarning: warn });
        await repo.loadIndex(); // after choosing: a snapshot's index files are stored before it
        const start = await resolvePath(repo, snap.tree, p);
        const entries: Entry[] = [];
        let shown = 0;
        /** False once the limit is reached: the walk stops there. */
        const emit = (e: Entry): boolean => {
          if (limit !== undefined && shown >= limit) return false;
          shown++;
          if (g.json) entries.push(e);
          else console.log(forTerminal(flags.long ? line(e) : e.path));
          return true;
        };
        if ('tree' in start) {
          if (depth !== 0) for await (const e of walkTree(repo, start.tree, '/', depth)) if (!emit(e)) break;
        } else if (emit(start) && depth !== 0 && start.node.type === 'dir' && start.node.subtree) {
          for await (const e of walkTree(repo, start.node.subtree, start.path, depth)) if (!emit(e)) break;
        }
        if (g.json) {
          const listed = entries.map((e) => {
            const { content: _c, subtree: _s, ...meta } = e.node;
            return { path: e.path, ...meta };
          });
          // The daemon's snapshot browser runs ls as a job child: the listing is its result event.
          emitJobEvent({ type: 'result', value: listed });
          process.stdout.write(`${JSON.stringify(listed)}\n`);
        }
      });
    });
}
