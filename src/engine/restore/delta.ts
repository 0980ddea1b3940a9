/**
 * Delta restore support: decides whether a file already in the target holds exactly
 * the content a snapshot node names, by chunking it the way backup does and
 * comparing blob ids. Only files that differ are rewritten (pgBackRest's --delta
 * idea, with the repository's own content addresses instead of a separate checksum).
 */
import { closeSync, openSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { FastCDC } from '../../chunker/fastcdc.js';
import { chunkRange, FileReadError, type ChunkBuffer } from '../../chunker/read.js';
import { blobId, type MasterKey } from '../../codec/crypto.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';

export async function sameContent(file: string, node: TreeNode, chunker: FastCDC, key: Pick<MasterKey, 'idKey'>, partBytes: number): Promise<boolean> {
  const want = node.content ?? [];
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const state: ChunkBuffer = { buf: Buffer.allocUnsafe(chunker.params.max * 2), end: 0 };
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
  } finally {
    closeSync(fd);
  }
}

/** Removes everything below `root` that is not in `keep` (absolute paths); returns how many. */
export async function removeExtra(root: string, keep: Set<string>): Promise<number> {
  let removed = 0;
  const visit = async (dir: string): Promise<void> => {
    for (const e of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (!keep.has(p)) {
        await fs.rm(p, { recursive: true, force: true });
        removed++;
      } else if (e.isDirectory()) await visit(p);
    }
  };
  await visit(root);
  return removed;
}
