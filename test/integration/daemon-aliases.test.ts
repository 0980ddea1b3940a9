/**
 * The Summit aliases (issue 18) against a real daemon and repository: each alias plans
 * and runs what the Lifeboat call it stands for does, with its role (a viewer refused,
 * nothing started; an operator allowed), a dry run plans and starts nothing, the
 * restored bytes are the backed-up ones, and what the alias cannot mean is refused with
 * a hint. Once over a real socket.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { cleanupTmp } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import type { JobRow } from '../../src/daemon/catalog.js';

const NEO4J = '  neo4j: { kind: command, dump: [/bin/echo, "graph dump v1"] }';

interface Answer {
  alias_of: string;
  recovery: string | null;
  dry_run: boolean;
  plan: Array<{ source: string; kind: string; target: string; time: string | null; snapshot: string | null }>;
  jobs: JobRow[];
  notes: string[];
}

let t: TestDaemon;
const snapshots: Record<string, string> = {};
const call = (method: 'GET' | 'POST', url: string, role?: 'viewer' | 'operator' | 'admin', payload?: unknown): Promise<LightMyRequestResponse> =>
  t.daemon.app.inject({ method, url, ...(role ? { headers: t.auth(role) } : {}), ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

/** Entries of the test directory a restore could have created (the aliases name theirs r<time>-<hex>-SOURCE). */
const restored = () => readdirSync(t.dir).filter((n) => /^r\d{8}T\d{6}Z-[0-9a-f]{4}-/.test(n));

async function waitAll(jobs: JobRow[]): Promise<JobRow[]> {
  return Promise.all(jobs.map((j) => t.daemon.runner.wait(j.id)));
}

beforeAll(async () => {
  t = await testDaemon({ extraSources: NEO4J });
  for (const source of ['docs', 'neo4j']) {
    const done = await t.daemon.runner.wait(t.daemon.submit({ kind: 'backup', source, trigger: 'test' }).id);
    expect(done.status, done.error ?? '').toBe('succeeded');
    snapshots[source] = (done.result as { id: string }).id;
  }
});

afterAll(async () => {
  await t?.daemon.stop();
  cleanupTmp();
});

describe('roles', () => {
  it('refuses every recovery alias to a viewer, starting nothing, and lets a viewer read the status and backups', async () => {
    const jobs = t.daemon.catalog.jobs().length;
    for (const [url, body] of [
      ['/api/v1/recovery/full', { targetTime: new Date().toISOString(), dryRun: false }],
      ['/api/v1/recovery/postgres', { targetTime: new Date().toISOString(), dryRun: false }],
      ['/api/v1/recovery/neo4j', { backupId: 'latest', includeIncrementals: true, dryRun: false }],
      ['/api/v1/drills/run', { scenario: 'backup-validation', dryRun: false }],
    ] as const) {
      const r = await call('POST', url, 'viewer', body);
      expect(r.statusCode, url).toBe(403);
      expect(r.json().error.message).toMatch(/needs the operator role/);
      expect((await call('POST', url, undefined, body)).statusCode).toBe(401);
    }
    expect(t.daemon.catalog.jobs().length).toBe(jobs);
    expect(restored()).toEqual([]);
    expect((await call('GET', '/api/v1/recovery/status', 'viewer')).json()).toEqual({ state: 'idle', recovery: null, started_at: null, finished_at: null, jobs: [] });
    expect((await call('GET', '/api/v1/recovery/status')).statusCode).toBe(401);
  });
});

describe('POST /api/v1/recovery/full', () => {
  it('plans every source on a dry run and starts nothing', async () => {
    const at = new Date().toISOString();
    const r = await call('POST', '/api/v1/recovery/full', 'operator', { targetTime: at, dryRun: true });
    expect(r.statusCode, r.body).toBe(200);
    const a = r.json() as Answer;
    expect(a).toMatchObject({ alias_of: 'POST /api/v1/recoveries', dry_run: true, jobs: [] });
    expect(a.plan.map((p) => [p.source, p.kind, p.snapshot, p.time])).toEqual([
      ['docs', 'files', snapshots.docs, null],
      ['neo4j', 'command', snapshots.neo4j, null],
    ]);
    for (const p of a.plan) expect(p.target).toBe(path.join(t.dir, `${a.recovery}-${p.source}`));
    expect(restored()).toEqual([]);
    expect(t.daemon.catalog.jobs({ kind: 'restore' })).toEqual([]);
  });

  it('refuses a backupId (one backup is not a moment for every source) with a hint', async () => {
    const r = await call('POST', '/api/v1/recovery/full', 'operator', { backupId: 'summit-backup-20251120T020000Z', targetTime: new Date().toISOString() });
    expect(r.statusCode).toBe(400);
    expect(r.json().error).toMatchObject({ code: 'USAGE', hint: expect.stringMatching(/POST \/api\/v1\/restores/) });
    expect(await call('POST', '/api/v1/recovery/full', 'operator', { targetTime: 'yesterday' }).then((x) => x.statusCode)).toBe(400);
  });

  it('restores every source to targetTime into new places, and the status follows it', async () => {
    const r = await call('POST', '/api/v1/recovery/full', 'operator', { targetTime: new Date().toISOString(), dryRun: false });
    expect(r.statusCode, r.body).toBe(202);
    const a = r.json() as Answer;
    expect(a.jobs.map((j) => [j.kind, j.source, j.actor, j.params.recovery])).toEqual([
      ['restore', 'docs', 'olga-operator', a.recovery],
      ['restore', 'neo4j', 'olga-operator', a.recovery],
    ]);
    const done = await waitAll(a.jobs);
    for (const j of done) expect(j.status, `${j.source}: ${j.error}`).toBe('succeeded');
    const docs = a.plan.find((p) => p.source === 'docs')?.target as string;
    const restoredFile = readdirSync(docs, { recursive: true }).map(String).find((f) => f.endsWith('a.txt')) as string;
    expect(readFileSync(path.join(docs, restoredFile), 'utf8')).toBe('first file\n');
    expect(readFileSync(a.plan.find((p) => p.source === 'neo4j')?.target as string, 'utf8')).toBe('graph dump v1\n');
    const status = (await call('GET', '/api/v1/recovery/status', 'viewer')).json() as { state: string; recovery: string; jobs: JobRow[]; finished_at: string };
    expect(status).toMatchObject({ state: 'succeeded', recovery: a.recovery });
    expect(status.jobs.map((j) => j.id).sort()).toEqual(a.jobs.map((j) => j.id).sort());
    expect(status.finished_at).not.toBeNull();
  });
});

describe('POST /api/v1/recovery/postgres and /recovery/neo4j', () => {
  it('answers 404 with a hint when no PostgreSQL source is configured', async () => {
    const r = await call('POST', '/api/v1/recovery/postgres', 'operator', { targetTime: new Date().toISOString(), dryRun: true });
    expect(r.statusCode).toBe(404);
    expect(r.json().error.message).toMatch(/no source named "postgres" and no postgres source/);
  });

  it('restores the neo4j source\'s backup by id, and refuses an id that is not one of its snapshots', async () => {
    const missing = await call('POST', '/api/v1/recovery/neo4j', 'operator', { backupId: 'full-20251120T020000Z', includeIncrementals: true, dryRun: false });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.hint).toMatch(/backups\?source=neo4j/);
    const other = await call('POST', '/api/v1/recovery/neo4j', 'operator', { backupId: snapshots.docs?.slice(0, 12), dryRun: false });
    expect(other.json().error.code).toBe('WRONG_SOURCE');
    const before = restored().length;
    const r = await call('POST', '/api/v1/recovery/neo4j', 'operator', { backupId: snapshots.neo4j?.slice(0, 12), includeIncrementals: true, dryRun: false });
    expect(r.statusCode, r.body).toBe(202);
    const a = r.json() as Answer;
    expect(a.plan).toEqual([{ source: 'neo4j', kind: 'command', target: path.join(t.dir, `${a.recovery}-neo4j`), time: null, snapshot: snapshots.neo4j }]);
    expect(a.notes.join('\n')).toMatch(/includeIncrementals=true changes nothing/);
    const [done] = await waitAll(a.jobs);
    expect(done?.status, done?.error ?? '').toBe('succeeded');
    expect(readFileSync(a.plan[0]?.target as string, 'utf8')).toBe('graph dump v1\n');
    expect(restored().length).toBe(before + 1);
  });

  it('plans a point-in-time recovery of the postgres source on a dry run', async () => {
    const p = await testDaemon({ extraSources: '  postgres: { kind: postgres, dsn: "postgresql://app@127.0.0.1:1/app", bin_dir: /usr/lib/postgresql/15/bin }' });
    try {
      const at = new Date(Date.now() - 60_000).toISOString();
      const r = await p.daemon.app.inject({ method: 'POST', url: '/api/v1/recovery/postgres', headers: p.auth('operator'), payload: { targetTime: at, dryRun: true } });
      expect(r.statusCode, r.body).toBe(200);
      const a = r.json() as Answer;
      expect(a).toMatchObject({ alias_of: 'POST /api/v1/restores', dry_run: true, jobs: [] });
      expect(a.plan).toEqual([{ source: 'postgres', kind: 'postgres', target: path.join(p.dir, `${a.recovery}-postgres`), time: at, snapshot: null }]);
      expect(existsSync(a.plan[0]?.target as string)).toBe(false);
    } finally {
      await p.daemon.stop();
    }
  });
});

describe('POST /api/v1/drills/run and GET /api/v1/backups?type=full', () => {
  it('plans a backup-validation drill of every source, and runs one of a named source', async () => {
    const dry = (await call('POST', '/api/v1/drills/run', 'operator', { scenario: 'backup-validation', dryRun: true })).json() as Answer;
    expect(dry).toMatchObject({ alias_of: 'POST /api/v1/drills', dry_run: true, jobs: [] });
    expect(dry.plan.map((p) => p.source)).toEqual(['docs', 'neo4j']);
    expect(t.daemon.catalog.jobs({ kind: 'drill' })).toEqual([]);
    const unknown = await call('POST', '/api/v1/drills/run', 'operator', { scenario: 'multi-region-failover' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.hint).toMatch(/backup-validation/);
    const r = await call('POST', '/api/v1/drills/run', 'operator', { scenario: 'docs', dryRun: false });
    expect(r.statusCode, r.body).toBe(202);
    const [done] = await waitAll((r.json() as Answer).jobs);
    expect(done).toMatchObject({ kind: 'drill', source: 'docs', status: 'succeeded' });
    expect(t.daemon.catalog.drills('docs')[0]?.ok).toBe(true);
  });

  it('lists full backups as /backups does, and refuses other types', async () => {
    const full = await call('GET', '/api/v1/backups?type=full&limit=10', 'viewer');
    expect(full.statusCode, full.body).toBe(200);
    expect(full.json()).toEqual((await call('GET', '/api/v1/backups?limit=10', 'viewer')).json());
    expect((full.json() as unknown[]).length).toBe(2);
    const bad = await call('GET', '/api/v1/backups?type=incremental', 'viewer');
    expect(bad.statusCode).toBe(400);
  });
});

describe('metric aliases', () => {
  it('exports the Summit names with the values of Lifeboat\'s own metrics', async () => {
    const text = await t.daemon.metrics.render();
    const value = (series: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.split(' ').at(-1));
    };
    expect(value('backup_success_total{source="docs"}')).toBe(1);
    expect(value('backup_success_total{source="docs"}')).toBe(value('lifeboat_jobs_total{kind="backup",source="docs",status="succeeded"}'));
    expect(value('backup_failure_total{source="docs"}')).toBe(0);
    // Two recoveries restored neo4j (full and neo4j), one restored docs.
    expect(value('dr_recovery_attempts_total{source="neo4j",status="succeeded"}')).toBe(2);
    expect(value('dr_recovery_attempts_total{source="docs",status="succeeded"}')).toBe(value('lifeboat_jobs_total{kind="restore",source="docs",status="succeeded"}'));
    expect(value('dr_rto_actual_seconds{source="docs"}')).toBe(value('lifeboat_rto_seconds{source="docs"}'));
    expect(value('dr_rto_actual_seconds{source="docs"}')).toBe(t.daemon.catalog.drills('docs')[0]?.rto_seconds);
    expect(value('file_backup_duration_seconds{source="docs"}')).toBe((t.daemon.catalog.backups('docs', 1)[0]?.duration_ms ?? -1) / 1000);
    expect(value('file_backup_duration_seconds{source="neo4j"}')).toBeUndefined();
    expect(value('postgres_base_backup_duration_seconds{source="docs"}')).toBeUndefined();
    // RPO is read at scrape time: the same moment's value under both names.
    expect(value('dr_rpo_actual_seconds{source="docs"}')).toBe(value('lifeboat_rpo_seconds{source="docs"}'));
  });
});

describe('over a real socket', () => {
  it('refuses a viewer and serves an operator', async () => {
    const base = await t.daemon.listen();
    const post = (role: 'viewer' | 'operator') =>
      fetch(`${base}/api/v1/recovery/full`, { method: 'POST', headers: { ...t.auth(role), 'content-type': 'application/json' }, body: JSON.stringify({ targetTime: new Date().toISOString(), dryRun: true }) });
    const refused = await post('viewer');
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('PERMISSION');
    const ok = await post('operator');
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as Answer).plan.map((p) => p.source)).toEqual(['docs', 'neo4j']);
    const status = await fetch(`${base}/api/v1/recovery/status`, { headers: t.auth('viewer') });
    expect(((await status.json()) as { state: string }).state).toBe('succeeded');
  });
});
