/**
 * File-system calls relative to directory descriptors that never follow symlinks:
 * what openat/mkdirat/renameat/... give C programs, for Node, which has none of them.
 *
 * On Linux, `/proc/self/fd/N` names the very directory descriptor N holds (not the
 * path it was opened by), so `/proc/self/fd/N/name` looks `name` up in that directory
 * whatever has been renamed or swapped since. With one validated name component and
 * O_NOFOLLOW on the open, that is openat(N, name, O_NOFOLLOW). Paths are walked one
 * component at a time from a descriptor, each opened O_DIRECTORY|O_NOFOLLOW, so a
 * directory swapped for a symlink mid-walk fails the walk instead of redirecting it.
 * Owners, modes and times are set on descriptors (fchown/fchmod/futimes).
 *
 * Why not a native addon: the one call this needs, openat, is reachable through /proc
 * with Node's own fs, so no compiled dependency (and its supply chain and build step)
 * is added to a tool that runs as root. The cost is that /proc must be mounted;
 * `requireProc` refuses clearly when it is not. (docs/security.md, docs/dependencies.md)
 */
import {
  closeSync,
  constants as C,
  fstatSync,
  linkSync,
  lchownSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import type { Stats } from 'node:fs';

/** A path naming `name` inside the directory descriptor `dirFd` holds. */
export function at(dirFd: number, name: string): string {
  checkName(name);
  return `/proc/self/fd/${dirFd}/${name}`;
}

/** One path component: no separator, not "." or "..", not empty, no NUL. */
export function checkName(name: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw Object.assign(new Error(`not a single path component: ${JSON.stringify(name)}`), { code: 'EINVAL' });
  }
}

let procChecked = false;

/**
 * Throws unless /proc/self/fd resolves descriptors (it does not in a chroot or a
 * container without /proc): without it none of this is safe, so nothing is written.
 */
export function requireProc(): void {
  if (procChecked) return;
  let fd: number | undefined;
  try {
    fd = openSync('/', C.O_RDONLY | C.O_DIRECTORY);
    const a = fstatSync(fd);
    const b = statSync(`/proc/self/fd/${fd}`);
    if (a.ino !== b.ino || a.dev !== b.dev) throw new Error('mismatch');
    procChecked = true;
  } catch {
    throw Object.assign(new Error('/proc is not mounted: restores need /proc/self/fd to write without following symlinks'), { code: 'ENOPROC' });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Opens directory `name` in `dirFd`; a symlink or non-directory there fails (ELOOP/ENOTDIR). */
export function openDirAt(dirFd: number, name: string): number {
  return openSync(at(dirFd, name), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
}

/** Opens a file in `dirFd` without following a symlink at `name`; O_NONBLOCK so a FIFO cannot hang us. */
export function openFileAt(dirFd: number, name: string, flags: number, mode = 0o600): number {
  return openSync(at(dirFd, name), flags | C.O_NOFOLLOW, mode);
}

/** Creates a new file exclusively (fails if anything, even a dangling symlink, is there). */
export function createFileAt(dirFd: number, name: string, mode = 0o600): number {
  return openFileAt(dirFd, name, C.O_WRONLY | C.O_CREAT | C.O_EXCL, mode);
}

export function mkdirAt(dirFd: number, name: string, mode = 0o700): void {
  mkdirSync(at(dirFd, name), { mode });
}

/** Creates `name` as a new directory (EEXIST if anything is there) and opens it. */
export function mkdirOpenAt(dirFd: number, name: string, mode = 0o700): number {
  mkdirAt(dirFd, name, mode);
  return openDirAt(dirFd, name);
}

export function renameAt(fromDir: number, from: string, toDir: number, to: string): void {
  renameSync(at(fromDir, from), at(toDir, to));
}

/** link(2) never follows a symlink at its source; fails with EEXIST instead of replacing. */
export function linkAt(fromDir: number, from: string, toDir: number, to: string): void {
  linkSync(at(fromDir, from), at(toDir, to));
}

export function symlinkAt(target: string, dirFd: number, name: string): void {
  symlinkSync(target, at(dirFd, name));
}

export function unlinkAt(dirFd: number, name: string): void {
  unlinkSync(at(dirFd, name));
}

export function lstatAt(dirFd: number, name: string): Stats | undefined {
  // The magic link to the directory is followed; `name` itself is not (lstat).
  return lstatSync(at(dirFd, name), { throwIfNoEntry: false });
}

export function lchownAt(dirFd: number, name: string, uid: number, gid: number): void {
  lchownSync(at(dirFd, name), uid, gid);
}

export function lutimesAt(dirFd: number, name: string, atime: number, mtime: number): void {
  lutimesSync(at(dirFd, name), atime, mtime);
}

/** Removes `name` in `dirFd` whatever it is; directories are emptied without following symlinks. */
export function removeAt(dirFd: number, name: string): void {
  const st = lstatAt(dirFd, name);
  if (!st) return;
  if (!st.isDirectory()) {
    unlinkAt(dirFd, name);
    return;
  }
  const fd = openDirAt(dirFd, name);
  try {
    for (const child of readdirSync(`/proc/self/fd/${fd}`)) removeAt(fd, child);
  } finally {
    closeSync(fd);
  }
  rmdirSync(at(dirFd, name));
}

/** Names in the directory `dirFd` holds. */
export function listAt(dirFd: number): string[] {
  return readdirSync(`/proc/self/fd/${dirFd}`);
}

/**
 * Directories below one root descriptor, opened on demand by walking one component
 * at a time (each O_DIRECTORY|O_NOFOLLOW) and cached, at most `limit` open at once.
 * A cache belongs to one thread: an evicted descriptor is closed, so a descriptor
 * number handed out must be used before the next `dir()` call of the same cache.
 */
export class DirCache {
  private readonly open = new Map<string, number>();

  constructor(
    readonly rootFd: number,
    private readonly limit = 256,
  ) {}

  /** The descriptor of directory `rel` ("" is the root; components joined by "/"). */
  dir(rel: string): number {
    if (rel === '') return this.rootFd;
    const hit = this.open.get(rel);
    if (hit !== undefined) {
      // Most recently used last, so eviction takes the oldest.
      this.open.delete(rel);
      this.open.set(rel, hit);
      return hit;
    }
    const slash = rel.lastIndexOf('/');
    const parent = this.dir(slash < 0 ? '' : rel.slice(0, slash));
    const fd = openDirAt(parent, rel.slice(slash + 1));
    this.open.set(rel, fd);
    this.evict(rel);
    return fd;
  }

  /** Makes directory `rel` (its parent must exist) unless it is there, and opens it. */
  ensure(rel: string, mode = 0o700): number {
    const hit = this.open.get(rel);
    if (hit !== undefined) return hit;
    const slash = rel.lastIndexOf('/');
    const parent = this.dir(slash < 0 ? '' : rel.slice(0, slash));
    try {
      mkdirAt(parent, rel.slice(slash + 1), mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    return this.dir(rel);
  }

  /** Forgets (and closes) `rel` and everything below it, e.g. after removing it. */
  forget(rel: string): void {
    for (const [k, fd] of this.open) {
      if (k === rel || k.startsWith(rel + '/')) {
        closeSync(fd);
        this.open.delete(k);
      }
    }
  }

  private evict(keep: string): void {
    for (const [k, fd] of this.open) {
      if (this.open.size <= this.limit) return;
      // Never the one just opened, nor an ancestor of it (they are cheap to reopen anyway).
      if (k === keep || keep.startsWith(k + '/')) continue;
      closeSync(fd);
      this.open.delete(k);
    }
  }

  close(): void {
    for (const fd of this.open.values()) closeSync(fd);
    this.open.clear();
  }
}

/** Splits a relative path into "parent rel" and last name. */
export function splitRel(rel: string): { dir: string; name: string } {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? { dir: '', name: rel } : { dir: rel.slice(0, slash), name: rel.slice(slash + 1) };
}
