/**
 * The API's request bodies whose fields are options of the model (src/config/model.ts):
 * each such field is the model's declaration itself, so its grammar, its description
 * in the OpenAPI document and what fastify accepts are those of the lifeboat.yaml key
 * and the CLI flag (durations: util/duration.ts's grammar, described as such by
 * config/schema.ts's optionJsonSchema). Handlers receive the text as written (route.ts
 * passes the input shape) and parse it with the model's parser.
 *
 * Not in dto.ts, which imports nothing but zod because the dashboard's build reads it.
 * The other request and response shapes stay there.
 */
import * as z from 'zod';
import { restoreRequestOptions, scheduleOptions, tokenExpires } from '../config/model.js';
import { RoleName } from './dto.js';

/** POST /repositories/:name/check: `read_data_subset` as in a `run: check` schedule (and `check --read-data-subset`). */
export const CheckBody = z.strictObject({ read_data_subset: scheduleOptions().shape.read_data_subset });

/** POST /tokens: `expires` as `token create --expires` (a duration of at least a minute, or never), parsed by daemon/auth.ts with its hint. */
export const TokenBody = z.strictObject({ name: z.string(), role: RoleName, expires: tokenExpires() });

const restore = restoreRequestOptions().shape;

/**
 * POST /restores: `source`, `target`, `time` and `snapshot` as the restore commands take them (`time` checked by the one
 * target-time parser); for SQLite and Redis `txn` or `before_txn` (and `generation`): up to (including / excluding) a transaction.
 */
export const RestoreBody = z.strictObject({
  source: restore.source,
  target: restore.target,
  time: restore.time,
  snapshot: restore.snapshot,
  txn: restore.txn,
  before_txn: restore.before_txn,
  generation: restore.generation,
});
export type RestoreBody = z.infer<typeof RestoreBody>;

/** POST /groups/:name/restore: a point (or the newest at or before `time`), a new or empty directory per member, and a dry run. */
export const GroupRestoreBody = z.strictObject({
  point: z.string().regex(/^[0-9a-f-]{4,64}$/, { error: 'must be a point id (or a unique prefix of one)' }).optional(),
  time: restore.time,
  targets: z.record(z.string(), restore.target).meta({ minProperties: 1 }),
  dry_run: z.boolean().optional(),
});

/** POST /recoveries: a target per source, at least one, and one moment for all. */
export const RecoveryBody = z.strictObject({
  // minProperties is JSON Schema only (zod has no such check): fastify validates with it.
  targets: z.record(z.string(), restore.target).meta({ minProperties: 1 }),
  time: restore.time,
});
