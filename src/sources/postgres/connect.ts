/**
 * Connecting to PostgreSQL and turning its failures into errors an operator can act
 * on: unreachable server, refused login, not a superuser/replication role.
 */
import type pg from 'pg';
import { LifeboatError, errno } from '../../errors.js';
import { redact } from '../../util/redact.js';

export type PgClient = pg.Client;


/**
 * `pg` is loaded on first use, not at import: every CLI command imports this module
 * and loading pg costs about 70 ms of CPU per process (a test run starts ~1000).
 */
export async function loadPg(): Promise<typeof pg> {
  return (await import('pg')).default;
}

/**
 * A client of `dsn` that logs in with `password` (a password_file's, kept out of the
 * DSN). pg lets the connection string's own password, empty when it has none, override
 * a `password` given beside it, so the password is set on the client once it is built.
 */
export async function pgClient(dsn: string, password: string | undefined, options: Omit<pg.ClientConfig, 'connectionString' | 'password'>): Promise<pg.Client> {
  const { Client } = await loadPg();
  const client = new Client({ connectionString: dsn, ...options });
  if (password !== undefined) (client as unknown as { password: string }).password = password;
  return client;
}

/** `password` (from a password_file) goes beside the DSN, never into it. */
export async function connect(dsn: string, password?: string): Promise<pg.Client> {
  const client = await pgClient(dsn, password, { connectionTimeoutMillis: 10_000, application_name: 'lifeboat' });
  client.on('error', () => {}); // reported through the failing query instead
  try {
    await client.connect();
    return client;
  } catch (err) {
    await client.end().catch(() => {});
    const code = errno(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (code === '28P01' || code === '28000') {
      throw new LifeboatError('SOURCE_UNAVAILABLE', `PostgreSQL refused the login at ${redact(dsn)}: ${redact(msg)}`, {
        hint: 'check the user and password in --dsn (or PGPASSWORD / ~/.pgpass) and pg_hba.conf',
        cause: err,
      });
    }
    throw new LifeboatError('SOURCE_UNAVAILABLE', `cannot reach PostgreSQL at ${redact(dsn)}: ${redact(msg)}`, {
      hint: 'is the server running and listening there? check host, port and socket directory in --dsn',
      cause: err,
    });
  }
}

export interface ServerInfo {
  versionNum: number;
  major: number;
  systemId: string;
  dataDirectory: string;
  archiveMode: string;
  timeline: number;
  walSegSize: number;
}

export async function serverInfo(client: pg.Client): Promise<ServerInfo> {
  const r = await client.query<{
    v: string;
    sysid: string;
    datadir: string;
    archive_mode: string;
    tli: number;
    segsize: string;
  }>(`select current_setting('server_version_num') as v,
            (select system_identifier::text from pg_control_system()) as sysid,
            current_setting('data_directory') as datadir,
            current_setting('archive_mode') as archive_mode,
            (select timeline_id from pg_control_checkpoint()) as tli,
            current_setting('wal_segment_size') as segsize`);
  const row = r.rows[0]!;
  const versionNum = Number(row.v);
  const seg = /^(\d+)(MB|kB|GB)?$/.exec(row.segsize);
  const unit = seg?.[2] === 'GB' ? 1024 ** 3 : seg?.[2] === 'kB' ? 1024 : 1024 * 1024;
  return {
    versionNum,
    major: Math.floor(versionNum / 10000),
    systemId: row.sysid,
    dataDirectory: row.datadir,
    archiveMode: row.archive_mode,
    timeline: Number(row.tli),
    walSegSize: seg ? Number(seg[1]) * unit : 16 * 1024 * 1024,
  };
}
