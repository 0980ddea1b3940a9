/** The oplog kind's lifeboat.yaml keys and the commands the daemon builds from them (src/sources/oplog/kind.ts). */
import { describe, expect, it } from 'vitest';
import { parseConfig, type SourceConfig } from '../../src/config/config.js';
import { jobCommand } from '../../src/daemon/jobs.js';
import { replicationCommand } from '../../src/daemon/supervisor.js';
import { commandWords, settingsOf } from '../../src/sources/oplog/options.js';

const yaml = (extra: string[]) =>
  ['repositories:', '  main:', '    stores: [/nonexistent/repo]', 'sources:', '  ops:', '    kind: oplog', '    path: /var/lib/engram/oplog.jsonl', ...extra.map((l) => `    ${l}`), ''].join('\n');

describe('oplog source configuration', () => {
  it('keeps its own keys in settings, read back with the same schema, and builds the daemon\'s commands from them', () => {
    const config = parseConfig(yaml(['format: u32be', 'time_field: meta.ts', 'replicate: true', 'interval: 2s', 'replay_command: [/usr/bin/engram, replay, "--data dir"]']), '/etc/lifeboat.yaml');
    const s = config.sources.get('ops') as SourceConfig;
    expect(s.continuous).toBe(true);
    expect(settingsOf(s)).toEqual({ format: 'u32be', time_field: 'meta.ts', replay_command: ['/usr/bin/engram', 'replay', '--data dir'] });
    expect(jobCommand(config, { kind: 'backup', source: 'ops', trigger: 'test' })).toEqual(['oplog', 'backup', '/var/lib/engram/oplog.jsonl', '--name', 'ops', '--format', 'u32be', '--time-field', 'meta.ts']);
    const rep = replicationCommand(s, '/state');
    expect(rep.slice(0, 2)).toEqual(['oplog', 'replicate']);
    expect(rep).toContain('/var/lib/engram/oplog.jsonl');
    expect(rep.join(' ')).toContain('--interval 2s --format u32be --time-field meta.ts');
    expect(jobCommand(config, { kind: 'restore', source: 'ops', trigger: 'test', restore: { target: '/tmp/out.jsonl', time: '2026-01-31T14:30:00Z' } })).toEqual([
      'oplog', 'restore', 'ops', '--output', '/tmp/out.jsonl', '--time', '2026-01-31T14:30:00Z',
    ]);
  });

  it('refuses an unknown format and a replay command that is no command, naming the key', () => {
    expect(() => parseConfig(yaml(['format: csv']), '/etc/lifeboat.yaml')).toThrow(/format.*must be one of jsonl, u32be/);
    expect(() => parseConfig(yaml(['replay_command: []']), '/etc/lifeboat.yaml')).toThrow(/replay_command/);
  });

  it('splits a configured command string into words without a shell', () => {
    expect(commandWords(' node  /srv/replay.js $HOME; rm -rf / ')).toEqual(['node', '/srv/replay.js', '$HOME;', 'rm', '-rf', '/']);
    expect(() => commandWords('   ')).toThrow(/empty/);
  });
});
