/**
 * The stretches of time a SQLite restore can reach (engine/window.ts): from each
 * snapshot of a replicated generation, as far as its chain of segments goes without a
 * gap and, for a generation found to diverge from the database, no further than its
 * last verified position. The same walk `sqlite restore --time` does to choose its
 * base (restore.ts `choose`), with no target to stop at.
 */
import type { Repository } from '../../repo/repository.js';
import type { KindWindow, LogStretch } from '../../engine/window.js';
import { DIVERGED, segmentsOf, trustedUntil } from './history.js';
import { logSource } from './names.js';
import { sqlitePoint } from './point.js';
import { chainFrom, comparePos, parseSegmentName, type Position } from './segment.js';

export async function sqliteWindow(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string): Promise<KindWindow> {
  const source = logSource(name);
  const snaps = (await repo.listSnapshots()).filter((s) => s.source.kind === 'sqlite' && s.source.name === name);
  const logs = await repo.listLogs(source);
  const trust = new Map<string, Position | null | undefined>();
  /** Each snapshot's consistency record, read once (the quiet-stretch rule below looks at every later one). */
  const points = snaps.map((s) => {
    const p = sqlitePoint(s);
    return { id: s.id, time: Date.parse(s.time), generation: p?.generation, position: p?.position };
  });
  const stretches: LogStretch[] = [];
  // The newest generation (by its newest snapshot): the others ended when it began.
  const newestGen = [...points].sort((a, b) => b.time - a.time).find((p) => p.generation !== undefined)?.generation;
  for (const s of points) {
    const gen = s.generation;
    if (!gen || !s.position) continue;
    if (!trust.has(gen)) trust.set(gen, logs.some((l) => l.timeline === gen && l.file === DIVERGED) ? await trustedUntil(repo, source, gen) : undefined);
    const trusted = trust.get(gen);
    const from = s.time;
    let to = from;
    const { chain, gapAt } = chainFrom(s.position, segmentsOf(logs, gen));
    let cut = false;
    let reached: Position = s.position;
    for (const n of chain) {
      if (trusted === null || (trusted && comparePos(n.start, trusted) >= 0)) {
        cut = true;
        break;
      }
      to = Math.max(to, n.lastTime);
      reached = n.end;
    }
    // A later snapshot of the generation at a position the chain reaches shows that nothing
    // was committed between the last transaction and that snapshot's moment (positions only
    // grow): the quiet stretch up to it is the same state, reachable, not a gap.
    for (const later of points) {
      if (later.time > to && later.generation === gen && later.position && comparePos(later.position, reached) <= 0) to = later.time;
    }
    let endsBecause: string | undefined;
    if (trusted !== undefined && (cut || trusted === null)) {
      endsBecause = `generation ${gen} was found to diverge from the database: nothing it holds after its last verified position is trusted (the replicator started a new generation)`;
    } else if (gapAt) {
      endsBecause = `a log segment of generation ${gen} is missing after position ${gapAt.cycle}/${gapAt.frame} (forgotten, or never shipped)`;
    } else if (gen !== newestGen) {
      endsBecause = `generation ${gen} ends here: the replicator started a new generation from a fresh snapshot (restarted, or the database file was replaced)`;
    }
    stretches.push({ log: 'sqlite', from, to, base: s.id, generation: gen, ...(endsBecause !== undefined ? { endsBecause } : {}) });
  }
  const stored = logs.map((l) => parseSegmentName(l.file)?.lastTime ?? 0).reduce((m, t) => Math.max(m, t), 0);
  return { stretches, ...(stored > 0 ? { storedUntil: stored } : {}) };
}
