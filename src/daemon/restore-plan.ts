/**
 * Everything about a restore request that can be known before it runs: the target's
 * parent exists and is a directory, the options are ones this kind of source takes
 * (its `restore.options`), and what the kind checks itself (`restore.check`: the
 * tools the restore will run are there). A recovery checks every member this way
 * before any starts, so one bad member leaves nothing half restored behind
 * (docs/daemon.md).
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import type { SourceConfig } from '../config/config.js';
import { LifeboatError, errno } from '../errors.js';
import { checkMoment, takes, type RestoreParams } from '../engine/restore-options.js';
import { sourceKind } from '../sources/registry.js';

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
  const kind = sourceKind(s.kind);
  const fields = [
    ['snapshot', p.snapshot !== undefined],
    ['time', p.time !== undefined],
    ['port', p.port !== undefined],
    ['start', p.start !== undefined],
    ['txn', p.txn !== undefined],
    ['before_txn', p.beforeTxn !== undefined],
    ['generation', p.generation !== undefined],
  ] as const;
  for (const [field, given] of fields) {
    if (given && !takes(s.kind, field)) throw new LifeboatError('USAGE', `a ${s.kind} restore takes no "${field}"`, { hint: kind.restore.fieldsHint });
  }
  checkMoment(p);
  // What only the kind knows: option combinations it refuses, the tools it will run.
  kind.restore.check?.(s, p);
}
