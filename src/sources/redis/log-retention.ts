/**
 * How retention trims a Redis source's command segments (the rules are in
 * engine/retention/logs.ts's header): a generation none of whose base snapshots
 * remain is removed whole; within a generation, segments that end at or before the
 * window's base (the newest base older than the window, or the oldest) are removed —
 * a restore replays from a base's offset on, so nothing before the oldest base it may
 * start from is needed. A segment that straddles that base's offset stays.
 *
 * While another process holds the repository (`busy`), a generation without a base is
 * left alone: a replicator may be storing its first RDB right now.
 */
import { windowBase, type LogTrim, type TrimOptions } from '../../engine/retention/logs.js';
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { basesOf } from './history.js';
import { logSource } from './names.js';
import { parseSegmentName } from './segment.js';

export async function trimRedis(repo: Repository, name: string, after: readonly Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const source = logSource(name);
  const byGen = new Map<string, Array<{ time: number; offset: number }>>();
  for (const b of basesOf(after, name)) {
    byGen.set(b.point.generation, [...(byGen.get(b.point.generation) ?? []), { time: Date.parse(b.snapshot.time), offset: b.point.offset }]);
  }
  const from = new Map<string, number>();
  for (const [gen, bases] of byGen) from.set(gen, (windowBase(bases, (b) => b.time, cutoff) as { offset: number }).offset);
  let removed = 0;
  const logs = await repo.listLogs(source);
  // A generation that began after the snapshots judged by were listed has its base among the late ones (engine/retention/logs.ts).
  let busy = opts.busy;
  if (!busy && opts.lateSnapshots && logs.some((l) => parseSegmentName(l.file) && !from.has(l.timeline))) {
    const late = await opts.lateSnapshots();
    busy = late.unreadable;
    for (const b of basesOf(late.snapshots, name)) if (!from.has(b.point.generation)) from.set(b.point.generation, b.point.offset);
  }
  for (const l of logs) {
    const n = parseSegmentName(l.file);
    if (!n) continue; // not ours to judge
    const keepFrom = from.get(l.timeline);
    if (keepFrom !== undefined) {
      if (n.end > keepFrom) continue;
    } else if (busy) {
      continue;
    }
    if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
    removed++;
  }
  const kept = [...from].map(([gen, offset]) => `${gen}@${offset}`);
  return { kind: 'redis', source: name, removed, keptFrom: kept.length ? kept.join(', ') : null };
}
