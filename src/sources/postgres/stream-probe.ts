/**
 * What a streamer asks the server every interval, in one query: the server's WAL
 * position (what has been committed), how far the receiver on our slot has flushed
 * (a physical slot's restart_lsn is the flush position its receiver reports), and who
 * holds the slot. One connection is kept and replaced after any failure; short
 * timeouts, so a server that stops answering is reported within an interval or two
 * rather than after TCP gives up.
 */
import type pg from 'pg';
import { LifeboatError } from '../../errors.js';
import { pgClient } from './connect.js';
import { parseLsn } from './wal.js';

export interface StreamProbe {
  /** The server's WAL position: written WAL on a primary, received WAL on a standby. */
  current: bigint;
  /** restart_lsn of the slot: what its receiver last reported flushed; null without a slot. */
  flushed: bigint | null;
  slotExists: boolean;
  /** The walsender holding the slot, if any. */
  holder: { pid: number; applicationName: string | null } | undefined;
  segSize: number;
  /** The cluster's system identifier, asked every probe (another cluster may answer at the same address); undefined when the role may not read it. */
  systemId: string | undefined;
  /** The server's major version (for the repository's record of the cluster). */
  pgMajor: number;
}

const TIMEOUT_MS = 5000;

export class Prober {
  private client: pg.Client | undefined;
  private segSize: number | undefined;
  /** pg_control_system() refused (a role without the privilege): not asked again. */
  private noSystemId = false;
  /** The server's system identifier, as read on the open connection. */
  private systemId: string | undefined;

  constructor(
    private readonly dsn: string,
    private readonly slot: string,
  ) {}

  async probe(): Promise<StreamProbe> {
    try {
      const client = await this.connect();
      this.segSize ??= Number(
        (await client.query<{ s: string }>("select setting as s from pg_settings where name = 'wal_segment_size'")).rows[0]?.s ?? 16 * 1024 * 1024,
      );
      const r = await client.query<{ current: string | null; flushed: string | null; slot: string | null; pid: number | null; app: string | null; v: string }>(
        `select case when pg_is_in_recovery() then coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                     else pg_current_wal_lsn() end::text as current,
                s.restart_lsn::text as flushed, s.slot_name::text as slot, s.active_pid as pid, a.application_name as app,
                current_setting('server_version_num') as v
           from (select 1) one
           left join pg_replication_slots s on s.slot_name = $1
           left join pg_stat_activity a on a.pid = s.active_pid`,
        [this.slot],
      );
      const row = r.rows[0];
      // Read once per connection: another cluster behind the DSN (re-created, failed over) is a new connection.
      let systemId = this.systemId;
      if (systemId === undefined && !this.noSystemId) {
        try {
          systemId = this.systemId = (await client.query<{ id: string }>('select system_identifier::text as id from pg_control_system()')).rows[0]?.id;
        } catch (err) {
          if ((err as { code?: string }).code !== '42501') throw err; // insufficient_privilege: go on without it
          this.noSystemId = true;
        }
      }
      const pgMajor = Math.floor(Number(row?.v) / 10000);
      if (!row?.current) throw new LifeboatError('SOURCE_UNAVAILABLE', 'the server reports no WAL position', { hint: 'a standby that has not received any WAL yet; wait for it to connect to its primary' });
      return {
        current: parseLsn(row.current),
        flushed: row.flushed ? parseLsn(row.flushed) : null,
        slotExists: row.slot !== null,
        holder: row.pid ? { pid: row.pid, applicationName: row.app } : undefined,
        segSize: this.segSize,
        systemId,
        pgMajor,
      };
    } catch (err) {
      await this.close();
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError('SOURCE_UNAVAILABLE', `cannot query PostgreSQL: ${(err as Error).message}`, {
        hint: 'is the server running and reachable at --dsn? the streamer keeps trying',
        cause: err,
      });
    }
  }

  /** The open connection, for the rare statements a streamer sends besides its probe. */
  async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = await pgClient(this.dsn, undefined, { connectionTimeoutMillis: TIMEOUT_MS, query_timeout: TIMEOUT_MS, application_name: 'lifeboat-stream-probe' });
    client.on('error', () => {}); // reported through the next failing query
    try {
      await client.connect();
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
    this.client = client;
    return client;
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    this.systemId = undefined;
    await c?.end().catch(() => {});
  }
}
