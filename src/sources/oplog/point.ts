/**
 * An oplog snapshot's consistency point (docs/format.md, docs/oplog.md). An oplog
 * snapshot is a marker, not a copy: `oplog backup` ships every whole record the
 * journal holds to segments, then stores this point, which says how far the shipped
 * history reaches (generation, byte offset, records) and which file it was read from.
 * The records themselves stay in the segments; a restore to the snapshot's time writes
 * every record up to it.
 */
import * as z from 'zod';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import { lazily } from '../../config/schema.js';

export interface FileIdentity {
  dev: number;
  ino: number;
  /** Bytes hashed (the first min(4096, shipped) bytes) and their SHA-256, hex. */
  headLen: number;
  head: string;
}

export interface OplogPoint {
  generation: string;
  /** Bytes of that generation's file shipped, always at a record boundary. */
  offset: number;
  file: FileIdentity;
  format: 'jsonl' | 'u32be';
  /** The time of the newest record shipped (Unix ms), or null when there is none yet. */
  lastRecordTime: number | null;
}

const count = lazily(() => z.number().int().nonnegative());

export const fileIdentitySchema = lazily(() => z.object({ dev: count(), ino: count(), headLen: count(), head: z.string().regex(/^[0-9a-f]{64}$/) }));

// Loose: points written by newer versions may carry more fields; they are kept.
export const oplogPointSchema = lazily((): z.ZodType<OplogPoint> => z
  .object({
    generation: z.string().regex(/^[0-9a-f]{20}$/),
    offset: count(),
    file: fileIdentitySchema(),
    format: z.enum(['jsonl', 'u32be']),
    lastRecordTime: count().nullable(),
  })
  .loose() as z.ZodType<OplogPoint>);

export function oplogPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): OplogPoint | undefined {
  return pointOf({ name: 'oplog', point: oplogPointSchema() }, snapshot);
}
