/**
 * Delta restore support: decides whether a file already in the target holds exactly
 * the content a snapshot node names, by chunking it the way backup does and
 * comparing blob ids. Only files that differ are rewritten (pgBackRest's --delta
 * idea, with the repository's own content addresses instead of a separate checksum).
 */
import type { FastCDC } from '../../chunker/fastcdc.js';
import { chunkRange, FileReadError, type ChunkBuffer } from '../../chunker/read.js';
import { blobId, type MasterKey } from '../../codec/crypto.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';
import { listAt, removeAt, type DirCache } from '../../util/safe-fs.js';

/**
 * Whether the file open on `fd` holds exactly the content `node` names, read through
 * `state` (the caller's buffer of twice the chunker's maximum, reused). The caller
 * opened it relative to a directory descriptor without following symlinks, and
 * checked it is a plain file of the right size that shares its inode with nothing.
 */
export async function sameContent(fd: number, node: TreeNode, chunker: FastCDC, key: Pick<MasterKey, 'idKey'>, partBytes: number, state: ChunkBuffer): Promise<boolean> {
  const want = node.content ?? [];
  try {
    // Backup cuts large files at fixed part boundaries; so must the comparison.
    const step = (node.size ?? 0) > partBytes ? partBytes : Infinity;
    let i = 0;
    for (let from = 0; ; from += step) {
      state.end = 0;
      const r = await chunkRange(fd, state, chunker, from, from + step, (view) => blobId(key, view).toString('hex') === want[i++], () => {});
      if (r.stopped) return false;
      if (r.size < step) break; // the end of the file
    }
    return i === want.length;
  } catch (err) {
    if (err instanceof FileReadError) return false;
    throw err;
  }
}

/**
 * Removes the entries of the target's directory `rel` ("" for the target itself) whose
 * names are not in `keep` (a directory with all below it); returns how many. Works on
 * descriptors: a directory swapped for a symlink is removed as a link, never followed.
 */
export function removeExtraIn(dirs: DirCache, rel: string, keep: Set<string>): number {
  let removed = 0;
  for (const name of listAt(dirs.dir(rel))) {
    if (keep.has(name)) continue;
    dirs.forget(rel === '' ? name : `${rel}/${name}`);
    removeAt(dirs.dir(rel), name);
    removed++;
  }
  return removed;
}
