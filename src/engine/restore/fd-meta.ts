/**
 * Owners, modes and times of restored entries, set on descriptors (or, for symlinks,
 * on a name looked up in a directory descriptor without following it), so a path
 * swapped for a symlink after it was written cannot redirect a chown or chmod.
 */
import { closeSync, constants as C, fchmodSync, fchownSync, fstatSync, futimesSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { nsToSeconds } from '../../sources/files/metadata.js';
import { checkName, lchownAt, lutimesAt, openFileAt } from '../../util/safe-fs.js';
import { coreutil } from '../../util/process.js';

/** Owner (when root), then mode (chown clears setuid bits), then times. */
export function metaOnFd(fd: number, node: TreeNode, isRoot: boolean): void {
  if (isRoot) fchownSync(fd, node.uid, node.gid);
  fchmodSync(fd, node.mode);
  futimesSync(fd, nsToSeconds(node.atime ?? node.mtime), nsToSeconds(node.mtime));
}

/** Metadata of a non-directory entry `name` in `dirFd`, which must still be of the node's type. */
export function metaAt(dirFd: number, name: string, node: TreeNode, isRoot: boolean): void {
  if (node.type === 'symlink') {
    if (isRoot) lchownAt(dirFd, name, node.uid, node.gid);
    lutimesAt(dirFd, name, nsToSeconds(node.atime ?? node.mtime), nsToSeconds(node.mtime));
    return;
  }
  // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
  const fd = openFileAt(dirFd, name, C.O_RDONLY | C.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    const ok = node.type === 'fifo' ? st.isFIFO() : st.isFile();
    if (!ok) throw new Error(`changed type while being restored (expected a ${node.type})`);
    metaOnFd(fd, node, isRoot);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes a FIFO named `name` in `dirFd`. Node has no mkfifo; the mkfifo program gets
 * the directory as its descriptor 3 and the name relative to that, so it too cannot
 * be redirected by a symlink on the way.
 */
export function mkfifoAt(dirFd: number, name: string): void {
  checkName(name);
  const r = spawnSync(coreutil('mkfifo'), ['-m', '600', '--', `/proc/self/fd/3/${name}`], { stdio: ['ignore', 'ignore', 'pipe', dirFd] });
  if (r.status !== 0) throw new Error(`mkfifo failed: ${r.stderr?.toString().trim() || r.error?.message || `status ${r.status}`}`);
}
