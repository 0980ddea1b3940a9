// PLACEHOLDER (helper h-redis-ship replaces this file): trims command segments no remaining snapshot needs.
import { LifeboatError } from '../../errors.js';
import type { LogTrim, TrimOptions } from '../../engine/retention/logs.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
export async function trimRedis(_repo: Repository, _name: string, _after: readonly Snapshot[], _cutoff: number | undefined, _opts: TrimOptions): Promise<LogTrim> {
  throw new LifeboatError('FAILED', 'PLACEHOLDER: not built yet');
}
