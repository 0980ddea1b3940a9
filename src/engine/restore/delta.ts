/**
 * Delta restore support: decides whether a file already in the target holds exactly
 * the content a snapshot node names, by chunking it the way backup does and
 * comparing blob ids. Only files that differ are rewritten (pgBackRest's --delta
 * idea, with the repository's own content addresses instead of a separate checksum).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { FastCDC } from '../../chunker/fastcdc.js';
import { blobId, type MasterKey } from '../../codec/crypto.js';
import type { TreeNode } from '../../repo/snapshot/tree.js';

export function sameContent(file: string, node: TreeNode, chunker: FastCDC, key: Pick<MasterKey, 'idKey'>, partBytes: number): boolean {
  const want = node.content ?? [];
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.allocUnsafe(chunker.params.max * 2);
    let start = 0;
    let end = 0;
    let eof = false;
    let i = 0;
    // Backup cuts large files at fixed part boundaries; so must the comparison.
    const split = (node.size ?? 0) > partBytes;
    let pos = 0;
    let partEnd = split ? partBytes : Infinity;
    for (;;) {
      while (!eof && end < buf.length) {
        const n = readSync(fd, buf, end, Math.min(buf.length - end, partEnd - pos), pos);
        if (n === 0) eof = true;
        else {
          end += n;
          pos += n;
        }
      }
      while (start < end) {
        const cut = chunker.cut(buf, start, end, eof);
        if (cut < 0) break;
        if (blobId(key, buf.subarray(start, cut)).toString('hex') !== want[i++]) return false;
        start = cut;
      }
      if (eof && start >= end) {
        if (pos < partEnd || !split) break;
        // End of a part: carry on with the next one, chunked afresh.
        partEnd += partBytes;
        eof = false;
        continue;
      }
      buf.copy(buf, 0, start, end);
      end -= start;
      start = 0;
    }
    return i === want.length;
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
