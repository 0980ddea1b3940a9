/**
 * Online, non-exclusive base backups of a running PostgreSQL cluster. The session
 * that calls pg_backup_start stays open while the data directory is read through the
 * ordinary deduplicating archiver (so an unchanged second backup costs little), then
 * pg_backup_stop returns the backup label, which the snapshot keeps with the start
 * and stop LSN, timeline, system identifier and version.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { connect, serverInfo, type ServerInfo } from './connect.js';
import { dsnForChild } from './password.js';
import { backup, type BackupResult } from '../../engine/backup/archiver.js';
import { privateDir, spoolFor } from '../../engine/private-dir.js';
import { runTool } from '../../util/process.js';
import type { ProgressFn } from '../../engine/progress.js';
import { PUSH_SPOOL, recordIdentity } from './archive.js';
import { logSource, type PgConsistency } from './names.js';
import type { GraphDeclaration } from '../graph/options.js';
import type { GraphFacts } from '../graph/record.js';
import { pgGraphAtBackup } from './graph.js';
import { PREFETCH_DIR } from './restore.js';

export interface PgBackupOptions {
  name: string;
  dsn: string;
  pgdata?: string;
  /**
   * Take the backup over the replication protocol (pg_basebackup) even when the
   * data directory is readable here. Chosen anyway when it is not.
   */
  remote?: boolean;
  /** Where a remote backup is staged before it is stored (default: a folder in tmp). */
  spool?: string;
  /** Directory holding pg_basebackup (default: found on PATH). */
  binDir?: string;
  tags?: string[];
  threads?: number;
  onProgress?: ProgressFn;
  /** The source's declared graph (its `graph:` in lifeboat.yaml): checked and its queries timed before the backup starts. */
  graph?: GraphDeclaration;
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
    // Before the copy starts: a declaration that does not fit fails here, and the
    // queries' latency is the source's as the application sees it, not under the copy.
    const graph = opts.graph ? await pgGraphAtBackup(client, opts.graph, `the source ${opts.name}`) : undefined;
    const pgdata = path.resolve(opts.pgdata ?? info.dataDirectory);
    if (opts.remote || (!opts.pgdata && !existsSync(path.join(pgdata, 'PG_VERSION')))) {
      await client.end().catch(() => {});
      return await remoteBackup(repo, opts, info, graph);
    }
    if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
      throw new LifeboatError('USAGE', `${pgdata} is not a PostgreSQL data directory readable here`, {
        hint: 'pass the local path of the data directory with --pgdata, or --remote to use the replication protocol',
      });
    }
    // Tablespaces are symlinks into other directories: storing the links alone would
    // make a backup that silently lacks their data, and a restore that points a
    // scratch server at production files.
    const spaces = await fs.readdir(path.join(pgdata, 'pg_tblspc')).catch(() => [] as string[]);
    if (spaces.length > 0) {
      throw new LifeboatError('USAGE', `${opts.name} has tablespaces outside the data directory (${spaces.join(', ')}); they are not supported yet`, {
        hint: 'use `lifeboat pg dump` for this cluster until tablespaces are supported',
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
        const stop = await client
          .query<{ lsn: string; labelfile: string; spcmapfile: string }>('select lsn::text, labelfile, spcmapfile from pg_backup_stop($1)', [info.archiveMode !== 'off'])
          .catch((err: unknown) => {
            throw sessionLost(err, opts.name);
          });
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
          ...(graph ? { graph } : {}),
        };
        return c as unknown as Record<string, unknown>;
      },
    });
  } finally {
    // Ending the session also aborts a backup that did not reach pg_backup_stop.
    await client.end().catch(() => {});
  }
}

/**
 * pg_backup_stop failed. A server's own refusal (it carries a SQLSTATE) goes out as it is,
 * unless it ends the session: a shutdown or a terminated backend (class 57P0x, as a fast
 * shutdown while pg_backup_stop waits for the archive), or a connection error (class 08).
 * Those, and a connection that is simply gone, mean the backup it began ended with it:
 * the files read are not a backup.
 */
function sessionLost(err: unknown, name: string): unknown {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e?.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) && !/^(57P0|08)/.test(e.code)) return err;
  return new LifeboatError('SOURCE_UNAVAILABLE', `PostgreSQL ended the session of ${name}'s base backup before it could be stopped (${String(e?.message ?? err)}); no snapshot was stored`, {
    hint: 'the server went down or ended the session (its log says why); run the backup again once it is up',
    cause: err,
  });
}

/**
 * A backup over the replication protocol: pg_basebackup (plain format) writes the
 * cluster into a spool, which then goes through the
 * repository like a local data directory. The spool keeps one path per source so
 * snapshots line up; its files are new each time, so they are read again, but
 * unchanged chunks are not stored again. Costs local disk the size of the cluster.
 */
async function remoteBackup(repo: Repository, opts: PgBackupOptions, info: ServerInfo, graph: GraphFacts | undefined): Promise<BackupResult> {
  // Never a guessable /tmp path: anyone could plant a directory or symlink there (private-dir.ts).
  const chosen = opts.spool ? { dir: path.resolve(opts.spool) } : await spoolFor('basebackup', opts.name);
  const spool = chosen.dir;
  await fs.rm(spool, { recursive: true, force: true });
  await privateDir(spool); // empty and 0700: pg_basebackup -D accepts it
  const startTime = new Date().toISOString();
  const bin = opts.binDir ? path.join(opts.binDir, 'pg_basebackup') : 'pg_basebackup';
  // -X stream: only then does pg_basebackup report the end LSN; the WAL it streams
  // lands in the spool's pg_wal, which is not stored (the archive has it).
  // The password goes in PGPASSWORD: on argv every local user would see it in `ps`.
  const child = dsnForChild(opts.dsn);
  const r = await runTool(bin, ['-d', child.dsn, '-D', spool, '-Fp', '-X', 'stream', '-c', 'fast', '-v', '--no-manifest', '-l', `lifeboat ${opts.name} ${startTime}`], child.env);
  try {
    if (r.code !== 0) {
      throw new LifeboatError('SOURCE_UNAVAILABLE', `pg_basebackup failed: ${r.stderr.trim().split('\n').filter((l) => !l.includes('pg_basebackup: initiating') && l.trim()).pop() ?? ''}`, {
        hint: 'the role needs REPLICATION and pg_hba.conf a "replication" line for this host',
      });
    }
    const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(r.stderr)?.[1];
    const label = await fs.readFile(path.join(spool, 'backup_label'), 'utf8');
    const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+)/m.exec(label)?.[1];
    const tli = /^START TIMELINE: (\d+)/m.exec(label)?.[1];
    if (!stop || !start || !tli) throw new LifeboatError('FAILED', 'pg_basebackup did not report the WAL range of the backup');
    // pg_control begins with the system identifier (u64, little endian).
    const systemId = (await fs.readFile(path.join(spool, 'global', 'pg_control'))).readBigUInt64LE(0).toString();
    await recordIdentity(repo, opts.name, { systemId, pgMajor: info.major });
    return await backup(repo, {
      paths: [spool],
      tags: [`postgres:${opts.name}`, 'remote', ...(opts.tags ?? [])],
      excludes: excludes(spool),
      source: { kind: 'postgres', name: opts.name },
      ...(opts.threads ? { threads: opts.threads } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      consistency: {
        startLsn: start,
        stopLsn: stop,
        timeline: Number(tli),
        systemId,
        pgVersion: info.versionNum,
        pgMajor: info.major,
        walSegSize: info.walSegSize,
        dataDirectory: spool,
        startTime,
        stopTime: new Date().toISOString(),
        backupLabel: label,
        tablespaceMap: '',
        ...(graph ? { graph } : {}),
      } satisfies PgConsistency as unknown as Record<string, unknown>,
    });
  } finally {
    await fs.rm(chosen.temporary ?? spool, { recursive: true, force: true });
  }
}
