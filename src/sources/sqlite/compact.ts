/** Compaction of a SQLite generation's WAL segments: src/engine/log-compact.ts's scheme, with positions (cycle, frame). */
import { compactLog, type CompactResult } from '../../engine/log-compact.js';
import type { Repository } from '../../repo/repository.js';
import { FRAME_HEADER_SIZE } from './wal.js';
import { comparePos, decodeSegment, encodeSegment, mergeSegments, parseSegmentName, segmentName, type Segment } from './segment.js';

export type { CompactResult } from '../../engine/log-compact.js';

export function compactGeneration(repo: Repository, source: string, generation: string, now: number): Promise<CompactResult> {
  return compactLog(repo, source, generation, now, {
    parseName: parseSegmentName,
    compare: comparePos,
    decode: decodeSegment,
    merge: mergeSegments,
    encode: encodeSegment,
    name: (s: Segment) => segmentName(s.meta),
    // Frames of 4 KiB pages (SQLite's default), when the name's two positions are in one WAL cycle.
    rawBytes: (n) => (n.start.cycle === n.end.cycle ? (n.end.frame - n.start.frame) * (FRAME_HEADER_SIZE + 4096) : 0),
    bytes: (s: Segment) => s.frames.length,
  });
}
