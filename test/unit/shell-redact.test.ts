/**
 * The one quoting helper (util/shell.ts) and the one redaction (util/redact.ts), with
 * the DSN password split that keeps passwords off argv (sources/postgres/password.ts).
 * Quoting is checked the way it is used: the text goes through a real `sh -c`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { escapePercent, pgConfQuote, shellJoin, shellQuote, UnquotableError } from '../../src/util/shell.js';
import { redact, redactDeep } from '../../src/util/redact.js';
import { dsnForChild, splitDsnPassword } from '../../src/sources/postgres/password.js';
import { restoreCommand } from '../../src/sources/postgres/recovery-conf.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-shell-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = [
  '$(touch pwned)',
  '`touch pwned`',
  "it's",
  "'; touch pwned; '",
  '"; touch pwned; "',
  'a b\tc',
  '\\$HOME \\',
  '*?[a]~',
  '%p %f %% %r',
  '!$#&;|<>(){}',
];

/** PostgreSQL's configuration-file string scanner (GUC_scanstr) for a value in single quotes. */
function pgConfUnquote(quoted: string): string {
  expect(quoted.startsWith("'") && quoted.endsWith("'")).toBe(true);
  const s = quoted.slice(1, -1);
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '\\') out += s[++i] ?? '';
    else if (c === "'" && s[i + 1] === "'") out += s[++i];
    else {
      expect(c, 'a lone quote would end the value').not.toBe("'");
      out += c;
    }
  }
  return out;
}

/** PostgreSQL's restore_command substitution: %f, %p, %r replaced, %% becomes %. */
function pgSubstitute(cmd: string, f: string, p: string): string {
  return cmd.replace(/%([fpr%])/g, (_, c: string) => (c === 'f' ? f : c === 'p' ? p : c === 'r' ? '000000010000000000000001' : '%'));
}

describe('shellQuote / shellJoin', () => {
  it('passes every hostile word through sh -c unchanged, running nothing', () => {
    const r = spawnSync('sh', ['-c', `printf '%s\\0' ${shellJoin(HOSTILE)}`], { cwd: dir, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout.split('\0').slice(0, -1)).toEqual(HOSTILE);
    expect(existsSync(path.join(dir, 'pwned'))).toBe(false);
  });

  it('refuses NUL and line breaks', () => {
    for (const bad of ['a\nb', 'a\rb', 'a\0b']) {
      expect(() => shellQuote(bad)).toThrow(UnquotableError);
      expect(() => pgConfQuote(bad)).toThrow(UnquotableError);
    }
  });
});

describe('restore_command through all three layers', () => {
  it('gives back the exact words after conf unquoting, %-substitution and sh -c', () => {
    for (const word of HOSTILE) {
      const prefetch = path.join(dir, word, 'lifeboat-prefetch');
      const argv = ['printf', '%s\\0', word];
      const conf = pgConfQuote(restoreCommand(argv, prefetch));
      const cmd = pgSubstitute(pgConfUnquote(conf), '000000010000000000000002', 'pg_wal/RECOVERYXLOG');
      const r = spawnSync('sh', ['-c', cmd], { cwd: dir, encoding: 'utf8' });
      // test -f fails (no prefetched file), so the fetch command ran with its words intact.
      expect(r.stdout.split('\0').slice(0, -1)).toEqual([word, '--prefetch', prefetch, '000000010000000000000002', 'pg_wal/RECOVERYXLOG']);
      expect(existsSync(path.join(dir, 'pwned')), word).toBe(false);
    }
  });

  it('doubles % only in literal text', () => {
    expect(escapePercent(shellQuote('%p'))).toBe("'%%p'");
    expect(restoreCommand(['get'])).toBe(`'get' %f "%p"`);
  });
});

describe('redact', () => {
  const cases: Array<[string, string]> = [
    ['postgres://u:pw@h/db', 'postgres://u:***@h/db'],
    ['postgresql://backup:s3cr%40t@db.internal:5432/postgres?sslmode=require', 'postgresql://backup:***@db.internal:5432/postgres?sslmode=require'],
    ['postgres://u@h/db?password=pw', 'postgres://u@h/db?password=***'],
    ['postgres://u@h/db?sslmode=require&password=pw&x=1', 'postgres://u@h/db?sslmode=require&password=***&x=1'],
    ['host=h user=u password=pw dbname=d', 'host=h user=u password=*** dbname=d'],
    ["host=h password='p w' dbname=d", 'host=h password=*** dbname=d'],
    ["host=h password = 'it\\'s' dbname=d", 'host=h password = *** dbname=d'],
    ['lifeboat: cannot reach PostgreSQL at postgres://u:pw@h:1/db: connect ECONNREFUSED', 'lifeboat: cannot reach PostgreSQL at postgres://u:***@h:1/db: connect ECONNREFUSED'],
  ];
  it.each(cases)('%s', (input, want) => {
    expect(redact(input)).toBe(want);
  });

  it('leaves what is not a secret alone', () => {
    for (const s of [
      'password_file: /etc/lifeboat/pg.pass',
      '--password-file /etc/lifeboat/main.pass',
      'no key slot opens with that password',
      'http://127.0.0.1:8470/api/v1/jobs',
      's3:bucket/prefix',
      'lifeboat --repo main pg backup --name main --dsn postgresql://backup@db:5432/postgres',
    ]) {
      expect(redact(s)).toBe(s);
    }
  });

  it('reaches strings inside job records', () => {
    expect(redactDeep({ a: ['postgres://u:pw@h/db'], n: 1, b: { c: 'password=pw' } })).toEqual({ a: ['postgres://u:***@h/db'], n: 1, b: { c: 'password=***' } });
  });
});

describe('splitDsnPassword', () => {
  it('takes the password out of every DSN shape', () => {
    expect(splitDsnPassword('postgres://u:p%40ss@h:5/db?sslmode=require')).toEqual({ dsn: 'postgres://u@h:5/db?sslmode=require', password: 'p@ss' });
    expect(splitDsnPassword('postgresql://u@h/db?password=pw&application_name=x')).toEqual({ dsn: 'postgresql://u@h/db?application_name=x', password: 'pw' });
    expect(splitDsnPassword("host=h password='p w\\'x' dbname=d")).toEqual({ dsn: 'host=h dbname=d', password: "p w'x" });
    expect(splitDsnPassword('postgres://u@h/db')).toEqual({ dsn: 'postgres://u@h/db' });
  });

  it('hands the password to the child in PGPASSWORD; a password file wins', () => {
    expect(dsnForChild('postgres://u:pw@h/db')).toEqual({ dsn: 'postgres://u@h/db', env: { PGPASSWORD: 'pw' } });
    expect(dsnForChild('postgres://u:pw@h/db', 'fromfile')).toEqual({ dsn: 'postgres://u@h/db', env: { PGPASSWORD: 'fromfile' } });
    expect(dsnForChild('postgres://u@h/db')).toEqual({ dsn: 'postgres://u@h/db', env: {} });
  });
});
