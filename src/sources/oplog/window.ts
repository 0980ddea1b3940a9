/**
 * The stretches of time an oplog restore can reach (engine/window.ts): each
 * generation from its first own record as far as its unbroken chain of segments goes,
 * the walk `oplog restore --time` does (restore.ts); a segment missing from a chain
 * ends the stretch there.
 */
import type { Repository } from '../../repo/repository.js';
import type { KindWindow, LogStretch } from '../../engine/window.js';
import { describeGenerations, generations } from './history.js';
import { chainFrom } from './segment.js';

export async function oplogWindow(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string): Promise<KindWindow> {
  const gens = await describeGenerations(repo, name, await generations(repo, name));
  // A marker snapshot (`oplog backup`) is taken before its records' marks: its moment restores that generation's history up to it.
  const markers = new Map<string, number>();
  for (const s of await repo.listSnapshots()) {
    const gen = (s.consistency as { generation?: unknown } | undefined)?.generation;
    if (s.source.kind !== 'oplog' || s.source.name !== name || typeof gen !== 'string') continue;
    markers.set(gen, Math.min(markers.get(gen) ?? Infinity, Date.parse(s.time)));
  }
  const stretches: LogStretch[] = [];
  for (const g of gens) {
    if (g.names.length === 0 || g.firstTime === undefined) continue;
    const { chain, gapAt } = chainFrom(Math.min(...g.names.map((n) => n.start)), g.names);
    const to = Math.max(g.firstTime, ...chain.map((n) => n.lastTime));
    stretches.push({
      log: 'oplog',
      from: Math.min(g.firstTime, markers.get(g.id) ?? Infinity),
      to,
      generation: g.id,
      ...(gapAt !== undefined ? { endsBecause: `generation ${g.id} has no segment at byte ${gapAt}: records after it cannot be restored in order` } : {}),
    });
  }
  const stored = gens.flatMap((g) => g.names.map((n) => n.lastTime)).reduce((m, t) => Math.max(m, t), 0);
  return { stretches, ...(stored > 0 ? { storedUntil: stored } : {}) };
}
