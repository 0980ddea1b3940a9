/** Compaction of a Redis generation's command segments: src/engine/log-compact.ts's scheme, with byte offsets. */
import { compactLog, type CompactResult, type SegmentCodec } from '../../engine/log-compact.js';
import type { Repository } from '../../repo/repository.js';
import { decodeSegment, encodeSegment, mergeSegments, parseSegmentName, segmentName, type Segment, type SegmentName } from './segment.js';

export type { CompactResult } from '../../engine/log-compact.js';

/** How compaction reads, joins and names Redis command segments. */
export const REDIS_SEGMENT_CODEC = {
  parseName: parseSegmentName,
  compare: (a: number, b: number) => a - b,
  decode: decodeSegment,
  merge: mergeSegments,
  encode: encodeSegment,
  name: (s: Segment) => segmentName(s.meta),
  rawBytes: (n: SegmentName) => n.end - n.start,
  bytes: (s: Segment) => s.stream.length,
} satisfies SegmentCodec<number, SegmentName, Segment>;

export function compactGeneration(repo: Repository, source: string, generation: string, now: number): Promise<CompactResult> {
  return compactLog(repo, source, generation, now, REDIS_SEGMENT_CODEC);
}
