/**
 * One duration grammar in the three places an operator writes one: lifeboat.yaml (read
 * by the daemon and handed to its jobs as flags), the command line (the real commander
 * definitions of forget and sqlite replicate), and the API (a token's lifetime). The
 * same spelling means the same thing in all three; `30m` and a bare number are refused
 * in all three with the grammar's hint. And `keep_within: 2w`, which passed config
 * check and then failed every scheduled forget, now runs.
 */
import * as path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { register as registerForget } from '../../src/cli/commands/forget.js';
import { register as registerSqlite } from '../../src/sources/sqlite/cli/sqlite.js';
import { register as registerBackup } from '../../src/cli/commands/backup.js';
import { register as registerPg } from '../../src/sources/postgres/cli/pg.js';
import { register as registerCheck } from '../../src/cli/commands/check.js';
import { forgetCommand, jobCommand } from '../../src/daemon/jobs.js';
import { restoreArgs } from '../../src/engine/restore-options.js';
import { replicationCommand } from '../../src/daemon/supervisor.js';
import type { JobRow } from '../../src/daemon/catalog.js';
import { isLifeboatError } from '../../src/errors.js';
import { scheduleOptions } from '../../src/config/model.js';
import { jsonSchemaOf } from '../../src/config/schema.js';
import { after, durationMs, parseDuration, type Duration } from '../../src/util/duration.js';
import { cleanupTmp } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';

let t: TestDaemon;

beforeAll(async () => {
  t = await testDaemon({
    extraSources: ['  notes:', '    kind: files', '    paths: [$DIR/data]', '    retention: { keep_within: 2w }'].join('\n'),
  });
});

afterAll(async () => {
  await t.daemon.stop();
  cleanupTmp();
});

/** The options a real CLI command parses from `argv` (its own words, after the command name). */
function parsedFlags(register: (p: Command) => void, words: string[], argv: string[]): Record<string, unknown> {
  const program = new Command();
  register(program);
  let cmd: Command = program;
  for (const w of words) cmd = cmd.commands.find((c) => c.name() === w) as Command;
  cmd.parseOptions(argv);
  return cmd.opts();
}

const forgetFlags = (argv: string[]) => parsedFlags(registerForget, ['forget'], argv);
const replicateFlags = (argv: string[]) => parsedFlags(registerSqlite, ['sqlite', 'replicate'], argv);

const yaml = (source: string) => `repositories:\n  main: { stores: [/srv/repo] }\nsources:\n  app:\n${source}`;

/** What a retention window written in lifeboat.yaml becomes: the flag the daemon's forget job passes, as forget parses it. */
function fromFile(spelling: string): Duration {
  const config = parseConfig(yaml(`    kind: files\n    paths: [/srv/app]\n    retention: { keep_within: ${spelling} }\n`), '/etc/lifeboat.yaml');
  const argv = forgetCommand(config, config.sources.get('app')!, 'apply');
  return forgetFlags(argv.slice(1)).keepWithin as Duration;
}

function refusal(f: () => unknown): { code: string; message: string; hint?: string } {
  try {
    f();
  } catch (e) {
    if (isLifeboatError(e, 'CONFIG_INVALID') || isLifeboatError(e, 'USAGE')) return { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) };
    throw e;
  }
  throw new Error('accepted');
}

const createToken = (name: string, expires: string) =>
  t.daemon.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: t.auth('admin'), payload: { name, role: 'viewer', expires } });

describe('one duration grammar in lifeboat.yaml, on the command line and through the API', () => {
  it.each(['30min', '6mo', '1h30min', '2w', '1mo2d5h', '1y'])('%s means the same in all three', async (spelling) => {
    const meant = parseDuration(spelling);
    expect(fromFile(spelling)).toEqual(meant);
    expect(forgetFlags(['--keep-within', spelling]).keepWithin).toEqual(meant);
    const before = Date.now();
    const r = await createToken(`t-${spelling}`, spelling);
    const afterCall = Date.now();
    expect(r.statusCode, r.body).toBe(201);
    const expiresAt = Date.parse((r.json() as { expires_at: string }).expires_at);
    expect(expiresAt).toBeGreaterThanOrEqual(after(meant, before));
    expect(expiresAt).toBeLessThanOrEqual(after(meant, afterCall));
  });

  it('refuses 30m in all three, with the same hint', async () => {
    const hint = /write 30min for minutes or 30mo for months/;
    const file = refusal(() => fromFile('30m'));
    expect(file).toEqual({ code: 'CONFIG_INVALID', message: '/etc/lifeboat.yaml:7: "keep_within" must be a duration: "30m": m is ambiguous', hint: expect.stringMatching(hint) });
    const flag = refusal(() => forgetFlags(['--keep-within', '30m']));
    expect(flag).toEqual({ code: 'USAGE', message: '--keep-within must be a duration: "30m": m is ambiguous', hint: expect.stringMatching(hint) });
    const api = await createToken('t-30m', '30m');
    expect(api.statusCode).toBe(400);
    expect(api.json()).toEqual({ error: { code: 'USAGE', message: expect.stringMatching(/m is ambiguous/), hint: expect.stringMatching(hint) } });
  });

  it('refuses a bare number in all three', async () => {
    const hint = /write 2s for seconds/;
    expect(refusal(() => parseConfig(yaml('    kind: sqlite\n    path: /srv/app.db\n    interval: 2\n'), '/etc/lifeboat.yaml'))).toEqual({
      code: 'CONFIG_INVALID',
      message: '/etc/lifeboat.yaml:7: "interval" must be a duration: "2" has no unit',
      hint: expect.stringMatching(hint),
    });
    expect(refusal(() => replicateFlags(['app.db', '--interval', '2']))).toEqual({ code: 'USAGE', message: '--interval must be a duration: "2" has no unit', hint: expect.stringMatching(hint) });
    const api = await createToken('t-2', '2');
    expect(api.statusCode).toBe(400);
    expect((api.json() as { error: { hint: string } }).error.hint).toMatch(hint);
  });

  it('hands interval: 2s to the replicator as 2 seconds', () => {
    const config = parseConfig(yaml('    kind: sqlite\n    path: /srv/app.db\n    replicate: true\n    interval: 2s\n    snapshot_interval: 1h30min\n'), '/etc/lifeboat.yaml');
    const argv = replicationCommand(config.sources.get('app')!, path.join(t.dir, 'state'));
    expect(argv.slice(0, 2)).toEqual(['sqlite', 'replicate']);
    const flags = replicateFlags(argv.slice(2));
    expect(durationMs(flags.interval as Duration)).toBe(2000);
    expect(durationMs(flags.snapshotInterval as Duration)).toBe(90 * 60_000);
  });
});

describe('keep_within: 2w in a scheduled forget', () => {
  it('runs: the daemon passes --keep-within 2w and forget accepts it', async () => {
    const source = t.config.sources.get('notes')!;
    expect(forgetCommand(t.config, source, 'apply')).toEqual(expect.arrayContaining(['--keep-within', '2w']));
    const backup = (await t.daemon.runner.wait(t.daemon.submit({ kind: 'backup', source: 'notes', trigger: 'test' }).id)) as JobRow;
    expect(backup.status, backup.error ?? '').toBe('succeeded');
    // What a forget schedule submits when it fires (daemon.ts fire()).
    const forget = (await t.daemon.runner.wait(t.daemon.submit({ kind: 'forget', source: 'notes', trigger: 'schedule:thin' }).id)) as JobRow;
    expect(forget.status, forget.error ?? '').toBe('succeeded');
  });
});

describe('list options are repeatable flags made from the same declaration', () => {
  it('exclude: [a, b] in lifeboat.yaml reaches `backup` as both patterns, in order', () => {
    const config = parseConfig(yaml("    kind: files\n    paths: [/srv/app]\n    exclude: ['*.log', 'cache/**']\n"), '/etc/lifeboat.yaml');
    const argv = jobCommand(config, { kind: 'backup', source: 'app', trigger: 'test' });
    expect(argv[0]).toBe('backup');
    expect(parsedFlags(registerBackup, ['backup'], argv.slice(1)).exclude).toEqual(['*.log', 'cache/**']);
    expect(parsedFlags(registerBackup, ['backup'], ['/srv/app']).exclude).toEqual([]);
  });

  it('tags: [a, b] reach every kind\'s backup as both tags', () => {
    const config = parseConfig(
      'repositories:\n  main: { stores: [/srv/repo] }\nsources:\n' +
        '  app:\n    kind: files\n    paths: [/srv/app]\n    tags: [nightly, app]\n' +
        '  db:\n    kind: postgres\n    dsn: postgres://backup@db/postgres\n    tags: [nightly, db]\n' +
        '  mem:\n    kind: sqlite\n    path: /srv/mem.db\n    tags: nightly\n',
      '/etc/lifeboat.yaml',
    );
    const tagsOf = (source: string, register: (p: Command) => void, words: string[]) => {
      const argv = jobCommand(config, { kind: 'backup', source, trigger: 'test' });
      expect(argv.slice(0, words.length)).toEqual(words);
      return parsedFlags(register, words, argv.slice(words.length)).tag;
    };
    expect(tagsOf('app', registerBackup, ['backup'])).toEqual(['nightly', 'app']);
    expect(tagsOf('db', registerPg, ['pg', 'backup'])).toEqual(['nightly', 'db']);
    expect(tagsOf('mem', registerSqlite, ['sqlite', 'backup'])).toEqual(['nightly']);
  });

  it('checks: in lifeboat.yaml reach `pg restore --start` as one --check each; an empty one is refused like in the file', () => {
    const config = parseConfig(yaml('    kind: postgres\n    dsn: postgres://backup@db/postgres\n    bin_dir: /opt/pg/bin\n    checks: [SELECT 1, SELECT count(*) > 0 FROM t]\n'), '/etc/lifeboat.yaml');
    const argv = restoreArgs(config.sources.get('app')!, { target: '/srv/copy', start: true });
    expect(argv.slice(0, 2)).toEqual(['pg', 'restore']);
    const flags = parsedFlags(registerPg, ['pg', 'restore'], argv.slice(2));
    expect(flags.check).toEqual(['SELECT 1', 'SELECT count(*) > 0 FROM t']);
    expect(flags.binDir).toBe('/opt/pg/bin');
    expect(refusal(() => parsedFlags(registerPg, ['pg', 'restore'], ['--name', 'app', '--target-dir', '/x', '--check', '']))).toEqual({
      code: 'USAGE',
      message: '--check must be a non-empty string',
      hint: 'see docs/configuration.md',
    });
  });

  it('read_data_subset has one grammar in lifeboat.yaml, on the command line and in the API: 10% is taken, 10 is refused in all three', async () => {
    const sched = (v: string) => yaml('    kind: files\n    paths: [/srv/app]\n') + `schedules:\n  verify:\n    run: check\n    cron: "0 3 * * *"\n    read_data_subset: ${v}\n`;
    const config = parseConfig(sched('"10%"'), '/etc/lifeboat.yaml');
    const argv = jobCommand(config, { kind: 'check', repository: 'main', trigger: 'test', readDataSubset: config.schedules.get('verify')!.readDataSubset! });
    expect(parsedFlags(registerCheck, ['check'], argv.slice(1)).readDataSubset).toBe('10%');
    expect(refusal(() => parseConfig(sched('"10"'), '/etc/lifeboat.yaml')).message).toMatch(/read_data_subset" must be a percentage such as 5%/);
    expect(refusal(() => parsedFlags(registerCheck, ['check'], ['--read-data-subset', '10'])).message).toBe('--read-data-subset must be a percentage such as 5%');
    // The API's body takes the same declaration: its OpenAPI schema is the model's, and 10 is refused there too.
    const doc = (await t.daemon.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as {
      paths: Record<string, { post: { requestBody: { content: { 'application/json': { schema: { properties: Record<string, unknown> } } } } } }>;
    };
    const field = doc.paths['/api/v1/repositories/{name}/check']!.post.requestBody.content['application/json'].schema.properties.read_data_subset;
    expect(field).toEqual(jsonSchemaOf(scheduleOptions().shape.read_data_subset));
    const r = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/repositories/main/check', headers: t.auth('admin'), payload: { read_data_subset: '10' } });
    expect(r.statusCode, r.body).toBe(400);
  });
});
