/**
 * Tree blobs: one per directory, listing its entries with their metadata, sorted by
 * name. A directory whose entries did not change encodes to the same bytes, hence the
 * same blob id, so unchanged subtrees cost nothing in a new snapshot.
 *
 * Times are nanoseconds since the epoch as decimal strings (JSON numbers lose
 * precision past 2^53); inode and device numbers likewise.
 */
import { LifeboatError } from '../../errors.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';

export interface TreeNode {
  name: string;
  type: NodeType;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  /**
   * Not recorded by default: reading a file moves its atime, so recording it would
   * make every backup write new trees for directories nothing changed in (borg makes
   * the same choice). Restore sets atime to mtime when absent.
   */
  atime?: string;
  ctime: string;
  inode: string;
  dev: string;
  nlink: number;
  size?: number;
  content?: string[];
  subtree?: string;
  target?: string;
  rdev?: string;
  /** A file that was an object in a bucket (the bucket source): its key and metadata (docs/format.md). */
  object?: ObjectRecord;
}

/** What a bucket object carried besides its bytes; written back when it is restored into a bucket. */
export interface ObjectRecord {
  /** The key relative to the backed-up prefix (the tree path is an escaped form of it). */
  key: string;
  etag: string;
  /** ISO 8601, as the service reported it. */
  lastModified: string;
  contentType?: string;
  metadata?: Record<string, string>;
  versionId?: string;
}

export interface Tree {
  nodes: TreeNode[];
}

export function encodeTree(tree: Tree): Buffer {
  tree.nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return Buffer.from(JSON.stringify(tree));
}

/** A stored name that could write outside a restore target is refused here, at the source. */
export function isSafeName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\0')
  );
}

export function decodeTree(raw: Buffer, what: string): Tree {
  let tree: Tree;
  try {
    tree = JSON.parse(raw.toString('utf8')) as Tree;
  } catch (err) {
    throw new LifeboatError('CORRUPT', `${what}: not a valid tree`, { cause: err });
  }
  if (!tree || !Array.isArray(tree.nodes)) throw new LifeboatError('CORRUPT', `${what}: not a valid tree`);
  const seen = new Set<string>();
  for (const n of tree.nodes) {
    if (!isSafeName(n.name) || seen.has(n.name)) {
      throw new LifeboatError('UNSAFE_PATH', `${what}: refusing entry name ${JSON.stringify(n.name)}`, {
        hint: 'the tree was tampered with or damaged; nothing was written for it',
      });
    }
    seen.add(n.name);
  }
  return tree;
}
