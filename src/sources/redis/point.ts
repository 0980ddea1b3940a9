/**
 * A Redis snapshot's consistency point as stored in its manifest (docs/format.md):
 * the replication history (`replid`) and the offset in it at which the RDB is
 * consistent, exactly as the server's FULLRESYNC reply named them. Command segments of
 * the same generation continue from `offset`, so a restore to a moment is this RDB
 * plus the segments' bytes from `offset` up to the moment's cut.
 *
 * Validated by every reader through `redisPoint` instead of cast, so a damaged or
 * forged manifest is refused rather than steering a restore or log retention.
 */
import * as z from 'zod';
import { LifeboatError } from '../../errors.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import { lazily } from '../../config/schema.js';

export interface RedisPoint {
  /** The replication id (40 hex digits) of the history the RDB belongs to. */
  replid: string;
  /** The replication offset the RDB is consistent at. */
  offset: number;
  /** The server's run_id when the RDB was taken (changes at every server start). */
  runId?: string;
  /** The replicator's generation the snapshot starts or belongs to; absent for a one-off `redis backup`. */
  generation?: string;
  redisVersion?: string;
  /** Bytes of the RDB as received. */
  rdbBytes: number;
  /** Keys per database (`db0` → n) as INFO keyspace said at the RDB's own offset; absent when a write came between the two. */
  keys?: Record<string, number>;
  /** used_memory when the RDB was taken. */
  usedMemory?: number;
  /** used_memory_dataset (memory of the data, without buffers and backlog) at the RDB's own offset; absent as `keys` is. */
  datasetMemory?: number;
}

const count = lazily(() => z.number().int().nonnegative());

// Loose: points written by newer versions may carry more fields; they are kept.
export const redisPointSchema = lazily((): z.ZodType<RedisPoint> => z
  .object({
    replid: z.string().regex(/^[0-9a-f]{40}$/),
    offset: count(),
    runId: z.string().regex(/^[0-9a-f]{40}$/).optional(),
    generation: z.string().regex(/^[0-9a-f]{20}$/).optional(),
    redisVersion: z.string().max(64).optional(),
    rdbBytes: count(),
    keys: z.record(z.string().regex(/^db\d{1,5}$/), count()).optional(),
    usedMemory: count().optional(),
    datasetMemory: count().optional(),
  })
  .loose() as z.ZodType<RedisPoint>);

/** The point of a Redis snapshot: undefined without one, CORRUPT when it does not validate. */
export function redisPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): RedisPoint | undefined {
  return pointOf({ name: 'redis', point: redisPointSchema() }, snapshot);
}

/** The point of a Redis snapshot that must have one (every snapshot records it): CORRUPT otherwise. */
export function requireRedisPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): RedisPoint {
  const c = redisPoint(snapshot);
  if (!c) throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} is a Redis snapshot without its consistency point`, { hint: '`lifeboat check` reports damaged snapshots' });
  return c;
}
