/**
 * The write phase of one batch of a restore's plan: packs are read once each per batch
 * (only the ranges needed, neighbouring blobs merged) and worker threads authenticate
 * the blobs and write them into their files' temporary names, relative to the target's
 * descriptor. Files of one blob are finished by the workers; a file of several is
 * finished (metadata, rename) through `finish` once its last piece is written. The
 * first failure stops new reads and terminates the pool's workers before the returned
 * promise resolves, so the caller's cleanup is final; after a success the pool is left
 * running for the next batch.
 */
import { unseal } from '../../codec/crypto.js';
import { isLifeboatError } from '../../errors.js';
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import { mapLimit } from '../../util/limit.js';
import type { RestorePool } from '../workers/restore-pool.js';
import type { RestoreBlob, RestoreJob } from '../workers/restore-protocol.js';

/** Neighbouring blobs closer than this are fetched in one read. */
const MERGE_GAP = 1024 * 1024;
/**
 * A single read never covers more than this (unless one blob is larger): the memory
 * bound per in-flight job, of which threads + 1 are read ahead and threads are being
 * written. 4 MiB instead of 16 cut a restore's peak RSS from ~410 MB to ~245 MB at the
 * same CPU time (docs/performance.md, issue 19).
 */
const MAX_READ = 4 * 1024 * 1024;

/** What the writer tracks of each file (BlobTarget.file indexes `files`). */
export interface ContentFile {
  done: boolean;
  remaining: number;
}

export interface ContentArgs {
  repo: Repository;
  /** pack index -> blob id -> where it goes; emptied as reads are planned. */
  packs: Map<number, Map<string, RestoreBlob>>;
  /** The workers; shared by every batch of one restore, closed by a failure. */
  pool: RestorePool;
  /** How many reads run ahead of the workers (one per worker and one more). */
  readAhead: number;
  /** The batch's files (BlobTarget.file indexes this). */
  files: readonly ContentFile[];
  finish: (f: ContentFile) => void;
  onWritten: (bytes: number) => void;
  /** A file of one blob the workers completed, in its directory `dir` (for progress; `finish` covers the others). */
  onWholeFile?: (dir: string, name: string) => void;
}

export function writeContent(a: ContentArgs): Promise<unknown> {
  return new ContentWriter(a).run();
}

class ContentWriter {
  private failed: unknown;
  private readonly repo: Repository;

  constructor(private readonly a: ContentArgs) {
    this.repo = a.repo;
  }

  /** Runs a job on the pool and accounts for the files it completed (also when it fails part-way). */
  private async runJob(pool: RestorePool, job: Omit<RestoreJob, 'job'>): Promise<number> {
    let n: number;
    try {
      n = await pool.run(job);
    } catch (err) {
      for (const i of (err as { done?: number[] }).done ?? []) (this.a.files[i] as ContentFile).done = true;
      throw err;
    }
    for (const b of job.blobs) {
      for (const t of b.targets) {
        const f = this.a.files[t.file] as ContentFile;
        if (t.whole) {
          f.done = true;
          this.a.onWholeFile?.(t.dir, t.whole.name);
        } else if (--f.remaining === 0) this.a.finish(f);
      }
    }
    return n;
  }

  /** Writes everything; resolves to the failure that stopped it, if one did (after the workers are gone). */
  async run(): Promise<unknown> {
    const { pool } = this.a;
    try {
      const reads: Array<{ packIndex: number; blobs: RestoreBlob[] }> = [];
      for (const [packIndex, blobMap] of this.a.packs) {
        const blobs = [...blobMap.values()].sort((a, b) => a.offset - b.offset);
        let run: RestoreBlob[] = [];
        for (const b of blobs) {
          const first = run[0];
          const last = run[run.length - 1];
          if (first && last && (b.offset - (last.offset + last.length) > MERGE_GAP || b.offset + b.length - first.offset > MAX_READ)) {
            reads.push({ packIndex, blobs: run });
            run = [];
          }
          run.push(b);
        }
        if (run.length) reads.push({ packIndex, blobs: run });
      }
      this.a.packs.clear();
      // Read ahead of the workers by one job each: the store and the CPUs both stay busy.
      await mapLimit(reads, this.a.readAhead, async (r) => {
        // After a failure nothing more is started (mapLimit would go on with the rest).
        if (this.failed !== undefined) return;
        try {
          await this.readPack(r, pool);
        } catch (err) {
          this.failed ??= err;
          throw err;
        }
      });
    } catch (err) {
      this.failed ??= err;
    }
    // Terminates the workers: after this nothing writes, so the caller's cleanup is final.
    if (this.failed !== undefined) await pool.close();
    return this.failed;
  }

  private async readPack(r: { packIndex: number; blobs: RestoreBlob[] }, pool: RestorePool): Promise<void> {
    const packKey = keys.pack(this.repo.index.packId(r.packIndex).toString('hex'));
    const first = r.blobs[0] as RestoreBlob;
    const last = r.blobs[r.blobs.length - 1] as RestoreBlob;
    const range = { offset: first.offset, length: last.offset + last.length - first.offset };
    // Read the count after the await: `x += await y` would add to a stale x.
    const n = await this.readRun(packKey, range, r.blobs, pool).catch(async (err: unknown) => {
      // The pack was pruned since the index was loaded (its blobs were stored again
      // elsewhere first), or it is damaged: each blob from whichever copy works.
      if (!isLifeboatError(err, 'NOT_FOUND') && !isLifeboatError(err, 'CORRUPT')) throw err;
      if (isLifeboatError(err, 'NOT_FOUND')) this.repo.index.markGone(r.packIndex);
      let done = 0;
      for (const b of r.blobs) {
        done += await this.repo.withBlobCopy(b.id, async (loc, key) => {
          const data = await this.repo.store.get(key, { offset: loc.offset, length: loc.length });
          return this.runJob(pool, { packKey: key, base: loc.offset, data, blobs: [{ ...b, offset: loc.offset, length: loc.length }] });
        });
      }
      return done;
    });
    this.a.onWritten(n);
  }

  /** Reads one run of neighbouring blobs of a pack and has the workers write them. */
  private async readRun(packKey: string, range: { offset: number; length: number }, blobs: RestoreBlob[], pool: RestorePool): Promise<number> {
    const base = range.offset;
    const data = await this.repo.store.get(packKey, range);
    return this.runJob(pool, { packKey, base, data, blobs }).catch(async (err: unknown) => {
      if (!isLifeboatError(err, 'CORRUPT')) throw err;
      // A damaged copy. Read it again with every blob checked here, so that a
      // store with retries or several destinations can serve a good one (the
      // workers rewrite the same offsets; nothing unauthenticated was written).
      const again = await this.repo.store.get(packKey, range, { verify: (d) => blobs.every((b) => opens(this.repo, d, b.offset - base, b.length, b.maxPlain)) });
      return this.runJob(pool, { packKey, base, data: again, blobs });
    });
  }
}

/** Whether the sealed blob at [offset, offset+length) of `data` authenticates. */
function opens(repo: Pick<Repository, 'key'>, data: Uint8Array, offset: number, length: number, maxPlain: number): boolean {
  try {
    unseal(repo.key, data.subarray(offset, offset + length), 'restore check', { kind: 'data' }, maxPlain);
    return true;
  } catch {
    return false;
  }
}
