/**
 * The timelines of a PostgreSQL source's archive as an operator meets them: the
 * report `pg timelines` prints, the warnings `check` adds, and moving a timeline that
 * is not production's aside (and back).
 *
 * Moving aside never deletes: each file is copied under `logs/<source>~aside/`, read
 * back and compared, and only then removed from the archive, so at every moment it
 * is in at least one of the two places, and an interrupted move is finished by
 * running it again. Restores, retention and `copy` only read the archive itself, so
 * a timeline set aside is out of their reach until it is moved back.
 */
import { LifeboatError } from '../../errors.js';
import { acquireLock } from '../../repo/lock.js';
import type { Repository } from '../../repo/repository.js';
import { formatLsn } from './wal.js';
import { asideSource, logSource, streamSource, timelineDir } from './names.js';
import { backupRefs, gatherTimelines, productionHistory, timelineWarnings, type ProductionHistory, type TimelineReport } from './timelines.js';

export interface AsideReport {
  timeline: number;
  files: number;
  command: string;
}

export interface TimelinesReport {
  name: string;
  production: { head: number; chain: Array<{ timeline: number; until: string | null }>; basis: string };
  timelines: Array<TimelineReport & { command: string | null }>;
  aside: AsideReport[];
  warnings: string[];
}

async function history(repo: Repository, name: string): Promise<ProductionHistory> {
  const backups = backupRefs(await repo.listSnapshots(), name);
  return productionHistory(await gatherTimelines(repo, name), backups);
}

export async function timelinesReport(repo: Repository, name: string): Promise<TimelinesReport> {
  const h = await history(repo, name);
  const aside = new Map<number, number>();
  for (const [, to] of pairs(name)) {
    for (const l of await repo.listLogs(to)) {
      const t = parseInt(l.timeline, 16);
      if (Number.isInteger(t)) aside.set(t, (aside.get(t) ?? 0) + 1);
    }
  }
  return {
    name,
    production: { head: h.head, chain: h.chain.map((l) => ({ timeline: l.timeline, until: l.until === undefined ? null : formatLsn(l.until) })), basis: h.basis },
    timelines: h.timelines.map((t) => ({ ...t, command: t.onProduction ? null : `lifeboat pg timelines --name ${name} --move-aside ${t.timeline}` })),
    aside: [...aside].sort(([a], [b]) => a - b).map(([timeline, files]) => ({ timeline, files, command: `lifeboat pg timelines --name ${name} --move-back ${timeline}` })),
    warnings: timelineWarnings(name, h),
  };
}

/** Warnings for every PostgreSQL source with a base backup in the repository (for `check`). */
export async function archiveWarnings(repo: Repository): Promise<string[]> {
  const snapshots = await repo.listSnapshots();
  const names = new Set(snapshots.filter((s) => s.source.kind === 'postgres' && s.source.name && s.consistency).map((s) => s.source.name as string));
  const out: string[] = [];
  for (const name of [...names].sort()) {
    out.push(...timelineWarnings(name, productionHistory(await gatherTimelines(repo, name), backupRefs(snapshots, name))));
  }
  return out;
}

/** [archive source, where it is set aside] for archived and streamed WAL. */
function pairs(name: string): Array<[string, string]> {
  return [logSource(name), streamSource(name)].map((s) => [s, asideSource(s)]);
}

export interface MoveResult {
  timeline: number;
  direction: 'aside' | 'back';
  moved: number;
}

/**
 * Moves every archived and streamed file of TIMELINE aside, or back. Refuses a
 * timeline on production's history, and a move back over a different file of the
 * same name (a new timeline that took the number since); nothing moves then.
 */
export async function moveTimeline(repo: Repository, name: string, timeline: number, direction: 'aside' | 'back'): Promise<MoveResult> {
  if (repo.appendOnly) {
    throw new LifeboatError('USAGE', 'moving a timeline removes it from where it was; an append-only client may not', {
      hint: 'run it with a key that is not append-only',
    });
  }
  const dir = timelineDir(timeline);
  const routes = pairs(name).map(([archive, aside]) => (direction === 'aside' ? [archive, aside] : [aside, archive]) as [string, string]);
  if (direction === 'aside') {
    const h = await history(repo, name);
    if (h.chain.some((l) => l.timeline === timeline)) {
      throw new LifeboatError('USAGE', `timeline ${timeline} is on production's history of ${name}; it stays`, {
        hint: `only timelines restores ignore can be moved aside (\`lifeboat pg timelines --name ${name}\`)`,
      });
    }
  }
  const lock = await acquireLock(repo.store, 'shared', `pg timelines --move-${direction} ${timeline}`);
  try {
    let moved = 0;
    // A copy still archiving can add files while they move: go again until none are left.
    for (let round = 0; ; round++) {
      const todo: Array<[string, string, string]> = [];
      for (const [from, to] of routes) for (const l of await repo.listLogs(from)) if (l.timeline === dir) todo.push([from, to, l.file]);
      if (todo.length === 0) break;
      if (round === 5) throw new LifeboatError('FAILED', `files of timeline ${timeline} keep arriving in ${name}'s archive`, { hint: 'stop the cluster archiving on that timeline, then run the move again' });
      if (round === 0) await refuseConflicts(repo, todo, timeline, direction);
      for (const [from, to, file] of todo) {
        const data = await repo.getLog(from, dir, file);
        if (!data) continue;
        await repo.putLog(to, dir, file, data);
        const copy = await repo.getLog(to, dir, file);
        if (!copy?.equals(data)) throw new LifeboatError('CORRUPT', `the copy of ${file} did not read back the same; the original was kept`, { hint: 'run `lifeboat check`, then the move again' });
        await repo.store.delete(`logs/${from}/${dir}/${file}`);
        moved++;
      }
    }
    if (moved === 0) {
      throw new LifeboatError('NOT_FOUND', direction === 'aside' ? `timeline ${timeline} is not in the archive of ${name}` : `no timeline ${timeline} of ${name} was moved aside`, {
        hint: `\`lifeboat pg timelines --name ${name}\` lists the timelines, and those moved aside`,
      });
    }
    return { timeline, direction, moved };
  } finally {
    await lock.release();
  }
}

/** Where a file of the same name is already at the destination, it must be the same file. */
async function refuseConflicts(repo: Repository, todo: Array<[string, string, string]>, timeline: number, direction: 'aside' | 'back'): Promise<void> {
  const dir = timelineDir(timeline);
  const there = new Map<string, Set<string>>();
  for (const [from, to, file] of todo) {
    if (!there.has(to)) there.set(to, new Set((await repo.listLogs(to)).filter((l) => l.timeline === dir).map((l) => l.file)));
    if (!there.get(to)!.has(file)) continue;
    const [a, b] = [await repo.getLog(from, dir, file), await repo.getLog(to, dir, file)];
    if (a && b && !a.equals(b)) {
      throw new LifeboatError('TARGET_EXISTS', `timeline ${timeline} cannot move ${direction}: a different ${file} is already there; nothing was moved`, {
        hint: direction === 'back' ? 'a new timeline took this number since; move that one aside first if it is not production\'s' : 'an earlier timeline with this number was moved aside; move it back first, or keep both apart by hand',
      });
    }
  }
}
