/**
 * Where a live replication position (a consistency group's `master_replid` and
 * `master_repl_offset`, engine/group/members.ts) lies in the stored history of a Redis
 * source: the generation whose base snapshot is at or before it and whose unbroken
 * chain of command segments reaches it, in that replication id's history.
 *
 * A restore can stop exactly there only at a command boundary outside MULTI…EXEC. The
 * server's offset always is one (a transaction is propagated whole, at EXEC), and the
 * stored bytes are checked to say so: the segment holding the offset is scanned from
 * its start (a cut point) and the offset must end a command outside a transaction.
 */
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { basesOf, segmentsOf, type Base } from './history.js';
import { logSource } from './names.js';
import { relisting, vanished } from '../../engine/txn-history.js';
import type { RedisPoint } from './point.js';
import { CommandScanner, TxnTracker } from './scanner.js';
import { chainFrom, decodeSegment, type SegmentName } from './segment.js';

export interface OffsetPlace {
  generation: string;
  /** The base snapshot replayed from (its offset at or before the position). */
  snapshot: Snapshot;
  point: RedisPoint;
  /** The segments from the base's offset to the one holding the position, in order. */
  chain: SegmentName[];
  offset: number;
}

export type Located = { found: OffsetPlace } | { found?: undefined; reach: number | undefined; why: string };

type Repo = Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>;

/**
 * The place of (`replid`, `offset`) in the history of source `name`; when none holds it,
 * how far the stored history of that replication id reaches (undefined: not at all).
 */
export async function locateOffset(repo: Repo, name: string, replid: string, offset: number): Promise<Located> {
  // Newest generation first, within it the base closest to the offset. The snapshots once;
  // the log in each look: a segment merged away meanwhile starts it again, "not there" is
  // looked for twice (engine/txn-history.ts).
  const bases = basesOf(await repo.listSnapshots(), name)
    .filter((b) => b.point.offset <= offset)
    .sort((a, b) => b.point.generation.localeCompare(a.point.generation) || b.point.offset - a.point.offset);
  return relisting(() => locateIn(repo, name, bases, replid, offset), (r) => !r.found);
}

async function locateIn(repo: Repo, name: string, bases: readonly Base[], replid: string, offset: number): Promise<Located> {
  const source = logSource(name);
  const logs = await repo.listLogs(source);
  let reach: number | undefined;
  // Why each generation does not hold it, newest first.
  const why: string[] = [];
  const tried = new Set<string>();
  for (const base of bases) {
    const gen = base.point.generation;
    if (tried.has(gen)) continue;
    if (base.point.offset === offset && base.point.replid === replid) {
      tried.add(gen);
      return { found: { generation: gen, snapshot: base.snapshot, point: base.point, chain: [], offset } };
    }
    const { chain } = chainFrom(base.point.offset, segmentsOf(logs, gen));
    const used: SegmentName[] = [];
    let holder: SegmentName | undefined;
    for (const n of chain) {
      used.push(n);
      if (n.end >= offset) {
        holder = n;
        break;
      }
    }
    if (!holder) {
      tried.add(gen); // an older base of this generation reaches no further
      const end = chain.at(-1)?.end ?? base.point.offset;
      if (base.point.replid === replid || chain.length > 0) reach = Math.max(reach ?? 0, end);
      why.push(`the stored command stream of generation ${gen} ends at offset ${end}`);
      continue;
    }
    tried.add(gen);
    const data = await repo.getLog(source, gen, holder.file);
    if (!data) throw vanished(source);
    const seg = decodeSegment(data, holder.file);
    if (seg.meta.replid !== replid) {
      why.push(`offset ${offset} of generation ${gen} belongs to replication id ${seg.meta.replid.slice(0, 8)}, not ${replid.slice(0, 8)} (the server's history changed)`);
      continue;
    }
    if (!isBoundary(seg.stream, offset - seg.meta.start)) {
      why.push(`offset ${offset} of generation ${gen} is not between two commands in the stored stream`);
      continue;
    }
    return { found: { generation: gen, snapshot: base.snapshot, point: base.point, chain: used, offset } };
  }
  return { reach, why: why.join('; ') || 'no base snapshot at or before that offset' };
}

/** Whether `at` bytes into `stream` (which starts at a cut point) ends a command outside MULTI…EXEC. */
export function isBoundary(stream: Buffer, at: number): boolean {
  if (at === 0 || at === stream.length) return true;
  const tracker = new TxnTracker();
  let ok = false;
  new CommandScanner().scan(stream.subarray(0, at), (end, kind) => {
    const step = tracker.step(kind);
    if (end === at) ok = step !== 'inside';
  });
  return ok;
}
