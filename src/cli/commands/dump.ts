/**
 * lifeboat dump: writes one file of a snapshot to stdout (restic's `dump`), blob by
 * blob with back-pressure (engine/restore/stream.ts), so a file of any size costs a
 * few chunks of memory. The daemon's file download runs it as a job child and streams
 * its stdout to the browser. With --json nothing but the bytes goes to stdout; in a
 * daemon job the byte count is the job's result event.
 */
import type { Command } from 'commander';
import { LifeboatError } from '../../errors.js';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { pickSnapshot } from '../../repo/snapshot/snapshot.js';
import { withRepo, type GlobalOptions } from '../context.js';
import { emitJobEvent } from '../output/job-events.js';

const warn = (m: string) => process.stderr.write(`warning: ${m}\n`);

export function register(program: Command): void {
  program
    .command('dump')
    .description("write one file of a snapshot to stdout (e.g. lifeboat dump latest /etc/hosts > hosts)")
    .argument('<snapshot>', 'snapshot id prefix or "latest"')
    .argument('<path>', 'the file, as `ls` names it')
    .action(async (ref: string, p: string, _flags: unknown, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      if (process.stdout.isTTY && !g.json) {
        throw new LifeboatError('USAGE', 'dump writes the file\'s bytes to stdout, which is a terminal', { hint: `redirect it: lifeboat dump ${ref} ${p} > FILE` });
      }
      await withRepo(g, async (repo) => {
        const snap = pickSnapshot(await repo.listSnapshots(), ref, { onWarning: warn });
        await repo.loadIndex(); // after choosing: a snapshot's index files are stored before it
        const found = await resolvePath(repo, snap.tree, p);
        if ('tree' in found || found.node.type !== 'file') {
          const type = 'tree' in found ? 'dir' : found.node.type;
          throw new LifeboatError('USAGE', `${found.path} is a ${type === 'dir' ? 'directory' : type}, not a file`, { hint: `\`lifeboat ls ${ref} ${found.path}\` lists what it holds; dump takes one file` });
        }
        const bytes = await restoreStream(repo, found.node, process.stdout);
        emitJobEvent({ type: 'result', value: { snapshot: snap.id, path: found.path, bytes } });
      });
    });
}
