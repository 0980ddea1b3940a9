/** The lifeboat.yaml keys of a PostgreSQL source, declared once (see src/config/model.ts), and what they set. */
import * as z from 'zod';
import type { SourceConfig } from '../../config/config.js';
import { lazily, option, text, texts, yesNo } from '../../config/schema.js';
import { checkGraphDeclaration, graphOption } from '../graph/options.js';

export const postgresOptions = lazily(() => z.object({
  dsn: option(text(), { description: 'where the server is, e.g. postgres://backup@db.internal:5432/postgres', example: 'postgres://backup@db.internal:5432/postgres', flag: '--dsn' }),
  password_file: option(text().optional(), { description: "a 0600 file whose first line is the role's password, kept out of dsn, argv and logs; relative to lifeboat.yaml" }),
  pgdata: option(text().optional(), { description: 'read the data directory locally instead of running pg_basebackup', flag: '--pgdata' }),
  bin_dir: option(text().optional(), { description: 'where the PostgreSQL programs are', flag: '--bin-dir' }),
  stream: option(yesNo().optional(), { description: 'keep `lifeboat pg stream` running (WAL within about a second); otherwise a server with archive_mode on is watched', shown: 'false' }),
  checks: option(texts().optional(), { description: 'SQL queries a restored, started copy must pass (first value true); restore jobs, drills and the runbook run them', flag: '--check' }),
  graph: graphOption(),
}));

export function postgresFields(o: z.output<ReturnType<typeof postgresOptions>>): Partial<SourceConfig> {
  return {
    dsn: o.dsn,
    continuous: o.stream ?? false,
    ...(o.password_file !== undefined ? { passwordFile: o.password_file } : {}),
    ...(o.pgdata !== undefined ? { pgdata: o.pgdata } : {}),
    ...(o.bin_dir !== undefined ? { binDir: o.bin_dir } : {}),
    ...(o.checks !== undefined ? { checks: o.checks } : {}),
    ...(o.graph !== undefined ? { graph: checkGraphDeclaration(o.graph) } : {}),
  };
}
