// PLACEHOLDER (helper h-redis-restore replaces this file).
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { DrillContext } from '../source.js';
export async function drillRedis(_repo: Repository, _name: string, _ctx: DrillContext): Promise<void> {
  throw new LifeboatError('FAILED', 'PLACEHOLDER: not built yet');
}
