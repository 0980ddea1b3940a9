/**
 * The scan's thread (engine/backup/scan.ts): walks the backup paths with synchronous
 * lstat and opendir on its own thread, so it shares neither the main thread nor
 * libuv's thread pool with the backup, and posts running totals.
 *
 * Memory is bounded by the depth of the tree, not its size: directories are read
 * entry by entry (opendir), one open handle per level; below MAX_OPEN_DEPTH levels a
 * directory's names are read whole instead, so a pathologically deep tree cannot
 * exhaust file descriptors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { PathMatcher } from '../../util/glob.js';
import type { ScanRequest, ScanTotals } from '../backup/scan.js';

/** Open directory handles at most; deeper levels are listed whole (readdirSync). */
const MAX_OPEN_DEPTH = 64;
/** A message at most this often: the backup's renderer redraws at most 10 times a second. */
const POST_MS = 100;

type Level = { dir: string; handle: fs.Dir } | { dir: string; names: fs.Dirent[]; at: number };

const req = workerData as ScanRequest;
const matcher = new PathMatcher(req.excludes);
const totals: ScanTotals = { files: 0, bytes: 0, done: false };
let lastPost = 0;

function post(force: boolean): void {
  const now = Date.now();
  if (!force && now - lastPost < POST_MS) return;
  lastPost = now;
  parentPort?.postMessage({ ...totals });
}

/**
 * Counts one path; returns whether it is a directory to descend into. The entry's type
 * from the directory listing saves an lstat for directories, symlinks and the like
 * (an eighth of the entries of /usr/share); files need one for their size.
 */
function visit(p: string, entry?: fs.Dirent): boolean {
  if (matcher.matches(p)) return false;
  if (entry && !entry.isFile()) {
    if (entry.isDirectory()) return true;
    if (entry.isSymbolicLink() || entry.isFIFO() || entry.isSocket() || entry.isBlockDevice() || entry.isCharacterDevice()) return false;
    // The file system did not say (DT_UNKNOWN): ask lstat.
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.lstatSync(p, { throwIfNoEntry: false });
  } catch {
    return false; // unreadable: the backup reports it, the scan just skips it
  }
  if (!st) return false; // vanished since the listing
  if (st.isFile()) {
    totals.files++;
    totals.bytes += st.size;
  }
  return st.isDirectory();
}

function open(dir: string, depth: number): Level | undefined {
  try {
    return depth < MAX_OPEN_DEPTH ? { dir, handle: fs.opendirSync(dir) } : { dir, names: fs.readdirSync(dir, { withFileTypes: true }), at: 0 };
  } catch {
    return undefined;
  }
}

function next(level: Level): fs.Dirent | undefined {
  if ('handle' in level) {
    try {
      return level.handle.readSync() ?? undefined;
    } catch {
      return undefined;
    }
  }
  return level.names[level.at++];
}

function close(level: Level): void {
  if ('handle' in level) {
    try {
      level.handle.closeSync();
    } catch {
      // already closed
    }
  }
}

for (const root of req.paths) {
  const top = path.resolve(root);
  if (!visit(top)) continue;
  const stack: Level[] = [];
  const first = open(top, 0);
  if (first) stack.push(first);
  while (stack.length > 0) {
    const level = stack[stack.length - 1]!;
    const entry = next(level);
    if (entry === undefined) {
      close(level);
      stack.pop();
      continue;
    }
    const full = path.join(level.dir, entry.name);
    if (visit(full, entry)) {
      const sub = open(full, stack.length);
      if (sub) stack.push(sub);
    }
    post(false);
  }
}
totals.done = true;
post(true);
