/**
 * A bucket snapshot's consistency point (docs/format.md, docs/bucket.md). A bucket has
 * no atomic snapshot: objects are listed page by page and read one by one while
 * others may write, so the point says when the listing began and ended and how many
 * objects it found. Each object's node records the ETag and modification time of the
 * bytes stored (and its version id where the service gave one): in a versioned bucket
 * those ids name the exact versions, which is the exact point this snapshot holds.
 */
import * as z from 'zod';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import { lazily } from '../../config/schema.js';

export interface BucketPoint {
  location: string;
  /** ISO 8601: when the first page was asked for, and when the last one arrived. */
  listStarted: string;
  listEnded: string;
  /** Objects stored in the snapshot, and their bytes. */
  objects: number;
  bytes: number;
  /** Listed objects read again, and those whose chunks came from the parent snapshot. */
  downloaded: number;
  reused: number;
  /** Listed, then gone before they could be read (deleted meanwhile): not in the snapshot. */
  vanished: number;
  /** The bucket keeps versions (S3 versioning Enabled), so the version ids recorded are exact. */
  versioned: boolean;
}

const count = lazily(() => z.number().int().nonnegative());

// Loose: points written by newer versions may carry more fields; they are kept.
export const bucketPointSchema = lazily((): z.ZodType<BucketPoint> => z
  .object({
    location: z.string(),
    listStarted: z.string(),
    listEnded: z.string(),
    objects: count(),
    bytes: count(),
    downloaded: count(),
    reused: count(),
    vanished: count(),
    versioned: z.boolean(),
  })
  .loose() as z.ZodType<BucketPoint>);

export function bucketPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): BucketPoint | undefined {
  return pointOf({ name: 'bucket', point: bucketPointSchema() }, snapshot);
}
