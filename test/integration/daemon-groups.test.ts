/**
 * Consistency groups in the daemon, against a real repository and two SQLite members
 * an application connection keeps open in WAL mode, each replicated by the daemon: a capture started through the API
 * (a viewer refused, an operator allowed) runs as a `group backup` job, its point is
 * what the repository holds (read back by another route: `group points` from the CLI),
 * the group's state and metrics show the point, its hold and its age; a capture whose
 * freeze hangs fails with HOLD_EXCEEDED and is counted; a schedule fires a group
 * capture on a fake clock; a schedule naming a group wrongly is refused at its line.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { cleanupTmp, runCli } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { parseConfig } from '../../src/config/config.js';
import type { JobRow } from '../../src/daemon/catalog.js';
import type { Clock } from '../../src/daemon/scheduler.js';
import { runbook } from '../../src/daemon/runbook.js';
import { waitUntil } from '../pg-streamer.js';
import { shippedRules, TestPrometheus } from '../prometheus.js';

/** Members as a real group has them: each with its continuous log kept by the daemon (sqlite replicate). */
const SOURCES = ['  index: { kind: sqlite, path: $DIR/index.db, replicate: true }', '  meta: { kind: sqlite, path: $DIR/meta.db, replicate: true }'].join('\n');
/** max_hold 5 s for engram: two hook processes on a loaded 2-core machine; "stuck" sleeps far past its 100 ms. */
const GROUPS = [
  'groups:',
  '  engram: { members: [index, meta], freeze: [/bin/true], thaw: [/bin/true], max_hold: 5s }',
  '  stuck: { members: [index], freeze: [/bin/sleep, "10"], thaw: [/bin/true], max_hold: 100ms }',
  // docs is the helper's files source, with retention keep_last: 2.
  '  files: { members: [docs], max_hold: 5s }',
].join('\n');

const apps: Database.Database[] = [];
/** SQLite files in WAL mode with an application's connection open, as a live application keeps them. */
function liveSqlite(dir: string): void {
  for (const name of ['index', 'meta']) {
    const db = new Database(path.join(dir, `${name}.db`));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT)');
    db.prepare('INSERT INTO notes (body) VALUES (?)').run(`first row of ${name}`);
    apps.push(db);
  }
}

function metric(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

let t: TestDaemon;
let prometheus: TestPrometheus;
const call = (method: 'GET' | 'POST', url: string, role?: 'viewer' | 'operator' | 'admin'): Promise<LightMyRequestResponse> =>
  t.daemon.app.inject({ method, url, ...(role ? { headers: t.auth(role) } : {}) });

beforeAll(async () => {
  t = await testDaemon({ extraSources: SOURCES, extra: GROUPS });
  liveSqlite(t.dir);
  t.daemon.start();
});

afterAll(async () => {
  await prometheus?.stop();
  await t?.daemon.stop();
  for (const a of apps) a.close();
  cleanupTmp();
});

describe('group captures through the API', () => {
  let point: { id: string; time: string; hold_ms: number };

  it('lists the groups with their members before any point', async () => {
    const r = await call('GET', '/api/v1/groups', 'viewer');
    expect(r.statusCode, r.body).toBe(200);
    const engram = (r.json() as Array<Record<string, unknown>>).find((g) => g.name === 'engram');
    expect(engram).toMatchObject({ repository: 'main', hooks: true, max_hold_ms: 5000, last_point: null, points: 0, rpo_seconds: null, last_capture: null, failing: false });
    expect(engram?.members).toEqual([{ name: 'index', kind: 'sqlite' }, { name: 'meta', kind: 'sqlite' }]);
    expect((await call('GET', '/api/v1/groups/nope', 'viewer')).json().error.code).toBe('NOT_FOUND');
  });

  it('refuses a viewer and starts a capture for an operator, run as a group backup job', async () => {
    const refused = await call('POST', '/api/v1/groups/engram/backup', 'viewer');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe('PERMISSION');
    expect(t.daemon.catalog.jobs({ kind: 'group-backup' })).toEqual([]);
    const r = await call('POST', '/api/v1/groups/engram/backup', 'operator');
    expect(r.statusCode, r.body).toBe(202);
    const job = r.json() as JobRow;
    expect(job).toMatchObject({ kind: 'group-backup', source: 'engram', repository: 'main', actor: 'olga-operator', trigger: 'api', params: { group: 'engram' } });
    const done = await t.daemon.runner.wait(job.id);
    expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
    point = done.result as typeof point;
    const log = (await call('GET', `/api/v1/jobs/${job.id}/log`, 'viewer')).json() as Array<{ line: string }>;
    expect(log[0]?.line).toBe('lifeboat --repo main group backup engram');
    expect(t.daemon.catalog.auditLog(5).find((a) => a.path === '/api/v1/groups/engram/backup' && a.status_code === 202)).toMatchObject({ actor: 'olga-operator' });
  });

  it('shows the point the repository holds, with its hold and age', async () => {
    // Another route than the daemon's catalog: the CLI reads the repository itself.
    const cli = await runCli(['--config', path.join(t.dir, 'lifeboat.yaml'), 'group', 'points', 'engram', '--json']);
    expect(cli.code, cli.stderr).toBe(0);
    const stored = (JSON.parse(cli.stdout) as { points: Array<{ id: string; hold_ms: number; members: Array<{ name: string }> }> }).points;
    expect(stored.map((p) => p.id)).toEqual([point.id]);
    expect(stored[0]?.members.map((m) => m.name)).toEqual(['index', 'meta']);

    const points = (await call('GET', '/api/v1/groups/engram/points', 'viewer')).json() as { points: Array<{ id: string; hold_ms: number }>; unreadable: string[] };
    expect(points).toMatchObject({ group: 'engram', unreadable: [] });
    expect(points.points.map((p) => [p.id, p.hold_ms])).toEqual([[point.id, stored[0]?.hold_ms]]);

    const g = (await call('GET', '/api/v1/groups/engram', 'viewer')).json() as Record<string, unknown> & { rpo_seconds: number };
    expect(g).toMatchObject({ points: 1, failing: false, last_point: { id: point.id, time: point.time, hold_ms: point.hold_ms, max_hold_ms: 5000, frozen: true }, last_capture: { status: 'succeeded' } });
    const age = (Date.now() - Date.parse(point.time)) / 1000;
    expect(g.rpo_seconds).toBeGreaterThan(0);
    expect(g.rpo_seconds).toBeLessThanOrEqual(age + 1);

    const text = await t.daemon.metrics.render();
    expect(metric(text, 'lifeboat_group_hold_seconds', 'group="engram"')).toBeCloseTo(point.hold_ms / 1000, 6);
    expect(metric(text, 'lifeboat_group_max_hold_seconds', 'group="engram"')).toBe(5);
    expect(metric(text, 'lifeboat_group_last_point_timestamp_seconds', 'group="engram"')).toBe(Date.parse(point.time) / 1000);
    expect(metric(text, 'lifeboat_group_rpo_seconds', 'group="engram"')).toBeGreaterThan(0);
    expect(metric(text, 'dr_rpo_actual_seconds', 'group="engram"')).toBeGreaterThan(0);
    expect(metric(text, 'lifeboat_group_failing', 'group="engram"')).toBe(0);
    expect(metric(text, 'lifeboat_group_capture_failures_total', 'group="engram"')).toBe(0);
    // A group without a schedule has no interval; without a point, no age.
    expect(metric(text, 'lifeboat_group_schedule_interval_seconds', 'group="engram"')).toBeUndefined();
    expect(metric(text, 'lifeboat_group_rpo_seconds', 'group="stuck"')).toBeUndefined();
  });

  it('writes the group into the runbook with commands that run as printed', async () => {
    const text = runbook(t.config, { newestBackup: () => undefined, lastDrill: () => undefined, newestPoint: (g) => t.daemon.catalog.groupPoints(g, 1)[0] });
    const section = text.slice(text.indexOf('## Restore group `engram` to one moment'));
    expect(section).toContain(`Newest point: ${point.id} of ${point.time}`);
    const lines = section.split('\n').map((l) => l.trim());
    const mkdir = lines.find((l) => l.startsWith('mkdir -p ')) as string;
    expect(mkdir).toBe(`mkdir -p ${path.join(t.dir, 'engram')}`);
    const dry = lines.find((l) => l.includes(' group restore engram ')) as string;
    expect(dry).toMatch(/--dry-run$/);
    // As printed, with the moment filled in: the plan, and nothing written.
    mkdirSync(mkdir.slice('mkdir -p '.length), { recursive: true });
    const words = dry.replace("'YYYY-MM-DDTHH:MM:SSZ'", point.time).split(' ');
    expect(words[0]).toBe('lifeboat');
    const r = await runCli(words.slice(1));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(point.id);
    expect(readdirSync(path.join(t.dir, 'engram'))).toEqual([]);
  });

  it('restores the group to its point through the API: a viewer refused, a dry run writing nothing, one unusable target starting nothing', async () => {
    // Written after the point: a restore to the point must not have it.
    for (const a of apps.slice(0, 2)) a.prepare('INSERT INTO notes (body) VALUES (?)').run('after the point');
    const targets = { index: path.join(t.dir, 'g-index'), meta: path.join(t.dir, 'g-meta') };
    const post = (role: 'viewer' | 'operator', payload: Record<string, unknown>) => t.daemon.app.inject({ method: 'POST', url: '/api/v1/groups/engram/restore', headers: t.auth(role), payload });
    expect((await post('viewer', { point: point.id, targets })).statusCode).toBe(403);

    const dry = await post('operator', { point: point.id, targets, dry_run: true });
    expect(dry.statusCode, dry.body).toBe(200);
    const answer = dry.json() as { job: null; plan: { point: string; dry_run: boolean; plan: Array<{ member: string; kind: string; target: string }> } };
    expect(answer.job).toBeNull();
    expect(answer.plan).toMatchObject({ point: point.id, dry_run: true });
    expect(answer.plan.plan.map((m) => [m.member, m.kind, m.target])).toEqual([['index', 'sqlite', targets.index], ['meta', 'sqlite', targets.meta]]);
    expect(existsSync(targets.index) || existsSync(targets.meta)).toBe(false);

    // One member's target holds data: the whole restore is refused and nothing starts or is written.
    mkdirSync(targets.meta);
    writeFileSync(path.join(targets.meta, 'keep'), 'data\n');
    const refused = await post('operator', { point: point.id, targets });
    expect(refused.statusCode, refused.body).toBe(409);
    expect(refused.json().error).toMatchObject({ code: 'TARGET_EXISTS', message: expect.stringMatching(/member "meta"/) });
    expect(t.daemon.catalog.jobs({ kind: 'group-restore' })).toEqual([]);
    expect(existsSync(targets.index)).toBe(false);
    rmSync(targets.meta, { recursive: true });

    const r = await post('operator', { point: point.id, targets });
    expect(r.statusCode, r.body).toBe(202);
    const job = (r.json() as { job: JobRow }).job;
    expect(job).toMatchObject({ kind: 'group-restore', source: 'engram', actor: 'olga-operator' });
    const done = await t.daemon.runner.wait(job.id);
    expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
    for (const [member, dir] of Object.entries(targets)) {
      const db = new Database(path.join(dir, `${member}.db`), { readonly: true });
      try {
        expect((db.prepare('SELECT body FROM notes ORDER BY id').all() as Array<{ body: string }>).map((x) => x.body)).toEqual([`first row of ${member}`]);
      } finally {
        db.close();
      }
    }
    expect(metric(await t.daemon.metrics.render(), 'dr_recovery_attempts_total', 'source="engram",status="succeeded"')).toBe(1);
  });

  it('drills the group through the API: one RTO, in the group, its metrics under both names, and the Summit drills/run', async () => {
    expect((await call('POST', '/api/v1/groups/engram/drill', 'viewer')).statusCode).toBe(403);
    const dry = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/drills/run', headers: t.auth('operator'), payload: { scenario: 'engram', dryRun: true } });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json()).toMatchObject({ alias_of: 'POST /api/v1/groups/engram/drill', jobs: [] });
    const r = await call('POST', '/api/v1/groups/engram/drill', 'operator');
    expect(r.statusCode, r.body).toBe(202);
    const job = r.json() as JobRow;
    expect(job).toMatchObject({ kind: 'group-drill', source: 'engram' });
    const done = await t.daemon.runner.wait(job.id);
    expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
    const g = (await call('GET', '/api/v1/groups/engram', 'viewer')).json() as { last_drill: { ok: boolean; rto_seconds: number; point: string } | null };
    expect(g.last_drill).toMatchObject({ ok: true, point: expect.any(String) });
    expect(g.last_drill!.rto_seconds).toBeGreaterThan(0);
    const text = await t.daemon.metrics.render();
    expect(metric(text, 'lifeboat_group_rto_seconds', 'group="engram"')).toBeCloseTo(g.last_drill!.rto_seconds, 3);
    expect(metric(text, 'dr_rto_actual_seconds', 'group="engram"')).toBeCloseTo(g.last_drill!.rto_seconds, 3);
    expect(metric(text, 'lifeboat_group_drill_ok', 'group="engram"')).toBe(1);
  });

  it('fails a capture whose freeze hangs with HOLD_EXCEEDED, stores no point, counts it, and a real Prometheus fires the shipped alert', async () => {
    // Prometheus first: increase() needs to see the counter at 0 before the failure.
    const url = new URL(await t.daemon.listen());
    prometheus = await TestPrometheus.start(mkdtempSync(path.join(os.tmpdir(), 'lb-prom-')), url.host, shippedRules({ LifeboatGroupHoldExceeded: '0s', LifeboatGroupCaptureFailed: '0s' }));
    await waitUntil('Prometheus to scrape the group counters at 0', async () => (await prometheus.query('lifeboat_group_hold_exceeded_total{group="stuck"}')) === 0, 60_000, 200);
    const r = await call('POST', '/api/v1/groups/stuck/backup', 'operator');
    expect(r.statusCode, r.body).toBe(202);
    const done = await t.daemon.runner.wait((r.json() as JobRow).id);
    expect(done.status).toBe('failed');
    expect(done.error_code).toBe('HOLD_EXCEEDED');
    expect(done.error).toMatch(/freeze was killed/);
    const g = (await call('GET', '/api/v1/groups/stuck', 'viewer')).json() as Record<string, unknown>;
    expect(g).toMatchObject({ last_point: null, points: 0, failing: true, last_capture: { status: 'failed', error_code: 'HOLD_EXCEEDED' } });
    const text = await t.daemon.metrics.render();
    expect(metric(text, 'lifeboat_group_capture_failures_total', 'group="stuck"')).toBe(1);
    expect(metric(text, 'lifeboat_group_hold_exceeded_total', 'group="stuck"')).toBe(1);
    expect(metric(text, 'lifeboat_group_failing', 'group="stuck"')).toBe(1);
    expect(metric(text, 'lifeboat_job_failures_total', 'kind="group-backup",source="stuck"')).toBe(1);
    const firing = async (name: string) => (await prometheus.alerts()).find((a) => a.labels.alertname === name && a.labels.group === 'stuck' && a.state === 'firing');
    await waitUntil('LifeboatGroupHoldExceeded to fire for group stuck', () => firing('LifeboatGroupHoldExceeded'), 60_000, 250);
    await waitUntil('LifeboatGroupCaptureFailed to fire for group stuck', () => firing('LifeboatGroupCaptureFailed'), 60_000, 250);
    // The group whose capture succeeded fires neither.
    expect((await prometheus.alerts()).filter((a) => a.labels.group === 'engram')).toEqual([]);
  }, 120_000);

  it('rebuilds the group points from the repository', async () => {
    t.daemon.catalog.db.prepare('DELETE FROM group_points').run();
    expect(((await call('GET', '/api/v1/groups/engram', 'viewer')).json() as { points: number }).points).toBe(0);
    const r = await call('POST', '/api/v1/catalog/rebuild', 'admin');
    expect(r.statusCode, r.body).toBe(200);
    expect(((await call('GET', '/api/v1/groups/engram', 'viewer')).json() as { last_point: { id: string } }).last_point.id).toBe(point.id);
  });
});

describe('points and retention', () => {
  it('drops from its view the points a forget removed with their data', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      writeFileSync(path.join(t.data, 'a.txt'), `version ${i}\n`);
      const done = await t.daemon.runner.wait(t.daemon.submit({ kind: 'group-backup', group: 'files', trigger: 'test' }).id);
      expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
      ids.push((done.result as { id: string }).id);
    }
    expect(t.daemon.groups().find((g) => g.name === 'files')?.points).toBe(3);
    // keep_last: 2 of docs removes the oldest snapshot, and the point that references it goes with it.
    const r = await call('POST', '/api/v1/sources/docs/retention', 'admin');
    expect(r.statusCode, r.body).toBe(202);
    const forget = await t.daemon.runner.wait((r.json() as JobRow).id);
    expect(forget.status, `${forget.error_code}: ${forget.error}`).toBe('succeeded');
    await waitUntil('the catalog to drop the forgotten point', () => t.daemon.groups().find((g) => g.name === 'files')?.points === 2, 60_000, 100);
    expect(t.daemon.catalog.groupPoints('files').map((p) => p.id)).toEqual(ids.slice(1).reverse());
  });
});

describe('the Summit full recovery with a group', () => {
  it('refuses when a source belongs to two groups (it cannot come back to two points)', async () => {
    const r = await call('POST', '/api/v1/recovery/full', 'operator');
    expect(r.statusCode).toBe(400); // no body: targetTime is required
    const both = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/recovery/full', headers: t.auth('operator'), payload: { targetTime: new Date().toISOString(), dryRun: true } });
    expect(both.statusCode).toBe(400);
    expect(both.json().error.message).toMatch(/source "index" is a member of groups engram and stuck/);
  });

  it('brings the group back to its newest point at or before targetTime, and every other source to that moment', async () => {
    const f = await testDaemon({ extraSources: SOURCES, extra: 'groups:\n  engram: { members: [index, meta], freeze: [/bin/true], thaw: [/bin/true], max_hold: 5s }' });
    liveSqlite(f.dir);
    f.daemon.start();
    try {
      const backup = await f.daemon.runner.wait(f.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' }).id);
      expect(backup.status, backup.error ?? '').toBe('succeeded');
      const capture = await f.daemon.runner.wait(f.daemon.submit({ kind: 'group-backup', group: 'engram', trigger: 'test' }).id);
      expect(capture.status, `${capture.error_code}: ${capture.error}`).toBe('succeeded');
      const point = (capture.result as { id: string }).id;
      for (const a of apps.slice(-2)) a.prepare('INSERT INTO notes (body) VALUES (?)').run('after the point');
      const post = (payload: Record<string, unknown>) => f.daemon.app.inject({ method: 'POST', url: '/api/v1/recovery/full', headers: f.auth('operator'), payload });

      const dry = await post({ targetTime: new Date().toISOString(), dryRun: true });
      expect(dry.statusCode, dry.body).toBe(200);
      const plan = (dry.json() as { plan: Array<{ source: string; group?: string; point?: string; snapshot: string | null }>; jobs: unknown[] });
      expect(plan.jobs).toEqual([]);
      expect(plan.plan.map((p) => [p.source, p.group ?? null, p.point ?? null])).toEqual([['index', 'engram', point], ['meta', 'engram', point], ['docs', null, null]]);
      expect(f.daemon.catalog.jobs({ kind: 'group-restore' })).toEqual([]);

      // backupId: a group's point (and nothing else) is accepted.
      expect((await post({ backupId: 'summit-backup-20251120T020000Z', targetTime: new Date().toISOString(), dryRun: true })).json().error.hint).toMatch(/groups\/NAME\/points/);

      const r = await post({ backupId: point, targetTime: new Date().toISOString() });
      expect(r.statusCode, r.body).toBe(202);
      const a = r.json() as { recovery: string; plan: Array<{ source: string; target: string }>; jobs: JobRow[] };
      expect(a.jobs.map((j) => [j.kind, j.source])).toEqual([['group-restore', 'engram'], ['restore', 'docs']]);
      for (const j of a.jobs) {
        const done = await f.daemon.runner.wait(j.id);
        expect(done.status, `${done.kind}: ${done.error_code}: ${done.error}`).toBe('succeeded');
      }
      for (const member of ['index', 'meta']) {
        const dir = a.plan.find((p) => p.source === member)?.target as string;
        const db = new Database(path.join(dir, `${member}.db`), { readonly: true });
        try {
          expect((db.prepare('SELECT body FROM notes ORDER BY id').all() as Array<{ body: string }>).map((x) => x.body)).toEqual([`first row of ${member}`]);
        } finally {
          db.close();
        }
      }
      const status = (await f.daemon.app.inject({ method: 'GET', url: '/api/v1/recovery/status', headers: f.auth('viewer') })).json() as { state: string; recovery: string; jobs: JobRow[] };
      expect(status).toMatchObject({ state: 'succeeded', recovery: a.recovery });
      expect(status.jobs.map((j) => j.kind).sort()).toEqual(['group-restore', 'restore']);
    } finally {
      await f.daemon.stop();
    }
  }, 120_000);
});

/** A clock the test moves by hand; timers fire in time order as it passes them. */
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

describe('group schedules', () => {
  it('a schedule with groups: fires a group capture, and its interval is exported', async () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:30Z'));
    const s = await testDaemon({ extraSources: SOURCES, extra: `${GROUPS}\nschedules:\n  capture: { run: backup, groups: [engram], cron: "*/15 * * * *" }`, daemon: { clock } });
    liveSqlite(s.dir);
    try {
      s.daemon.start();
      expect(s.daemon.groups().find((g) => g.name === 'engram')?.schedule_interval_seconds).toBe(900);
      clock.advance(15 * 60_000);
      const [job] = s.daemon.catalog.jobs({ kind: 'group-backup' });
      expect(job).toMatchObject({ source: 'engram', trigger: 'schedule:capture' });
      const done = await s.daemon.runner.wait((job as JobRow).id);
      expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
      expect(s.daemon.groups().find((g) => g.name === 'engram')?.last_point?.id).toBe((done.result as { id: string }).id);
      expect(metric(await s.daemon.metrics.render(), 'lifeboat_group_schedule_interval_seconds', 'group="engram"')).toBe(900);
    } finally {
      await s.daemon.stop();
    }
  });

  it('a drill schedule with groups: drills the group at its time (one RTO), and is not a capture interval', async () => {
    const clock = new FakeClock(Date.parse('2026-11-21T12:00:30Z'));
    const s = await testDaemon({ extraSources: SOURCES, extra: `${GROUPS}\nschedules:\n  weekly-drill: { run: drill, groups: [engram], cron: "0 13 * * *" }`, daemon: { clock } });
    liveSqlite(s.dir);
    try {
      s.daemon.start();
      // A drill needs a point to drill.
      const capture = s.daemon.submit({ kind: 'group-backup', group: 'engram', trigger: 'api' });
      const captured = await s.daemon.runner.wait(capture.id);
      expect(captured.status, `${captured.error_code}: ${captured.error}`).toBe('succeeded');
      expect(s.daemon.groups().find((g) => g.name === 'engram')?.schedule_interval_seconds).toBeNull();
      expect(s.daemon.catalog.jobs({ kind: 'group-drill' })).toHaveLength(0);
      clock.advance(60 * 60_000);
      const [job] = s.daemon.catalog.jobs({ kind: 'group-drill' });
      expect(job).toMatchObject({ source: 'engram', trigger: 'schedule:weekly-drill' });
      const done = await s.daemon.runner.wait((job as JobRow).id);
      expect(done.status, `${done.error_code}: ${done.error}`).toBe('succeeded');
      expect(s.daemon.groups().find((g) => g.name === 'engram')?.last_drill).toMatchObject({ ok: true, point: (done.result as { point: string }).point });
    } finally {
      await s.daemon.stop();
    }
  });

  it('refuses a schedule that names a group wrongly, at its line', () => {
    const base = ['repositories:', '  main: { stores: [/tmp/x] }', 'sources:', '  a: { kind: sqlite, path: /tmp/a.db }', 'groups:', '  g: { members: [a] }', 'schedules:'];
    const refuse = (line: string, message: RegExp) => {
      const file = path.join(t.dir, 'bad.yaml');
      const text = [...base, line].join('\n');
      writeFileSync(file, text);
      expect(() => parseConfig(text, file)).toThrow(message);
    };
    refuse('  s: { run: backup, groups: [nope], cron: "0 * * * *" }', /names group "nope", which is not defined/);
    refuse('  s: { run: forget, groups: [g], cron: "0 * * * *" }', /only run: backup \(a capture\) and run: drill take a group/);
    refuse('  s: { run: backup, groups: [g], sources: [a], cron: "0 * * * *" }', /names both sources and groups/);
    const ok = parseConfig([...base, '  s: { run: backup, groups: [g], cron: "0 * * * *" }'].join('\n'), 'ok.yaml');
    expect(ok.schedules.get('s')).toMatchObject({ run: 'backup', groups: ['g'], sources: [] });
  });
});
