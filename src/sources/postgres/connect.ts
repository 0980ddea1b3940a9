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
  // A URL's own database would win over options.database: it is replaced in the URL.
  const url = /^postgres(?:ql)?:\/\//i.test(dsn);
  const client = new Client({ ...(url ? { connectionString: options.database === undefined ? dsn : withDatabase(dsn, options.database) } : keyValueDsn(dsn)), ...options });
  if (password !== undefined) (client as unknown as { password: string }).password = password;
  return client;
}

/** A postgresql:// URL naming `database` instead of its own. */
function withDatabase(dsn: string, database: string): string {
  const u = new URL(dsn);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** libpq's key=value keys node-pg understands, and what it calls them. */
const KV_KEYS: Record<string, keyof pg.ClientConfig> = { host: 'host', hostaddr: 'host', port: 'port', user: 'user', dbname: 'database', password: 'password', application_name: 'application_name', connect_timeout: 'connectionTimeoutMillis' };

const SSLMODES: Record<string, boolean | { rejectUnauthorized: boolean }> = {
  disable: false,
  require: { rejectUnauthorized: false },
  'verify-ca': true,
  'verify-full': true,
};

/**
 * A libpq key=value DSN ("host=/run/postgresql port=5433 user=backup dbname=app") as
 * node-pg's settings: pg reads only URLs, and took such a DSN for a host name. A key
 * it has no setting for is refused rather than dropped.
 */
export function keyValueDsn(dsn: string): pg.ClientConfig {
  const out: Record<string, string | number | boolean | object> = {};
  const re = /\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|\S*)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(dsn)) !== null && m[0] !== '') {
    end = re.lastIndex;
    const key = (m[1] as string).toLowerCase();
    const raw = m[2] as string;
    const value = raw.startsWith("'") ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    if (key === 'sslmode') {
      // As libpq means them: require encrypts without checking the certificate; verify-* check it.
      if (!(value in SSLMODES)) throw new LifeboatError('USAGE', `sslmode "${value}" in the dsn is not one of ${Object.keys(SSLMODES).join(', ')}`, { hint: 'allow and prefer fall back to plain text, which this client cannot do quietly: say require, verify-full or disable' });
      out.ssl = SSLMODES[value] as never;
      continue;
    }
    const name = KV_KEYS[key];
    if (!name) throw new LifeboatError('USAGE', `the dsn key "${key}" is not understood here`, { hint: 'write the dsn as a URL, postgresql://user@host:port/db?sslmode=…, which carries every setting' });
    out[name] = name === 'port' ? Number(value) : name === 'connectionTimeoutMillis' ? Number(value) * 1000 : value;
  }
  if (dsn.slice(end).trim() !== '') throw new LifeboatError('USAGE', `the dsn cannot be read after "${redact(dsn.slice(0, end))}"`, { hint: 'key=value pairs separated by spaces, or a postgresql:// URL' });
  return out as pg.ClientConfig;
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
