/**
 * Compaction of a generation's log segments (SQLite's WAL frames, Redis's command
 * stream: each kind gives its codec), so a year of one-second syncs is not
 * millions of objects: once a minute is over, its segments become one object; once an
 * hour is over, its minute objects become one. Every transaction or command is kept, so every
 * restore point survives; only the object count shrinks (to about one per hour of
 * writes, plus at most a minute's and an hour's worth still open).
 *
 * Crash safety: the merged object is stored before its parts are deleted. A crash in
 * between leaves both; restores take the longest object at each point, and the next
 * compaction deletes parts that a stored object already covers.
 */
import { keys } from '../repo/format.js';
import type { Repository } from '../repo/repository.js';

/** Levels: a bucket's segments are merged once the bucket is over. */
const LEVELS_MS = [60_000, 3_600_000];
/**
 * Bytes of one merged object at most, stored and decoded: a restore and a compaction
 * hold one object in memory at a time, so this bounds their memory. Decoded counts:
 * WAL pages of repetitive rows compress 30-fold, and a bound on stored bytes alone let
 * one compaction hold 1.8 GB.
 */
const MAX_MERGED_BYTES = 32 << 20;

export interface CompactResult {
  /** Objects merged away (deleted) and objects written. */
  merged: number;
  into: number;
}

/** How one kind names, reads, joins and orders its segments; positions `P` compare with `compare`. */
export interface SegmentCodec<P, N extends { start: P; end: P; lastTime: number; file: string }, S> {
  parseName(file: string): N | undefined;
  compare(a: P, b: P): number;
  decode(data: Buffer, file: string): S;
  merge(parts: S[]): S;
  encode(segment: S): Buffer;
  name(segment: S): string;
  /** Decoded size of a segment, as far as its name tells (a lower bound; 0 when it does not). */
  rawBytes(name: N): number;
  /** Decoded size of a segment read back. */
  bytes(segment: S): number;
}

export async function compactLog<P, N extends { start: P; end: P; lastTime: number; file: string }, S>(
  repo: Repository,
  source: string,
  generation: string,
  now: number,
  codec: SegmentCodec<P, N, S>,
): Promise<CompactResult> {
  const result: CompactResult = { merged: 0, into: 0 };
  for (const bucketMs of LEVELS_MS) {
    const listed = (await repo.listLogs(source)).filter((l) => l.timeline === generation);
    const sizes = new Map(listed.map((l) => [l.file, l.size]));
    const names = listed.map((l) => codec.parseName(l.file)).filter((n): n is N => n !== undefined);
    const live = await dropCovered(repo, source, generation, names, codec.compare, result);
    const size = (n: N) => Math.max(sizes.get(n.file) ?? 0, codec.rawBytes(n));
    for (const run of mergeableRuns(live, size, bucketMs, now, codec.compare)) {
      // Parts are read one at a time and merged in pieces whose decoded size stays in bounds
      // (a name may understate it); what does not fit starts the next piece.
      let parts: S[] = [];
      let taken: N[] = [];
      let raw = 0;
      const flush = async () => {
        if (parts.length > 1) {
          const merged = codec.merge(parts);
          await repo.putLog(source, generation, codec.name(merged), codec.encode(merged));
          result.into++;
          for (const n of taken) await repo.store.delete(keys.log(source, generation, n.file));
          result.merged += taken.length;
        }
        parts = [];
        taken = [];
        raw = 0;
      };
      for (const n of run) {
        const data = await repo.getLog(source, generation, n.file);
        if (!data) {
          parts = []; // a part vanished: another compactor is at work
          break;
        }
        const part = codec.decode(data, n.file);
        if (parts.length > 0 && raw + codec.bytes(part) > MAX_MERGED_BYTES) await flush();
        parts.push(part);
        taken.push(n);
        raw += codec.bytes(part);
      }
      await flush();
    }
  }
  return result;
}

/** Deletes segments whose whole range another stored segment holds (left by an interrupted compaction). */
async function dropCovered<P, N extends { start: P; end: P; file: string }>(
  repo: Repository,
  source: string,
  generation: string,
  names: N[],
  comparePos: (a: P, b: P) => number,
  result: CompactResult,
): Promise<N[]> {
  const live: N[] = [];
  for (const n of names) {
    const cover = names.find(
      (o) => o !== n && comparePos(o.start, n.start) <= 0 && comparePos(o.end, n.end) >= 0 && (comparePos(o.start, n.start) !== 0 || comparePos(o.end, n.end) !== 0),
    );
    if (cover) {
      await repo.store.delete(keys.log(source, generation, n.file));
      result.merged++;
    } else live.push(n);
  }
  return live;
}

/** Runs of two or more joined segments in one finished bucket, each run within the size limit. */
function mergeableRuns<P, N extends { start: P; end: P; lastTime: number; file: string }>(
  names: N[],
  sizeOf: (n: N) => number,
  bucketMs: number,
  now: number,
  comparePos: (a: P, b: P) => number,
): N[][] {
  const sorted = [...names].sort((a, b) => comparePos(a.start, b.start));
  const current = Math.floor(now / bucketMs);
  const runs: N[][] = [];
  let run: N[] = [];
  let bytes = 0;
  const close = () => {
    if (run.length > 1) runs.push(run);
    run = [];
    bytes = 0;
  };
  for (const n of sorted) {
    const bucket = Math.floor(n.lastTime / bucketMs);
    const size = sizeOf(n);
    const prev = run[run.length - 1];
    const joins = prev && comparePos(prev.end, n.start) === 0 && Math.floor(prev.lastTime / bucketMs) === bucket;
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
