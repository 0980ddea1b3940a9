/** Compaction of a Redis generation's command segments: src/engine/log-compact.ts's scheme, with byte offsets. */
import { compactLog, type CompactResult } from '../../engine/log-compact.js';
import type { Repository } from '../../repo/repository.js';
import { decodeSegment, encodeSegment, mergeSegments, parseSegmentName, segmentName, type Segment } from './segment.js';

export type { CompactResult } from '../../engine/log-compact.js';

export function compactGeneration(repo: Repository, source: string, generation: string, now: number): Promise<CompactResult> {
  return compactLog(repo, source, generation, now, {
    parseName: parseSegmentName,
    compare: (a: number, b: number) => a - b,
    decode: decodeSegment,
    merge: mergeSegments,
    encode: encodeSegment,
    name: (s: Segment) => segmentName(s.meta),
    rawBytes: (n) => n.end - n.start,
    bytes: (s: Segment) => s.stream.length,
  });
}
