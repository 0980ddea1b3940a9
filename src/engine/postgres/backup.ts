/**
 * Online, non-exclusive base backups of a running PostgreSQL cluster. The session
 * that calls pg_backup_start stays open while the data directory is read through the
 * ordinary deduplicating archiver (so an unchanged second backup costs little), then
 * pg_backup_stop returns the backup label, which the snapshot keeps with the start
 * and stop LSN, timeline, system identifier and version.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { connect, serverInfo } from '../../sources/postgres/connect.js';
import { backup, type BackupResult } from '../backup/archiver.js';
import type { ProgressFn } from '../progress.js';
import { PUSH_SPOOL, recordIdentity } from './archive.js';
import { logSource, type PgConsistency } from './names.js';
import { PREFETCH_DIR } from './restore.js';

export interface PgBackupOptions {
  name: string;
  dsn: string;
  pgdata?: string;
  tags?: string[];
  threads?: number;
  onProgress?: ProgressFn;
}

/**
 * What never goes into a base backup (PostgreSQL's "Backing Up the Data Directory"):
 * WAL (archived separately), runtime state rebuilt at start, temporary files, and
 * labels/signals of earlier backups and recoveries. Directories stay, empty.
 */
function excludes(pgdata: string): string[] {
  const dirsEmptied = ['pg_wal', 'pg_replslot', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans'];
  return [
    ...dirsEmptied.map((d) => `${pgdata}/${d}/*`),
    `${pgdata}/${PREFETCH_DIR}`,
    `${pgdata}/${PUSH_SPOOL}`,
    ...['postmaster.pid', 'postmaster.opts', 'backup_label', 'backup_label.old', 'tablespace_map', 'recovery.signal', 'standby.signal'].map((f) => `${pgdata}/${f}`),
    'pgsql_tmp*',
    'pg_internal.init',
  ];
}

export async function pgBackup(repo: Repository, opts: PgBackupOptions): Promise<BackupResult> {
  logSource(opts.name); // validates the name before anything else happens
  const client = await connect(opts.dsn);
  try {
    const info = await serverInfo(client);
    if (info.major < 15) {
      throw new LifeboatError('USAGE', `PostgreSQL ${info.major} is not supported (15 or newer: pg_backup_start)`, { hint: 'upgrade, or use `pg dump`' });
    }
    const pgdata = path.resolve(opts.pgdata ?? info.dataDirectory);
    if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
      throw new LifeboatError('USAGE', `${pgdata} is not a PostgreSQL data directory readable here`, {
        hint: 'run on the database host (or pass --pgdata with the local path of the data directory)',
      });
    }
    await recordIdentity(repo, opts.name, { systemId: info.systemId, pgMajor: info.major });
    const startTime = new Date().toISOString();
    const label = `lifeboat ${opts.name} ${startTime}`;
    const start = await client.query<{ lsn: string }>('select pg_backup_start($1, true)::text as lsn', [label]);
    const startLsn = start.rows[0]!.lsn;
    return await backup(repo, {
      paths: [pgdata],
      tags: [`postgres:${opts.name}`, ...(opts.tags ?? [])],
      excludes: excludes(pgdata),
      source: { kind: 'postgres', name: opts.name },
      ignoreVanished: true,
      ...(opts.threads ? { threads: opts.threads } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      beforeSnapshot: async () => {
        // Waiting for the archive makes the backup usable on its own only when WAL is archived.
        const stop = await client.query<{ lsn: string; labelfile: string; spcmapfile: string }>(
          'select lsn::text, labelfile, spcmapfile from pg_backup_stop($1)',
          [info.archiveMode !== 'off'],
        );
        const row = stop.rows[0]!;
        const tli = await client.query<{ tli: number }>('select timeline_id as tli from pg_control_checkpoint()');
        const c: PgConsistency = {
          startLsn,
          stopLsn: row.lsn,
          timeline: Number(tli.rows[0]!.tli),
          systemId: info.systemId,
          pgVersion: info.versionNum,
          pgMajor: info.major,
          walSegSize: info.walSegSize,
          dataDirectory: pgdata,
          startTime,
          stopTime: new Date().toISOString(),
          backupLabel: row.labelfile,
          tablespaceMap: row.spcmapfile ?? '',
        };
        return c as unknown as Record<string, unknown>;
      },
    });
  } finally {
    // Ending the session also aborts a backup that did not reach pg_backup_stop.
    await client.end().catch(() => {});
  }
}
