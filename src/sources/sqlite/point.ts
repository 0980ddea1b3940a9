/**
 * A SQLite snapshot's consistency point as stored in its manifest (backup.ts's
 * SqliteConsistency; docs/format.md): validated by every reader through
 * `sqlitePoint` instead of cast, so a damaged or forged manifest is refused rather
 * than steering a restore, a replicator's restart or log retention.
 */
import * as z from 'zod';
import { LifeboatError } from '../../errors.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import type { SqliteConsistency } from './backup.js';
import { graphFactsSchema } from '../graph/record.js';
import { lazily } from '../../config/schema.js';

const count = lazily(() => z.number().int().nonnegative());
const u32 = lazily(() => z.number().int().min(0).max(0xffff_ffff));
const position = lazily(() => z.object({ cycle: count(), frame: count() }));

// Loose: points written by newer versions may carry more fields; they are kept.
export const sqlitePointSchema = lazily((): z.ZodType<SqliteConsistency> => z
  .object({
    file: z.string(),
    journalMode: z.string(),
    pageSize: count(),
    pages: count(),
    generation: z.string().optional(),
    position: position().optional(),
    wal: z
      .object({ salt1: u32(), salt2: u32(), checkpointSeq: u32(), checksum: z.tuple([u32(), u32()]).readonly(), frame: count() })
      .optional(),
    graph: graphFactsSchema().optional(),
  })
  .loose() as z.ZodType<SqliteConsistency>);

/** The point of a SQLite snapshot: undefined without one, CORRUPT when it does not validate. */
export function sqlitePoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): SqliteConsistency | undefined {
  return pointOf({ name: 'sqlite', point: sqlitePointSchema() }, snapshot);
}

/** The point of a SQLite snapshot that must have one (every image records it): CORRUPT otherwise. */
export function requireSqlitePoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): SqliteConsistency {
  const c = sqlitePoint(snapshot);
  if (!c) throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} is a SQLite image without its consistency point`, { hint: '`lifeboat check` reports damaged snapshots' });
  return c;
}
