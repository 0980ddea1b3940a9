/**
 * A PostgreSQL base backup's consistency point as stored in its snapshot (names.ts's
 * PgConsistency; docs/format.md): the schema every reader validates with through
 * `pgPoint`, so a damaged or forged manifest is refused instead of steering a
 * restore or WAL retention.
 */
import * as z from 'zod';
import { LifeboatError } from '../../errors.js';
import type { Snapshot } from '../../repo/snapshot/snapshot.js';
import { pointOf } from '../registry.js';
import type { PgConsistency } from './names.js';
import type { PgDumpConsistency } from './dump.js';
import { graphFactsSchema } from '../graph/record.js';
import { lazily } from '../../config/schema.js';

const LSN = lazily(() => z.string().regex(/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/, 'not an LSN'));

// Loose: points written by newer versions may carry more fields; they are kept.
export const pgPointSchema = lazily((): z.ZodType<PgConsistency> => z
  .object({
    startLsn: LSN(),
    stopLsn: LSN(),
    timeline: z.number().int().positive(),
    systemId: z.string(),
    pgVersion: z.number().int(),
    pgMajor: z.number().int(),
    walSegSize: z.number().int().nonnegative(),
    dataDirectory: z.string(),
    startTime: z.string(),
    stopTime: z.string(),
    backupLabel: z.string(),
    tablespaceMap: z.string(),
    graph: graphFactsSchema().optional(),
  })
  .loose() as z.ZodType<PgConsistency>);

/** The point of a PostgreSQL snapshot: undefined without one, CORRUPT when it does not validate. */
export function pgPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): PgConsistency | undefined {
  return pointOf({ name: 'postgres', point: pgPointSchema() }, snapshot);
}

/** The point of a base backup that must have one (chosen among snapshots with a point): CORRUPT otherwise. */
export function requirePgPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): PgConsistency {
  const c = pgPoint(snapshot);
  if (!c) throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} is a PostgreSQL base backup without its consistency point`, { hint: '`lifeboat check` reports damaged snapshots' });
  return c;
}

/** A logical dump's point (dump.ts's PgDumpConsistency: the database, server and pg_dump versions, when it ran). */
export const pgDumpPointSchema = lazily((): z.ZodType<PgDumpConsistency> => z
  .object({
    db: z.string(),
    pgVersion: z.number().int(),
    pgMajor: z.number().int(),
    dumpedAt: z.string(),
    finishedAt: z.string(),
    format: z.literal('custom'),
    pgDumpVersion: z.string(),
  })
  .loose());

/** The point of a `pg dump` snapshot (kind postgres-dump): CORRUPT when it has none or one that does not validate. */
export function requirePgDumpPoint(snapshot: Pick<Snapshot, 'id' | 'consistency'>): PgDumpConsistency {
  const c = pointOf({ name: 'postgres-dump', point: pgDumpPointSchema() }, snapshot);
  if (!c) throw new LifeboatError('CORRUPT', `snapshot ${snapshot.id.slice(0, 8)} is a PostgreSQL dump without its consistency point`, { hint: '`lifeboat check` reports damaged snapshots' });
  return c;
}
