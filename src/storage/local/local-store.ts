/**
 * Local filesystem store, the embedded default. Each object is one file below the
 * root. Writes go to `tmp/` first, are fsynced, then moved into place with rename
 * (replace) or link (create-only), and the parent directory is fsynced: an object is
 * either wholly present or absent after a crash, never half-written.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno, fromSystemError } from '../../errors.js';
import { listAt, lstatAt, requireProc, unlinkAt } from '../../util/safe-fs.js';
import { assertKey, type ByteRange, type ObjectInfo, type PutOptions, type Store } from '../store.js';

const TMP_DIR = 'tmp';
/**
 * A temporary file older than this was left by a writer that died (kill -9, power
 * loss): no live write takes a day. Such files are swept on a store's first write.
 */
const STALE_TMP_MS = 24 * 3600 * 1000;

export class LocalStore implements Store {
  readonly location: string;
  private readonly root: string;
  private readonly knownDirs = new Set<string>();
  private swept = false;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = `local:${this.root}`;
  }

  private file(key: string): string {
    assertKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await this.assertRealDirs(dir);
  }

  /**
   * The store's own directories (tmp/, data/ab/, index/, ...) must be real directories:
   * through a symlinked one, writes, deletes and the sweep of tmp/ would act wherever it
   * points (a symlinked tmp/ made Lifeboat delete day-old files there). The root itself
   * may be a symlink: it is the location the administrator chose.
   */
  private async assertRealDirs(dir: string): Promise<void> {
    const rel = path.relative(this.root, dir);
    let at = this.root;
    for (const part of rel ? rel.split(path.sep) : []) {
      at = path.join(at, part);
      if (this.knownDirs.has(at)) continue;
      const st = await fs.lstat(at).catch(() => undefined);
      if (st?.isSymbolicLink()) {
        throw new LifeboatError('UNSAFE_PATH', `${this.location}: ${path.relative(this.root, at)}/ is a symlink; the repository's own directories must be real directories`, {
          hint: `replace ${at} with a directory (move what it points to into it), or point --repo at the real location`,
        });
      }
      if (st?.isDirectory()) this.knownDirs.add(at);
    }
  }

  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const dest = this.file(key);
    const tmpDir = path.join(this.root, TMP_DIR);
    const tmp = path.join(tmpDir, `${randomBytes(12).toString('hex')}.tmp`);
    try {
      await this.ensureDir(tmpDir);
      if (!this.swept) {
        this.swept = true;
        sweepStale(tmpDir, Date.now() - STALE_TMP_MS);
      }
      await this.ensureDir(path.dirname(dest));
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (opts.ifAbsent) {
        try {
          await fs.link(tmp, dest);
        } catch (err) {
          if (errno(err) === 'EEXIST') {
            throw new LifeboatError('ALREADY_EXISTS', `${this.location}: ${key} already exists`);
          }
          throw err;
        } finally {
          await fs.rm(tmp, { force: true });
        }
      } else {
        await fs.rename(tmp, dest);
      }
      await syncDir(path.dirname(dest));
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => {});
      throw fromSystemError(err, `${this.location}: writing ${key}`);
    }
  }

  async get(key: string, range?: ByteRange): Promise<Uint8Array> {
    const file = this.file(key);
    try {
      if (!range) return await fs.readFile(file);
      const fh = await fs.open(file, 'r');
      try {
        const buf = Buffer.allocUnsafe(range.length);
        let done = 0;
        while (done < range.length) {
          const { bytesRead } = await fh.read(buf, done, range.length - done, range.offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        if (done !== range.length) {
          throw new LifeboatError('CORRUPT', `${this.location}: ${key} is shorter than expected`, {
            hint: 'the object was truncated; run `lifeboat check`',
          });
        }
        return buf;
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (errno(err) === 'ENOENT') {
        throw new LifeboatError('NOT_FOUND', `${this.location}: ${key} not found`);
      }
      throw fromSystemError(err, `${this.location}: reading ${key}`);
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fs.stat(this.file(key));
      return { key, size: st.size };
    } catch (err) {
      if (errno(err) === 'ENOENT') return undefined;
      throw fromSystemError(err, `${this.location}: stat ${key}`);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const slash = prefix.lastIndexOf('/');
    const dirKey = slash < 0 ? '' : prefix.slice(0, slash);
    if (dirKey === TMP_DIR || dirKey.startsWith(`${TMP_DIR}/`)) return;
    yield* this.walk(dirKey, prefix);
  }

  private async *walk(dirKey: string, prefix: string): AsyncIterable<ObjectInfo> {
    const dir = dirKey ? path.join(this.root, ...dirKey.split('/')) : this.root;
    let entries;
    try {
      await this.assertRealDirs(dir);
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return;
      throw fromSystemError(err, `${this.location}: listing ${dirKey || '/'}`);
    }
    for (const e of entries) {
      const key = dirKey ? `${dirKey}/${e.name}` : e.name;
      if (key === TMP_DIR) continue;
      if (e.isDirectory()) {
        // Only descend where keys below could still match the prefix.
        if (prefix.startsWith(`${key}/`) || key.startsWith(prefix)) yield* this.walk(key, prefix);
      } else if (e.isFile() && key.startsWith(prefix)) {
        const st = await fs.stat(path.join(dir, e.name)).catch(() => undefined);
        if (st) yield { key, size: st.size };
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.assertRealDirs(path.dirname(this.file(key)));
      await fs.rm(this.file(key), { force: true });
    } catch (err) {
      throw fromSystemError(err, `${this.location}: deleting ${key}`);
    }
  }

  async close(): Promise<void> {}
}

/**
 * Removes plain files in `dir` last modified before `before`; best effort. The
 * directory is opened without following a symlink and each name is looked at and
 * removed relative to that descriptor (util/safe-fs.ts), so a tmp/ swapped for a
 * symlink is never swept. Without /proc nothing is swept (the files only take space).
 */
function sweepStale(dir: string, before: number): number {
  let n = 0;
  let fd: number;
  try {
    requireProc();
    fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch {
    return 0;
  }
  try {
    for (const name of listAt(fd)) {
      const st = lstatAt(fd, name);
      if (st?.isFile() && st.mtimeMs < before) {
        try {
          unlinkAt(fd, name);
          n++;
        } catch {
          // Gone already, or not ours to remove: best effort.
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return n;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
