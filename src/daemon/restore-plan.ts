/**
 * Everything about a restore request that can be known before it runs: the target's
 * parent exists and is a directory, the options are ones this kind of source takes
 * (engine/restore-options.ts), and the tools the restore will run are there. A
 * recovery checks every member this way before any starts, so one bad member leaves
 * nothing half restored behind (docs/daemon.md).
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import type { SourceConfig } from '../config/config.js';
import { LifeboatError, errno } from '../errors.js';
import { checkStartTools } from '../sources/postgres/start.js';
import { takes, type RestoreParams } from '../engine/restore-options.js';

/** Throws naming the first thing wrong with restoring source S as P; returns nothing. */
export function checkRestorePlan(s: SourceConfig, p: RestoreParams): void {
  const parent = path.dirname(p.target);
  let isDir = false;
  try {
    isDir = statSync(parent).isDirectory();
  } catch (err) {
    if (errno(err) !== 'ENOENT' && errno(err) !== 'ENOTDIR') throw err;
    throw new LifeboatError('NOT_FOUND', `the parent directory ${parent} of restore target ${p.target} does not exist; nothing was started`, {
      hint: 'create it first, or choose a target whose parent exists',
    });
  }
  if (!isDir) throw new LifeboatError('USAGE', `${parent} (the parent of restore target ${p.target}) is not a directory; nothing was started`, { hint: 'choose a target below a directory' });
  for (const [field, given] of [['snapshot', p.snapshot !== undefined], ['time', p.time !== undefined], ['port', p.port !== undefined], ['start', p.start !== undefined]] as const) {
    if (given && !takes(s.kind, field)) {
      throw new LifeboatError('USAGE', `a ${s.kind} restore takes no "${field}"`, { hint: s.kind === 'files' ? 'give "snapshot" (an id from /backups) or "time"' : 'give "time" (RFC 3339), or nothing for the newest data' });
    }
  }
  if (s.kind === 'files' && p.snapshot !== undefined && p.time !== undefined) {
    throw new LifeboatError('USAGE', 'give "snapshot" or "time" for a files restore, not both', { hint: 'the newest backup at or before "time" is used' });
  }
  // The daemon starts restored PostgreSQL clusters (pg restore --start) with bin_dir's binaries.
  if (s.kind === 'postgres' && s.binDir !== undefined && p.start !== false) checkStartTools(s.binDir);
}
