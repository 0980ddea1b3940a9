/**
 * Local filesystem store, the embedded default. Each object is one file below the
 * root. Writes go to `tmp/` first, are fsynced, then moved into place with rename
 * (replace) or link (create-only), and the parent directory is fsynced: an object is
 * either wholly present or absent after a crash, never half-written. A finished file
 * (a pack a chunk worker wrote in `tmp/`: stagingDir) is linked into place the same
 * way, never copied or read.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import { LifeboatError, errno, fromSystemError } from '../../errors.js';
import { sweepStale } from '../../util/sweep.js';
import { assertKey, type ByteRange, type LocalFile, type ObjectInfo, type PutOptions, type Store } from '../store.js';

const TMP_DIR = 'tmp';
/**
 * A temporary file older than this was left by a writer that died (kill -9, power
 * loss): no live write takes a day. Such files are swept on a store's first write.
 */
const STALE_TMP_MS = 24 * 3600 * 1000;

/** Files whose sizes a listing reads at once. */
const LIST_STATS = 64;

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

  /** The store's tmp/, made and checked once, and swept of dead writers' leftovers on first use. */
  private async tmpDir(): Promise<string> {
    const tmpDir = path.join(this.root, TMP_DIR);
    await this.ensureDir(tmpDir);
    if (!this.swept) {
      this.swept = true;
      sweepStale(tmpDir, Date.now() - STALE_TMP_MS);
    }
    return tmpDir;
  }

  async put(key: string, data: Uint8Array, opts: PutOptions = {}): Promise<void> {
    const dest = this.file(key);
    let tmp: string | undefined;
    try {
      tmp = path.join(await this.tmpDir(), `${randomBytes(12).toString('hex')}.tmp`);
      await this.ensureDir(path.dirname(dest));
      const fh = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.place(key, tmp, dest, opts);
    } catch (err) {
      if (tmp) await fs.rm(tmp, { force: true }).catch(() => {});
      throw fromSystemError(err, `${this.location}: writing ${key}`);
    }
  }

  /**
   * Stores `file` without reading it into memory. A file in this store's tmp/ (where
   * stagingDir sends callers) is hard-linked to a temporary name of the store's own,
   * checked to be the very regular file opened without following symlinks, and
   * fsynced; any other file is copied there 1 MiB at a time. Then it is moved into
   * place like a put. The caller's file stays where it was.
   */
  async putFile(key: string, file: LocalFile, opts: PutOptions = {}): Promise<void> {
    const dest = this.file(key);
    let tmp: string | undefined;
    let src: FileHandle | undefined;
    try {
      tmp = path.join(await this.tmpDir(), `${randomBytes(12).toString('hex')}.tmp`);
      await this.ensureDir(path.dirname(dest));
      src = await fs.open(file.path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
      const st = await src.stat();
      if (!st.isFile() || st.size !== file.size) {
        throw new LifeboatError('FAILED', `${file.path}: not the ${file.size}-byte file that was written`);
      }
      // Only a file from tmp/ is linked: one from elsewhere (another destination's tmp/
      // in a multi-destination repository) is copied, so no two stores share an inode
      // (damage to one copy must not be damage to both).
      const rel = path.relative(path.join(this.root, TMP_DIR), path.resolve(file.path));
      let linked = rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
      if (linked) {
        try {
          await fs.link(file.path, tmp);
        } catch (err) {
          if (errno(err) !== 'EXDEV') throw err;
          linked = false;
        }
      }
      if (linked) {
        // link() names whatever is at the path now: it must still be the file opened above.
        const lst = await fs.lstat(tmp);
        if (!lst.isFile() || lst.ino !== st.ino || lst.dev !== st.dev) {
          throw new LifeboatError('UNSAFE_PATH', `${file.path} was replaced while it was being stored`);
        }
        await src.sync();
      } else {
        await copyInto(src, file.size, tmp);
      }
      await this.place(key, tmp, dest, opts);
    } catch (err) {
      if (tmp) await fs.rm(tmp, { force: true }).catch(() => {});
      throw fromSystemError(err, `${this.location}: writing ${key}`);
    } finally {
      await src?.close();
    }
  }

  /** tmp/ itself: files made there are linked into place, and a crash's are swept (see put). */
  async stagingDir(): Promise<string> {
    try {
      return await this.tmpDir();
    } catch (err) {
      throw fromSystemError(err, `${this.location}: preparing ${TMP_DIR}/`);
    }
  }

  /**
   * Moves the fsynced `tmp` to `dest`: link (create-only: an existing key stays as it
   * is) or rename (replace), then fsyncs the directory so the name survives a crash.
   */
  private async place(key: string, tmp: string, dest: string, opts: PutOptions): Promise<void> {
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
    const files: Array<{ name: string; key: string }> = [];
    for (const e of entries) {
      const key = dirKey ? `${dirKey}/${e.name}` : e.name;
      if (key === TMP_DIR) continue;
      if (e.isDirectory()) {
        // Only descend where keys below could still match the prefix.
        if (prefix.startsWith(`${key}/`) || key.startsWith(prefix)) yield* this.walk(key, prefix);
      } else if (e.isFile() && key.startsWith(prefix)) {
        files.push({ name: e.name, key });
      }
    }
    // Sizes are read LIST_STATS at a time: one by one, listing the data/ of a repository of
    // 390 625 packs took 13 s (docs/performance.md). A file gone since readdir is not listed.
    for (let i = 0; i < files.length; i += LIST_STATS) {
      const batch = files.slice(i, i + LIST_STATS);
      const stats = await Promise.all(batch.map((f) => fs.stat(path.join(dir, f.name)).catch(() => undefined)));
      for (let j = 0; j < batch.length; j++) {
        const st = stats[j];
        if (st) yield { key: batch[j]!.key, size: st.size };
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

/** Copies `size` bytes of `src` into a new file `dest` (1 MiB at a time) and fsyncs it. */
async function copyInto(src: FileHandle, size: number, dest: string): Promise<void> {
  const out = await fs.open(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    const buf = Buffer.allocUnsafe(Math.min(size, 1 << 20));
    for (let done = 0; done < size; ) {
      const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - done), done);
      if (bytesRead === 0) throw new LifeboatError('FAILED', `a file being stored is shorter than its ${size} bytes`);
      for (let w = 0; w < bytesRead; ) w += (await out.write(buf, w, bytesRead - w, done + w)).bytesWritten;
      done += bytesRead;
    }
    await out.sync();
  } finally {
    await out.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
