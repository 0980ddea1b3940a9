/**
 * Opening a restore target safely, for every kind of restore (files, PostgreSQL data
 * directories, SQLite outputs).
 *
 * A restore runs as root, often into a path typed in a hurry. Whoever can write a
 * directory on the way to the target can swap what is below it for a symlink and
 * have root write wherever they like, so:
 * - every existing directory on the way (after resolving the administrator's own
 *   symlinks) must be owned by root or by us and not writable by group or others,
 *   unless it has the sticky bit (/tmp): there others cannot move our entries; a
 *   PostgreSQL restore also accepts directories owned by the data directory's owner
 *   (/var/lib/postgresql): that user owns the restored cluster anyway;
 * - missing parents are created one component at a time from a descriptor;
 * - the target itself is created exclusively, so one planted in a sticky /tmp is
 *   found, not used. An existing target is refused unless the caller allows it
 *   (--delta, --overwrite), and then it must not be writable by everyone.
 * Everything below the target is then written relative to the descriptor returned
 * (util/safe-fs.ts), never by path.
 */
import { closeSync, constants as C, fstatSync, lstatSync, openSync, realpathSync } from 'node:fs';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { mkdirAt, openDirAt, requireProc } from '../../util/safe-fs.js';

export interface OpenedDir {
  fd: number;
  /** Absolute path with the administrator's symlinks resolved, for messages. */
  path: string;
}

export interface OpenedTarget extends OpenedDir {
  /** False when the target existed (only possible when `mayExist`). */
  created: boolean;
}

const SAFE_HINT = 'choose a target whose parents only root (or you) can write, e.g. below /var/lib or your home; /tmp is fine (sticky)';

function requireProcOrThrow(): void {
  try {
    requireProc();
  } catch (err) {
    throw new LifeboatError('TARGET_UNSAFE', (err as Error).message, {
      hint: 'mount /proc (mount -t proc proc /proc); restores refuse to write without it',
    });
  }
}

/** Why `st` (a directory on the way to a target) lets someone else change what is below it, or undefined. */
export function unsafeReason(st: Stats, trustedUid?: number): string | undefined {
  const me = process.getuid?.() ?? 0;
  if (st.uid !== 0 && st.uid !== me && st.uid !== trustedUid) return `is owned by uid ${st.uid}`;
  const sticky = (st.mode & 0o1000) !== 0; // S_ISVTX
  if (!sticky && (st.mode & 0o002) !== 0) return 'is writable by others (and has no sticky bit)';
  if (!sticky && (st.mode & 0o020) !== 0 && st.gid !== 0) return `is writable by group ${st.gid} (and has no sticky bit)`;
  return undefined;
}

function assertSafe(p: string, st: Stats, trustedUid: number | undefined): void {
  if (!st.isDirectory()) throw new LifeboatError('TARGET_UNSAFE', `${p} is not a directory`, { hint: SAFE_HINT });
  const why = unsafeReason(st, trustedUid);
  if (why) throw new LifeboatError('TARGET_UNSAFE', `refusing to restore below ${p}: it ${why}`, { hint: SAFE_HINT });
}

/**
 * Opens directory `dir`, creating missing components (mode 0755) one at a time from
 * the nearest existing ancestor; every directory on the way must pass the rules above
 * (`trustedUid`: a user besides root and us whose directories are accepted).
 */
export function openSafeDir(dir: string, trustedUid?: number): OpenedDir {
  requireProcOrThrow();
  const abs = path.resolve(dir);
  const missing: string[] = [];
  let existing = abs;
  for (;;) {
    try {
      existing = realpathSync(existing);
      break;
    } catch (err) {
      if (errno(err) !== 'ENOENT' || existing === '/') throw err;
      missing.unshift(path.basename(existing));
      existing = path.dirname(existing);
    }
  }
  // The resolved path has no symlinks left; each prefix is checked from / down.
  let prefix = '/';
  for (const part of ['', ...existing.split('/').filter(Boolean)]) {
    prefix = path.join(prefix, part);
    assertSafe(prefix, lstatSync(prefix), trustedUid);
  }
  let fd = openSync(existing, C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
  let where = existing;
  try {
    const a = fstatSync(fd);
    const b = lstatSync(existing);
    if (a.ino !== b.ino || a.dev !== b.dev) throw new LifeboatError('TARGET_UNSAFE', `${existing} changed while it was opened`, { hint: SAFE_HINT });
    for (const name of missing) {
      try {
        mkdirAt(fd, name, 0o755);
      } catch (err) {
        if (errno(err) !== 'EEXIST') throw err;
      }
      const next = openDirAt(fd, name);
      closeSync(fd);
      fd = next;
      where = path.join(where, name);
      assertSafe(where, fstatSync(fd), trustedUid);
    }
    return { fd, path: where };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Opens the target directory of a restore, creating it exclusively (mode 0700). An
 * existing target is refused (TARGET_EXISTS) unless `mayExist`; `flag` names the
 * option that allows it, for the hint.
 */
export function openTarget(target: string, opts: { mayExist: boolean; flag: string; trustedUid?: number }): OpenedTarget {
  const abs = path.resolve(target);
  if (abs === '/') throw new LifeboatError('USAGE', 'refusing to restore into /', { hint: 'restore into a new directory' });
  const parent = openSafeDir(path.dirname(abs), opts.trustedUid);
  const name = path.basename(abs);
  const shown = path.join(parent.path, name);
  try {
    let created = true;
    try {
      mkdirAt(parent.fd, name, 0o700);
    } catch (err) {
      if (errno(err) !== 'EEXIST') throw err;
      if (!opts.mayExist) {
        throw new LifeboatError('TARGET_EXISTS', `${shown} already exists; nothing was written`, {
          hint: `restore into a new directory (it is created), or pass ${opts.flag} to restore into this one`,
        });
      }
      created = false;
    }
    let fd: number;
    try {
      fd = openDirAt(parent.fd, name);
    } catch (err) {
      if (errno(err) === 'ELOOP' || errno(err) === 'ENOTDIR') {
        throw new LifeboatError('TARGET_UNSAFE', `${shown} is not a directory (a symlink or a file is there)`, { hint: 'remove it or choose another target' });
      }
      throw err;
    }
    if (!created) {
      try {
        // Its owner may be another user (a data directory belongs to postgres): what is
        // inside is written through descriptors and never followed, so only a target
        // anyone can write is refused.
        const st = fstatSync(fd);
        if ((st.mode & 0o1002) === 0o002) {
          throw new LifeboatError('TARGET_UNSAFE', `refusing to restore into ${shown}: it is writable by others (and has no sticky bit)`, { hint: `chmod o-w ${shown}` });
        }
      } catch (err) {
        closeSync(fd);
        throw err;
      }
    }
    return { fd, path: shown, created };
  } finally {
    closeSync(parent.fd);
  }
}
