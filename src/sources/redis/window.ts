/**
 * The stretches of time a Redis restore can reach (engine/window.ts): from each base
 * snapshot of a replicator's generation, as far as the generation's unbroken chain of
 * command segments goes, the walk `redis restore --time` does (restore-plan.ts). Where
 * a newer generation begins, the server could not continue the old one (the
 * replicator's `loss` event): the stretch in between is a gap.
 */
import type { Repository } from '../../repo/repository.js';
import type { KindWindow, LogStretch } from '../../engine/window.js';
import { basesOf, segmentsOf } from './history.js';
import { logSource } from './names.js';
import { chainFrom, parseSegmentName } from './segment.js';

export async function redisWindow(repo: Pick<Repository, 'listSnapshots' | 'listLogs'>, name: string): Promise<KindWindow> {
  const bases = basesOf(await repo.listSnapshots(), name);
  const logs = await repo.listLogs(logSource(name));
  const newestGen = bases.map((b) => b.point.generation).sort().pop();
  const stretches: LogStretch[] = [];
  for (const b of bases) {
    const gen = b.point.generation;
    const from = Date.parse(b.snapshot.time);
    const { chain, gapAt } = chainFrom(b.point.offset, segmentsOf(logs, gen));
    const to = Math.max(from, ...chain.map((n) => n.lastTime));
    let endsBecause: string | undefined;
    if (gapAt !== undefined) endsBecause = `the command stream of generation ${gen} has a gap after offset ${gapAt} (a segment is missing): changes after it are not in the repository`;
    else if (gen !== newestGen) {
      endsBecause = `loss: the server could not continue generation ${gen} (a restart without persistence, or a long outage); writes until the next generation's first snapshot may be missing`;
    }
    stretches.push({ log: 'redis', from, to, base: b.snapshot.id, generation: gen, ...(endsBecause !== undefined ? { endsBecause } : {}) });
  }
  const stored = logs.map((l) => parseSegmentName(l.file)?.lastTime ?? 0).reduce((m, t) => Math.max(m, t), 0);
  return { stretches, ...(stored > 0 ? { storedUntil: stored } : {}) };
}
