/**
 * Every kind of data the conformance suite runs, one driver per kind. A kind that
 * lifeboat.yaml accepts without a driver here fails to typecheck (the table is a
 * Record over SourceKind) and fails test/conformance/kinds.test.ts, so a new kind
 * cannot join without joining the suite.
 */
import type { SourceKind } from '../../src/config/config.js';
import type { KindDriver } from './driver.js';
import { filesDriver } from './drivers/files.js';
import { postgresDriver } from './drivers/postgres.js';
import { sqliteDriver } from './drivers/sqlite.js';

export const DRIVERS: Record<SourceKind, KindDriver> = {
  files: filesDriver,
  postgres: postgresDriver,
  sqlite: sqliteDriver,
};
