/**
 * The daemon's safety rules through the CLI: `serve` beyond loopback (metrics token,
 * TLS or --insecure with a warning), unique and expiring tokens, a private runbook
 * file, and control characters in stored names escaped in human output.
 */
import { spawn } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, cliExpecting, expectError, initRepo, runCli, snapshotsJson, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

async function setup(server = ''): Promise<{ dir: string; file: string }> {
  const dir = tmpdir('lb-dsafe-');
  mkdirSync(path.join(dir, 'uploads'));
  writeFileSync(path.join(dir, 'pass'), 'test-password\n');
  await initRepo(path.join(dir, 'repo'));
  const file = path.join(dir, 'lifeboat.yaml');
  writeFileSync(file, `repositories:\n  main:\n    stores: [${dir}/repo]\n    password_file: ${dir}/pass\nsources:\n  uploads:\n    kind: files\n    paths: [${dir}/uploads]\nserver:\n  listen: 127.0.0.1:0\n  state_dir: state\n${server}`);
  return { dir, file };
}

describe('lifeboat serve beyond loopback', () => {
  it('refuses without server.metrics_token, then without TLS; with --insecure warns and serves', async () => {
    const bare = await setup();
    expectError(await runCli(['--config', bare.file, 'serve', '--listen', '0.0.0.0:0']), 40, /needs server\.metrics_token/);
    const withToken = await setup('  metrics_token: 0123456789abcdef0123\n');
    const hint = expectError(await runCli(['--config', withToken.file, 'serve', '--listen', '0.0.0.0:0']), 40, /refusing to listen on 0\.0\.0\.0 without TLS/);
    expect(hint).toMatch(/--insecure/);
    const child = spawn(process.execPath, [CLI, '--config', withToken.file, 'serve', '--listen', '0.0.0.0:0', '--insecure'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /serving on (http:\/\/\S+:\d+) /.exec(err);
        if (m) resolve(m[1] as string);
      });
      child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    });
    try {
      expect(err).toMatch(/^warning: listening on 0\.0\.0\.0 without TLS \(--insecure\)/m);
      const port = new URL(url).port;
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: 'Bearer 0123456789abcdef0123' } })).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('lifeboat token', () => {
  it('refuses a duplicate name, gives a lifetime, lists an expired token as expired', async () => {
    const { dir, file } = await setup();
    await cliExpecting(['--config', file, 'token', 'create', '--role', 'viewer', '--name', 'laptop', '--expires', '30d']);
    expectError(await runCli(['--config', file, 'token', 'create', '--role', 'admin', '--name', 'laptop']), 43, /an active token is already named "laptop"/);
    expectError(await runCli(['--config', file, 'token', 'create', '--role', 'admin', '--name', 'x', '--expires', 'tomorrow']), 2, /--expires must be a duration: "tomorrow" is not a duration/);
    expect((await cliExpecting(['--config', file, 'token', 'list'])).stdout).toMatch(/viewer\s+laptop\s+created \S+\s+expires \S+\n/);
    const db = new Database(path.join(dir, 'state', 'catalog.db'));
    db.prepare("UPDATE tokens SET expires_at = '2020-01-01T00:00:00.000Z' WHERE name = 'laptop'").run();
    db.close();
    expect((await cliExpecting(['--config', file, 'token', 'list'])).stdout).toMatch(/viewer\s+laptop\s+created \S+\s+expired 2020-01-01T00:00:00\.000Z\n/);
    // An expired token no longer holds its name.
    await cliExpecting(['--config', file, 'token', 'create', '--role', 'viewer', '--name', 'laptop']);
  });
});

describe('files people read', () => {
  it('writes the runbook 0600 (a new directory 0700) and never through a symlink', async () => {
    const { dir, file } = await setup();
    const out = path.join(dir, 'docs-private', 'runbook.md');
    await cliExpecting(['--config', file, 'runbook', '-o', out]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(out)).mode & 0o777).toBe(0o700);
    expect(readFileSync(out, 'utf8')).toMatch(/^# /);
    // Regenerating replaces it and keeps it private even if someone loosened it.
    writeFileSync(out, 'old and much longer text '.repeat(1000), { mode: 0o644 });
    await cliExpecting(['--config', file, 'runbook', '-o', out]);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(readFileSync(out, 'utf8')).not.toContain('old and much longer');
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'keep\n');
    symlinkSync(victim, path.join(dir, 'link.md'));
    expectError(await runCli(['--config', file, 'runbook', '-o', path.join(dir, 'link.md')]), 2, /cannot write .*link\.md: ELOOP/);
    expect(readFileSync(victim, 'utf8')).toBe('keep\n');
    expect(lstatSync(path.join(dir, 'link.md')).isSymbolicLink()).toBe(true);
  });

  it('escapes control characters of stored paths in ls and snapshots output; --json keeps them exact', async () => {
    const dir = tmpdir('lb-esc-');
    const data = path.join(dir, 'data');
    mkdirSync(data);
    const evil = 'evil\u001b]0;owned\u0007\u001b[2J\nforged line';
    writeFileSync(path.join(data, evil), 'x');
    const repo = path.join(dir, 'repo');
    await initRepo(repo);
    await cliExpecting(['-r', repo, 'backup', data]);
    const ls = await cliExpecting(['-r', repo, 'ls', 'latest']);
    expect(ls.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(ls.stdout).toContain('evil\\e]0;owned\\x07\\e[2J\\nforged line');
    expect(ls.stdout.split('\n').some((l) => l.startsWith('forged line'))).toBe(false);
    const json = JSON.parse((await cliExpecting(['--json', '-r', repo, 'ls', 'latest'])).stdout) as Array<{ path: string }>;
    expect(json.some((e) => e.path.endsWith(evil))).toBe(true);
    const evilDir = path.join(dir, 'd\u001b[31mred');
    mkdirSync(evilDir);
    await cliExpecting(['-r', repo, 'backup', evilDir]);
    const snaps = await cliExpecting(['-r', repo, 'snapshots']);
    expect(snaps.stdout).toContain('d\\e[31mred');
    expect(snaps.stdout).not.toContain('\u001b');
    const ids = (await snapshotsJson(repo)).map((x) => x.id);
    const diff = await cliExpecting(['-r', repo, 'diff', ids[0] as string, ids[1] as string]);
    expect(diff.stdout).toContain('evil\\e]0;owned\\x07\\e[2J\\nforged line');
    expect(diff.stdout).not.toContain('\u001b');
  });
});
