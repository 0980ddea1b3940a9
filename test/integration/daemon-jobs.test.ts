/**
 * The job protocol end to end (docs/daemon.md, "The job protocol"): a real daemon runs
 * real `lifeboat job` children, and the API reports a failed job's exact error code,
 * message and hint — the ones a person gets running the job's logged command by hand,
 * also for codes that share their exit status with another code. A child that breaks
 * the protocol, or is killed mid-job, fails its own job with a code of its own, and the
 * daemon goes on serving and running the next job.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/errors.js';
import type { JobRow } from '../../src/daemon/catalog.js';
import { MAX_EVENT_BYTES } from '../../src/daemon/job-protocol.js';
import { ROOT, cleanupTmp, runCli } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { waitUntil } from '../pg-streamer.js';

afterAll(() => cleanupTmp());

/** Starts a backup of `source` through the API and returns the finished job as GET /api/v1/jobs/:id shows it. */
async function backupJob(t: TestDaemon, source = 'docs'): Promise<JobRow> {
  const r = await t.daemon.app.inject({ method: 'POST', url: `/api/v1/sources/${source}/backup`, headers: t.auth('operator') });
  expect(r.statusCode, r.body).toBe(202);
  const id = (r.json() as JobRow).id;
  await t.daemon.runner.wait(id);
  const got = await t.daemon.app.inject({ method: 'GET', url: `/api/v1/jobs/${id}`, headers: t.auth('viewer') });
  expect(got.statusCode, got.body).toBe(200);
  return got.json() as JobRow;
}

/** The job's first log line is the equivalent command: run it by hand and read what it says. */
async function byHand(t: TestDaemon, job: JobRow): Promise<{ exit: number; message: string; hint: string | null }> {
  const command = t.daemon.catalog.log(job.id).find((l) => l.stream === 'daemon')?.line ?? '';
  expect(command).toMatch(/^lifeboat --repo main backup /);
  const r = await runCli(['--config', path.join(t.dir, 'lifeboat.yaml'), ...command.split(' ').slice(1)], { LIFEBOAT_PASSWORD: undefined });
  const lines = r.stderr.split('\n');
  const at = lines.findIndex((l) => l.startsWith('lifeboat: '));
  expect(at, r.stderr).toBeGreaterThanOrEqual(0);
  const hint = /^ {2}hint: (.*)$/.exec(lines[at + 1] ?? '')?.[1];
  return { exit: r.code, message: (lines[at] as string).slice('lifeboat: '.length), hint: hint ?? null };
}

/** The first code of the error table with that exit status: what the daemon used to report. */
const firstWithExit = (exit: number) => Object.entries(ERROR_TABLE).find(([, info]) => info.exit === exit)?.[0];

/** This process's `lifeboat job` children, by pid. */
function jobChildren(): number[] {
  const pids: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
      // node ENTRY job -- COMMAND…
      if (ppid === process.pid && readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[2] === 'job') pids.push(Number(pid));
    } catch {
      // gone already
    }
  }
  return pids;
}

describe('a failed job reports its exact error through the API', () => {
  it('WRONG_PASSWORD: the repository password file is wrong', async () => {
    const t = await testDaemon();
    writeFileSync(path.join(t.dir, 'pass'), 'not-the-password\n');
    const job = await backupJob(t);
    const hand = await byHand(t, job);
    expect(hand.exit).toBe(ERROR_TABLE.WRONG_PASSWORD.exit);
    expect(job).toMatchObject({ status: 'failed', error_code: 'WRONG_PASSWORD', error: hand.message, error_hint: hand.hint, exit_code: hand.exit });
    expect(job.error).toMatch(/password/);
    expect(job.error_hint).toMatch(/password-file/);
  });

  it('CONFIG_INVALID, whose exit status USAGE shares: lifeboat.yaml broken after the daemon read it', async () => {
    const t = await testDaemon();
    const file = path.join(t.dir, 'lifeboat.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('retention: { keep_last: 2 }', 'retention: { keep_lots: 2 }'));
    const job = await backupJob(t);
    const hand = await byHand(t, job);
    expect(job).toMatchObject({ status: 'failed', error_code: 'CONFIG_INVALID', error: hand.message, error_hint: hand.hint, exit_code: hand.exit });
    // The message names the file, line and key.
    expect(job.error).toContain('lifeboat.yaml');
    expect(job.error).toMatch(/keep_lots/);
    expect(job.error_hint).toBeTruthy();
    expect(firstWithExit(job.exit_code as number)).toBe('USAGE');
  });

  it('UNSAFE_PATH, whose exit status CORRUPT shares: a directory of the repository is a symlink', async () => {
    const t = await testDaemon();
    const repoTmp = path.join(t.dir, 'repo', 'tmp');
    const elsewhere = path.join(t.dir, 'elsewhere');
    mkdirSync(elsewhere);
    rmSync(repoTmp, { recursive: true, force: true });
    symlinkSync(elsewhere, repoTmp);
    const job = await backupJob(t);
    const hand = await byHand(t, job);
    expect(job).toMatchObject({ status: 'failed', error_code: 'UNSAFE_PATH', error: hand.message, error_hint: hand.hint, exit_code: hand.exit });
    expect(job.error).toMatch(/tmp\/ is a symlink/);
    expect(job.error_hint).toContain(repoTmp);
    expect(firstWithExit(job.exit_code as number)).toBe('CORRUPT');
  });

  it("NOT_FOUND before any process starts: a source's password file gone since the daemon read its config; the daemon serves on", async () => {
    // The password is read for the child's environment, in the daemon: that once threw
    // out of an un-awaited promise and ended the whole daemon (exit 1, a stack trace),
    // leaving the job 'running' until the next start.
    const t = await testDaemon({ extraSources: '  cache:\n    kind: redis\n    url: redis://127.0.0.1:1\n    password_file: $DIR/redis.pass' });
    const job = await backupJob(t, 'cache');
    expect(job).toMatchObject({ status: 'failed', error_code: 'NOT_FOUND', exit_code: ERROR_TABLE.NOT_FOUND.exit });
    expect(job.error).toContain(path.join(t.dir, 'redis.pass'));
    expect(job.error_hint).toMatch(/password_file/);
    expect(t.daemon.runner.isRunning('backup:cache')).toBe(false);
    // Once the file is there the same job runs again (it reaches Redis's closed port).
    writeFileSync(path.join(t.dir, 'redis.pass'), 'pw\n', { mode: 0o600 });
    const again = await backupJob(t, 'cache');
    expect(again.error_code).not.toBe('NOT_FOUND');
    expect(await backupJob(t)).toMatchObject({ status: 'succeeded' });
  });

  it('a catalog that refuses a job\'s end (a full disk under the state directory): the job is heard as it ended, the daemon is not ready until the end is written, then it is written whole; the daemon serves on', async () => {
    const t = await testDaemon();
    const catalog = t.daemon.catalog;
    const updateJob = catalog.updateJob.bind(catalog);
    const recordBackup = catalog.recordBackup.bind(catalog);
    let full = true;
    let backupsFull = false;
    catalog.updateJob = ((id: string, patch: Parameters<typeof updateJob>[1]) => {
      if (full && patch.status !== undefined) throw new Error('SQLITE_FULL: database or disk is full');
      return updateJob(id, patch);
    }) as typeof catalog.updateJob;
    catalog.recordBackup = ((row: Parameters<typeof recordBackup>[0]) => {
      if (backupsFull) throw new Error('SQLITE_FULL: database or disk is full');
      return recordBackup(row);
    }) as typeof catalog.recordBackup;
    t.daemon.start(); // for its readiness
    const ready = async () => (await t.daemon.app.inject({ method: 'GET', url: '/health/ready' })).statusCode;
    expect(await ready()).toBe(200);
    try {
      // 1. The job's row cannot be written: its waiters, the API and the metrics hear
      //    that it succeeded (the backup was made), though the database still says
      //    "running", and the daemon is not ready.
      const r = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers: t.auth('operator') });
      expect(r.statusCode, r.body).toBe(202);
      const id = (r.json() as JobRow).id;
      const row = await t.daemon.runner.wait(id);
      expect(row.status).toBe('succeeded');
      const snapshot = (row.result as { id: string }).id;
      expect(snapshot).toMatch(/^[0-9a-f]{64}$/);
      expect(t.daemon.runner.isRunning('backup:docs')).toBe(false);
      expect((t.daemon.catalog.db.prepare('SELECT status FROM jobs WHERE id = ?').get(id) as { status: string }).status).toBe('running');
      expect(t.daemon.catalog.job(id)?.status).toBe('succeeded');
      const api = async (url: string) => (await t.daemon.app.inject({ method: 'GET', url, headers: t.auth('operator') })).json() as unknown;
      expect(await api(`/api/v1/jobs/${id}`)).toMatchObject({ id, status: 'succeeded' });
      expect(await api('/api/v1/jobs?status=running')).toEqual([]);
      expect(await api('/api/v1/jobs?status=succeeded')).toContainEqual(expect.objectContaining({ id }));
      expect(await ready()).toBe(503);
      const metrics = (await t.daemon.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/lifeboat_jobs_total\{[^}]*status="succeeded"[^}]*\} 1/);
      expect(metrics).toMatch(/^lifeboat_jobs_running 0$/m);
      expect(await t.daemon.runner.wait(id)).toMatchObject({ status: 'succeeded' });
      // Once the catalog takes writes again: the whole end, as it was, and the backup in the catalog's list.
      full = false;
      expect(await ready()).toBe(200);
      expect(t.daemon.catalog.job(id)).toMatchObject({ status: 'succeeded', error: null, exit_code: 0 });
      expect(t.daemon.catalog.backups('docs', 1)[0]?.snapshot_id).toBe(snapshot);
      expect(t.daemon.catalog.log(id).map((l) => l.line)).toContainEqual(expect.stringMatching(/^recorded late: .*SQLITE_FULL/));

      // 2. The row is written but the backup list is not: the row stays succeeded, the
      //    list gets the snapshot once it can.
      writeFileSync(path.join(t.data, 'b.txt'), 'second file\n');
      backupsFull = true;
      const second = await backupJob(t);
      expect(second.status).toBe('succeeded');
      const snapshot2 = (second.result as { id: string }).id;
      expect(t.daemon.catalog.job(second.id)?.status).toBe('succeeded');
      expect(t.daemon.catalog.backups('docs', 1)[0]?.snapshot_id).toBe(snapshot);
      expect(await ready()).toBe(503);
      backupsFull = false;
      expect(await ready()).toBe(200);
      expect(t.daemon.catalog.job(second.id)?.status).toBe('succeeded');
      expect(t.daemon.catalog.backups('docs', 1)[0]?.snapshot_id).toBe(snapshot2);
      expect(await backupJob(t)).toMatchObject({ status: 'succeeded' });
    } finally {
      await t.daemon.stop();
    }
  });
});

describe('a backup that ends PARTIAL', () => {
  it('counts as succeeded with its snapshot recorded, its warning in the log', async () => {
    const t = await testDaemon({ extraSources: '  half:\n    kind: files\n    paths: [$DIR/data, $DIR/missing]' });
    const job = await backupJob(t, 'half');
    expect(job).toMatchObject({ status: 'succeeded', exit_code: ERROR_TABLE.PARTIAL.exit, error: null, error_code: null, error_hint: null });
    const id = (job.result as { id: string }).id;
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(t.daemon.catalog.backups('half', 1)[0]?.snapshot_id).toBe(id);
    expect(t.daemon.catalog.log(job.id).map((l) => l.line)).toContainEqual(expect.stringMatching(/^warning: .*missing/));
    // Its progress came as events (the first is sent at once), with the daemon's elapsed time.
    expect(job.progress).toMatchObject({ phase: expect.any(String), files: expect.any(Number), bytes: expect.any(Number), elapsed_seconds: expect.any(Number) });
    // The last event is never dropped: the record ends at 100% with the totals done (docs/progress.md).
    expect(job.progress).toMatchObject({ phase: 'done', percent: 100, eta_seconds: 0, total_files: expect.any(Number), rate: expect.any(Number) });
    // The child's first event names it in the log.
    expect(t.daemon.catalog.log(job.id).map((l) => l.line)).toContainEqual(expect.stringMatching(new RegExp(`^lifeboat \\S+ job ${job.id}, pid \\d+$`)));
  });
});

describe('a job child that breaks the protocol or dies', () => {
  const BROKEN = path.join(ROOT, 'test', 'fixtures', 'job-child-broken.mjs');

  for (const [mode, why] of [
    ['garbage', /not JSON: "this is not an event"/],
    ['oversized', new RegExp(`an event line longer than ${MAX_EVENT_BYTES} bytes`)],
  ] as const) {
    it(`fails the job of a child sending ${mode} with JOB_PROTOCOL, stops the child, and keeps serving`, async () => {
      const t = await testDaemon({ daemon: { jobEntry: BROKEN } });
      const modeFile = path.join(t.dir, 'child-mode');
      process.env.LB_BROKEN_CHILD = modeFile;
      try {
        writeFileSync(modeFile, mode);
        const job = await backupJob(t);
        expect(job).toMatchObject({ status: 'failed', error_code: 'JOB_PROTOCOL' });
        expect(job.error).toMatch(why);
        expect(job.error_hint).toMatch(/same version/);
        // The child was stopped (it would wait forever), by SIGKILL.
        expect(job.exit_code).toBe(137);
        expect(jobChildren()).toEqual([]);
        // The daemon serves on and runs the next job, by the real lifeboat.
        const live = await t.daemon.app.inject({ method: 'GET', url: '/health/live' });
        expect(live.statusCode).toBe(200);
        writeFileSync(modeFile, 'real');
        const next = await backupJob(t);
        expect(next.status, next.error ?? '').toBe('succeeded');
        expect((next.result as { id?: string }).id).toMatch(/^[0-9a-f]{64}$/);
      } finally {
        delete process.env.LB_BROKEN_CHILD;
      }
    });
  }

  it('fails a job whose child is killed mid-job (SIGKILL) with JOB_CRASHED, and runs the next job', async () => {
    // A PostgreSQL "server" that accepts and never answers: the job waits there, mid-job, until killed.
    const held: net.Socket[] = [];
    let connected = 0;
    const server = net.createServer((s) => {
      held.push(s);
      connected++;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const t = await testDaemon({ extraSources: `  stuck:\n    kind: postgres\n    dsn: postgresql://lb@127.0.0.1:${port}/postgres` });
      const r = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/stuck/backup', headers: t.auth('operator') });
      expect(r.statusCode, r.body).toBe(202);
      const id = (r.json() as JobRow).id;
      await waitUntil('the job to connect to the silent server', () => connected > 0, 60_000, 20);
      const [pid, ...others] = jobChildren();
      expect(others).toEqual([]);
      process.kill(pid as number, 'SIGKILL');
      await t.daemon.runner.wait(id);
      const job = (await t.daemon.app.inject({ method: 'GET', url: `/api/v1/jobs/${id}`, headers: t.auth('viewer') })).json() as JobRow;
      expect(job).toMatchObject({ status: 'failed', error_code: 'JOB_CRASHED', error: "the job's process was killed by SIGKILL", exit_code: 137 });
      expect(job.error_hint).toMatch(/kill -9/);
      const next = await backupJob(t);
      expect(next.status, next.error ?? '').toBe('succeeded');
    } finally {
      for (const s of held) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
