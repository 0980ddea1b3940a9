/**
 * lifeboat pg dump | restore-dump — logical backups of one PostgreSQL database
 * (pg_dump's custom format, streamed through the repository) and their restore with
 * pg_restore, whole or table by table.
 */
import type { Command } from 'commander';
import { pgDump, pgRestoreDump } from '../dump.js';
import { requirePgDumpPoint } from '../point.js';
import { formatBytes } from '../../../util/bytes.js';
import { withRepo, type GlobalOptions } from '../../../cli/context.js';
import { progressFor, duration, printJson } from '../../../cli/output/render.js';
import { snapshotJson } from '../../../cli/commands/snapshots.js';
import { collect, flagOf } from '../../../cli/commands/options.js';
import { postgresOptions } from '../options.js';
import { sourceCommonOptions } from '../../../config/model.js';

interface DumpFlags {
  name: string;
  dsn: string;
  db?: string;
  tag: string[];
  pgBin?: string;
}

interface RestoreDumpFlags {
  name: string;
  dsn: string;
  db?: string;
  snapshot: string;
  table: string[];
  clean?: boolean;
  pgBin?: string;
}

export function register(pg: Command): void {
  pg.command('dump')
    .description('logical backup of one database with pg_dump (custom format), deduplicated')
    .requiredOption('--name <name>', 'name of this source in the repository')
    .addOption(flagOf(postgresOptions().shape.dsn, { arg: '<url>', required: true, description: 'postgresql:// connection URL' }))
    .option('--db <name>', 'database to dump (default: the one in --dsn)')
    .addOption(flagOf(sourceCommonOptions().shape.tags, { arg: '<tag>', description: 'tag the snapshot (repeatable)' }))
    .option('--pg-bin <dir>', 'directory of pg_dump (default: found on PATH)')
    .action(async (f: DumpFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        const s = await pgDump(repo, {
          name: f.name,
          dsn: f.dsn,
          ...(f.db !== undefined ? { db: f.db } : {}),
          tags: f.tag,
          ...(f.pgBin ? { pgBin: f.pgBin } : {}),
          onProgress: bar.update,
        }).finally(() => bar.done());
        if (g.json) return printJson(snapshotJson(s));
        if (g.quiet) return;
        const c = requirePgDumpPoint(s);
        console.log(
          `dump ${s.id.slice(0, 8)} of ${f.name} (database ${c.db}, PostgreSQL ${c.pgVersion}): ` +
            `${formatBytes(s.summary.totalBytes)}, added ${formatBytes(s.summary.addedBytes)} in ${duration(s.summary.durationMs)}`,
        );
      });
    });

  pg.command('restore-dump')
    .description('restore a dump with pg_restore into an existing database (in one transaction)')
    .requiredOption('--name <name>', 'source name used at dump time')
    .requiredOption('--dsn <url>', 'postgresql:// connection URL of the target server')
    .option('--db <name>', 'database to restore into (default: the one in --dsn); it must exist')
    .option('--snapshot <id>', 'snapshot id prefix or "latest"', 'latest')
    .option('--table <name>', 'restore only this table (repeatable)', collect, [])
    .option('--clean', 'drop objects before recreating them')
    .option('--pg-bin <dir>', 'directory of pg_restore (default: found on PATH)')
    .action(async (f: RestoreDumpFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      await withRepo(g, async (repo) => {
        const bar = progressFor(g);
        const started = Date.now();
        const r = await pgRestoreDump(repo, {
          name: f.name,
          dsn: f.dsn,
          ...(f.db !== undefined ? { db: f.db } : {}),
          snapshot: f.snapshot,
          tables: f.table,
          ...(f.clean ? { clean: true } : {}),
          ...(f.pgBin ? { pgBin: f.pgBin } : {}),
          onProgress: bar.update,
        }).finally(() => bar.done());
        if (g.json) return printJson({ snapshot: r.snapshot.id, db: r.db, dump_bytes: r.dumpBytes, tables: f.table });
        if (g.quiet) return;
        const what = f.table.length > 0 ? `table(s) ${f.table.join(', ')}` : 'everything';
        console.log(`restored ${what} from dump ${r.snapshot.id.slice(0, 8)} of ${f.name} into ${r.db} (dump of ${formatBytes(r.dumpBytes)}) in ${duration(Date.now() - started)}`);
      });
    });
}
