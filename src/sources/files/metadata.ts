/**
 * File metadata, both ways: lstat results become tree nodes at backup, and tree
 * nodes become modes, owners and times at restore. Times keep nanoseconds in the
 * repository and are restored to well below a microsecond.
 */
import type { BigIntStats } from 'node:fs';
import { promises as fs } from 'node:fs';
import type { NodeType, TreeNode } from '../../repo/snapshot/tree.js';

export function nodeType(st: BigIntStats): NodeType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

export function nodeFromStat(name: string, st: BigIntStats): TreeNode {
  const node: TreeNode = {
    name,
    type: nodeType(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    ctime: st.ctimeNs.toString(),
    inode: st.ino.toString(),
    dev: st.dev.toString(),
    nlink: Number(st.nlink),
  };
  if (node.type === 'file') node.size = Number(st.size);
  if (node.type === 'chardev' || node.type === 'blockdev') node.rdev = st.rdev.toString();
  return node;
}

/** A file is unchanged (and need not be read) when all of these match its parent's node. */
export function sameFile(a: TreeNode, b: TreeNode): boolean {
  return (
    a.type === 'file' &&
    b.type === 'file' &&
    a.size === b.size &&
    a.mtime === b.mtime &&
    a.ctime === b.ctime &&
    a.inode === b.inode
  );
}

/**
 * Nanoseconds-as-string to the seconds fs.utimes takes. A double near 2^31 s
 * resolves about 0.24 us and the kernel truncates, so aiming at the exact
 * microsecond could land one below it: aim at its middle instead. Restored times are
 * exact to the microsecond (Node's API cannot set nanoseconds exactly).
 */
export function nsToSeconds(ns: string): number {
  const v = BigInt(ns);
  const us = (v % 1_000_000_000n) / 1000n;
  return Number(v / 1_000_000_000n) + (Number(us) * 1000 + 500) / 1e9;
}

/** Restores owner, mode and times of an existing path (owner only when root). */
export async function applyMetadata(path: string, node: TreeNode, isRoot: boolean): Promise<void> {
  const atime = nsToSeconds(node.atime ?? node.mtime);
  const mtime = nsToSeconds(node.mtime);
  if (node.type === 'symlink') {
    if (isRoot) await fs.lchown(path, node.uid, node.gid);
    await fs.lutimes(path, atime, mtime);
    return;
  }
  if (isRoot) await fs.chown(path, node.uid, node.gid);
  // chown clears setuid/setgid bits, so the mode is set after it.
  await fs.chmod(path, node.mode);
  await fs.utimes(path, atime, mtime);
}
