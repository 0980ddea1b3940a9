/**
 * Which history a Redis restore replays: a base snapshot (an RDB and its replication
 * offset) and the command segments of its generation from that offset, cut at the
 * last mark at or before the target time. Gaps are never crossed silently: the plan
 * carries a warning naming the data-loss window, and the replay stops at the gap.
 */
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { relisting } from '../../engine/txn-history.js';
import { basesOf, segmentsOf } from './history.js';
import { logSource } from './names.js';
import { requireRedisPoint, type RedisPoint } from './point.js';
import { chainFrom, decodeSegment, type SegmentName } from './segment.js';
import { locateOffset } from './locate.js';

export interface RestorePlan {
  snapshot: Snapshot;
  point: RedisPoint;
  /** The base's generation (its segments are replayed on top), absent for a one-off backup. */
  generation?: string;
  /** The generation's segments from the base offset, in order (empty: the base only). */
  chain: SegmentName[];
  /** Replay marks up to this time (Unix ms; Infinity for everything stored). */
  until: number;
  /** Where the chain stops before newer segments of its generation (a gap). */
  gapAt?: number;
  /** Replay exactly up to this offset instead of up to a time (a group point's, locate.ts). */
  untilOffset?: number;
  warnings: string[];
}

function redisSnapshots(all: readonly Snapshot[], name: string): Snapshot[] {
  return all.filter((s) => s.source.kind === 'redis' && s.source.name === name);
}

const iso = (t: number) => new Date(t).toISOString();

/**
 * `snapshot`: that snapshot alone (it must be one of `name`'s). Otherwise the base that
 * gets closest to `time` (default: the newest data): for each snapshot at or before
 * it, how far its generation's unbroken chain of segments reaches (capped at the time),
 * the furthest winning and, between equals, the newest snapshot.
 */
export async function planRestore(repo: Repository, name: string, opts: { time?: Date; snapshot?: string }): Promise<RestorePlan> {
  const all = await repo.listSnapshots();
  if (opts.snapshot !== undefined) {
    const s = await repo.findSnapshot(opts.snapshot);
    if (s.source.kind !== 'redis' || s.source.name !== name) {
      throw new LifeboatError('WRONG_SOURCE', `snapshot ${s.id.slice(0, 8)} is not a Redis backup of "${name}" (it is ${s.source.kind}${s.source.name ? ` ${s.source.name}` : ''})`, {
        hint: `\`lifeboat snapshots\` lists the snapshots of ${name}`,
      });
    }
    return { snapshot: s, point: requireRedisPoint(s), chain: [], until: Date.parse(s.time), warnings: [] };
  }
  const mine = redisSnapshots(all, name);
  if (mine.length === 0) {
    throw new LifeboatError('NOT_FOUND', `no Redis backups named "${name}" in this repository`, { hint: '`lifeboat snapshots` lists them; the name is the --name of `lifeboat redis backup` or `replicate`' });
  }
  const target = opts.time?.getTime() ?? Infinity;
  const before = mine.filter((s) => Date.parse(s.time) <= target).sort((a, b) => Date.parse(b.time) - Date.parse(a.time));
  if (before.length === 0) {
    const earliest = [...mine].sort((a, b) => Date.parse(a.time) - Date.parse(b.time))[0] as Snapshot;
    throw new LifeboatError('NOT_FOUND', `no backup of "${name}" at or before ${opts.time?.toISOString() ?? 'now'}`, { hint: `the earliest restorable moment is ${earliest.time}` });
  }
  // A gap is looked for again in a fresh listing before it is believed (engine/txn-history.ts).
  const { logs, chosen } = await relisting(
    async () => {
      const logs = await repo.listLogs(logSource(name));
      return { logs, chosen: bestBase(before, logs, target) };
    },
    (r) => r.chosen.gapAt !== undefined,
  );
  return withWarnings(repo, name, mine, chosen, logs, target, opts.time);
}

/** Of the snapshots at or before `target` (newest first), the one whose chain of segments in `logs` reaches furthest. */
function bestBase(before: readonly Snapshot[], logs: ReadonlyArray<{ timeline: string; file: string }>, target: number): RestorePlan & { reach: number } {
  let best: (RestorePlan & { reach: number }) | undefined;
  for (const s of before) {
    const point = requireRedisPoint(s);
    const gen = point.generation;
    const names = gen ? segmentsOf(logs, gen) : [];
    const { chain, gapAt } = gen ? chainFrom(point.offset, names) : { chain: [] as SegmentName[], gapAt: undefined };
    let reach = Date.parse(s.time);
    const used: SegmentName[] = [];
    for (const n of chain) {
      used.push(n);
      if (n.lastTime >= target) {
        reach = target;
        break;
      }
      reach = Math.max(reach, n.lastTime);
    }
    const plan = {
      snapshot: s,
      point,
      ...(gen ? { generation: gen } : {}),
      chain: used,
      until: target,
      ...(gapAt !== undefined && used.length === chain.length ? { gapAt } : {}),
      warnings: [],
      reach,
    };
    if (!best || reach > best.reach) best = plan;
  }
  return best as RestorePlan & { reach: number };
}

/** The chosen plan with what it cannot restore said as warnings (a gap, a window with nothing stored). */
async function withWarnings(
  repo: Pick<Repository, 'getLog'>,
  name: string,
  mine: readonly Snapshot[],
  chosen: RestorePlan & { reach: number },
  logs: ReadonlyArray<{ timeline: string; file: string }>,
  target: number,
  time: Date | undefined,
): Promise<RestorePlan> {
  if (chosen.gapAt !== undefined && chosen.generation) {
    const after = segmentsOf(logs, chosen.generation).filter((n) => n.start > (chosen.gapAt as number)).sort((a, b) => a.start - b.start)[0];
    let resumed = 'later';
    if (after) {
      const data = await repo.getLog(logSource(name), chosen.generation, after.file);
      const first = data ? decodeSegment(data, after.file).meta.marks[0] : undefined;
      if (first) resumed = iso(first[1]);
    }
    chosen.warnings.push(
      `the command stream of generation ${chosen.generation} has a gap after offset ${chosen.gapAt}: changes between ${iso(chosen.reach)} and ${resumed} are not in the repository; restored up to ${iso(chosen.reach)}`,
    );
  } else if (time && chosen.reach < target) {
    const next = mine.map((s) => Date.parse(s.time)).filter((t) => t > target).sort((a, b) => a - b)[0];
    chosen.warnings.push(
      next !== undefined
        ? `nothing of "${name}" was stored between ${iso(chosen.reach)} and ${iso(next)} (the next backup): changes in that window are lost; restored up to ${iso(chosen.reach)}`
        : `the newest stored data of "${name}" is from ${iso(chosen.reach)}, before ${iso(target)}; restored up to it`,
    );
  }
  const { reach: _reach, ...plan } = chosen;
  return plan;
}

/**
 * The plan for a restore exactly to (`replid`, `offset`): the base and chain that reach
 * it (locate.ts). ARCHIVE_BEHIND when the stored history does not.
 */
export async function planToOffset(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string, replid: string, offset: number): Promise<RestorePlan> {
  const at = await locateOffset(repo, name, replid, offset);
  if (!at.found) {
    throw new LifeboatError('ARCHIVE_BEHIND', `the stored history of Redis "${name}" does not reach offset ${offset} of replication id ${replid.slice(0, 8)}: ${at.why}`, {
      hint: at.reach === undefined ? 'no generation of that history is stored (forgotten?); `lifeboat snapshots` lists the bases' : `it reaches offset ${at.reach}; a segment is missing, or the replicator never stored that far`,
    });
  }
  const f = at.found;
  return { snapshot: f.snapshot, point: f.point, generation: f.generation, chain: f.chain, until: Infinity, untilOffset: offset, warnings: [] };
}

/**
 * The plan for a restore exactly to `offset` of `generation` (a transaction's end or the
 * cut point before it, transactions.ts): the newest base of that generation at or before
 * the offset, and its chain up to the segment that reaches it. ARCHIVE_BEHIND when the
 * stored history does not reach it (retention removed the base, or a segment is missing).
 */
export async function planToCut(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string, generation: string, offset: number): Promise<RestorePlan> {
  const bases = basesOf(await repo.listSnapshots(), name)
    .filter((b) => b.point.generation === generation && b.point.offset <= offset)
    .sort((a, b) => b.point.offset - a.point.offset);
  const base = bases[0];
  if (!base) {
    throw new LifeboatError('ARCHIVE_BEHIND', `no base snapshot of generation ${generation} of Redis "${name}" is at or before offset ${offset}`, {
      hint: 'retention removed it; `lifeboat redis history NAME --around TIME` lists the transactions a restore can reach',
    });
  }
  const { chain } = chainFrom(base.point.offset, segmentsOf(await repo.listLogs(logSource(name)), generation));
  const used: SegmentName[] = [];
  for (const n of chain) {
    if (base.point.offset >= offset) break;
    used.push(n);
    if (n.end >= offset) break;
  }
  const reach = used.at(-1)?.end ?? base.point.offset;
  if (reach < offset) {
    throw new LifeboatError('ARCHIVE_BEHIND', `the stored command stream of generation ${generation} of Redis "${name}" stops at offset ${reach}, before ${offset}`, {
      hint: 'a command segment is missing; `lifeboat check`',
    });
  }
  return { snapshot: base.snapshot, point: base.point, generation, chain: used, until: Infinity, untilOffset: offset, warnings: [] };
}
