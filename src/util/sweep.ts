/**
 * Removal of what dead writers left in a temporary directory: the local store's
 * `tmp/` (half-written objects) and a backup's spill directories (packs not yet
 * stored: repo/pack/spill.ts). Nothing a live writer holds is a day old.
 */
import { closeSync, openSync, constants as fsc } from 'node:fs';
import { listAt, lstatAt, removeAt, requireProc, unlinkAt } from './safe-fs.js';

/** Spill directories are named `<random hex>.spill`; only those directories are swept. */
export const SPILL_SUFFIX = '.spill';

/**
 * Removes plain files, and directories named `*.spill` (with what is in them), in
 * `dir` last modified before `before`; best effort. The directory is opened without
 * following a symlink and each name is looked at and removed relative to that
 * descriptor (util/safe-fs.ts), so a directory swapped for a symlink is never swept.
 * Without /proc nothing is swept (the files only take space). Returns how many went.
 */
export function sweepStale(dir: string, before: number): number {
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
      if (!st || st.mtimeMs >= before) continue;
      try {
        if (st.isFile()) unlinkAt(fd, name);
        else if (st.isDirectory() && name.endsWith(SPILL_SUFFIX)) removeAt(fd, name);
        else continue;
        n++;
      } catch {
        // Gone already, or not ours to remove: best effort.
      }
    }
  } finally {
    closeSync(fd);
  }
  return n;
}
