/**
 * Where the packs a run writes go, one file per pack, instead of being held in memory
 * (16 MiB each; restic keeps its packs in temporary files too): a backup's chunk
 * workers and main thread, and the re-packing of copy, prune and key re-sealing. For a
 * local store the directory lies in the store's own `tmp/`
 * (Store.stagingDir), on the same filesystem, so each pack is linked into place and
 * never copied. For any other store it lies in `spill/` of the user's cache
 * directory (on disk, where /tmp may be memory; os.tmpdir() when that cannot be
 * made), and packs are read from it.
 *
 * It is created exclusively with mode 0700 and named `<random>.spill`, and it is
 * removed when the run ends, whatever the outcome. One left by a crash is removed
 * after a day: by the local store's sweep of `tmp/`, or by the next backup's sweep of
 * the cache directory (util/sweep.ts).
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { PackWriter } from './pack-writer.js';
import type { Repository } from '../repository.js';
import type { LocalFile, Store } from '../../storage/store.js';
import { checkName } from '../../util/safe-fs.js';
import { SPILL_SUFFIX, sweepStale } from '../../util/sweep.js';
import { cacheRoot } from '../../util/cache-root.js';

/** A spill directory older than this was left by a backup that died (as the local store's tmp/). */
const STALE_MS = 24 * 3600 * 1000;

/** How often a live spill directory's time is renewed, so no sweep takes it for a dead backup's. */
const TOUCH_MS = 3600 * 1000;

export class SpillDir {
  private readonly timer: NodeJS.Timeout;

  private constructor(readonly path: string) {
    // A backup that stores no new pack for a day (a long, fully deduplicated run) makes
    // no file here; its directory would look abandoned to another process's sweep.
    this.timer = setInterval(() => void this.touch(), TOUCH_MS).unref();
  }

  /** Marks the directory as in use now (sweeps remove those untouched for STALE_MS). */
  async touch(now = new Date()): Promise<void> {
    await fs.utimes(this.path, now, now).catch(() => {});
  }

  /**
   * A new spill directory: in `store`'s staging directory when it has one, else in
   * the first of `fallbacks` that can be used. A fallback that holds spill
   * directories alone (`own`: the cache's spill/, never the cache directory itself,
   * which holds a write-only client's files, nor /tmp) is swept of stale ones first.
   */
  static async open(store: Pick<Store, 'stagingDir'>, fallbacks: ReadonlyArray<{ dir: string; own: boolean }> = [{ dir: os.tmpdir(), own: false }]): Promise<SpillDir> {
    const staging = await store.stagingDir?.();
    if (staging !== undefined) return SpillDir.create(staging);
    let lastErr: unknown;
    for (const { dir: base, own } of fallbacks) {
      try {
        await fs.mkdir(base, { recursive: true, mode: 0o700 });
        if (own) sweepStale(base, Date.now() - STALE_MS);
        return await SpillDir.create(base);
      } catch (err) {
        lastErr = err;
      }
    }
    throw new LifeboatError('FAILED', `cannot make a directory for packs being written: ${lastErr instanceof Error ? lastErr.message : String(lastErr)}`, {
      hint: 'set LIFEBOAT_CACHE_DIR to a writable directory',
      cause: lastErr,
    });
  }

  /** A run's spill directory: the store's staging directory, else the cache's spill/, else os.tmpdir(). */
  static forRun(store: Pick<Store, 'stagingDir'>): Promise<SpillDir> {
    return SpillDir.open(store, [
      { dir: path.join(cacheRoot(), 'spill'), own: true },
      { dir: os.tmpdir(), own: false },
    ]);
  }

  private static async create(base: string): Promise<SpillDir> {
    const dir = path.join(base, `${randomBytes(12).toString('hex')}${SPILL_SUFFIX}`);
    // mkdir fails if anything (a symlink included) is already there: the directory is ours.
    await fs.mkdir(dir, { mode: 0o700 });
    const st = await fs.lstat(dir);
    if (!st.isDirectory() || (process.getuid && st.uid !== process.getuid())) {
      throw new LifeboatError('UNSAFE_PATH', `${dir} is not the directory just made`);
    }
    return new SpillDir(dir);
  }

  /** The file a worker wrote, by its name in this directory. */
  file(name: string, size: number): LocalFile {
    checkName(name);
    if (!name.endsWith('.tmp')) throw new LifeboatError('FAILED', `unexpected pack file name ${JSON.stringify(name)}`);
    return { path: path.join(this.path, name), size };
  }

  /** Removes one file (stored, or no longer wanted); best effort. */
  async discard(name: string): Promise<void> {
    try {
      await fs.rm(this.file(name, 0).path, { force: true });
    } catch {
      // Left for remove().
    }
  }

  /** Removes the directory and whatever is left in it; best effort. */
  async remove(): Promise<void> {
    clearInterval(this.timer);
    await fs.rm(this.path, { recursive: true, force: true }).catch(() => {});
  }
}

/**
 * Runs `fn` (a backup, or the re-packing of copy, prune and re-sealing) with a spill
 * directory and a pack writer that writes its packs there (pack-writer.ts), then,
 * whatever the outcome, waits for the writer's uploads, removes the files of packs
 * left open, and removes the directory.
 */
export async function withPackWriter<T>(repo: Repository, fn: (writer: PackWriter, spill: SpillDir) => Promise<T>): Promise<T> {
  const spill = await SpillDir.forRun(repo.store);
  const writer = repo.newPackWriter({ spillDir: spill.path });
  try {
    return await fn(writer, spill);
  } finally {
    await writer.settle();
    await spill.remove();
  }
}
