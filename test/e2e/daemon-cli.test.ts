/**
 * The daemon as a user runs it: `config check` on good and malformed files,
 * `token create`, `lifeboat serve` as a real process over a socket keeping SQLite
 * replication alive (restarted when it dies), `runbook`, and a clean stop.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, expectError, initRepo, runCli, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

function write(dir: string, text: string): string {
  const file = path.join(dir, 'lifeboat.yaml');
  writeFileSync(file, text);
  return file;
}

const GOOD = (dir: string) => `repositories:
  main:
    stores: [${dir}/repo]
    password_file: ${dir}/pass
sources:
  memory:
    kind: sqlite
    path: ${dir}/memory.db
    replicate: true
    interval: 200ms
    targets: { rpo: 5s, rto: 2min }
  uploads:
    kind: files
    paths: [${dir}/uploads]
    retention: { keep_daily: 7, keep_weekly: 4 }
schedules:
  nightly:
    run: backup
    sources: [uploads]
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    jitter: 5min
  weekly-drill:
    run: drill
    cron: "0 5 * * 0"
  verify:
    run: check
    cron: "0 4 * * *"
    read_data_subset: 5%
notifications:
  ops:
    url: http://127.0.0.1:9/hook
    format: slack
server:
  listen: 127.0.0.1:0
  state_dir: state
`;

describe('lifeboat config check', () => {
  it('accepts a good file and says when each schedule fires next', async () => {
    const dir = tmpdir('lb-cfg-');
    const file = write(dir, GOOD(dir));
    // What it names is there: the repository, its password file, the database, the paths.
    writeFileSync(path.join(dir, 'pass'), 'test-password\n');
    await initRepo(path.join(dir, 'repo'));
    new Database(path.join(dir, 'memory.db')).close();
    mkdirSync(path.join(dir, 'uploads'));
    const r = await runCli(['config', 'check', file]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${file}: valid; repositories, password files and sources are there and answer`);
    expect(r.stdout).toMatch(/schedule nightly: backup uploads at "30 2 \* \* \*" \(Europe\/Berlin\); next \d{4}-\d\d-\d\dT01:30:00\.000Z/);
    const json = JSON.parse((await runCli(['--json', '--config', file, 'config', 'check'])).stdout) as { sources: Array<{ name: string; continuous: boolean; rpo_target_seconds: number }>; schedules: Array<{ name: string; targets: string[] }> };
    expect(json.sources).toContainEqual(expect.objectContaining({ name: 'memory', continuous: true, rpo_target_seconds: 5 }));
    // A drill schedule with no list covers every source; check covers the one repository.
    expect(json.schedules.find((s) => s.name === 'weekly-drill')?.targets).toEqual(['memory', 'uploads']);
    expect(json.schedules.find((s) => s.name === 'verify')?.targets).toEqual(['main']);
  });

  it('names the file, line and key of each mistake, with exit 2', async () => {
    const dir = tmpdir('lb-cfg-');
    const good = GOOD(dir);
    const cases: Array<[string, string, RegExp]> = [
      ['a misspelt key', good.replace('    replicate: true', '    replicat: true'), /lifeboat\.yaml:9: unknown key "replicat" in sqlite source "memory"/],
      ['a bad cron expression', good.replace('"30 2 * * *"', '"30 25 * * *"'), /lifeboat\.yaml:20: schedule "nightly": /],
      ['an unknown time zone', good.replace('Europe/Berlin', 'Mars/Olympus'), /lifeboat\.yaml:21: .*Mars\/Olympus/],
      ['a schedule naming no such source', good.replace('sources: [uploads]', 'sources: [upload]'), /lifeboat\.yaml:19: schedule "nightly" names source "upload", which is not defined/],
      ['a bad duration', good.replace('rpo: 5s', 'rpo: soon'), /lifeboat\.yaml:11: "rpo" must be a duration/],
      ['a source with no kind', good.replace('    kind: files\n', ''), /lifeboat\.yaml:12: source "uploads" needs "kind"/],
      ['a repository that is not defined', good.replace('    kind: files\n', '    kind: files\n    repository: offsite\n'), /names repository "offsite", which is not defined/],
      ['broken YAML', good.replace('  ops:\n', '  ops\n'), /lifeboat\.yaml:\d+: not valid YAML/],
      ['a bad notification event', good.replace('    format: slack', '    format: slack\n    on: [failure, fire]'), /"fire" is not an event/],
      ['a bad listen address', good.replace('127.0.0.1:0', 'localhost'), /"listen" must be HOST:PORT/],
      ['a six-field cron (seconds)', good.replace('"30 2 * * *"', '"0 30 2 * * *"'), /lifeboat\.yaml:20: schedule "nightly": cron "0 30 2 \* \* \*" has 6 fields, not 5/],
      ['retention for a source without a policy', good.replace('  verify:\n', '  thin:\n    run: forget\n    sources: [memory]\n    cron: "0 6 * * *"\n  verify:\n'), /schedule "thin" \(forget\) names source "memory", which has no retention policy/],
    ];
    for (const [what, text, message] of cases) {
      const file = write(dir, text);
      const r = await runCli(['config', 'check', file]);
      expectError(r, 2, message);
      expect(r.stderr.trim().split('\n'), what).toHaveLength(2); // one line and a hint
    }
    expectError(await runCli(['config', 'check', path.join(dir, 'missing.yaml')]), 2, /cannot read the configuration .*missing\.yaml: ENOENT/);
    expectError(await runCli(['runbook'], { LIFEBOAT_CONFIG: undefined }), 2, /no configuration file/);
  });

  it('names each missing repository, password file, source and unreachable server (exit 37); --offline checks the file alone', async () => {
    const dir = tmpdir('lb-cfg-');
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const file = write(dir, GOOD(dir).replace('  uploads:\n', `  orders:\n    kind: postgres\n    dsn: postgresql://app:s3cret@127.0.0.1:${port}/app\n  uploads:\n`));
    const r = await runCli(['config', 'check', file]);
    expect(r.code, r.stderr).toBe(37);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toContain(`  repository main: password file ${dir}/pass does not exist`);
    expect(lines).toContain(`  repository main: ${dir}/repo does not exist (\`lifeboat init\` creates a repository there)`);
    expect(lines).toContain(`  source memory: ${dir}/memory.db does not exist`);
    expect(lines).toContain(`  source uploads: ${dir}/uploads does not exist`);
    expect(lines.some((l) => l.startsWith(`  source orders: cannot reach PostgreSQL at postgresql://app:***@127.0.0.1:${port}/app`))).toBe(true);
    expect(r.stderr).not.toContain('s3cret');
    expect(lines.at(-2)).toMatch(/^lifeboat: .* is valid, but 5 thing\(s\) it names are missing or unreachable; first: repository main: password file/);
    expect(lines.at(-1)).toMatch(/hint: .*--offline/);
    const json = await runCli(['--json', 'config', 'check', file]);
    expect(json.code).toBe(37);
    expect((JSON.parse(json.stdout) as { reachable: boolean; problems: unknown[] })).toMatchObject({ reachable: false, problems: expect.arrayContaining([]) });

    const offline = await runCli(['config', 'check', '--offline', file]);
    expect(offline.code, offline.stderr).toBe(0);
    expect(offline.stdout).toContain(`${file}: valid (offline: nothing it names was checked)`);
  });
});

/** Starts `lifeboat serve`; resolves with its URL once it listens. */
function serve(file: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, '--config', file, 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve({ child, url: m[1] as string, stderr: () => err });
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const metric = (text: string, name: string, source: string): number | undefined => {
  const m = new RegExp(`^${name}\\{source="${source}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('lifeboat serve', () => {
  it('serves the API with a CLI-made token, keeps SQLite replication alive, writes a runbook, and stops cleanly', async () => {
    const dir = tmpdir('lb-serve-');
    writeFileSync(path.join(dir, 'pass'), 'pw\n');
    execFileSync('mkdir', ['-p', path.join(dir, 'uploads')]);
    writeFileSync(path.join(dir, 'uploads', 'photo.jpg'), 'not really a photo');
    const db = new Database(path.join(dir, 'memory.db'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE m (id INTEGER PRIMARY KEY, v TEXT)');
    const file = write(dir, GOOD(dir).replace(/notifications:[\s\S]*?server:/, 'server:'));
    await initRepo(path.join(dir, 'repo'), 'pw');
    const made = await runCli(['--config', file, 'token', 'create', '--role', 'operator', '--name', 'ci']);
    expect(made.code, made.stderr).toBe(0);
    const token = made.stdout.trim();
    expect(token).toMatch(/^lbt_[0-9a-f]{12}_[\w-]{43}$/);
    const listed = await runCli(['--config', file, 'token', 'list']);
    expect(listed.stdout).toMatch(/operator\s+ci/);
    expect(listed.stdout).not.toContain(token.slice(18));
    // A second token, revoked by name, is listed as revoked; revoking it again is refused.
    expect((await runCli(['--config', file, 'token', 'create', '--role', 'viewer', '--name', 'old-laptop'])).code).toBe(0);
    expect((await runCli(['--config', file, 'token', 'revoke', 'old-laptop'])).stdout).toMatch(/^revoked 1 token \([0-9a-f]{12}, old-laptop\)\n$/);
    expect((await runCli(['--config', file, 'token', 'list'])).stdout).toMatch(/viewer\s+old-laptop\s+created \S+\s+revoked /);
    expectError(await runCli(['--config', file, 'token', 'revoke', 'old-laptop']), 15, /no active token "old-laptop"/);
    expectError(await runCli(['--config', file, 'token', 'create', '--role', 'root']), 2, /"root" is not a role/);

    const s = await serve(file);
    try {
      const api = async (p: string, init: RequestInit = {}) => fetch(`${s.url}${p}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } });
      expect((await fetch(`${s.url}/api/v1/sources`)).status).toBe(401);
      // Replication runs: writes reach the archive and the lag metric stays small.
      db.prepare('INSERT INTO m (v) VALUES (?)').run('hello');
      const lag = await until('archive lag', async () => metric(await (await fetch(`${s.url}/metrics`)).text(), 'lifeboat_archive_lag_seconds', 'memory'));
      expect(lag).toBeLessThan(10);
      const text = await (await fetch(`${s.url}/metrics`)).text();
      expect(metric(text, 'lifeboat_archive_up', 'memory')).toBe(1);
      expect(metric(text, 'lifeboat_rpo_seconds', 'memory')).toBeLessThan(10);
      // The replicator dies: the daemon starts it again.
      const pid = Number(execFileSync('pgrep', ['-f', `sqlite replicate ${dir}/memory.db`]).toString().trim().split('\n')[0]);
      process.kill(pid, 'SIGKILL');
      await until('a restart', async () => ((metric(await (await fetch(`${s.url}/metrics`)).text(), 'lifeboat_archive_restarts', 'memory') ?? 0) >= 1 ? true : undefined));
      await until('replication up again', async () => (metric(await (await fetch(`${s.url}/metrics`)).text(), 'lifeboat_archive_up', 'memory') === 1 ? true : undefined));
      db.prepare('INSERT INTO m (v) VALUES (?)').run('after the restart');
      // A backup and a drill through the API, for the runbook.
      const started = (await (await api('/api/v1/sources/uploads/backup', { method: 'POST' })).json()) as { id: string };
      await until('the backup', async () => {
        const j = (await (await api(`/api/v1/jobs/${started.id}`)).json()) as { status: string };
        return j.status === 'running' ? undefined : j;
      }).then((j) => expect(j).toMatchObject({ status: 'succeeded' }));
      const drills = (await (await api('/api/v1/drills', { method: 'POST', body: JSON.stringify({ source: 'memory' }) })).json()) as { jobs: Array<{ id: string }> };
      const drill = await until('the drill', async () => {
        const j = (await (await api(`/api/v1/jobs/${drills.jobs[0]?.id}`)).json()) as { status: string; error: string | null };
        return j.status === 'running' ? undefined : j;
      });
      expect(drill.status, drill.error ?? '').toBe('succeeded');
    } finally {
      s.child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => s.child.on('exit', r));
      expect(code, s.stderr()).toBe(0);
      db.close();
    }
    expect(s.stderr()).toContain('stopping');
    // Nothing left running: the replicator stopped with the daemon.
    expect(() => execFileSync('pgrep', ['-f', `sqlite replicate ${dir}/memory.db`])).toThrow();

    const rb = await runCli(['--config', file, 'runbook']);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stdout).toMatch(/^# Disaster-recovery runbook/);
    expect(rb.stdout).toContain(`lifeboat --config ${file} -r main sqlite restore memory --output ${dir}/memory.db.restored --time`);
    expect(rb.stdout).toContain(`lifeboat --config ${file} -r main restore latest --source uploads --target /var/tmp/restore-uploads`);
    expect(rb.stdout).toMatch(/\| memory \| sqlite \(continuous\) \| main \| 5\.0 s \| 2\.0 min \|/);
    expect(rb.stdout).toMatch(/- Last drill: \S+, passed; measured RTO [0-9.]+ s — within target/);
    expect(rb.stdout).toContain(`local or mounted disk \`${dir}/repo\``);
    // The restore command it gives works, as written.
    const cmd = /lifeboat --config \S+ -r main sqlite restore memory --output (\S+) --time \S+/.exec(rb.stdout) as RegExpExecArray;
    const restored = await runCli(['--config', file, '-r', 'main', 'sqlite', 'restore', 'memory', '--output', cmd[1] as string, '--latest'], { LIFEBOAT_PASSWORD: undefined });
    expect(restored.code, restored.stderr).toBe(0);
    const copy = new Database(cmd[1] as string, { readonly: true });
    expect(copy.prepare('SELECT v FROM m ORDER BY id').all()).toEqual([{ v: 'hello' }, { v: 'after the restart' }]);
    copy.close();
  });

  it('refuses a port that is taken, in one line', async () => {
    const dir = tmpdir('lb-serve-');
    const blocker = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const file = write(dir, `repositories:\n  main:\n    stores: [${dir}/repo]\nserver:\n  listen: 127.0.0.1:${port}\n  state_dir: state\n`);
    try {
      expectError(await runCli(['--config', file, 'serve']), 2, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
    } finally {
      blocker.close();
    }
  });
});
