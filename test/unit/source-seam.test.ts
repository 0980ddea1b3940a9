/**
 * The Source seam (src/sources/source.ts) and what hangs on it: the registry refuses
 * a second kind of the same name and names the kinds when asked for an unknown one;
 * `toArgv` renders every option shape; and every command the daemon builds from a
 * kind — backup, restore, drill, forget, continuous archiving — is one the real CLI
 * takes: each of its flags is in that command's --help (as restore-options.test.ts
 * does for restores), and the argv is exactly what a person would type.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { forgetCommand, jobCommand, type JobRequest } from '../../src/daemon/jobs.js';
import { replicationCommand } from '../../src/daemon/supervisor.js';
import { toArgv } from '../../src/engine/invocation.js';
import { files } from '../../src/sources/files/kind.js';
import { registerSource, sourceKind, sourceKinds } from '../../src/sources/registry.js';
import { runCli } from '../helpers.js';

/** What src/sources/all.ts registers, in order (output lists follow it). */
const KINDS = ['files', 'postgres', 'sqlite', 'redis', 'oplog', 'command', 'bucket'];

describe('source registry', () => {
  it('has every kind all.ts registers, in its order, and refuses a second kind of the same name', () => {
    expect(sourceKinds().map((k) => k.name)).toEqual(KINDS);
    expect(() => registerSource({ ...files })).toThrow(/source kind "files" registered twice/);
    expect(sourceKinds()).toHaveLength(KINDS.length);
  });

  it('names the kinds there are when asked for an unknown one', () => {
    expect(sourceKind('postgres').name).toBe('postgres');
    let err: unknown;
    try {
      sourceKind('cassandra');
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'USAGE', message: 'unknown kind of source "cassandra"', hint: `kinds: ${KINDS.join(', ')}` });
  });

  it('refuses a kind of source lifeboat.yaml names but no one defined', () => {
    const text = 'repositories:\n  main:\n    stores: [/r]\nsources:\n  cache:\n    kind: cassandra\n';
    expect(() => parseConfig(text, '/etc/lifeboat.yaml')).toThrow(`"kind" of source "cache" must be one of ${KINDS.join(', ')}`);
  });
});

describe('toArgv', () => {
  it('renders strings, numbers, repeated flags and booleans, and leaves out what is not set', () => {
    expect(
      toArgv({
        command: ['pg', 'restore'],
        options: [['--name', 'main'], ['--port', 5433], ['--tag', ['a', 'b c']], ['--start', true], ['--keep-running', false], ['--time', undefined], ['--check', []]],
      }),
    ).toEqual(['pg', 'restore', '--name', 'main', '--port', '5433', '--tag', 'a', '--tag', 'b c', '--start']);
  });

  it('keeps positionals after the command words and operands after the options', () => {
    expect(toArgv({ command: ['sqlite', 'backup'], positionals: ['/srv/app.db'], options: [['--name', 'app']] })).toEqual(['sqlite', 'backup', '/srv/app.db', '--name', 'app']);
    expect(toArgv({ command: ['backup'], options: [['--exclude', ['*.tmp']]], operands: ['/srv', '/etc'] })).toEqual(['backup', '--exclude', '*.tmp', '/srv', '/etc']);
  });

  it('puts arguments that could be read as flags behind --', () => {
    expect(toArgv({ command: ['backup'], options: [['--name', 'x']], operands: ['/srv', '-rf'] })).toEqual(['backup', '--name', 'x', '--', '/srv', '-rf']);
    expect(toArgv({ command: ['sqlite', 'backup'], positionals: ['-app.db'], options: [['--name', 'app']] })).toEqual(['sqlite', 'backup', '--name', 'app', '--', '-app.db']);
  });

  it('refuses an option name that is not --lower-case', () => {
    expect(() => toArgv({ command: ['backup'], options: [['--Name' as `--${string}`, 'x']] })).toThrow(/"--Name" is not an option name/);
  });
});

/** The help text of one option, its wrapped lines joined. */
function optionHelp(help: string, flag: string): string {
  const lines = help.split('\n');
  const at = lines.findIndex((l) => new RegExp(`^\\s+(-\\w, )?${flag} `).test(l));
  if (at < 0) return '';
  const end = lines.findIndex((l, i) => i > at && /^\s+-/.test(l));
  return lines.slice(at, end < 0 ? undefined : end).map((l) => l.trim()).join(' ');
}

const CONFIG = [
  'repositories:',
  '  main:',
  '    stores: [/srv/repo]',
  'sources:',
  '  uploads:',
  '    kind: files',
  '    paths: [/srv/uploads, /srv/media]',
  '    exclude: ["*.tmp", cache]',
  '    tags: [nightly, offsite]',
  '    retention: { keep_daily: 7, keep_within: 2d }',
  '  notes:',
  '    kind: sqlite',
  '    path: /srv/notes.db',
  '    replicate: true',
  '    interval: 2s',
  '    snapshot_interval: 1h',
  '    verify_interval: 10min',
  '    tags: [nightly, offsite]',
  '  main:',
  '    kind: postgres',
  '    dsn: postgres://backup:secret@db.internal:5432/postgres',
  '    pgdata: /var/lib/postgresql/15/main',
  '    bin_dir: /usr/lib/postgresql/15/bin',
  '    stream: true',
  '    checks: ["select true"]',
  '    tags: [nightly, offsite]',
  '    retention: { keep_last: 3, keep_logs_within: 7d }',
  '  shop:',
  '    kind: command',
  '    preset: mariadb',
  '    database: shop',
  '    dump: [--host=db.internal]',
  '    env: { MYSQL_PWD: secret }',
  '    tags: [nightly, offsite]',
  '  photos:',
  '    kind: bucket',
  '    location: s3:https://minio.internal:9000/media/photos',
  '    parallel: 16',
  '    limit_download: 2048',
  '    tags: [nightly]',
].join('\n');

describe('the commands the daemon builds from each kind', () => {
  const config = parseConfig(CONFIG, '/etc/lifeboat/lifeboat.yaml');
  const job = (kind: JobRequest['kind'], source: string, restore?: JobRequest['restore']): string[] =>
    jobCommand(config, { kind, source, trigger: 'test', ...(restore ? { restore } : {}) }, 'abcd1234');

  it('passes every tag of every kind, and no password on argv', () => {
    expect(job('backup', 'uploads')).toEqual(['backup', '--name', 'uploads', '--tag', 'nightly', '--tag', 'offsite', '--exclude', '*.tmp', '--exclude', 'cache', '/srv/uploads', '/srv/media']);
    expect(job('backup', 'notes')).toEqual(['sqlite', 'backup', '/srv/notes.db', '--name', 'notes', '--tag', 'nightly', '--tag', 'offsite']);
    expect(job('backup', 'main')).toEqual([
      'pg', 'backup', '--name', 'main', '--dsn', 'postgres://backup@db.internal:5432/postgres', '--pgdata', '/var/lib/postgresql/15/main',
      '--bin-dir', '/usr/lib/postgresql/15/bin', '--tag', 'nightly', '--tag', 'offsite',
    ]);
    // The source's own checks go with its drill.
    expect(job('drill', 'main')).toEqual(['drill', '--source', 'main', '--dsn', 'postgres://backup@db.internal:5432/postgres', '--check', 'select true']);
    expect(job('drill', 'notes')).toEqual(['drill', '--source', 'notes']);
    // The newest backup for a files restore; a PostgreSQL restore is started to measure its RTO.
    expect(job('restore', 'uploads', { target: '/var/tmp/u' })).toEqual(['restore', 'abcd1234', '--source', 'uploads', '--target', '/var/tmp/u']);
    expect(job('restore', 'main', { target: '/var/tmp/pg', time: '2026-01-31T14:30:00Z' })).toEqual([
      'pg', 'restore', '--name', 'main', '--target-dir', '/var/tmp/pg', '--time', '2026-01-31T14:30:00Z', '--bin-dir', '/usr/lib/postgresql/15/bin', '--start', '--check', 'select true',
    ]);
    expect(replicationCommand(config.sources.get('notes')!, '/var/lib/lifeboat')).toEqual([
      'sqlite', 'replicate', '/srv/notes.db', '--name', 'notes', '--interval', '2s', '--snapshot-interval', '1h', '--verify-interval', '10min',
    ]);
    expect(replicationCommand(config.sources.get('main')!, '/var/lib/lifeboat')).toEqual([
      'pg', 'stream', '--name', 'main', '--dsn', 'postgres://backup@db.internal:5432/postgres', '--spool', path.join('/var/lib/lifeboat', 'spool', 'main'), '--bin-dir', '/usr/lib/postgresql/15/bin',
    ]);
    // A command source's dump, env and cwd stay in lifeboat.yaml: the job names the source only.
    expect(job('backup', 'shop')).toEqual(['command', 'backup', '--name', 'shop', '--tag', 'nightly', '--tag', 'offsite']);
    expect(job('restore', 'shop', { target: '/var/tmp/shop.sql', time: '2026-01-31T14:30:00Z' })).toEqual(['command', 'restore', 'shop', '--output', '/var/tmp/shop.sql', '--time', '2026-01-31T14:30:00Z']);
    expect(job('backup', 'photos')).toEqual(['bucket', 'backup', 's3:https://minio.internal:9000/media/photos', '--name', 'photos', '--parallel', '16', '--limit-bucket-download', '2048', '--tag', 'nightly']);
    expect(job('restore', 'photos', { target: '/var/tmp/b', time: '2026-01-31T14:30:00Z' })).toEqual(['bucket', 'restore', 'photos', '--output', '/var/tmp/b', '--time', '2026-01-31T14:30:00Z']);
    const all = [...config.sources.keys()].flatMap((s) => [job('backup', s), job('drill', s)]).flat();
    expect(all.join(' ')).not.toContain('secret');
  });

  it('every flag of every job command is one its command takes', async () => {
    const commands: string[][] = [];
    for (const s of config.sources.values()) {
      commands.push(job('backup', s.name), job('drill', s.name), job('restore', s.name, { target: '/var/tmp/x', ...(s.kind === 'files' ? {} : { time: '2026-01-31T14:30:00Z' }) }));
      if (s.retention) commands.push(forgetCommand(config, s, 'apply'), forgetCommand(config, s, 'preview'));
      if (s.continuous) commands.push(replicationCommand(s, '/var/lib/lifeboat'));
    }
    expect(commands).toHaveLength(5 * 3 + 2 * 2 + 2);
    const helps = new Map<string, string>();
    for (const argv of commands) {
      const words = argv.slice(0, ['pg', 'sqlite', 'command', 'bucket'].includes(argv[0] as string) ? 2 : 1);
      const key = words.join(' ');
      if (!helps.has(key)) {
        const help = await runCli([...words, '--help']);
        expect(help.code, help.stderr).toBe(0);
        helps.set(key, help.stdout);
      }
      for (const flag of argv.filter((a) => a.startsWith('--'))) {
        expect(helps.get(key), `${key} takes ${flag}`).toMatch(new RegExp(`(^|[ ,])${flag}( |$)`, 'm'));
      }
      // A repeated flag must be declared repeatable, or the command keeps only the last value.
      for (const flag of new Set(argv.filter((a, i) => a.startsWith('--') && argv.indexOf(a) !== i))) {
        expect(optionHelp(helps.get(key) as string, flag), `${key} repeats ${flag}`).toMatch(/\(repeatable/);
      }
    }
  }, 120_000);
});
