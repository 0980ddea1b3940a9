/**
 * A Redis drill: the newest data (base RDB plus the replicated command stream) is
 * restored into the drill's scratch directory; the restore itself runs the checks
 * (redis-check-rdb, key counts, the source's own checks) and refuses a result that fails them. A gap in the
 * history is a failed check: the drill proves the data-loss window is what it claims.
 */
import * as path from 'node:path';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
import { redisRestore } from './restore.js';

export async function drillRedis(repo: Repository, name: string, { scratch, record, opts }: DrillContext): Promise<void> {
  const started = Date.now();
  const r = await redisRestore(repo, { name, output: path.join(scratch, 'redis'), scratchParent: scratch, ...(opts.checks ? { checks: opts.checks } : {}) });
  record.snapshot = r.snapshot.id;
  record.rto_seconds = (Date.now() - started) / 1000;
  record.rpo_seconds = (Date.now() - r.restoredTo.getTime()) / 1000;
  record.rpo_basis = r.segments > 0 ? 'last-transaction' : 'backup';
  for (const c of r.checks) record.checks.push(c);
  record.checks.push({
    name: 'history',
    ok: r.warnings.length === 0,
    detail: r.warnings[0] ?? `restored to ${r.restoredTo.toISOString()} (${r.segments} segments, ${r.streamBytes} stream bytes replayed)`,
  });
}
