/**
 * libpq key=value DSNs as node-pg settings (sources/postgres/connect.ts): pg reads only
 * URLs and took "host=… port=…" for a host name, so a source written the libpq way
 * could not be reached by anything but the libpq tools.
 */
import { describe, expect, it } from 'vitest';
import { keyValueDsn, pgClient } from '../../src/sources/postgres/connect.js';

describe('keyValueDsn', () => {
  it('reads the keys libpq users write, with quoting', () => {
    expect(keyValueDsn("host=/run/postgresql port=5433 user=backup dbname='my db' password='it\\'s' sslmode=require connect_timeout=5")).toEqual({
      host: '/run/postgresql',
      port: 5433,
      user: 'backup',
      database: 'my db',
      password: "it's",
      ssl: { rejectUnauthorized: false },
      connectionTimeoutMillis: 5000,
    });
    expect(keyValueDsn('hostaddr=127.0.0.1 sslmode=verify-full')).toEqual({ host: '127.0.0.1', ssl: true });
    expect(keyValueDsn('  ')).toEqual({});
  });

  it('refuses what it would otherwise drop, without echoing a password', () => {
    expect(() => keyValueDsn('host=h target_session_attrs=any')).toThrow(/dsn key "target_session_attrs" is not understood here/);
    expect(() => keyValueDsn('host=h sslmode=prefer')).toThrow(/sslmode "prefer"/);
    let message = '';
    try {
      keyValueDsn("host=h password=s3cret 'unterminated");
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/cannot be read after/);
    expect(message).not.toContain('s3cret');
  });
});

describe('pgClient', () => {
  // A group member looks for an ANALYZE in the cluster's other databases with the same credentials (pg-writes.ts).
  it('connects to another database of the same server, from a URL or a key=value dsn, keeping the rest', async () => {
    const params = async (dsn: string, database?: string) => {
      const c = await pgClient(dsn, undefined, database === undefined ? {} : { database });
      const p = (c as unknown as { connectionParameters: { host: string; port: number; user: string; database: string; ssl: unknown } }).connectionParameters;
      return { host: p.host, port: Number(p.port), user: p.user, database: p.database, ssl: p.ssl };
    };
    expect(await params('postgresql://backup@db.example:5433/app?sslmode=require', 'template1')).toEqual({ host: 'db.example', port: 5433, user: 'backup', database: 'template1', ssl: (await params('postgresql://backup@db.example:5433/app?sslmode=require')).ssl });
    expect(await params('postgresql://backup@db.example/app', 'my db')).toMatchObject({ database: 'my db' });
    expect(await params('host=/run/postgresql user=backup dbname=app', 'other')).toMatchObject({ host: '/run/postgresql', user: 'backup', database: 'other' });
    expect(await params('host=/run/postgresql user=backup dbname=app')).toMatchObject({ database: 'app' });
  });
});
