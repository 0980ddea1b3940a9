/**
 * How retention trims a SQLite source's replicated log (the rules are in
 * engine/retention/logs.ts's header): a generation none of whose snapshots remain
 * is removed whole; within a generation, segments that end at or before the window's
 * base snapshot are removed.
 */
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { windowBase, type LogTrim, type TrimOptions } from '../../engine/retention/logs.js';
import { logSource } from './backup.js';
import { DIVERGED } from './history.js';
import { sqlitePoint } from './point.js';
import { comparePos, parseSegmentName, type Position } from './segment.js';

export async function trimSqlite(repo: Repository, name: string, after: readonly Snapshot[], cutoff: number | undefined, opts: TrimOptions): Promise<LogTrim> {
  const source = logSource(name);
  const snaps = after.filter((s) => s.source.kind === 'sqlite' && s.source.name === name);
  const byGen = new Map<string, Array<{ time: number; position: Position }>>();
  for (const s of snaps) {
    const c = sqlitePoint(s);
    if (!c?.generation || !c.position) continue;
    byGen.set(c.generation, [...(byGen.get(c.generation) ?? []), { time: Date.parse(s.time), position: c.position }]);
  }
  let removed = 0;
  const kept: string[] = [];
  const logs = await repo.listLogs(source);
  // A generation that began after the snapshots judged by were listed has its base among the late ones (engine/retention/logs.ts).
  let busy = opts.busy;
  if (!busy && opts.lateSnapshots && logs.some((l) => !byGen.has(l.timeline))) {
    const late = await opts.lateSnapshots();
    busy = late.unreadable;
    for (const s of late.snapshots) {
      const c = s.source.kind === 'sqlite' && s.source.name === name ? sqlitePoint(s) : undefined;
      if (c?.generation && c.position && !byGen.has(c.generation)) byGen.set(c.generation, [{ time: Date.parse(s.time), position: c.position }]);
    }
  }
  for (const l of logs) {
    const n = parseSegmentName(l.file);
    const bases = byGen.get(l.timeline);
    if (!n) {
      // A divergence record goes with the last of its generation's snapshots.
      if (l.file === DIVERGED && !bases && !busy) {
        if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
      }
      continue;
    }
    if (bases) {
      const base = windowBase(bases, (b) => b.time, cutoff) as { position: Position };
      if (comparePos(n.end, base.position) > 0) continue;
    } else if (busy) {
      continue; // a replicator may be storing this generation's first snapshot right now
    }
    if (!opts.dryRun) await repo.store.delete(keys.log(source, l.timeline, l.file));
    removed++;
  }
  for (const [gen, bases] of byGen) {
    const b = windowBase(bases, (x) => x.time, cutoff) as { position: Position };
    kept.push(`${gen}@${b.position.cycle}/${b.position.frame}`);
  }
  return { kind: 'sqlite', source: name, removed, keptFrom: kept.length ? kept.join(', ') : null };
}
