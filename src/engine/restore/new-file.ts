/**
 * A restore's output file that must be new: written under a private name in its
 * directory (opened without following symlinks), then linked to its name only once
 * complete and on disk, so the name never shows a partial file and never replaces
 * one that appeared meanwhile. Used by restores that write one file (`command
 * restore --output`, `oplog restore --output`).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, errno } from '../../errors.js';
import { createFileAt, linkAt, lstatAt, unlinkAt } from '../../util/safe-fs.js';
import { openSafeDir } from './target.js';

export class NewFile {
  private dir: number | undefined;
  private fd: number | undefined;
  private readonly tmp: string;

  /** Refuses (TARGET_EXISTS) when anything is at `target` already; nothing is created yet. */
  constructor(
    readonly target: string,
    /** Names the private file: `.lifeboat-<tag>-<random>`. */
    tag: string,
  ) {
    this.tmp = `.lifeboat-${tag}-${randomBytes(6).toString('hex')}`;
    const dir = openSafeDir(path.dirname(target));
    if (lstatAt(dir.fd, path.basename(target))) {
      closeSync(dir.fd);
      throw new LifeboatError('TARGET_EXISTS', `${target} already exists; nothing was written`, { hint: 'restore to a new path (restores never overwrite)' });
    }
    this.dir = dir.fd;
  }

  /** Creates the private file; its descriptor, owned by this object. */
  open(): number {
    this.fd = createFileAt(this.dir as number, this.tmp, 0o600);
    return this.fd;
  }

  /** Flushes the file and gives it its name (an empty file when nothing was opened). */
  commit(): void {
    const dir = this.dir as number;
    if (this.fd === undefined) this.open();
    fsyncSync(this.fd as number);
    try {
      linkAt(dir, this.tmp, dir, path.basename(this.target));
    } catch (err) {
      if (errno(err) === 'EEXIST') throw new LifeboatError('TARGET_EXISTS', `${this.target} appeared during the restore and was left alone`, { hint: 'restore to a new path' });
      throw err;
    }
  }

  /** Closes and removes the private file (after a commit, the name keeps the data). */
  discard(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.dir === undefined) return;
    try {
      unlinkAt(this.dir, this.tmp);
    } catch {
      // never created, or already gone
    }
    closeSync(this.dir);
    this.dir = undefined;
  }
}
