/**
 * The daemon's REST API against a real repository: each role's allowed and refused
 * calls, the audit trail, jobs started by the API, /metrics parsed as Prometheus text,
 * bad input, and the same API over a real (TLS) socket.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { cleanupTmp, tmpdir } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { parseConfig } from '../../src/config/config.js';
import { Daemon } from '../../src/daemon/daemon.js';
import type { JobRow } from '../../src/daemon/catalog.js';
import { restoreRequestOptions } from '../../src/config/model.js';
import { metaOf } from '../../src/config/schema.js';

let t: TestDaemon;

const call = (method: 'GET' | 'POST' | 'DELETE', url: string, role?: 'viewer' | 'operator' | 'admin', payload?: unknown): Promise<LightMyRequestResponse> =>
  t.daemon.app.inject({ method, url, ...(role ? { headers: t.auth(role) } : {}), ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

beforeAll(async () => {
  t = await testDaemon();
});

afterAll(async () => {
  await t.daemon.stop();
  cleanupTmp();
});

describe('authentication and roles', () => {
  it('refuses calls without a valid token with 401, starting nothing, and audits them', async () => {
    const before = t.daemon.catalog.jobs().length;
    for (const headers of [{}, { authorization: 'Bearer lbt_nothing_here' }, { authorization: `Basic ${t.tokens.admin}` }]) {
      const r = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers });
      expect(r.statusCode).toBe(401);
      expect(r.json().error.code).toBe('UNAUTHENTICATED');
      expect(r.headers['www-authenticate']).toMatch(/Bearer/);
    }
    expect((await call('GET', '/api/v1/sources')).statusCode).toBe(401);
    expect(t.daemon.catalog.jobs().length).toBe(before);
    // Refusals from one address in a minute are one row with a count (audit rows stay bounded in a flood).
    const audit = t.daemon.catalog.auditLog(10);
    expect(audit.slice(0, 1).map((a) => [a.method, a.status_code, a.outcome, a.actor, a.count])).toEqual([['POST', 401, 'refused', null, 4]]);
  });

  it('lets a viewer read but not act', async () => {
    for (const url of ['/api/v1/sources', '/api/v1/sources/docs', '/api/v1/jobs', '/api/v1/backups', '/api/v1/drills', '/api/v1/status', '/api/v1/sources/docs/retention']) {
      const r = await call('GET', url, 'viewer');
      expect(r.statusCode, `${url}: ${r.body}`).toBe(200);
    }
    for (const [method, url, body] of [
      ['POST', '/api/v1/sources/docs/backup', undefined],
      ['POST', '/api/v1/drills', { source: 'docs' }],
      ['POST', '/api/v1/restores', { source: 'docs', target: path.join(t.dir, 'nope') }],
      ['GET', '/api/v1/audit', undefined],
      ['GET', '/api/v1/tokens', undefined],
    ] as const) {
      const r = await call(method, url, 'viewer', body);
      expect(r.statusCode, url).toBe(403);
      expect(r.json().error).toMatchObject({ code: 'PERMISSION' });
      expect(r.json().error.message).toMatch(/needs the (operator|admin) role; token "alice-viewer" is viewer/);
    }
    expect(existsSync(path.join(t.dir, 'nope'))).toBe(false);
    expect(t.daemon.catalog.auditLog(1)[0]).toMatchObject({ actor: 'alice-viewer', role: 'viewer', status_code: 403, outcome: 'refused' });
  });

  it('tells a token who it is', async () => {
    expect((await call('GET', '/api/v1/whoami', 'operator')).json()).toMatchObject({ name: 'olga-operator', role: 'operator' });
  });

  it('lets an operator run jobs but not manage tokens or apply retention', async () => {
    expect((await call('GET', '/api/v1/tokens', 'operator')).statusCode).toBe(403);
    expect((await call('POST', '/api/v1/tokens', 'operator', { name: 'x', role: 'admin' })).statusCode).toBe(403);
    expect((await call('POST', '/api/v1/sources/docs/retention', 'operator')).statusCode).toBe(403);
    expect((await call('GET', '/api/v1/audit', 'operator')).statusCode).toBe(403);
  });

  it('lets an admin create and revoke tokens; a revoked token stops working', async () => {
    const created = await call('POST', '/api/v1/tokens', 'admin', { name: 'ci-bot', role: 'viewer' });
    expect(created.statusCode).toBe(201);
    const { token, id } = created.json() as { token: string; id: string };
    const list = (await call('GET', '/api/v1/tokens', 'admin')).json() as Array<Record<string, unknown>>;
    expect(list.find((x) => x.id === id)).toMatchObject({ name: 'ci-bot', role: 'viewer' });
    expect(JSON.stringify(list)).not.toContain(token);
    // Stored hashed: the secret appears nowhere in the catalog file.
    // (The secret is everything after "lbt_<12 hex>_": base64url may itself hold "_", so no split.)
    expect(readFileSync(path.join(t.dir, 'state', 'catalog.db')).includes(Buffer.from(token.slice(17)))).toBe(false);
    const headers = { authorization: `Bearer ${token}` };
    expect((await t.daemon.app.inject({ method: 'GET', url: '/api/v1/sources', headers })).statusCode).toBe(200);
    expect((await call('DELETE', `/api/v1/tokens/${id}`, 'admin')).statusCode).toBe(200);
    expect((await t.daemon.app.inject({ method: 'GET', url: '/api/v1/sources', headers })).statusCode).toBe(401);
    const audit = (await call('GET', '/api/v1/audit', 'admin')).json() as Array<{ method: string; path: string; actor: string; status_code: number }>;
    expect(audit.find((a) => a.method === 'DELETE')).toMatchObject({ path: `/api/v1/tokens/${id}`, actor: 'adam-admin', status_code: 200 });
  });
});

describe('jobs through the API', () => {
  let backup: JobRow;

  it('starts a backup at once and reports it finished, with its log', async () => {
    const r = await call('POST', '/api/v1/sources/docs/backup', 'operator');
    expect(r.statusCode).toBe(202);
    const job = r.json() as JobRow;
    expect(job).toMatchObject({ kind: 'backup', source: 'docs', status: 'running', actor: 'olga-operator', trigger: 'api' });
    // The same job again while it runs: refused, nothing new started.
    const again = await call('POST', '/api/v1/sources/docs/backup', 'operator');
    expect(again.statusCode).toBe(409);
    expect(again.json().error.code).toBe('JOB_RUNNING');
    backup = (await t.daemon.runner.wait(job.id)) as JobRow;
    expect(backup.status, backup.error ?? '').toBe('succeeded');
    const read = (await call('GET', `/api/v1/jobs/${job.id}`, 'viewer')).json() as JobRow;
    expect(read.status).toBe('succeeded');
    expect((read.result as { id: string }).id).toMatch(/^[0-9a-f]{64}$/);
    const log = (await call('GET', `/api/v1/jobs/${job.id}/log`, 'viewer')).json() as Array<{ line: string }>;
    expect(log[0]?.line).toMatch(/^lifeboat --repo main backup --name docs /);
    const sources = (await call('GET', '/api/v1/sources', 'viewer')).json() as Array<Record<string, unknown>>;
    expect(sources[0]).toMatchObject({ name: 'docs', last_backup: { snapshot_id: (read.result as { id: string }).id }, rpo_target_seconds: 3600, rto_target_seconds: 600, failing: false });
    expect((sources[0] as { rpo_seconds: number }).rpo_seconds).toBeLessThan(60);
    // The audit log holds the mutating calls, with who made them.
    const audit = t.daemon.catalog.auditLog(5);
    expect(audit.find((a) => a.status_code === 202)).toMatchObject({ method: 'POST', path: '/api/v1/sources/docs/backup', actor: 'olga-operator', outcome: 'ok' });
    expect(audit.find((a) => a.status_code === 409)).toMatchObject({ actor: 'olga-operator', outcome: 'error' });
  });

  it('carries the metrics of that backup in /metrics, parsed as Prometheus text', async () => {
    const r = await t.daemon.app.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(r.body) as Array<{ name: string; type: string; metrics: Array<{ labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string }> }>;
    const family = (name: string) => {
      const f = families.find((x) => x.name === name);
      expect(f, name).toBeDefined();
      return f as (typeof families)[number];
    };
    const docs = (name: string) => family(name).metrics.find((m) => m.labels?.source === 'docs');
    expect(Number(docs('lifeboat_backup_last_success_timestamp_seconds')?.value)).toBeCloseTo(Date.parse(backup.finished_at as string) / 1000, 0);
    expect(family('lifeboat_backup_duration_seconds').type).toBe('HISTOGRAM');
    // (This parser folds a labelled histogram into its buckets; one source here, so +Inf is its count.)
    expect(family('lifeboat_backup_duration_seconds').metrics[0]?.buckets?.['+Inf']).toBe('1');
    expect(family('lifeboat_backup_size_bytes').metrics[0]?.buckets?.['+Inf']).toBe('1');
    expect(r.body).toMatch(/^lifeboat_backup_size_bytes_count\{source="docs"\} 1$/m);
    expect(Number(docs('lifeboat_rpo_seconds')?.value)).toBeLessThan(60);
    expect(Number(docs('lifeboat_rpo_target_seconds')?.value)).toBe(3600);
    expect(Number(docs('lifeboat_rto_target_seconds')?.value)).toBe(600);
    expect(family('lifeboat_job_failures_total').metrics.find((m) => m.labels?.source === 'docs' && m.labels?.kind === 'backup')?.value).toBe('0');
    expect(family('lifeboat_jobs_total').metrics.find((m) => m.labels?.source === 'docs' && m.labels?.status === 'succeeded')?.value).toBe('1');
    family('lifeboat_archive_lag_seconds');
    family('lifeboat_rto_seconds');
    expect(docs('lifeboat_source_failing')?.value).toBe('0');
    expect(family('lifeboat_job_failures_total').metrics.find((m) => m.labels?.source === 'main' && m.labels?.kind === 'check')?.value).toBe('0');
    expect(family('lifeboat_build_info').metrics[0]?.labels?.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('runs a drill and reports its measured RTO; the metric follows', async () => {
    const r = await call('POST', '/api/v1/drills', 'operator', { source: 'docs' });
    expect(r.statusCode).toBe(202);
    const [job] = (r.json() as { jobs: JobRow[] }).jobs;
    const done = (await t.daemon.runner.wait((job as JobRow).id)) as JobRow;
    expect(done.status, done.error ?? '').toBe('succeeded');
    const drills = (await call('GET', '/api/v1/drills?source=docs', 'viewer')).json() as Array<{ ok: boolean; rto_seconds: number }>;
    expect(drills[0]?.ok).toBe(true);
    const source = (await call('GET', '/api/v1/sources/docs', 'viewer')).json() as { rto_seconds: number; last_drill: { ok: boolean } };
    expect(source.rto_seconds).toBe(drills[0]?.rto_seconds);
    expect(source.last_drill.ok).toBe(true);
    expect((await t.daemon.app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/lifeboat_rto_seconds\{source="docs"\} [0-9.]+/);
  });

  it('restores files into a new directory as a job', async () => {
    const target = path.join(t.dir, 'restored');
    const r = await call('POST', '/api/v1/restores', 'operator', { source: 'docs', target });
    expect(r.statusCode, r.body).toBe(202);
    const done = (await t.daemon.runner.wait((r.json() as JobRow).id)) as JobRow;
    expect(done.status, done.error ?? '').toBe('succeeded');
    const files = execFileSync('find', [target, '-name', 'a.txt']).toString().trim();
    expect(readFileSync(files, 'utf8')).toBe('first file\n');
  });

  it('rebuilds what the catalog knows of backups and drills from the repository', async () => {
    const before = { backups: t.daemon.catalog.backups(), drills: t.daemon.catalog.drills() };
    expect(before.backups.length).toBeGreaterThan(0);
    expect(before.drills.length).toBeGreaterThan(0);
    t.daemon.catalog.db.exec('DELETE FROM backups; DELETE FROM drills');
    expect((await call('POST', '/api/v1/catalog/rebuild', 'operator')).statusCode).toBe(403);
    const r = await call('POST', '/api/v1/catalog/rebuild', 'admin');
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ backups: before.backups.length, drills: before.drills.length });
    expect(t.daemon.catalog.backups().map((b) => [b.snapshot_id, b.source, b.size_bytes])).toEqual(before.backups.map((b) => [b.snapshot_id, b.source, b.size_bytes]));
    expect(t.daemon.catalog.drills().map((d) => [d.time, d.ok, d.rto_seconds])).toEqual(before.drills.map((d) => [d.time, d.ok, d.rto_seconds]));
  });

  it('previews retention without removing anything', async () => {
    const r = await call('GET', '/api/v1/sources/docs/retention', 'viewer');
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toMatchObject({ dryRun: true });
    expect(readdirSync(path.join(t.dir, 'repo', 'snapshots')).length).toBe(1);
  });
});

describe('bad input', () => {
  it('names an unknown source with 404 NOT_FOUND and the sources there are', async () => {
    for (const [method, url, body] of [
      ['POST', '/api/v1/sources/nosuch/backup', undefined],
      ['GET', '/api/v1/sources/nosuch', undefined],
      ['POST', '/api/v1/drills', { source: 'nosuch' }],
      ['POST', '/api/v1/restores', { source: 'nosuch', target: '/tmp/x-lifeboat-never' }],
    ] as const) {
      const r = await call(method, url, 'operator', body);
      expect(r.statusCode, url).toBe(404);
      expect(r.json().error).toMatchObject({ code: 'NOT_FOUND', message: 'unknown source "nosuch"', hint: 'sources: docs' });
    }
    expect((await call('GET', '/api/v1/jobs/nope', 'viewer')).json().error.code).toBe('NOT_FOUND');
    expect((await call('GET', '/api/v1/nowhere', 'viewer')).statusCode).toBe(404);
  });

  it('refuses a restore target that exists, and leaves it untouched', async () => {
    const target = path.join(t.dir, 'precious');
    writeFileSync(target, 'do not touch\n');
    const jobs = t.daemon.catalog.jobs().length;
    const r = await call('POST', '/api/v1/restores', 'operator', { source: 'docs', target });
    expect(r.statusCode).toBe(409);
    expect(r.json().error).toMatchObject({ code: 'TARGET_EXISTS' });
    expect(readFileSync(target, 'utf8')).toBe('do not touch\n');
    expect(t.daemon.catalog.jobs().length).toBe(jobs);
  });

  it('refuses malformed bodies with 400 USAGE', async () => {
    const cases: Array<[string, unknown]> = [
      ['/api/v1/restores', { source: 'docs' }],
      ['/api/v1/restores', { source: 'docs', target: 'relative/path' }],
      ['/api/v1/restores', { source: 'docs', target: '/tmp/x', surprise: 1 }],
      ['/api/v1/restores', { source: 'docs', target: path.join(t.dir, 'new'), time: 'yesterday' }],
    ];
    for (const [url, body] of cases) {
      const r = await call('POST', url, 'operator', body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error.code).toBe('USAGE');
    }
    // Each keyword of the request schemas (src/api/dto.ts) is enforced: required, enum, pattern,
    // minProperties, integer bounds, and no unknown key in a body or a query.
    const more: Array<['GET' | 'POST', string, 'viewer' | 'operator' | 'admin', unknown?]> = [
      ['POST', '/api/v1/recoveries', 'operator', { targets: {} }],
      ['POST', '/api/v1/repositories/main/check', 'operator', { read_data_subset: '10' }],
      ['POST', '/api/v1/drills', 'operator', { source: 'docs', all: true }],
      ['POST', '/api/v1/tokens', 'admin', { name: 'root-token', role: 'root' }],
      ['POST', '/api/v1/tokens', 'admin', { role: 'viewer' }],
      ['GET', '/api/v1/jobs?limit=0', 'viewer'],
      ['GET', '/api/v1/jobs?limit=1001', 'viewer'],
      ['GET', '/api/v1/jobs?surprise=1', 'viewer'],
      ['GET', '/api/v1/backups?limit=5001', 'viewer'],
      ['GET', '/api/v1/audit?limit=0', 'admin'],
      ['GET', '/api/v1/jobs/none/log?after=-1', 'viewer'],
      ['GET', '/api/v1/jobs/none/log?after=1.5', 'viewer'],
    ];
    for (const [method, url, role, body] of more) {
      const r = await call(method, url, role, body);
      expect(r.statusCode, `${method} ${url} ${JSON.stringify(body)}: ${r.body}`).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'USAGE', message: expect.stringMatching(/^bad request: /) });
    }
    expect(t.daemon.catalog.tokens().map((x) => x.name)).not.toContain('root-token');
    const bad = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/restores', headers: { ...t.auth('operator'), 'content-type': 'application/json' }, payload: '{not json' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toMatchObject({ code: 'USAGE', message: 'the request body is not valid JSON' });
    // An empty JSON body is no body: a drill of every source.
    const empty = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/drills', headers: { ...t.auth('operator'), 'content-type': 'application/json' }, payload: '' });
    expect(empty.statusCode, empty.body).toBe(202);
    for (const j of (empty.json() as { jobs: JobRow[] }).jobs) await t.daemon.runner.wait(j.id);
  });
});

describe('openapi and health', () => {
  it('serves an OpenAPI document describing every route, with roles', async () => {
    const doc = (await t.daemon.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as { openapi: string; paths: Record<string, Record<string, { 'x-lifeboat-role'?: string }>> };
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of ['/api/v1/sources', '/api/v1/sources/{name}/backup', '/api/v1/restores', '/api/v1/drills', '/api/v1/jobs/{id}', '/api/v1/jobs/{id}/log', '/api/v1/sources/{name}/retention']) {
      expect(doc.paths[p], p).toBeDefined();
    }
    expect(doc.paths['/api/v1/sources/{name}/backup']?.post?.['x-lifeboat-role']).toBe('operator');
    expect(doc.paths['/api/v1/tokens']?.post?.['x-lifeboat-role']).toBe('admin');
  });

  it('describes each request with the schema fastify validates it with', async () => {
    type Op = { parameters?: Array<{ name: string; in: string; schema: unknown }>; requestBody?: { required: boolean; content: { 'application/json': { schema: unknown } } }; responses: Record<string, { content?: { 'application/json': { schema: { properties?: Record<string, unknown> } } } }> };
    const doc = (await t.daemon.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json() as { paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, unknown> } };
    const body = (p: string, m: string) => doc.paths[p]?.[m]?.requestBody;
    // The same requests accepted as when the schemas were written by hand (before src/api/dto.ts); fields that
    // are options of the model (src/api/bodies.ts) carry its description, and a duration is the grammar's string.
    const grammar = 'a duration: ms s min h d w mo y, combinable (1h30min, 1mo2d); mo and y are calendar months and years';
    expect(body('/api/v1/tokens', 'post')).toEqual({
      required: true,
      content: {
        'application/json': {
          schema: {
            type: 'object',
            properties: {
              name: { type: 'string' },
              role: { type: 'string', enum: ['viewer', 'operator', 'admin'] },
              expires: { description: 'how long the token is valid, e.g. 30d, 12h or 1w; `never`', anyOf: [{ type: 'string', enum: ['never'] }, { type: 'string', description: grammar }] },
            },
            required: ['name', 'role'],
            additionalProperties: false,
          },
        },
      },
    });
    expect(body('/api/v1/recoveries', 'post')?.content['application/json'].schema).toEqual({
      type: 'object',
      // From the option model: the restore commands' own descriptions; an empty target is refused before any handler.
      properties: {
        targets: { type: 'object', additionalProperties: { type: 'string', minLength: 1, description: metaOf(restoreRequestOptions().shape.target)?.description }, minProperties: 1 },
        time: { type: 'string', description: metaOf(restoreRequestOptions().shape.time)?.description },
      },
      required: ['targets'],
      additionalProperties: false,
    });
    expect(body('/api/v1/repositories/{name}/check', 'post')).toEqual({
      required: false,
      content: {
        'application/json': {
          schema: { type: 'object', properties: { read_data_subset: { description: '`check` only: a percentage of packs to read and authenticate', type: 'string', pattern: '^\\d+(\\.\\d+)?%$' } }, additionalProperties: false },
        },
      },
    });
    expect(doc.paths['/api/v1/jobs/{id}/log']?.get?.parameters).toEqual([
      { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
      { name: 'after', in: 'query', required: false, schema: { type: 'integer', minimum: 0 } },
    ]);
    expect(doc.paths['/api/v1/jobs']?.get?.parameters?.find((q) => q.name === 'limit')?.schema).toEqual({ type: 'integer', minimum: 1, maximum: 1000 });
    // Responses name their fields (the DTOs the dashboard is compiled against).
    const source = doc.paths['/api/v1/sources/{name}']?.get?.responses['200']?.content?.['application/json'].schema;
    expect(Object.keys(source?.properties ?? {})).toEqual(expect.arrayContaining(['name', 'last_backup', 'rpo_seconds', 'rto_seconds', 'archive']));
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(['Job', 'Source', 'Backup', 'Drill', 'Status', 'Error']));
  });

  it('serves the dashboard with a policy that lets only its own scripts run', async () => {
    expect((await t.daemon.app.inject({ method: 'GET', url: '/dashboard' })).headers.location).toBe('/dashboard/');
    const page = await t.daemon.app.inject({ method: 'GET', url: '/dashboard/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(page.body).toContain('<script type="module" src="app.js">');
    // The page's modules, compiled from src/web/ by tsconfig.web.json, under the same policy.
    for (const file of ['app.js', 'api.js', 'tables.js', 'chart.js']) {
      const js = await t.daemon.app.inject({ method: 'GET', url: `/dashboard/${file}` });
      expect(js.statusCode, file).toBe(200);
      expect(js.headers['content-type']).toBe('text/javascript; charset=utf-8');
      expect(js.headers['content-security-policy']).toMatch(/default-src 'self'/);
      // Type-only imports of the DTOs leave nothing server-side in the browser's code.
      expect(js.body, file).not.toMatch(/from ['"](zod|\.\.\/api\/)/);
    }
    expect((await t.daemon.app.inject({ method: 'GET', url: '/dashboard/dto.js' })).statusCode).toBe(404);
  });

  it('answers liveness always and readiness once started', async () => {
    expect((await t.daemon.app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    expect((await t.daemon.app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(503);
    t.daemon.start();
    expect((await t.daemon.app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
  });
});

describe('over a real socket', () => {
  it('serves the API over TLS when given a certificate', async () => {
    const dir = tmpdir('lb-tls-');
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const text = readFileSync(path.join(t.dir, 'lifeboat.yaml'), 'utf8').replace(/server:[\s\S]*$/, `server:\n  listen: 127.0.0.1:0\n  state_dir: ${path.join(t.dir, 'state')}\n  tls: { cert: ${cert}, key: ${key} }\n`);
    const file = path.join(dir, 'lifeboat.yaml');
    writeFileSync(file, text);
    const d = await Daemon.create(parseConfig(text, file), { log: () => {} });
    try {
      const url = await d.listen();
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const get = (p: string, headers: Record<string, string>) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          https
            .get(`${url}${p}`, { ca: readFileSync(cert), headers }, (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            })
            .on('error', reject);
        });
      const ok = await get('/api/v1/sources', t.auth('viewer'));
      expect(ok.status).toBe(200);
      expect((JSON.parse(ok.body) as Array<{ name: string }>)[0]?.name).toBe('docs');
      expect((await get('/api/v1/sources', {})).status).toBe(401);
      expect((await get('/metrics', {})).body).toContain('lifeboat_rpo_seconds');
    } finally {
      await d.stop();
    }
  });
});
