/**
 * `lifeboat bucket restore`: a bucket snapshot back into a bucket/prefix (each object
 * under its recorded key, with its content type and user metadata), into a new
 * directory (through the generic restorer: no symlink followed, every blob
 * authenticated), or one object of it.
 *
 * A target bucket that already holds objects under the prefix is refused unless
 * `force`: a restore must not mix with what is there. Objects are streamed from the
 * repository blob by blob (engine/restore/stream.ts), `parallel` at once.
 */
import { createWriteStream, fsyncSync, closeSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { LifeboatError } from '../../errors.js';
import { walkTree } from '../../engine/browse/tree-walk.js';
import { restore as restoreTree } from '../../engine/restore/restorer.js';
import { restoreStream } from '../../engine/restore/stream.js';
import { openTarget } from '../../engine/restore/target.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { pickForRestore } from '../../repo/snapshot/select.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import type { ObjectAccess } from '../../storage/objects.js';
import { createFileAt } from '../../util/safe-fs.js';
import { Semaphore } from '../../util/limit.js';
import { bucketSourceLabel } from './names.js';

export interface BucketPick {
  name: string;
  /** An id prefix; default the newest (at or before `time`). */
  snapshot?: string;
  time?: Date;
}

/** The snapshot a restore means: `--snapshot ID`, the newest at or before `--time`, or the newest. */
export async function pickBucketSnapshot(repo: Repository, p: BucketPick): Promise<Snapshot> {
  return pickForRestore(await repo.listSnapshots(), p.snapshot ?? 'latest', { source: bucketSourceLabel(p.name), ...(p.time ? { time: p.time } : {}) });
}

export interface RestoreResultCounts {
  snapshot: string;
  objects: number;
  bytes: number;
}

/** The file nodes of a snapshot that are objects (all of them, or the one with key `only`), in key order. */
async function* objectNodes(repo: Repository, snap: Snapshot, only: string | undefined): AsyncGenerator<{ path: string; node: TreeNode }> {
  for await (const e of walkTree(repo, snap.tree)) {
    if (e.node.type !== 'file' || !e.node.object) continue;
    if (only !== undefined && e.node.object.key !== only) continue;
    yield e;
  }
}

function noObject(snap: Snapshot, key: string): LifeboatError {
  return new LifeboatError('NOT_FOUND', `object ${JSON.stringify(key)} is not in snapshot ${snap.id.slice(0, 8)}`, {
    hint: `\`lifeboat ls ${snap.id.slice(0, 8)}\` lists its objects (keys relative to the backed-up prefix)`,
  });
}

/**
 * Writes every object of `snap` (or the one keyed `only`) into `target`. Refuses a
 * target with objects under its prefix (TARGET_EXISTS) unless `force`, before writing.
 */
export async function restoreToBucket(
  repo: Repository,
  snap: Snapshot,
  target: ObjectAccess,
  opts: { force: boolean; parallel: number; only?: string; location: string },
): Promise<RestoreResultCounts> {
  if (!opts.force) {
    for await (const o of target.listObjects('')) {
      throw new LifeboatError('TARGET_EXISTS', `${opts.location} already holds objects (${JSON.stringify(o.key)}, …); nothing was written`, {
        hint: 'restore into an empty bucket or prefix, or pass --force to write over objects of the same keys',
      });
    }
  }
  const lock = await acquireLock(repo.store, 'shared', `bucket restore ${snap.id.slice(0, 8)}`);
  try {
    await repo.loadIndex();
    const slots = new Semaphore(Math.max(1, opts.parallel));
    const running = new Set<Promise<void>>();
    let failure: unknown;
    const counts = { snapshot: snap.id, objects: 0, bytes: 0 };
    for await (const { node } of objectNodes(repo, snap, opts.only)) {
      if (failure !== undefined) break;
      await slots.acquire();
      const rec = node.object as NonNullable<TreeNode['object']>;
      const job = target
        .putObject(rec.key, () => blobStream(repo, node), node.size ?? 0, { ...(rec.contentType ? { contentType: rec.contentType } : {}), metadata: rec.metadata ?? {} })
        .then(
          () => {
            counts.objects++;
            counts.bytes += node.size ?? 0;
          },
          (err: unknown) => {
            failure ??= err;
          },
        )
        .finally(() => {
          slots.release();
          running.delete(job);
        });
      running.add(job);
    }
    await Promise.all(running);
    if (failure !== undefined) throw failure;
    if (opts.only !== undefined && counts.objects === 0) throw noObject(snap, opts.only);
    return counts;
  } finally {
    await lock.release();
  }
}

/** A file's bytes from the repository as a stream; a blob failing authentication destroys it with the error. */
function blobStream(repo: Repository, node: TreeNode): Readable {
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  restoreStream(repo, node, out).catch((err: unknown) => out.destroy(err instanceof Error ? err : new Error(String(err))));
  return out;
}

/**
 * Writes the snapshot's objects as files below `output`, a new directory: the generic
 * restorer, so nothing below it is followed and every blob is authenticated. With
 * `only`, that one object is written as `output/<its file name>`.
 */
export async function restoreToDirectory(repo: Repository, snap: Snapshot, opts: { output: string; only?: string }): Promise<RestoreResultCounts> {
  if (opts.only === undefined) {
    const r = await restoreTree(repo, snap, { target: opts.output });
    if (r.errors.length) {
      throw new LifeboatError('RESTORE_INCOMPLETE', `${r.errors.length} objects could not be written (first: ${r.errors[0]?.path ?? ''}: ${r.errors[0]?.message ?? ''})`, { hint: 'the directory holds the others' });
    }
    return { snapshot: snap.id, objects: r.files, bytes: r.bytes };
  }
  const lock = await acquireLock(repo.store, 'shared', `bucket restore ${snap.id.slice(0, 8)}`);
  try {
    await repo.loadIndex();
    for await (const { node } of objectNodes(repo, snap, opts.only)) {
      const dir = openTarget(opts.output, { mayExist: false, flag: '--output' });
      try {
        const fd = createFileAt(dir.fd, node.name);
        const out = createWriteStream('', { fd, autoClose: false });
        try {
          const bytes = await restoreStream(repo, node, out);
          fsyncSync(fd);
          return { snapshot: snap.id, objects: 1, bytes };
        } finally {
          closeSync(fd);
        }
      } finally {
        closeSync(dir.fd);
      }
    }
    throw noObject(snap, opts.only);
  } finally {
    await lock.release();
  }
}
