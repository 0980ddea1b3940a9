/** Walking snapshot trees for ls and diff, without loading more than one path's trees at a time. */
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { LifeboatError } from '../../errors.js';

export interface Entry {
  path: string;
  node: TreeNode;
}

/**
 * Yields every entry below `treeId` (depth first, name order), with absolute snapshot
 * paths; `depth` levels at most (1: the tree's own entries), every level without it.
 */
export async function* walkTree(repo: Pick<Repository, 'loadTree'>, treeId: string, dir = '/', depth = Infinity): AsyncGenerator<Entry> {
  const tree = await repo.loadTree(treeId);
  for (const node of tree.nodes) {
    const p = path.posix.join(dir, node.name);
    yield { path: p, node };
    if (depth > 1 && node.type === 'dir' && node.subtree) yield* walkTree(repo, node.subtree, p, depth - 1);
  }
}

/** Finds the tree id of a directory (or the node of a file) at an absolute path in a snapshot. */
export async function resolvePath(repo: Pick<Repository, 'loadTree'>, rootTree: string, p: string): Promise<Entry | { path: '/'; tree: string }> {
  const parts = path.posix.normalize(p).split('/').filter(Boolean);
  if (parts.length === 0) return { path: '/', tree: rootTree };
  let treeId = rootTree;
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const tree = await repo.loadTree(treeId);
    const node = tree.nodes.find((n) => n.name === parts[i]);
    if (!node) throw new LifeboatError('NOT_FOUND', `${p} is not in the snapshot`, { hint: '`lifeboat ls SNAPSHOT` lists what it holds' });
    cur = path.posix.join(cur, node.name);
    if (i === parts.length - 1) return { path: cur, node };
    if (node.type !== 'dir' || !node.subtree) throw new LifeboatError('NOT_FOUND', `${cur} is not a directory in the snapshot`);
    treeId = node.subtree;
  }
  throw new Error('unreachable');
}

export interface DiffResult {
  added: string[];
  removed: string[];
  /** Content changed. */
  modified: string[];
  /** Only metadata (mode, owner, times) changed. */
  metadata: string[];
}

function sameContent(a: TreeNode, b: TreeNode): boolean {
  return a.type === b.type && a.target === b.target && JSON.stringify(a.content ?? []) === JSON.stringify(b.content ?? []);
}

function sameMeta(a: TreeNode, b: TreeNode): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.mtime === b.mtime;
}

/** Compares two trees; identical subtrees (same id) are skipped without loading them. */
export async function diffTrees(repo: Pick<Repository, 'loadTree'>, a: string | undefined, b: string | undefined, dir = '/', out: DiffResult = { added: [], removed: [], modified: [], metadata: [] }): Promise<DiffResult> {
  if (a === b) return out;
  const left = a ? (await repo.loadTree(a)).nodes : [];
  const right = b ? (await repo.loadTree(b)).nodes : [];
  const names = [...new Set([...left.map((n) => n.name), ...right.map((n) => n.name)])].sort();
  const lmap = new Map(left.map((n) => [n.name, n]));
  const rmap = new Map(right.map((n) => [n.name, n]));
  for (const name of names) {
    const p = path.posix.join(dir, name);
    const l = lmap.get(name);
    const r = rmap.get(name);
    const ldir = l?.type === 'dir' ? l.subtree : undefined;
    const rdir = r?.type === 'dir' ? r.subtree : undefined;
    if (!l && r) out.added.push(r.type === 'dir' ? `${p}/` : p);
    else if (l && !r) out.removed.push(l.type === 'dir' ? `${p}/` : p);
    else if (l && r) {
      if (l.type === 'dir' && r.type === 'dir') {
        if (!sameMeta(l, r)) out.metadata.push(`${p}/`);
      } else if (!sameContent(l, r)) out.modified.push(p);
      else if (!sameMeta(l, r)) out.metadata.push(p);
    }
    if (ldir || rdir) {
      // A directory that appeared or vanished reports its contents too.
      await diffTrees(repo, ldir, rdir, p, out);
    }
  }
  return out;
}
