/**
 * Every kind of data the conformance suite runs, one driver per kind. A kind that
 * registers (src/sources/all.ts) without a driver here fails
 * test/conformance/kinds.test.ts, so a new kind cannot land without joining the suite.
 */
import type { KindDriver } from './driver.js';
import { filesDriver } from './drivers/files.js';
import { postgresDriver } from './drivers/postgres.js';
import { redisDriver } from './drivers/redis.js';
import { sqliteDriver } from './drivers/sqlite.js';
import { oplogDriver } from './drivers/oplog.js';
import { commandDriver } from './drivers/command.js';
import { bucketDriver } from './drivers/bucket.js';

export const DRIVERS = {
  files: filesDriver,
  postgres: postgresDriver,
  redis: redisDriver,
  sqlite: sqliteDriver,
  oplog: oplogDriver,
  command: commandDriver,
  bucket: bucketDriver,
} satisfies Record<string, KindDriver>;
