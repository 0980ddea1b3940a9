/**
 * A quick scan that counts files and bytes below the backup paths, run beside the
 * backup only to give the progress bar a total. Its numbers never enter a snapshot.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { PathMatcher } from '../../util/glob.js';

export async function scanTotals(paths: string[], excludes: string[], signal: { stop: boolean }): Promise<{ files: number; bytes: number }> {
  const matcher = new PathMatcher(excludes);
  let files = 0;
  let bytes = 0;
  const visit = async (p: string): Promise<void> => {
    if (signal.stop || matcher.matches(p)) return;
    let st;
    try {
      st = await fs.lstat(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      const names = await fs.readdir(p).catch(() => [] as string[]);
      for (const n of names) await visit(path.join(p, n));
    } else if (st.isFile()) {
      files++;
      bytes += st.size;
    }
  };
  for (const p of paths) await visit(path.resolve(p));
  return { files, bytes };
}
