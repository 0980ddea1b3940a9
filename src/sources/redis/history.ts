/**
 * Reading a Redis source's replicated history back from the repository: its
 * generations' base snapshots, and where the newest generation's stored stream ends
 * (a restarted replicator asks the server to continue from there).
 */
import type { Repository } from '../../repo/repository.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { logSource } from './names.js';
import { relisting, vanished } from '../../engine/txn-history.js';
import { redisPoint, type RedisPoint } from './point.js';
import { chainFrom, dbAtEnd, decodeSegment, lastTxn, parseSegmentName, type SegmentName } from './segment.js';

export interface Base {
  snapshot: Snapshot;
  point: RedisPoint & { generation: string };
}

/** The snapshots of source `name` that are bases of a replicator's generation. */
export function basesOf(snapshots: readonly Snapshot[], name: string): Base[] {
  const out: Base[] = [];
  for (const s of snapshots) {
    if (s.source.kind !== 'redis' || s.source.name !== name) continue;
    const point = redisPoint(s);
    if (point?.generation) out.push({ snapshot: s, point: point as Base['point'] });
  }
  return out;
}

/** The segment names of one generation, from a listing of the source's logs. */
export function segmentsOf(logs: ReadonlyArray<{ timeline: string; file: string }>, generation: string): SegmentName[] {
  return logs
    .filter((l) => l.timeline === generation)
    .map((l) => parseSegmentName(l.file))
    .filter((n) => n !== undefined);
}

/** Where the newest generation's stored history ends. */
export interface GenerationEnd {
  generation: string;
  /** The replication id the last stored bytes belong to (PSYNC asks for it). */
  replid: string;
  offset: number;
  /** When the last stored bytes had arrived (ms); 0 when unknown. */
  lastTime: number;
  /** When the generation's newest base snapshot was taken (ms). */
  baseTime: number;
  /** The number of the last transaction stored (segment.ts): 0 with none yet; undefined when unknown (older, unnumbered history). */
  lastTxn?: number;
  /** The database selected where the stored stream ends, when one was. */
  db?: number;
}

/**
 * The end of the newest generation of server `name`: the end of the segments that
 * continue its newest base without a gap, or that base itself. Undefined without one.
 */
export function generationEnd(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string): Promise<GenerationEnd | undefined> {
  // A segment merged away by compaction meanwhile is found in a fresh listing: falling back to the base would resume behind what is stored.
  return relisting(() => generationEndOnce(repo, name));
}

async function generationEndOnce(repo: Pick<Repository, 'listSnapshots' | 'listLogs' | 'getLog'>, name: string): Promise<GenerationEnd | undefined> {
  const bases = basesOf(await repo.listSnapshots(), name);
  const generation = bases.map((b) => b.point.generation).sort().pop();
  if (!generation) return undefined;
  const own = bases.filter((b) => b.point.generation === generation).sort((a, b) => a.point.offset - b.point.offset);
  const base = own[own.length - 1] as Base;
  const source = logSource(name);
  const baseTime = Math.max(...own.map((b) => Date.parse(b.snapshot.time) || 0));
  let names = segmentsOf(await repo.listLogs(source), generation);
  let { chain, gapAt } = chainFrom(base.point.offset, names);
  if (gapAt !== undefined) {
    // A listing taken while compaction ran can miss a deleted part and the merged object: look once more before resuming at the gap.
    names = segmentsOf(await repo.listLogs(source), generation);
    ({ chain } = chainFrom(base.point.offset, names));
  }
  const last = chain[chain.length - 1];
  if (last) {
    const data = await repo.getLog(source, generation, last.file);
    if (!data) throw vanished(source);
    const seg = decodeSegment(data, last.file);
    const txn = lastTxn(seg.meta);
    const db = dbAtEnd(seg);
    return { generation, replid: seg.meta.replid, offset: seg.meta.end, lastTime: last.lastTime, baseTime, ...(txn !== undefined ? { lastTxn: txn } : {}), ...(db !== undefined ? { db } : {}) };
  }
  const txn = await lastTxnAt(repo, source, generation, names, base.point.offset, own.every((b) => b.point.offset === base.point.offset));
  return { generation, replid: base.point.replid, offset: base.point.offset, lastTime: Date.parse(base.snapshot.time) || 0, baseTime, ...(txn !== undefined ? { lastTxn: txn } : {}) };
}

/**
 * The number of the last transaction stored at or before `offset`, where no segment goes
 * past it (the newest base): 0 when the generation shipped nothing yet (every base at its
 * start), the last number of the segment ending there, undefined when that is unknown.
 */
async function lastTxnAt(repo: Pick<Repository, 'getLog'>, source: string, generation: string, names: readonly SegmentName[], offset: number, atStart: boolean): Promise<number | undefined> {
  if (names.length === 0) return atStart ? 0 : undefined;
  const ending = names.find((n) => n.end === offset);
  if (!ending) return undefined;
  const data = await repo.getLog(source, generation, ending.file);
  // Merged away meanwhile: a fresh listing finds it (undefined would number the rest of the generation no more).
  if (!data) throw vanished(source);
  return lastTxn(decodeSegment(data, ending.file).meta);
}
