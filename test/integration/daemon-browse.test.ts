/**
 * The snapshot browser and restore previews through the API (app.inject): a directory
 * listed one level at a time, a file downloaded byte for byte with a header-safe
 * name, paths that try to leave the snapshot or smuggle options refused before any
 * child starts, the roles (a viewer lists and previews, only an operator downloads or
 * restores), and a preview that names what would refuse the restore.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as http from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../src/daemon/catalog.js';
import type { RestorePlan, SnapshotTree } from '../../src/api/dto.js';
import { contentDisposition } from '../../src/daemon/browse.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { cleanupTmp } from '../helpers.js';

let t: TestDaemon;
let snap: string;
/** 3 MiB of random bytes: several chunks, so the download streams blob by blob. */
const big = randomBytes(3 * 1024 * 1024 + 17);
/** A name with a quote, a semicolon, spaces and non-ASCII letters: the header must stay one well-formed value. */
const oddName = 'rapport "final"; ü.txt';

beforeAll(async () => {
  t = await testDaemon();
  mkdirSync(path.join(t.data, 'sub'));
  writeFileSync(path.join(t.data, 'sub', 'big.bin'), big);
  writeFileSync(path.join(t.data, 'sub', oddName), 'odd\n');
  writeFileSync(path.join(t.data, 'empty.txt'), '');
  const r = await t.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers: t.auth('operator') });
  const done = (await t.daemon.runner.wait((r.json() as JobRow).id)) as JobRow;
  expect(done.status, done.error ?? '').toBe('succeeded');
  snap = t.daemon.catalog.backups('docs')[0]?.snapshot_id as string;
}, 60_000);

afterAll(async () => {
  await t?.daemon.stop();
  cleanupTmp();
});

const get = (url: string, role: 'viewer' | 'operator' | 'admin' = 'viewer') => t.daemon.app.inject({ method: 'GET', url, headers: t.auth(role) });
const tree = (p: string, role: 'viewer' | 'operator' = 'viewer') => get(`/api/v1/repositories/main/snapshots/${snap}/tree?path=${encodeURIComponent(p)}`, role);
const file = (p: string, role: 'viewer' | 'operator' = 'operator') => get(`/api/v1/repositories/main/snapshots/${snap}/file?path=${encodeURIComponent(p)}`, role);

describe('GET /api/v1/repositories/:name/snapshots/:id/tree', () => {
  it('lists one directory level to a viewer, and a file as its one entry', async () => {
    const r = await tree(t.data);
    expect(r.statusCode, r.body).toBe(200);
    const body = r.json() as SnapshotTree;
    expect(body).toMatchObject({ repository: 'main', snapshot: snap, path: t.data, type: 'dir', truncated: false });
    expect(body.entries.map((e) => [e.name, e.type, e.size])).toEqual([['a.txt', 'file', 11], ['empty.txt', 'file', 0], ['sub', 'dir', null]]);
    expect(body.entries[0]?.path).toBe(path.join(t.data, 'a.txt'));
    expect(body.entries[0]?.mtime).toMatch(/^\d{4}-\d\d-\d\dT/);
    // One level only: nothing of sub/ is listed until it is opened.
    const sub = (await tree(path.join(t.data, 'sub'))).json() as SnapshotTree;
    expect(sub.entries.map((e) => [e.name, e.size])).toEqual([['big.bin', big.length], [oddName, 4]]);
    const one = (await tree(path.join(t.data, 'a.txt'))).json() as SnapshotTree;
    expect(one).toMatchObject({ type: 'file', size: 11, entries: [] });
    // The root, with a trailing slash, and by an id prefix.
    const root = await get(`/api/v1/repositories/main/snapshots/${snap.slice(0, 8)}/tree?path=/`);
    expect(root.statusCode, root.body).toBe(200);
    expect((root.json() as SnapshotTree).entries.map((e) => e.name)).toEqual([t.data.split('/')[1]]);
    expect((await tree(`${t.data}/`)).json().path).toBe(t.data);
  });

  it('refuses paths that leave the snapshot or are not paths, before any child starts', async () => {
    for (const p of ['..', '../etc', `${t.data}/../../etc/passwd`, `${t.data}/./a.txt`, 'etc/passwd', `${t.data}\u0000/a.txt`, `${t.data}/a\nb`, '--help', `/${'x'.repeat(5000)}`]) {
      const r = await tree(p);
      expect(r.statusCode, `${JSON.stringify(p)}: ${r.body}`).toBe(400);
      expect(r.json().error.code).toBe('USAGE');
      const f = await file(p);
      expect(f.statusCode, `${JSON.stringify(p)}: ${f.body}`).toBe(400);
    }
    expect((await tree(`${t.data}/../../etc`)).json().error.message).toMatch(/has a "\." or "\.\." component/);
    expect((await tree(`${t.data}\u0000`)).json().error.message).toMatch(/NUL or other control characters/);
    // Snapshot ids are hex: no options, no paths, no "latest" (a repository holds several sources).
    for (const id of ['--help', 'latest', '...', 'zzzz', '12', '%2e%2e']) {
      const r = await get(`/api/v1/repositories/main/snapshots/${encodeURIComponent(id)}/tree`);
      expect(r.statusCode, `${id}: ${r.body}`).toBe(400);
    }
    // A ".." id is resolved by the URL itself: it reaches no route.
    expect((await get('/api/v1/repositories/main/snapshots/../tree')).statusCode).toBe(404);
    expect((await get(`/api/v1/repositories/nosuch/snapshots/${snap}/tree`)).json().error).toMatchObject({ code: 'NOT_FOUND', message: 'unknown repository "nosuch"' });
  });

  it('answers 404 for a path or snapshot the repository does not have', async () => {
    const r = await tree(path.join(t.data, 'nope'));
    expect(r.statusCode, r.body).toBe(404);
    expect(r.json().error.message).toBe(`${path.join(t.data, 'nope')} is not in the snapshot`);
    const s = await get('/api/v1/repositories/main/snapshots/abcdef0123/tree');
    expect(s.statusCode, s.body).toBe(404);
  });
});

describe('GET /api/v1/repositories/:name/snapshots/:id/file', () => {
  it('streams a file byte for byte to an operator, with a safe attachment name, and audits it', async () => {
    const r = await file(path.join(t.data, 'sub', 'big.bin'));
    expect(r.statusCode, r.body.slice(0, 200)).toBe(200);
    expect(r.headers['content-type']).toBe('application/octet-stream');
    expect(Number(r.headers['content-length'])).toBe(big.length);
    expect(r.headers['content-disposition']).toBe(`attachment; filename="big.bin"; filename*=UTF-8''big.bin`);
    expect(r.rawPayload.equals(big)).toBe(true);

    const odd = await file(path.join(t.data, 'sub', oddName));
    expect(odd.statusCode).toBe(200);
    expect(odd.body).toBe('odd\n');
    expect(odd.headers['content-disposition']).toBe(`attachment; filename="rapport _final__ _.txt"; filename*=UTF-8''rapport%20%22final%22%3B%20%C3%BC.txt`);

    const empty = await file(path.join(t.data, 'empty.txt'));
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.rawPayload.length).toBe(0);

    // Successful reads are not audited; downloads are, each one.
    const audited = t.daemon.catalog.auditLog().filter((a) => a.method === 'GET' && a.status_code === 200);
    expect(audited.map((a) => [a.actor, a.outcome, a.path.split('?')[0]])).toEqual(Array(3).fill(['olga-operator', 'ok', `/api/v1/repositories/main/snapshots/${snap}/file`]));
  });

  it('hands an operator a one-use link that streams the file without a token, audited under the operator, never naming the ticket', async () => {
    const ask = (p: string, role: 'viewer' | 'operator' = 'operator') =>
      t.daemon.app.inject({ method: 'POST', url: `/api/v1/repositories/main/snapshots/${snap}/file-ticket?path=${encodeURIComponent(p)}`, headers: t.auth(role) });
    const r = await ask(path.join(t.data, 'sub', 'big.bin'));
    expect(r.statusCode, r.body).toBe(201);
    const { url, expires_at } = r.json() as { url: string; expires_at: string };
    expect(url).toMatch(/^\/api\/v1\/downloads\/[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(expires_at) - Date.now()).toBeLessThanOrEqual(60_000);
    // No Authorization header: the link is the credential.
    const got = await t.daemon.app.inject({ method: 'GET', url });
    expect(got.statusCode, got.body.slice(0, 200)).toBe(200);
    expect(got.headers['content-disposition']).toBe(`attachment; filename="big.bin"; filename*=UTF-8''big.bin`);
    expect(got.rawPayload.equals(big)).toBe(true);
    // Once only; a made-up ticket is the same answer.
    const again = await t.daemon.app.inject({ method: 'GET', url });
    expect(again.statusCode).toBe(404);
    expect(again.json().error.message).toMatch(/used already, lapsed .* or never issued/);
    expect((await t.daemon.app.inject({ method: 'GET', url: `/api/v1/downloads/${'A'.repeat(43)}` })).statusCode).toBe(404);
    const rows = t.daemon.catalog.auditLog().filter((a) => /file-ticket|downloads/.test(a.path));
    expect(rows.map((a) => [a.method, a.actor, a.status_code, a.path.split('?')[0]])).toEqual(
      expect.arrayContaining([
        ['POST', 'olga-operator', 201, `/api/v1/repositories/main/snapshots/${snap}/file-ticket`],
        ['GET', 'olga-operator', 200, '/api/v1/downloads/(ticket)'],
      ]),
    );
    const ticket = url.split('/').pop() as string;
    expect(JSON.stringify(t.daemon.catalog.auditLog())).not.toContain(ticket);
    // A viewer gets none; a directory, a file not there: refused when asking, not when following.
    expect((await ask(path.join(t.data, 'sub', 'big.bin'), 'viewer')).statusCode).toBe(403);
    expect((await ask(path.join(t.data, 'sub'))).statusCode).toBe(400);
    expect((await ask(path.join(t.data, 'nope'))).statusCode).toBe(404);
  });

  it('refuses a viewer, a directory, and a file that is not there', async () => {
    const v = await file(path.join(t.data, 'a.txt'), 'viewer');
    expect(v.statusCode).toBe(403);
    expect(v.json().error.message).toMatch(/needs the operator role/);
    const dir = await file(path.join(t.data, 'sub'));
    expect(dir.statusCode).toBe(400);
    expect(dir.json().error.message).toBe(`${path.join(t.data, 'sub')} is a directory, not a file`);
    expect((await file(path.join(t.data, 'nope'))).statusCode).toBe(404);
  });

  it('makes header-safe names of anything', () => {
    expect(contentDisposition('/a/b\r\nSet-Cookie: x=1')).toBe(`attachment; filename="b__Set-Cookie_ x=1"; filename*=UTF-8''b%0D%0ASet-Cookie%3A%20x%3D1`);
    expect(contentDisposition('/..')).toBe(`attachment; filename="_"; filename*=UTF-8''..`);
    expect(contentDisposition('/')).toBe(`attachment; filename="download"; filename*=UTF-8''download`);
  });
});

describe('GET /api/v1/sources/:name/restore-plan and a viewer restoring', () => {
  it('plans a restore to a moment with a suggested target below the restore roots; a viewer sees why it cannot start it', async () => {
    const moment = new Date().toISOString();
    const r = await get(`/api/v1/sources/docs/restore-plan?time=${encodeURIComponent(moment)}`, 'operator');
    expect(r.statusCode, r.body).toBe(200);
    const plan = r.json() as RestorePlan;
    expect(plan).toMatchObject({ source: 'docs', kind: 'files', method: 'snapshot', time: moment, snapshot: { id: snap }, target_suggested: true, problems: [] });
    expect(plan.target?.startsWith(`${t.dir}/restore-docs-`)).toBe(true);
    expect(plan.start).toEqual({ method: 'POST', url: '/api/v1/recoveries', body: { targets: { docs: plan.target }, time: moment } });

    const viewer = (await get(`/api/v1/sources/docs/restore-plan?snapshot=${snap.slice(0, 8)}`)).json() as RestorePlan;
    expect(viewer.problems.map((p) => p.code)).toEqual(['PERMISSION']);
    expect(viewer.start).toEqual({ method: 'POST', url: '/api/v1/restores', body: { source: 'docs', target: viewer.target, snapshot: snap } });

    // A target outside the roots, and one that exists, are named as problems.
    const outside = (await get('/api/v1/sources/docs/restore-plan?target=/etc/lifeboat-x', 'operator')).json() as RestorePlan;
    expect(outside.problems.map((p) => p.code)).toEqual(['RESTORE_NOT_ALLOWED']);
    const exists = (await get(`/api/v1/sources/docs/restore-plan?target=${encodeURIComponent(t.data)}`, 'operator')).json() as RestorePlan;
    expect(exists.problems.map((p) => p.code)).toEqual(['TARGET_EXISTS']);
    expect((await get('/api/v1/sources/docs/restore-plan?time=2001-01-01T00:00:00Z', 'operator')).statusCode).toBe(404);

    // What the viewer would start is refused by the API, and nothing is written.
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    for (const [url, body] of [[viewer.start.url, viewer.start.body], [plan.start.url, plan.start.body]] as const) {
      const refused = await t.daemon.app.inject({ method: 'POST', url, headers: t.auth('viewer'), payload: body as Record<string, unknown> });
      expect(refused.statusCode).toBe(403);
      expect(refused.json().error.code).toBe('PERMISSION');
    }
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    expect(existsSync(plan.target as string)).toBe(false);

    // The operator starts exactly what the plan says, and gets the files of the backup.
    const ok = await t.daemon.app.inject({ method: 'POST', url: plan.start.url, headers: t.auth('operator'), payload: plan.start.body });
    expect(ok.statusCode, ok.body).toBe(202);
    const [job] = (ok.json() as { jobs: JobRow[] }).jobs;
    const done = (await t.daemon.runner.wait(job?.id as string)) as JobRow;
    expect(done.status, done.error ?? '').toBe('succeeded');
    expect(readFileSync(path.join(plan.target as string, t.data, 'sub', 'big.bin')).equals(big)).toBe(true);
  });
});

describe('a restore plan without restore roots', () => {
  it('suggests no target and says so; an admin names one and it checks', async () => {
    const bare = await testDaemon({ extra: 'server:\n  listen: 127.0.0.1:0\n  state_dir: state' });
    try {
      const r = await bare.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers: bare.auth('operator') });
      const done = (await bare.daemon.runner.wait((r.json() as JobRow).id)) as JobRow;
      expect(done.status, done.error ?? '').toBe('succeeded');
      const plan = (role: 'operator' | 'admin', q = '') => bare.daemon.app.inject({ method: 'GET', url: `/api/v1/sources/docs/restore-plan${q}`, headers: bare.auth(role) }).then((x) => x.json() as RestorePlan);
      const op = await plan('operator');
      expect(op).toMatchObject({ target: null, target_suggested: false });
      expect(op.problems.map((p) => p.code)).toEqual(['USAGE']);
      expect(op.problems[0]?.message).toBe('no target: name the new place to restore into');
      // An operator's named target is refused (no roots: admins only); an admin's is fine.
      const named = `?target=${encodeURIComponent(path.join(bare.dir, 'r1'))}`;
      expect((await plan('operator', named)).problems.map((p) => p.code)).toEqual(['RESTORE_NOT_ALLOWED']);
      expect((await plan('admin', named)).problems).toEqual([]);
    } finally {
      await bare.daemon.stop();
    }
  });
});

describe('a download the client abandons', () => {
  it('stops its child, and frees its place among the 4 that may run at once', async () => {
    const d = await testDaemon();
    try {
      // Far more than the pipes and socket buffers between the child and a client that does not read.
      const huge = randomBytes(24 * 1024 * 1024);
      writeFileSync(path.join(d.data, 'huge.bin'), huge);
      const r = await d.daemon.app.inject({ method: 'POST', url: '/api/v1/sources/docs/backup', headers: d.auth('operator') });
      const done = (await d.daemon.runner.wait((r.json() as JobRow).id)) as JobRow;
      expect(done.status, done.error ?? '').toBe('succeeded');
      const id = d.daemon.catalog.backups('docs')[0]?.snapshot_id as string;
      const base = await d.daemon.listen();
      const url = `${base}/api/v1/repositories/main/snapshots/${id}/file?path=${encodeURIComponent(path.join(d.data, 'huge.bin'))}`;
      const dumps = () => execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(' job -- dump ') && l.includes(id)).length;
      // Five downloads, each dropped after its first bytes: more than may run at once.
      for (let i = 0; i < 5; i++) {
        await new Promise<void>((resolve, reject) => {
          const req = http.get(url, { headers: d.auth('operator') }, (res) => {
            expect(res.statusCode).toBe(200);
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          });
          req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
        });
        await expect.poll(dumps, { timeout: 20_000, interval: 100 }).toBe(0);
      }
      // Still a place free: a whole download goes through, byte for byte.
      // Without keep-alive: an idle kept connection would hold the daemon's stop for fastify's 72 s.
      const whole = await new Promise<{ status: number | undefined; body: Buffer }>((resolve, reject) => {
        http.get(url, { headers: d.auth('operator'), agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        }).on('error', reject);
      });
      expect(whole.status).toBe(200);
      expect(whole.body.equals(huge)).toBe(true);
    } finally {
      await d.daemon.stop();
    }
  }, 240_000);
});
