/**
 * `lifeboat command restore`: a stored dump piped into a load command's stdin, or
 * written to a new file. The file is written under a private name in its directory
 * (opened safely, engine/restore/target.ts) and linked to its name only when
 * complete, so a restore that fails leaves nothing under the name and never follows
 * a symlink. Every blob is authenticated before it is written (engine/restore/
 * stream.ts); if one fails part-way the load command is killed (SIGKILL, its whole
 * process group) before its stdin is closed, so it never sees a clean end of a
 * truncated dump.
 */
import { createWriteStream } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { resolvePath } from '../../engine/browse/tree-walk.js';
import type { ProgressFn } from '../../engine/progress.js';
import { NewFile } from '../../engine/restore/new-file.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { LifeboatError, errno } from '../../errors.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { pickSnapshot, type Snapshot } from '../../repo/snapshot/snapshot.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { dumpPath } from './names.js';
import { checkProgram, commandFailed, start, type CommandSpec, type Running } from './run.js';

export interface CommandRestoreOptions {
  name: string;
  /** A snapshot id prefix among this source's; default: the newest. */
  snapshot?: string | undefined;
  /** The newest snapshot at or before this moment. */
  time?: Date | undefined;
  /** A new file to write the dump to. */
  output?: string | undefined;
  /** A program whose stdin gets the dump; its exit status decides success. */
  load?: CommandSpec | undefined;
  onProgress?: ProgressFn;
}

export interface CommandRestoreResult {
  snapshot: Snapshot;
  bytes: number;
  output: string | null;
  load: string[] | null;
  durationMs: number;
}

/** How a consumer that closed its input early fails our writes: its exit status decides. */
const BROKEN_PIPE = new Set(['EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED']);

/** The snapshot of command source `name` a restore asked for. */
export function chooseSnapshot(all: readonly Snapshot[], name: string, opts: Pick<CommandRestoreOptions, 'snapshot' | 'time'>): Snapshot {
  const mine = all.filter((s) => s.source.kind === 'command' && s.source.name === name);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no dump of command source "${name}" in the repository`, { hint: 'make one with `lifeboat command backup --name NAME -- DUMP-COMMAND…`; `lifeboat snapshots` lists the sources' });
  }
  if (opts.snapshot !== undefined) {
    const ours = mine.find((s) => s.id.startsWith(opts.snapshot as string));
    if (!ours && /^[0-9a-f]{4,64}$/.test(opts.snapshot) && all.some((s) => s.id.startsWith(opts.snapshot as string))) {
      throw new LifeboatError('WRONG_SOURCE', `snapshot ${opts.snapshot} is not a dump of command source "${name}"`, { hint: '`lifeboat snapshots` shows each snapshot\'s source' });
    }
    return pickSnapshot(mine, opts.snapshot);
  }
  if (opts.time !== undefined) {
    const limit = opts.time.getTime();
    const before = mine.filter((s) => Date.parse(s.time) <= limit).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
    const found = before.pop();
    if (!found) throw new LifeboatError('NOT_FOUND', `no dump of command source "${name}" at or before ${opts.time.toISOString()}`, { hint: 'the oldest is from ' + mine.map((s) => s.time).sort()[0] });
    return found;
  }
  return pickSnapshot(mine, 'latest');
}

export async function commandRestore(repo: Repository, opts: CommandRestoreOptions): Promise<CommandRestoreResult> {
  const started = Date.now();
  if ((opts.output === undefined) === (opts.load === undefined)) {
    throw new LifeboatError('USAGE', opts.output === undefined ? 'nothing to restore to' : 'give --output or a load command, not both', {
      hint: 'give --output FILE (a new file), --load (the source\'s load command from lifeboat.yaml), or the load command after --',
    });
  }
  if (opts.snapshot !== undefined && opts.time !== undefined) throw new LifeboatError('USAGE', 'give --snapshot or --time, not both', { hint: 'without either, the newest dump is restored' });
  if (opts.output === '-') throw new LifeboatError('USAGE', '--output takes a file name, not -', { hint: 'to pipe the dump into a program, give it after -- (its exit status decides success)' });
  if (opts.load) checkProgram('load', opts.load);
  // Refused before the repository is read: restores never overwrite.
  const file = opts.output !== undefined ? new NewFile(path.resolve(opts.output), 'command') : undefined;
  try {
    const lock = await acquireLock(repo.store, 'shared', `command restore ${opts.name}`);
    try {
      const snapshot = chooseSnapshot(await repo.listSnapshots(), opts.name, opts);
      await repo.loadIndex(); // after choosing: a snapshot's index files are stored before it
      const node = await dumpNode(repo, snapshot, opts.name);
      const progress = opts.onProgress ? { onProgress: opts.onProgress } : {};
      if (file) {
        const bytes = await restoreStream(repo, node, createWriteStream('', { fd: file.open(), autoClose: false }), progress);
        file.commit();
        return { snapshot, bytes, output: file.target, load: null, durationMs: Date.now() - started };
      }
      const load = opts.load as CommandSpec;
      const run = start(load, ['pipe', 'pipe', 'pipe']);
      // Its messages are the operator's to read; our stdout stays ours (--json).
      run.child.stdout?.pipe(process.stderr, { end: false });
      run.child.stderr?.pipe(process.stderr, { end: false });
      let fed: unknown;
      let bytes = 0;
      try {
        bytes = await restoreStream(repo, node, feeding(run), progress);
      } catch (err) {
        fed = err;
      }
      // Our failure (a damaged blob, the store) comes first: the load command's complaint
      // about its cut input would only be its consequence. A broken pipe is the load
      // command's doing (it stopped reading), and its exit status decides.
      const ours = fed !== undefined && !BROKEN_PIPE.has(errno(fed) ?? '');
      if (ours) run.kill('SIGKILL');
      const e = await run.exit;
      if (ours) throw fed;
      if (e.code !== 0) throw commandFailed('FAILED', 'load', load.argv, e, 'its own messages are above; what it did before failing depends on the tool (mariadb commits statement by statement)');
      return { snapshot, bytes, output: null, load: [...load.argv], durationMs: Date.now() - started };
    } finally {
      await lock.release();
    }
  } finally {
    file?.discard();
  }
}

async function dumpNode(repo: Repository, snapshot: Snapshot, name: string): Promise<TreeNode> {
  const want = dumpPath(name);
  const found = await resolvePath(repo, snapshot.tree, snapshot.paths[0] ?? want);
  if (!('node' in found) || found.node.type !== 'file') {
    throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} holds no dump at ${want}`, { hint: 'run `lifeboat check`' });
  }
  return found.node;
}

/**
 * The load command's stdin as the restore's sink. On a failure of ours the command is
 * killed before its stdin closes (a tool that commits as it reads must not take a cut
 * dump for a whole one); a command that stopped reading (EPIPE) is left to exit.
 */
function feeding(run: Running): Writable {
  const stdin = run.child.stdin;
  if (!stdin) throw new Error('the load command has no stdin');
  let broken: Error | undefined;
  stdin.on('error', (err) => (broken ??= err));
  const settled = (): Promise<void> =>
    new Promise((resolve) => {
      const done = () => {
        stdin.off('drain', done);
        stdin.off('close', done);
        stdin.off('error', done);
        resolve();
      };
      stdin.once('drain', done);
      stdin.once('close', done);
      stdin.once('error', done);
    });
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (broken || stdin.destroyed) return cb(broken ?? Object.assign(new Error('the load command closed its input'), { code: 'EPIPE' }));
      if (stdin.write(chunk)) return cb();
      void settled().then(() => cb(broken));
    },
    final(cb) {
      if (broken || stdin.destroyed) return cb(broken);
      stdin.end(() => cb());
    },
    destroy(err, cb) {
      if (err && !BROKEN_PIPE.has(errno(err) ?? '')) run.kill('SIGKILL');
      stdin.destroy();
      cb(err);
    },
  });
}
