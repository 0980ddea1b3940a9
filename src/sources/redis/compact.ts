/**
 * Compaction of a Redis generation's command segments (the same scheme as SQLite's,
 * src/sources/sqlite/compact.ts), so a year of one-second ships is not millions of
 * objects: once a minute is over, its segments become one object; once an
 * hour is over, its minute objects become one. Every byte and cut point is kept, so every
 * restore point survives; only the object count shrinks (to about one per hour of
 * writes, plus at most a minute's and an hour's worth still open).
 *
 * Crash safety: the merged object is stored before its parts are deleted. A crash in
 * between leaves both; restores take the longest object at each point, and the next
 * compaction deletes parts that a stored object already covers.
 */
import { keys } from '../../repo/format.js';
import type { Repository } from '../../repo/repository.js';
import { decodeSegment, encodeSegment, mergeSegments, parseSegmentName, segmentName, type Segment, type SegmentName } from './segment.js';

/** Levels: a bucket's segments are merged once the bucket is over. */
const LEVELS_MS = [60_000, 3_600_000];
/**
 * Stored bytes of one merged object at most: a restore and a compaction hold one
 * object in memory at a time, so this bounds their memory.
 */
const MAX_MERGED_BYTES = 32 << 20;

export interface CompactResult {
  /** Objects merged away (deleted) and objects written. */
  merged: number;
  into: number;
}

export async function compactGeneration(repo: Repository, source: string, generation: string, now: number): Promise<CompactResult> {
  const result: CompactResult = { merged: 0, into: 0 };
  for (const bucketMs of LEVELS_MS) {
    const listed = (await repo.listLogs(source)).filter((l) => l.timeline === generation);
    const sizes = new Map(listed.map((l) => [l.file, l.size]));
    const names = listed.map((l) => parseSegmentName(l.file)).filter((n) => n !== undefined);
    const live = await dropCovered(repo, source, generation, names, result);
    for (const run of mergeableRuns(live, sizes, bucketMs, now)) {
      const parts: Segment[] = [];
      for (const n of run) {
        const data = await repo.getLog(source, generation, n.file);
        if (!data) break;
        parts.push(decodeSegment(data, n.file));
      }
      if (parts.length !== run.length) continue; // a part vanished: another compactor is at work
      const merged = mergeSegments(parts);
      await repo.putLog(source, generation, segmentName(merged.meta), encodeSegment(merged));
      result.into++;
      for (const n of run) await repo.store.delete(keys.log(source, generation, n.file));
      result.merged += run.length;
    }
  }
  return result;
}

/** Deletes segments whose whole range another stored segment holds (left by an interrupted compaction). */
async function dropCovered(repo: Repository, source: string, generation: string, names: SegmentName[], result: CompactResult): Promise<SegmentName[]> {
  const live: SegmentName[] = [];
  for (const n of names) {
    const cover = names.find(
      (o) => o !== n && o.start <= n.start && o.end >= n.end && (o.start !== n.start || o.end !== n.end),
    );
    if (cover) {
      await repo.store.delete(keys.log(source, generation, n.file));
      result.merged++;
    } else live.push(n);
  }
  return live;
}

/** Runs of two or more joined segments in one finished bucket, each run within the size limit. */
function mergeableRuns(names: SegmentName[], sizes: Map<string, number>, bucketMs: number, now: number): SegmentName[][] {
  const sorted = [...names].sort((a, b) => a.start - b.start);
  const current = Math.floor(now / bucketMs);
  const runs: SegmentName[][] = [];
  let run: SegmentName[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length > 1) runs.push(run);
    run = [];
    bytes = 0;
  };
  for (const n of sorted) {
    const bucket = Math.floor(n.lastTime / bucketMs);
    const size = sizes.get(n.file) ?? 0;
    const prev = run[run.length - 1];
    const joins = prev && prev.end === n.start && Math.floor(prev.lastTime / bucketMs) === bucket;
    if (!joins || bytes + size > MAX_MERGED_BYTES) close();
    if (bucket >= current) {
      close();
      continue;
    }
    run.push(n);
    bytes += size;
  }
  close();
  return runs;
}
