/**
 * `sqlite restore --table` treats the backed-up schema as data: a database whose
 * sqlite_master was rewritten (writable_schema) to hold an ATTACH or a second CREATE
 * after the CREATE, or a TEMP table, is refused with UNSAFE_SCHEMA
 * (exit 31) and the file the ATTACH names is never created. Before, the schema text
 * was executed as it stood (db.exec), and the ATTACH wrote the file.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, cliExpecting, expectError, initRepo, runCli, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const ENV = { LIFEBOAT_PASSWORD: 'pw' };

/** A database with table t (two rows) and table u, then t's stored schema text replaced by SQL. */
function crafted(file: string, sql: string, name = 't'): void {
  const db = new Database(file);
  try {
    db.exec("CREATE TABLE t(a); INSERT INTO t VALUES (1), (2); CREATE TABLE u(b); INSERT INTO u VALUES ('kept');");
    // Only a connection out of defensive mode may write sqlite_master: what an attacker's tool does.
    db.unsafeMode(true);
    db.pragma('writable_schema = ON');
    db.prepare('UPDATE sqlite_master SET sql = ? WHERE name = ?').run(sql, name);
    db.pragma('writable_schema = OFF');
  } finally {
    db.close();
  }
}

async function backedUp(sql: string): Promise<{ base: string; repo: string; marker: string }> {
  const base = tmpdir('lb-sqlattack-');
  const repo = path.join(base, 'repo');
  const marker = path.join(base, 'written-by-attach.db');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  const file = path.join(base, 'app.db');
  crafted(file, sql.replaceAll('$MARKER', marker.replaceAll("'", "''")));
  await cliExpecting(['sqlite', 'backup', '-r', repo, file], 0, ENV);
  return { base, repo, marker };
}

describe('sqlite restore --table with a crafted schema', () => {
  it('refuses an ATTACH after the CREATE, and the attached file is never created', async () => {
    const { base, repo, marker } = await backedUp("CREATE TABLE t(a); ATTACH DATABASE '$MARKER' AS p; CREATE TABLE p.z(x)");
    const out = path.join(base, 'out.db');
    const r = await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--table', 't'], ENV);
    expectError(r, 31, /schema of table "t" is not one valid statement.*more than one statement/);
    expect(existsSync(marker), 'the ATTACH never ran').toBe(false);
    expect(existsSync(out), 'nothing restored').toBe(false);
  });

  it('refuses a second CREATE hidden behind a comment, and a TEMP table', async () => {
    for (const [sql, why] of [
      ['CREATE TABLE t(a) /* looks done */; CREATE TABLE evil(x)', /more than one statement/],
      ['CREATE TEMP TABLE t(a)', /does not start with CREATE TABLE/],
    ] as const) {
      const { base, repo } = await backedUp(sql);
      const out = path.join(base, 'out.db');
      expectError(await runCli(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--table', 't'], ENV), 31, why);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('still restores a table whose schema is sound from the same database', async () => {
    const { base, repo, marker } = await backedUp("CREATE TABLE t(a); ATTACH DATABASE '$MARKER' AS p");
    const out = path.join(base, 'u.db');
    await cliExpecting(['sqlite', 'restore', '-r', repo, 'app', '-o', out, '--table', 'u'], 0, ENV);
    const db = new Database(out, { readonly: true });
    try {
      expect(db.prepare('SELECT b FROM u').all()).toEqual([{ b: 'kept' }]);
    } finally {
      db.close();
    }
    expect(existsSync(marker)).toBe(false);
  });
});
