/**
 * The scheduler on a fake clock (fires on time, in its time zone, with jitter, one
 * catch-up after downtime), and a daemon whose scheduled jobs run for real: no
 * overlapping runs, a failure raises the failure metric and sends webhooks (JSON and
 * Slack) to a local receiver with retries, and recovery is notified too; a source that
 * fails on every run is one incident: one webhook, reminders every `repeat`, one recovery.
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';
import { testDaemon, webhookReceiver } from '../daemon-helpers.js';
import { Catalog } from '../../src/daemon/catalog.js';
import { Scheduler, type Clock } from '../../src/daemon/scheduler.js';
import type { ScheduleConfig } from '../../src/config/config.js';
import type { JobRow } from '../../src/daemon/catalog.js';

/** A clock tests move by hand; timers fire in time order as it passes them. */
class FakeClock implements Clock {
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private seq = 0;
  constructor(private t: number) {}
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== handle);
  }
  set(t: number): void {
    this.t = t;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

const schedule = (s: Partial<ScheduleConfig> & { cron: string }): ScheduleConfig => ({ name: 'every5', run: 'backup', sources: ['docs'], groups: [], jitterSeconds: 0, catchUp: true, ...s });

afterAll(() => cleanupTmp());

describe('scheduler on a fake clock', () => {
  const fires: Array<{ name: string; at: string; reason: string; now: string }> = [];
  const make = (schedules: ScheduleConfig[], clock: FakeClock, catalog = new Catalog(tmpdir('lb-sched-')), random = () => 0) =>
    new Scheduler(schedules, catalog, (s, at, reason) => fires.push({ name: s.name, at: at.toISOString(), reason, now: new Date(clock.now()).toISOString() }), clock, random);

  it('fires on time, and again at the next time', () => {
    fires.length = 0;
    const clock = new FakeClock(Date.parse('2026-11-21T12:03:00Z'));
    const s = make([schedule({ cron: '*/5 * * * *' })], clock);
    s.start();
    clock.advance(119_000);
    expect(fires).toEqual([]);
    clock.advance(1000);
    expect(fires).toEqual([{ name: 'every5', at: '2026-11-21T12:05:00.000Z', reason: 'schedule', now: '2026-11-21T12:05:00.000Z' }]);
    clock.advance(5 * 60_000);
    expect(fires.map((f) => f.now)).toEqual(['2026-11-21T12:05:00.000Z', '2026-11-21T12:10:00.000Z']);
    s.stop();
    clock.advance(60 * 60_000);
    expect(fires).toHaveLength(2);
  });

  it('reads the cron expression in its time zone, and waits across days', () => {
    fires.length = 0;
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:00Z'));
    const s = make([schedule({ name: 'nightly', cron: '0 2 * * *', timezone: 'Europe/Berlin' })], clock);
    s.start();
    clock.advance(3 * 24 * 3600_000);
    // 02:00 in Berlin is 01:00 UTC in November.
    expect(fires.map((f) => f.now)).toEqual(['2026-11-22T01:00:00.000Z', '2026-11-23T01:00:00.000Z', '2026-11-24T01:00:00.000Z']);
    s.stop();
  });

  it('adds the jitter after the fire time', () => {
    fires.length = 0;
    const clock = new FakeClock(Date.parse('2026-11-21T12:03:00Z'));
    const s = make([schedule({ cron: '*/5 * * * *', jitterSeconds: 60 })], clock, undefined, () => 0.5);
    s.start();
    clock.advance(2 * 60_000 + 29_000);
    expect(fires).toEqual([]);
    clock.advance(1000);
    expect(fires[0]).toMatchObject({ at: '2026-11-21T12:05:00.000Z', now: '2026-11-21T12:05:30.000Z' });
    s.stop();
  });

  it('catches up once after downtime, however many runs were missed', () => {
    fires.length = 0;
    const catalog = new Catalog(tmpdir('lb-sched-'));
    const first = new FakeClock(Date.parse('2026-11-20T00:30:00Z'));
    const a = make([schedule({ name: 'hourly', cron: '0 * * * *' })], first, catalog);
    a.start();
    first.advance(30 * 60_000);
    expect(fires.map((f) => f.reason)).toEqual(['schedule']);
    a.stop();
    // Down for a day and a half: 35 fire times passed.
    const later = new FakeClock(Date.parse('2026-11-21T12:20:00Z'));
    const b = make([schedule({ name: 'hourly', cron: '0 * * * *' })], later, catalog);
    b.start();
    expect(fires.slice(1)).toEqual([{ name: 'hourly', at: '2026-11-20T02:00:00.000Z', reason: 'catch-up', now: '2026-11-21T12:20:00.000Z' }]);
    later.advance(40 * 60_000);
    expect(fires.slice(2).map((f) => [f.reason, f.now])).toEqual([['schedule', '2026-11-21T13:00:00.000Z']]);
    b.stop();
    // catch_up: false skips the missed run.
    fires.length = 0;
    const c = make([schedule({ name: 'hourly', cron: '0 * * * *', catchUp: false })], new FakeClock(Date.parse('2026-11-22T12:20:00Z')), catalog);
    c.start();
    expect(fires).toEqual([]);
    c.stop();
  });
});

describe('scheduled jobs in the daemon', () => {
  it('runs a scheduled backup, never two at once, and reports a failure by metric and webhook until it recovers', async () => {
    let failNext = 1; // the first delivery to /json gets a 500: it must be retried
    const receiver = await webhookReceiver((p) => (p === '/json' && failNext-- > 0 ? 500 : 204));
    const received = receiver.requests;
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:30Z'));
    const dir = tmpdir('lb-broken-');
    const missing = path.join(dir, 'not-yet');
    const t = await testDaemon({
      extraSources: `  broken:\n    kind: files\n    paths: [${missing}]`,
      extra: [
        'schedules:',
        '  minutely:',
        '    run: backup',
        '    sources: [docs]',
        '    cron: "* * * * *"',
        '  broken-hourly:',
        '    run: backup',
        '    sources: [broken]',
        '    cron: "0 * * * *"',
        'notifications:',
        '  ops:',
        `    url: ${receiver.url}/json`,
        '    retries: 3',
        '  chat:',
        `    url: ${receiver.url}/slack`,
        '    format: slack',
        '    on: [failure, recovery]',
      ].join('\n'),
      daemon: { clock, notifyRetryDelayMs: 50 },
    });
    try {
      t.daemon.start();
      // 12:01:00 — the minutely backup starts; at 12:02:00 it still runs (the fake
      // clock moves in no time), so that run is skipped and recorded as such.
      clock.advance(30_000);
      const running = t.daemon.catalog.jobs({ source: 'docs', kind: 'backup' });
      expect(running.map((j) => [j.status, j.trigger])).toEqual([['running', 'schedule:minutely']]);
      clock.advance(60_000);
      const two = t.daemon.catalog.jobs({ source: 'docs', kind: 'backup' });
      expect(two.map((j) => j.status)).toEqual(['skipped', 'running']);
      expect(two[0]?.error).toMatch(/previous backup still running/);
      const first = (await t.daemon.runner.wait((running[0] as JobRow).id)) as JobRow;
      expect(first.status, first.error ?? '').toBe('succeeded');
      // The next minute runs again, as the previous run has finished.
      clock.advance(60_000);
      const third = t.daemon.catalog.jobs({ source: 'docs', kind: 'backup', status: 'running' })[0] as JobRow;
      expect(third.trigger).toBe('schedule:minutely');
      await t.daemon.runner.wait(third.id);

      // 13:00 — the broken source's hourly backup fails.
      clock.advance(57 * 60_000);
      const failedJob = t.daemon.catalog.jobs({ source: 'broken' })[0] as JobRow;
      const failed = (await t.daemon.runner.wait(failedJob.id)) as JobRow;
      expect(failed).toMatchObject({ status: 'failed', error_code: 'FAILED', error: 'none of the given paths could be read; no snapshot was saved' });
      expect(t.daemon.catalog.log(failed.id).map((l) => l.line).join('\n')).toContain(`no such file or directory, lstat '${missing}'`);
      await t.daemon.notifier.idle();
      const metrics = await t.daemon.metrics.registry.metrics();
      expect(metrics).toMatch(/^lifeboat_job_failures_total\{kind="backup",source="broken"\} 1$/m);
      // (Every minute of the hour the fake clock skipped over found a minutely backup still running.)
      expect(metrics).toMatch(/^lifeboat_jobs_total\{kind="backup",source="docs",status="skipped"\} [1-9]\d*$/m);
      const json = received.filter((r) => r.path === '/json');
      expect(json).toHaveLength(1); // delivered once, on the retry after the 500
      expect(json[0]?.body).toMatchObject({ event: 'failure', source: 'broken', repository: 'main', job: { id: failed.id, kind: 'backup', status: 'failed' } });
      expect(String(json[0]?.body.message)).toMatch(/^backup of broken failed: /);
      const slack = received.filter((r) => r.path === '/slack');
      expect(slack[0]?.body).toEqual({ text: expect.stringMatching(/^:red_circle: Lifeboat: backup of broken failed: /) });

      // The directory appears; the next run succeeds and recovery is announced.
      mkdirSync(missing);
      writeFileSync(path.join(missing, 'x'), 'x');
      clock.advance(60 * 60_000);
      const again = t.daemon.catalog.jobs({ source: 'broken' })[0] as JobRow;
      expect((await t.daemon.runner.wait(again.id))?.status).toBe('succeeded');
      await t.daemon.notifier.idle();
      expect(received.filter((r) => r.path === '/json').map((r) => r.body.event)).toEqual(['failure', 'recovery']);
      expect(received.filter((r) => r.path === '/slack').map((r) => String((r.body as { text: string }).text).split(' ')[0])).toEqual([':red_circle:', ':large_green_circle:']);
      expect(await t.daemon.metrics.registry.metrics()).toMatch(/^lifeboat_notifications_failed_total\{notification="ops"\} 0$/m);
    } finally {
      // Whatever the minutely schedule started last is left to finish before stopping.
      for (const j of t.daemon.catalog.jobs({ status: 'running' })) await t.daemon.runner.wait(j.id);
      await t.daemon.stop();
      await receiver.close();
    }
  });

  it('sends one notification per incident, a reminder every `repeat`, and one on recovery', async () => {
    const receiver = await webhookReceiver<{ event: string; message: string; details: Record<string, unknown> }>();
    const received = receiver.bodies;
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:30Z'));
    const missing = path.join(tmpdir('lb-incident-'), 'not-yet');
    const t = await testDaemon({
      extraSources: `  broken:\n    kind: files\n    paths: [${missing}]`,
      extra: ['schedules:', '  minutely:', '    run: backup', '    sources: [broken]', '    cron: "* * * * *"', 'notifications:', '  ops:', `    url: ${receiver.url}/`, '    repeat: 5min'].join('\n'),
      daemon: { clock },
    });
    const runOnce = async (): Promise<JobRow> => {
      clock.advance(60_000);
      const job = t.daemon.catalog.jobs({ source: 'broken', kind: 'backup' })[0] as JobRow;
      return (await t.daemon.runner.wait(job.id)) as JobRow;
    };
    try {
      t.daemon.start();
      // Eleven failed runs in eleven minutes: one incident, reminded at 5 and 10 minutes.
      for (let i = 0; i < 11; i++) expect((await runOnce()).status).toBe('failed');
      await t.daemon.notifier.idle();
      expect(received.map((r) => [r.event, r.details.reminder ?? false])).toEqual([
        ['failure', false],
        ['failure', true],
        ['failure', true],
      ]);
      expect(received[1]?.message).toMatch(/^still unresolved since 2026-11-21T12:01:\d\d\.\d{3}Z \(\d+ times\): backup of broken failed: /);
      mkdirSync(missing);
      expect((await runOnce()).status).toBe('succeeded');
      expect((await runOnce()).status).toBe('succeeded');
      await t.daemon.notifier.idle();
      expect(received.map((r) => r.event)).toEqual(['failure', 'failure', 'failure', 'recovery']);
      expect(received[3]?.details).toMatchObject({ occurrences: 11 });
    } finally {
      for (const j of t.daemon.catalog.jobs({ status: 'running' })) await t.daemon.runner.wait(j.id);
      await t.daemon.stop();
      await receiver.close();
    }
  });

  it('reports a destination left out (an emptied second copy) by job, metric and notification until every destination is reached again', async () => {
    const receiver = await webhookReceiver<{ event: string; message: string; repository: string | null }>();
    const second = path.join(tmpdir('lb-second-'), 'repo');
    mkdirSync(second); // empty: a replaced bucket, not a copy of the repository
    const t = await testDaemon({
      moreStores: { paths: [second], writeQuorum: 1 },
      extra: ['notifications:', '  ops:', `    url: ${receiver.url}/`].join('\n'),
    });
    const backupNow = async () => (await t.daemon.runner.wait(t.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' }).id)) as JobRow;
    try {
      // Stored on the first destination, so it counts; but not as if all were well.
      const degraded = await backupNow();
      expect(degraded).toMatchObject({ status: 'succeeded', error_code: 'DEGRADED', exit_code: 28 });
      expect(degraded.error).toMatch(/was left out: holds no repository/);
      expect(await t.daemon.metrics.registry.metrics()).toMatch(/^lifeboat_destination_left_out_total\{repository="main"\} 1$/m);
      await t.daemon.notifier.idle();
      expect(receiver.bodies.map((b) => [b.event, b.repository])).toEqual([['failure', 'main']]);
      expect(receiver.bodies[0]?.message).toMatch(/a destination of repository main was left out/);
      // The second copy made whole (as `repair` would): the next backup reaches both.
      cpSync(path.join(t.dir, 'repo'), second, { recursive: true });
      const whole = await backupNow();
      expect(whole).toMatchObject({ status: 'succeeded', error_code: null, exit_code: 0 });
      await t.daemon.notifier.idle();
      expect(receiver.bodies.map((b) => b.event)).toEqual(['failure', 'recovery']);
      expect(await t.daemon.metrics.registry.metrics()).toMatch(/^lifeboat_destination_left_out_total\{repository="main"\} 1$/m);
    } finally {
      await t.daemon.stop();
      await receiver.close();
    }
  });

  it('a job the last daemon left running is failed on start, counted and notified (the scheduler does not run it again)', async () => {
    const receiver = await webhookReceiver<{ event: string; message: string; job: { id: string; status: string } | null }>();
    const t = await testDaemon({ extra: ['notifications:', '  ops:', `    url: ${receiver.url}/`].join('\n') });
    try {
      // What a daemon stopped in the middle of a scheduled check leaves in its catalog.
      const left = t.daemon.catalog.createJob({ kind: 'check', repository: 'main', trigger: 'schedule:weekly', status: 'running' });
      t.daemon.start();
      expect(t.daemon.catalog.job(left.id)).toMatchObject({ status: 'failed', error_code: 'INTERRUPTED' });
      expect(await t.daemon.metrics.registry.metrics()).toMatch(/^lifeboat_job_failures_total\{kind="check",source="main"\} 1$/m);
      await t.daemon.notifier.idle();
      expect(receiver.bodies.map((b) => [b.event, b.job?.id, b.job?.status])).toEqual([['failure', left.id, 'failed']]);
      expect(receiver.bodies[0]?.message).toMatch(/^check of main failed: the daemon stopped while the job ran/);
    } finally {
      await t.daemon.stop();
      await receiver.close();
    }
  });

  it('drops finished jobs older than keep_jobs from the catalog', async () => {
    const clock = new FakeClock(Date.now());
    const t = await testDaemon({ extra: 'server:\n  listen: 127.0.0.1:0\n  state_dir: state\n  keep_jobs: 1d', daemon: { clock } });
    try {
      const job = t.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' });
      await t.daemon.runner.wait(job.id);
      t.daemon.start();
      clock.advance(60_000);
      expect(t.daemon.catalog.job(job.id)?.status).toBe('succeeded');
      expect(t.daemon.catalog.log(job.id).length).toBeGreaterThan(0);
      clock.advance(2 * 86400_000);
      expect(t.daemon.catalog.job(job.id)).toBeUndefined();
      expect(t.daemon.catalog.log(job.id)).toEqual([]);
      // What the repository holds is not a job: the backup stays known.
      expect(t.daemon.catalog.backups('docs')).toHaveLength(1);
    } finally {
      await t.daemon.stop();
    }
  });

  it('notifies an RPO breach and its recovery', async () => {
    const receiver = await webhookReceiver();
    const received = receiver.bodies;
    const clock = new FakeClock(Date.now());
    const t = await testDaemon({
      extra: ['notifications:', '  ops:', `    url: ${receiver.url}/`, '    on: [rpo_breach, recovery]'].join('\n'),
      daemon: { clock },
    });
    try {
      t.daemon.start();
      // No backup at all, an hour and a bit after start: over the 1 h target.
      clock.advance(3700_000);
      await t.daemon.notifier.idle();
      expect(received.map((r) => [r.event, r.source])).toEqual([['rpo_breach', 'docs']]);
      expect(String(received[0]?.message)).toMatch(/^RPO of docs is \d+ s, over its target of 3600 s$/);
      const job = t.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' });
      await t.daemon.runner.wait(job.id);
      // The fake clock is an hour ahead of the backup's real time: bring it back, then check.
      clock.set(Date.now());
      t.daemon.watchRpo();
      await t.daemon.notifier.idle();
      expect(received.map((r) => r.event)).toEqual(['rpo_breach', 'recovery']);
    } finally {
      await t.daemon.stop();
      await receiver.close();
    }
  });

  it('rotates the key epoch on schedule, and lifeboat_key_epoch_age_seconds shows the new epoch', async () => {
    const clock = new FakeClock(Date.parse('2026-12-31T23:59:30Z'));
    const t = await testDaemon({ extra: ['schedules:', '  quarterly-keys:', '    run: rotate', '    cron: "0 3 1 1,4,7,10 *"'].join('\n'), daemon: { clock } });
    try {
      const epochs = async () => JSON.parse((await runCli(['-r', path.join(t.dir, 'repo'), '--json', 'key', 'epochs'])).stdout) as { epochs: Array<{ id: string; current: boolean }> };
      const before = (await epochs()).epochs;
      expect(before).toHaveLength(1);
      t.daemon.start();
      expect(await t.daemon.metrics.registry.metrics()).not.toMatch(/^lifeboat_key_epoch_age_seconds\{/m);
      // 2027-01-01 03:00: the scheduled rotation starts a new epoch.
      clock.advance(Date.parse('2027-01-01T03:00:30Z') - clock.now());
      const rotate = t.daemon.catalog.jobs({ kind: 'rotate' }).find((j) => j.trigger === 'schedule:quarterly-keys') as JobRow;
      expect(rotate).toBeDefined();
      const done = (await t.daemon.runner.wait(rotate.id)) as JobRow;
      expect(done.status, done.error ?? '').toBe('succeeded');
      const after = (await epochs()).epochs;
      const current = after.find((e) => e.current);
      expect(after.map((e) => e.id)).toContain(before[0]?.id);
      expect(current?.id).not.toBe(before[0]?.id);
      expect((done.result as { keyEpoch?: { id: string } }).keyEpoch?.id).toBe(current?.id);
      // The epoch is seconds old (real time: the CLI made it just now).
      const age = /^lifeboat_key_epoch_age_seconds\{repository="main"\} (\S+)$/m.exec(await t.daemon.metrics.registry.metrics())?.[1];
      expect(Number(age)).toBeLessThan(600);
    } finally {
      await t.daemon.stop();
    }
  });
});
