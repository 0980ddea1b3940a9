/**
 * `lifeboat command backup`: a program's stdout stored as the one file of a snapshot,
 * cut by the repository's content-defined chunker like `pg dump` (engine/backup/
 * stream.ts), so an unchanged second dump adds almost nothing. The snapshot is
 * written only once the program exited 0; a non-zero exit, a signal or an
 * interruption leaves none (the chunks already stored are reused by the next run).
 */
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { backupStream } from '../../engine/backup/stream.js';
import type { ProgressFn } from '../../engine/progress.js';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { redact } from '../../util/redact.js';
import { dumpPath } from './names.js';
import type { CommandPoint } from './point.js';
import { checkProgram, commandFailed, shown, start, type CommandSpec } from './run.js';

export interface CommandBackupOptions {
  name: string;
  dump: CommandSpec;
  /** Recorded in the point when the dump came from one. */
  preset?: string | undefined;
  tags?: string[];
  /** Aborting stops the dump (its whole process group) and saves no snapshot: INTERRUPTED. */
  signal?: AbortSignal;
  onProgress?: ProgressFn;
}

export async function commandBackup(repo: Repository, opts: CommandBackupOptions): Promise<Snapshot> {
  const file = dumpPath(opts.name);
  const argv = opts.dump.argv;
  checkProgram('dump', opts.dump);
  if (opts.signal?.aborted) throw interrupted(opts.name);
  const startedAt = new Date();
  const run = start(opts.dump, ['ignore', 'pipe', 'pipe']);
  let stopped = false;
  const onAbort = () => {
    stopped = true;
    void run.stop();
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const hash = createHash('sha256');
  let bytes = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  run.child.stdout?.on('error', (err) => counted.destroy(err));
  run.child.stdout?.pipe(counted);
  try {
    return await backupStream(repo, counted, {
      path: file,
      source: { kind: 'command', name: opts.name },
      tags: opts.tags ?? [],
      time: startedAt,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      beforeSnapshot: async () => {
        const e = await run.exit;
        if (stopped) throw interrupted(opts.name);
        if (e.code !== 0) {
          throw commandFailed('SOURCE_UNAVAILABLE', 'dump', argv, e, `no snapshot was saved; run ${shown(argv.slice(0, 1))} by hand to see all it says`);
        }
        const finishedAt = new Date();
        const point: CommandPoint = {
          argv: argv.map(redact),
          ...(opts.preset !== undefined ? { preset: opts.preset } : {}),
          envNames: Object.keys(opts.dump.env ?? {}).sort(),
          ...(opts.dump.cwd !== undefined ? { cwd: opts.dump.cwd } : {}),
          exitCode: e.code,
          stderrTail: redact(e.stderrTail),
          startedAt: startedAt.toISOString(),
          finishedAt: finishedAt.toISOString(),
          durationMs: finishedAt.getTime() - startedAt.getTime(),
          bytes,
          sha256: hash.digest('hex'),
        };
        return point as unknown as Record<string, unknown>;
      },
    });
  } catch (err) {
    // Our side failed (the store, an interruption) or the dump did: never leave it writing into a closed pipe.
    await run.stop();
    throw stopped ? interrupted(opts.name) : err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function interrupted(name: string): LifeboatError {
  return new LifeboatError('INTERRUPTED', `the backup of command source ${name} was interrupted; the dump was stopped and no snapshot was saved`, { hint: 'run it again' });
}
