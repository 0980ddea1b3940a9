/**
 * Each kind's table of restore options (`restore.options` in src/sources/<kind>/kind.ts)
 * against the CLI itself: every flag the daemon, recoveries and the runbook may pass is one the
 * command takes, so a source setting such as bin_dir cannot drift into a flag the
 * command rejects (issue 14: the daemon's `--bin-dir` made `pg restore` exit 2).
 */
import { describe, expect, it } from 'vitest';
import { checkMoment, restoreArgs, takes } from '../../src/engine/restore-options.js';
import { sourceKinds } from '../../src/sources/registry.js';
import type { SourceConfig, SourceKind } from '../../src/config/config.js';
import { runCli } from '../helpers.js';

const source = (kind: SourceKind, extra: Partial<SourceConfig> = {}): SourceConfig => ({
  name: 'app', kind, repository: 'main', paths: ['/srv/app'], exclude: [], continuous: false, tags: [], targets: {}, ...extra,
});

describe('restore options', () => {
  it('every flag in the table is one its command takes', async () => {
    expect(sourceKinds().map((k) => k.name)).toEqual(expect.arrayContaining(['files', 'postgres', 'sqlite', 'redis']));
    for (const { restore } of sourceKinds()) {
      const help = await runCli([...restore.command, '--help']);
      expect(help.code, help.stderr).toBe(0);
      for (const o of restore.options.filter((x) => x.flag !== '')) {
        expect(help.stdout, `${restore.command.join(' ')} takes ${o.flag}`).toMatch(new RegExp(`(^|[ ,])${o.flag}( |$)`, 'm'));
      }
    }
  }, 60_000);

  it('builds each kind\'s command from the source and the request', () => {
    expect(restoreArgs(source('files'), { target: '/r' })).toEqual(['restore', 'latest', '--source', 'app', '--target', '/r']);
    expect(restoreArgs(source('files'), { target: '/r', snapshot: 'abcd1234' })).toEqual(['restore', 'abcd1234', '--source', 'app', '--target', '/r']);
    expect(restoreArgs(source('sqlite', { path: '/a.db' }), { target: '/r.db', time: '2026-01-01T00:00:00Z' })).toEqual(['sqlite', 'restore', 'app', '--output', '/r.db', '--time', '2026-01-01T00:00:00Z']);
    expect(restoreArgs(source('postgres', { dsn: 'postgres://x', binDir: '/usr/lib/postgresql/15/bin' }), { target: '/d', start: true, port: 5433 })).toEqual([
      'pg', 'restore', '--name', 'app', '--target-dir', '/d', '--bin-dir', '/usr/lib/postgresql/15/bin', '--port', '5433', '--start',
    ]);
    // The source's checks run on a started copy only, one flag per query.
    const checked = source('postgres', { dsn: 'postgres://x', checks: ['select 1 from orders limit 1', 'select true'] });
    expect(restoreArgs(checked, { target: '/d', start: true })).toEqual(['pg', 'restore', '--name', 'app', '--target-dir', '/d', '--start', '--check', 'select 1 from orders limit 1', '--check', 'select true']);
    expect(restoreArgs(checked, { target: '/d' })).toEqual(['pg', 'restore', '--name', 'app', '--target-dir', '/d']);
    // SQLite and Redis: to a numbered transaction.
    expect(restoreArgs(source('redis', { url: 'redis://127.0.0.1:6379' }), { target: '/r', beforeTxn: 6, generation: 'ab12' })).toEqual(['redis', 'restore', 'app', '--output', '/r', '--before-txn', '6', '--generation', 'ab12']);
    expect(restoreArgs(source('sqlite', { path: '/a.db' }), { target: '/r.db', txn: 41 })).toEqual(['sqlite', 'restore', 'app', '--output', '/r.db', '--txn', '41']);
    expect(takes('postgres', 'before_txn')).toBe(false);
    expect(takes('redis', 'txn') && takes('sqlite', 'before_txn')).toBe(true);
  });

  it('refuses two moments, and a generation without a transaction', () => {
    expect(() => checkMoment({ target: '/r', time: '2026-01-01T00:00:00Z', beforeTxn: 3 })).toThrow(/give one of "snapshot", "time", "txn" and "before_txn", not "time" and "before_txn"/);
    expect(() => checkMoment({ target: '/r', txn: 3, beforeTxn: 3 })).toThrow(/not "txn" and "before_txn"/);
    expect(() => checkMoment({ target: '/r', generation: 'ab' })).toThrow(/"generation" goes with/);
    expect(() => checkMoment({ target: '/r', beforeTxn: 3, generation: 'ab' })).not.toThrow();
  });
});
