/**
 * Which keys each kind of source takes, by kind name. The Source registry
 * (src/sources/) will hold this; until then this map is the one place that knows.
 */
import type { z } from 'zod';
import { filesOptions } from '../sources/files/options.js';
import { postgresOptions } from '../sources/postgres/options.js';
import { sqliteOptions } from '../sources/sqlite/options.js';

export const SOURCE_OPTIONS = {
  files: filesOptions,
  postgres: postgresOptions,
  sqlite: sqliteOptions,
} as const satisfies Record<string, z.ZodObject>;

export type SourceKind = keyof typeof SOURCE_OPTIONS;
export const SOURCE_KINDS = Object.keys(SOURCE_OPTIONS) as SourceKind[];
