/**
 * What a server archiving through archive_command says about it: pg_stat_archiver
 * (failures, the last archived and the last failed file) and how far its WAL is
 * archived. The archived end is the start of the oldest segment still marked `.ready`
 * in pg_wal/archive_status (pg_ls_archive_statusdir, which needs pg_monitor or a
 * superuser) or, when there is none, the start of the segment being written; without
 * that privilege, the end of the last archived segment (PostgreSQL archives in order).
 * The WAL position is read before the status directory, so a segment finished in
 * between is never counted as archived.
 */
import type pg from 'pg';
import { parseLsn, parseWalName } from './wal.js';
import { segmentOf, segmentStart } from './lsn-proof.js';

export interface ArchiverReading {
  archiveMode: string;
  /** The server's WAL position (received WAL on a standby). */
  current: bigint;
  /** WAL before this LSN is archived; null when nothing says so. */
  archivedEnd: bigint | null;
  /** Where archivedEnd came from: the status directory, or pg_stat_archiver's last archived segment. */
  basis: 'archive_status' | 'last_archived_wal' | 'none';
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: Date | null;
  lastArchivedWal: string | null;
  lastArchivedAt: Date | null;
  /** The newest attempt failed (PostgreSQL retries it every minute). */
  failing: boolean;
  /**
   * xmax of pg_current_snapshot(), read with `current` (primary only): one past the
   * newest transaction id that ended. Only a transaction holding an id can commit data,
   * and its end moves this, so an unchanged value means nothing was committed in
   * between, whatever WAL the server's background work wrote.
   */
  completedXmax: string | null;
}

export async function readArchiver(client: pg.Client): Promise<ArchiverReading> {
  const r = await client.query<{
    mode: string;
    current: string | null;
    seg: string;
    failed_count: string;
    last_failed_wal: string | null;
    last_failed_time: Date | null;
    last_archived_wal: string | null;
    last_archived_time: Date | null;
    snap: string | null;
  }>(`select current_setting('archive_mode') as mode,
             case when pg_is_in_recovery() then null else pg_current_snapshot()::text end as snap,
             (case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end)::text as current,
             (select setting from pg_settings where name = 'wal_segment_size') as seg,
             failed_count::text, last_failed_wal, last_failed_time, last_archived_wal, last_archived_time
        from pg_stat_archiver`);
  const row = r.rows[0];
  if (!row?.current) throw new Error('the server reports no WAL position');
  const segSize = Number(row.seg);
  const current = parseLsn(row.current);
  const failedAt = row.last_failed_time;
  const archivedAt = row.last_archived_time;
  const reading: ArchiverReading = {
    archiveMode: row.mode,
    current,
    archivedEnd: null,
    basis: 'none',
    failedCount: Number(row.failed_count),
    lastFailedWal: row.last_failed_wal,
    lastFailedAt: failedAt,
    lastArchivedWal: row.last_archived_wal,
    lastArchivedAt: archivedAt,
    failing: failedAt !== null && (archivedAt === null || failedAt > archivedAt),
    completedXmax: row.snap ? (/^\d+:(\d+):/.exec(row.snap)?.[1] ?? null) : null,
  };
  let ready: string[] | undefined;
  try {
    ready = (await client.query<{ name: string }>(`select name from pg_ls_archive_statusdir() where name like '%.ready'`)).rows.map((x) => x.name);
  } catch {
    ready = undefined; // not allowed to look: fall back to pg_stat_archiver
  }
  if (ready) {
    const segnos = ready
      .map((n) => /^([0-9A-F]{24})\.ready$/.exec(n)?.[1])
      .filter((n): n is string => n !== undefined)
      .map((n) => parseWalName(n, segSize).segno as bigint);
    const oldest = segnos.length ? segnos.reduce((a, b) => (b < a ? b : a)) : segmentOf(current, segSize);
    reading.archivedEnd = segmentStart(oldest, segSize);
    reading.basis = 'archive_status';
  } else if (row.last_archived_wal && /^[0-9A-F]{24}$/.test(row.last_archived_wal)) {
    reading.archivedEnd = segmentStart((parseWalName(row.last_archived_wal, segSize).segno as bigint) + 1n, segSize);
    reading.basis = 'last_archived_wal';
  }
  return reading;
}
