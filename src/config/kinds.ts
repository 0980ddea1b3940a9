/**
 * Which keys each kind of source takes, and what they set in its SourceConfig, by
 * kind name. The Source registry (src/sources/) will hold this; until then this map
 * is the one place outside the kinds' folders that knows them.
 */
import type { z } from 'zod';
import type { SourceConfig } from './config.js';
import { filesFields, filesOptions } from '../sources/files/options.js';
import { postgresFields, postgresOptions } from '../sources/postgres/options.js';
import { sqliteFields, sqliteOptions } from '../sources/sqlite/options.js';

export const SOURCE_OPTIONS = {
  files: filesOptions,
  postgres: postgresOptions,
  sqlite: sqliteOptions,
} as const satisfies Record<string, z.ZodObject>;

export type SourceKind = keyof typeof SOURCE_OPTIONS;
export const SOURCE_KINDS = Object.keys(SOURCE_OPTIONS) as SourceKind[];

/** A kind's parsed keys onto the SourceConfig fields the rest of Lifeboat reads. */
export const SOURCE_FIELDS: { [K in SourceKind]: (options: z.output<(typeof SOURCE_OPTIONS)[K]>) => Partial<SourceConfig> } = {
  files: filesFields,
  postgres: postgresFields,
  sqlite: sqliteFields,
};
