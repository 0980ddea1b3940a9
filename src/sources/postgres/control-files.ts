/**
 * The files `pg restore` adds to a restored data directory (backup_label,
 * tablespace_map, recovery.signal, postgresql.auto.conf, pg_wal/archive_status),
 * written relative to the data directory's descriptor without following symlinks.
 *
 * The data directory belongs to the database's owner, who could have planted
 * `recovery.signal -> /etc/...` before a root restore: written by path, root would
 * write and chown through it. Here whatever is at a name is removed (a symlink as a
 * link), each file is created exclusively under a temporary name, owned on its
 * descriptor, and renamed into place. PG_VERSION, restored under a temporary name, is
 * named last (commitVersion).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants as C, fchownSync, fstatSync, fsyncSync, lstatSync, readSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { createFileAt, lstatAt, mkdirAt, openDirAt, openFileAt, removeAt, renameAt, unlinkAt } from '../../util/safe-fs.js';
import { openSafeDir } from '../../engine/restore/target.js';
import { LifeboatError } from '../../errors.js';
import { coreutil } from '../../util/process.js';

/** An open restored data directory; the owner new files get is the directory's. */
export class DataDir {
  private readonly uid: number;
  private readonly gid: number;
  private readonly isRoot = process.getuid?.() === 0;

  private constructor(readonly fd: number) {
    const st = fstatSync(fd);
    this.uid = st.uid;
    this.gid = st.gid;
  }

  /** Opens DIR (its parents must pass the target rules) without following a symlink at DIR. */
  static open(dir: string): DataDir {
    // Its parents may belong to the data directory's owner, as the restore allowed.
    const owner = lstatSync(dir, { throwIfNoEntry: false })?.uid;
    const parent = openSafeDir(path.dirname(path.resolve(dir)), owner);
    try {
      return new DataDir(openDirAt(parent.fd, path.basename(path.resolve(dir))));
    } finally {
      closeSync(parent.fd);
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  /** A plain file's text, or '' when there is none (a symlink or anything else is not read). */
  read(name: string): string {
    let fd: number;
    try {
      fd = openFileAt(this.fd, name, C.O_RDONLY | C.O_NONBLOCK);
    } catch {
      return '';
    }
    try {
      if (!fstatSync(fd).isFile()) return '';
      const parts: Buffer[] = [];
      const buf = Buffer.allocUnsafe(64 * 1024);
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) parts.push(Buffer.from(buf.subarray(0, n)));
      return Buffer.concat(parts).toString('utf8');
    } finally {
      closeSync(fd);
    }
  }

  /** Replaces `name` with a new file holding `text`, owned like the directory. */
  write(name: string, text: string, mode = 0o600): void {
    const tmp = `.${name}.lifeboat-${randomBytes(4).toString('hex')}`;
    const fd = createFileAt(this.fd, tmp, mode);
    try {
      const data = Buffer.from(text, 'utf8');
      let done = 0;
      while (done < data.length) done += writeSync(fd, data, done, data.length - done);
      if (this.isRoot) fchownSync(fd, this.uid, this.gid);
    } catch (err) {
      closeSync(fd);
      removeAt(this.fd, tmp);
      throw err;
    }
    closeSync(fd);
    // A directory in the way cannot be replaced by rename; a symlink or file is, atomically.
    if (lstatAt(this.fd, name)?.isDirectory()) removeAt(this.fd, name);
    renameAt(this.fd, tmp, this.fd, name);
  }

  /**
   * pg_wal/archive_status as real directories owned like the data directory: a pg_wal
   * symlink (initdb --waldir) would point the restored server at the original
   * cluster's WAL, so it is replaced by a directory.
   */
  walDirs(): void {
    if (lstatAt(this.fd, 'pg_wal')?.isSymbolicLink()) removeAt(this.fd, 'pg_wal');
    const wal = this.ensureDir(this.fd, 'pg_wal');
    try {
      closeSync(this.ensureDir(wal, 'archive_status'));
    } finally {
      closeSync(wal);
    }
  }

  /**
   * Gives the restored PG_VERSION (complete under the temporary name `tmp`) its name,
   * last of all: PostgreSQL refuses to start a data directory without it, so neither a
   * server started early nor one started after a crash or a failed restore can run on
   * a copy that is not all there. What was written before is first made durable (the
   * file system's syncfs, by `sync -f`), so a power cut cannot leave PG_VERSION on disk
   * without the files it vouches for.
   */
  commitVersion(tmp: string): void {
    // The directory's descriptor is the child's fd 3: no path is looked up again. A
    // sync that does not know -f (busybox's before 1.26, coreutils' before 8.24) flushes
    // every file system instead: slower, as sure. Any other failure (an I/O error the
    // kernel reports) stands: sync(2) would not report it.
    const run = (args: string[]) => spawnSync(coreutil('sync'), args, { stdio: ['ignore', 'ignore', 'pipe', this.fd], encoding: 'utf8' });
    let r = run(['-f', '/proc/self/fd/3']);
    if (r.status !== 0 && /option|usage/i.test(r.stderr ?? '')) r = run([]);
    if (r.status !== 0) {
      throw new LifeboatError('RESTORE_INCOMPLETE', `could not flush the restored data directory to disk: ${(r.stderr || r.error?.message || `sync exited ${r.status}`).trim()}`, {
        hint: 'PG_VERSION was not written, so PostgreSQL will not start this copy; restore again with --delta',
      });
    }
    renameAt(this.fd, tmp, this.fd, 'PG_VERSION');
    fsyncSync(this.fd);
  }

  /**
   * Removes the file this restore left under a temporary name (a held PG_VERSION when
   * what followed failed); whatever else is there now is left alone, and nothing thrown.
   */
  discard(name: string): void {
    try {
      unlinkAt(this.fd, name);
    } catch {
      // Gone, or replaced by a directory: PG_VERSION is not named either way.
    }
  }

  private ensureDir(dirFd: number, name: string): number {
    try {
      mkdirAt(dirFd, name, 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const fd = openDirAt(dirFd, name);
    if (this.isRoot) fchownSync(fd, this.uid, this.gid);
    return fd;
  }
}

/** The port a data directory's configuration names (5432 when it does not say). */
export function portOf(dir: DataDir): number {
  let port = 5432;
  for (const f of ['postgresql.conf', 'postgresql.auto.conf']) {
    for (const m of dir.read(f).matchAll(/^\s*port\s*=\s*'?(\d+)'?/gm)) port = Number(m[1]);
  }
  return port;
}
