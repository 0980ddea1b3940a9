/**
 * The daemon API as an attacker with a token (or none) would try it: restore targets
 * outside server.restore_roots, inside the repository or state directory, below a
 * planted symlink, with shell syntax in a PostgreSQL target, a snapshot of another
 * source; 50 concurrent viewer listings; 5000 refused calls; duplicate, ambiguous and
 * expired tokens; /metrics beyond loopback; the catalog's file modes.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, statSync, symlinkSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import { cleanupTmp, runCli, tmpdir } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { Catalog, type JobRow } from '../../src/daemon/catalog.js';
import { hashToken } from '../../src/daemon/auth.js';
import { isLifeboatError } from '../../src/errors.js';

let t: TestDaemon;
/** Same repository, no restore roots, at most 3 waiting reads, a small audit bound. */
let bare: TestDaemon;

const PG_SOURCE = '  pgmain:\n    kind: postgres\n    dsn: postgres://postgres@127.0.0.1:5432/postgres';
const PHOTOS_SOURCE = '  photos:\n    kind: files\n    paths: [$DIR/photos]';

const call = (d: TestDaemon, method: 'GET' | 'POST' | 'DELETE', url: string, role?: 'viewer' | 'operator' | 'admin', payload?: unknown): Promise<LightMyRequestResponse> =>
  d.daemon.app.inject({ method, url, ...(role ? { headers: d.auth(role) } : {}), ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

async function backup(d: TestDaemon, source: string): Promise<string> {
  const r = await call(d, 'POST', `/api/v1/sources/${source}/backup`, 'operator');
  expect(r.statusCode, r.body).toBe(202);
  const done = await d.daemon.runner.wait((r.json() as JobRow).id);
  expect(done.status, done.error ?? '').toBe('succeeded');
  return (done.result as { id: string }).id;
}

beforeAll(async () => {
  t = await testDaemon({ extraSources: [PHOTOS_SOURCE, PG_SOURCE].join('\n') });
  mkdirSync(path.join(t.dir, 'photos'));
  bare = await testDaemon({
    extraSources: PG_SOURCE,
    extra: 'server:\n  listen: 127.0.0.1:0\n  state_dir: state\n  keep_audit: 50',
    daemon: { reads: { maxWaiting: 3 } },
  });
});

afterAll(async () => {
  await t.daemon.stop();
  await bare.daemon.stop();
  cleanupTmp();
});

describe('restore targets through the API', () => {
  it('refuses operator targets outside the restore roots, inside the repository or state directory, or below a symlink; starts nothing', async () => {
    const outside = path.join('/tmp', `lb-outside-${randomBytes(4).toString('hex')}`);
    symlinkSync('/tmp', path.join(t.dir, 'link'));
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    const cases: Array<[string, RegExp]> = [
      [outside, /outside the restore roots/],
      [`${t.dir}/../escaped-${randomBytes(4).toString('hex')}`, /outside the restore roots/],
      [t.dir, /outside the restore roots/],
      [path.join(t.dir, 'repo', 'restored'), /inside repository main/],
      [path.join(t.dir, 'repo'), /inside repository main/],
      [path.join(t.dir, 'state', 'restored'), /inside the state directory/],
      [path.join(t.dir, 'link', `lb-via-link-${randomBytes(4).toString('hex')}`), /is a symbolic link/],
    ];
    for (const [target, message] of cases) {
      for (const source of ['docs', 'pgmain']) {
        const r = await call(t, 'POST', '/api/v1/restores', 'operator', { source, target });
        expect(r.statusCode, `${source} → ${target}: ${r.body}`).toBe(403);
        expect(r.json().error.code).toBe('RESTORE_NOT_ALLOWED');
        expect(r.json().error.message).toMatch(message);
      }
    }
    // A recovery with one bad member starts none of them.
    const rec = await call(t, 'POST', '/api/v1/recoveries', 'operator', { targets: { docs: path.join(t.dir, 'fine'), pgmain: outside } });
    expect(rec.statusCode, rec.body).toBe(403);
    expect(rec.json().error.code).toBe('RESTORE_NOT_ALLOWED');
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    expect(existsSync(outside)).toBe(false);
    expect(existsSync(path.join(t.dir, 'fine'))).toBe(false);
    expect(existsSync(path.join(t.dir, 'repo', 'restored'))).toBe(false);
  });

  it('refuses shell syntax in a PostgreSQL target: nothing runs, no job starts', async () => {
    const marker = path.join(t.dir, 'pwned');
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    for (const evil of [`$(touch ${marker})`, `\`touch ${marker}\``, `x'; touch ${marker}; '`, 'x"y', 'x\ny', 'x\\y', 'a;b', 'a|b', 'a&b']) {
      const target = path.join(t.dir, `r-${evil}`);
      const r = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'pgmain', target });
      expect(r.statusCode, JSON.stringify(target)).toBe(400);
      expect(r.json().error.code).toBe('USAGE');
      const rec = await call(t, 'POST', '/api/v1/recoveries', 'operator', { targets: { pgmain: target } });
      expect(rec.statusCode, JSON.stringify(target)).toBe(400);
    }
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a snapshot of another source, restores the source's own (by prefix and latest)", async () => {
    const docsId = await backup(t, 'docs');
    const photosId = await backup(t, 'photos');
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    for (const snapshot of [photosId, photosId.slice(0, 8)]) {
      const r = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'docs', target: path.join(t.dir, 'wrong'), snapshot });
      expect(r.statusCode, r.body).toBe(409);
      expect(r.json().error).toMatchObject({ code: 'WRONG_SOURCE' });
      expect(r.json().error.message).toMatch(/belongs to files:photos, not to source docs/);
    }
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    expect(existsSync(path.join(t.dir, 'wrong'))).toBe(false);
    const own = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'docs', target: path.join(t.dir, 'own'), snapshot: docsId.slice(0, 8) });
    expect(own.statusCode, own.body).toBe(202);
    expect((own.json() as JobRow).params).toMatchObject({ restore: { snapshot: docsId } });
    expect((await t.daemon.runner.wait((own.json() as JobRow).id)).status).toBe('succeeded');
    // "latest" is the newest snapshot of this source, although photos' is newer in the repository.
    const latest = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'docs', target: path.join(t.dir, 'latest'), snapshot: 'latest' });
    expect(latest.statusCode, latest.body).toBe(202);
    expect((latest.json() as JobRow).params).toMatchObject({ restore: { snapshot: docsId } });
    expect((await t.daemon.runner.wait((latest.json() as JobRow).id)).status).toBe('succeeded');
    // A snapshot the CLI made after the listing was cached is found (the listing is read again).
    const cli = await runCli(['--json', '-r', path.join(t.dir, 'repo'), 'backup', '--name', 'docs', t.data]);
    expect(cli.code, cli.stderr).toBe(0);
    const fresh = (JSON.parse(cli.stdout) as { id: string }).id;
    const byCli = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'docs', target: path.join(t.dir, 'fresh'), snapshot: fresh.slice(0, 10) });
    expect(byCli.statusCode, byCli.body).toBe(202);
    expect((await t.daemon.runner.wait((byCli.json() as JobRow).id)).status).toBe('succeeded');
  });

  it('without restore roots: operators are refused naming server.restore_roots, admins restore (never into the repository)', async () => {
    const target = path.join(bare.dir, 'by-operator');
    const r = await call(bare, 'POST', '/api/v1/restores', 'operator', { source: 'docs', target });
    expect(r.statusCode).toBe(403);
    expect(r.json().error).toMatchObject({ code: 'RESTORE_NOT_ALLOWED', hint: expect.stringMatching(/server\.restore_roots/) });
    expect((await call(bare, 'POST', '/api/v1/recoveries', 'operator', { targets: { docs: target } })).statusCode).toBe(403);
    expect(existsSync(target)).toBe(false);
    const intoRepo = await call(bare, 'POST', '/api/v1/restores', 'admin', { source: 'docs', target: path.join(bare.dir, 'repo', 'x') });
    expect(intoRepo.json().error?.code).toBe('RESTORE_NOT_ALLOWED');
    await backup(bare, 'docs');
    const admin = await call(bare, 'POST', '/api/v1/restores', 'admin', { source: 'docs', target: path.join(bare.dir, 'by-admin') });
    expect(admin.statusCode, admin.body).toBe(202);
    expect((await bare.daemon.runner.wait((admin.json() as JobRow).id)).status).toBe('succeeded');
  });
});

describe('repository reads through the API', () => {
  it('50 concurrent viewer listings start one child; a finished backup makes the next one read again', async () => {
    await backup(t, 'docs'); // drops whatever an earlier test cached
    const before = t.daemon.reads.started.get('main') ?? 0;
    const answers = await Promise.all(Array.from({ length: 50 }, () => call(t, 'GET', '/api/v1/repositories/main/snapshots', 'viewer')));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(50).fill(200));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    expect((t.daemon.reads.started.get('main') ?? 0) - before).toBe(1);
    // Listings and retention previews of one repository: one child per distinct read, never more.
    await backup(t, 'docs');
    const mid = t.daemon.reads.started.get('main') ?? 0;
    const mixed = await Promise.all(Array.from({ length: 50 }, (_, i) => call(t, 'GET', i % 2 ? '/api/v1/repositories/main/snapshots' : '/api/v1/sources/docs/retention', 'viewer')));
    expect(mixed.map((a) => a.statusCode)).toEqual(Array(50).fill(200));
    expect((t.daemon.reads.started.get('main') ?? 0) - mid).toBe(2);
    const metrics = (await t.daemon.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(new RegExp(`^lifeboat_api_repository_reads_total\\{repository="main"\\} ${t.daemon.reads.started.get('main')}$`, 'm'));
  });

  it('answers 429 with Retry-After beyond the bounded queue', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, () => call(bare, 'GET', '/api/v1/repositories/main/snapshots', 'viewer')));
    const busy = answers.filter((a) => a.statusCode === 429);
    // Three wait for the one child; the rest are told to come back (a child finishing early would serve a few from the cache).
    expect(answers.every((a) => a.statusCode === 200 || a.statusCode === 429)).toBe(true);
    expect(answers.filter((a) => a.statusCode === 200).length).toBeGreaterThanOrEqual(3);
    expect(busy.length).toBeGreaterThan(0);
    expect(bare.daemon.reads.started.get('main')).toBe(1);
    expect(busy[0]?.headers['retry-after']).toBe('5');
    expect(busy[0]?.json().error.code).toBe('BUSY');
  });
});

describe('the audit log', () => {
  it('5000 refused calls leave a bounded number of rows that still count every call', async () => {
    const c = t.daemon.catalog;
    const first = (c.auditLog(1)[0]?.id ?? 0) + 1;
    const startedAt = Date.now();
    const requests: Array<Promise<LightMyRequestResponse>> = [];
    for (let i = 0; i < 4000; i++) {
      requests.push(t.daemon.app.inject({ method: 'POST', url: `/api/v1/sources/docs/backup?n=${i}`, headers: { authorization: `Bearer lbt_forged_${i}` }, remoteAddress: `10.0.0.${i % 40}` }));
      if (requests.length >= 200) await Promise.all(requests.splice(0));
    }
    for (let i = 0; i < 1000; i++) {
      requests.push(call(t, 'POST', `/api/v1/tokens?n=${i}`, 'viewer', { name: `x${i}`, role: 'admin' }));
      if (requests.length >= 200) await Promise.all(requests.splice(0));
    }
    await Promise.all(requests);
    const rows = c.db.prepare('SELECT actor, remote, status_code, count FROM audit WHERE id >= ?').all(first) as Array<{ actor: string | null; remote: string; status_code: number; count: number }>;
    c.flushRefusals();
    const counted = c.db.prepare('SELECT SUM(count) AS n, COUNT(*) AS rows FROM audit WHERE id >= ?').get(first) as { n: number; rows: number };
    // 40 addresses and one viewer: 41 rows per minute the run lasted, begun or not.
    const minutes = Math.floor((Date.now() - startedAt) / 60_000) + 1;
    expect(counted.rows).toBeLessThanOrEqual(41 * minutes);
    expect(rows.length).toBe(counted.rows);
    expect(counted.n).toBe(5000);
    expect(rows.find((r) => r.actor === 'alice-viewer')).toMatchObject({ status_code: 403 });
    expect(new Set(rows.filter((r) => r.actor === null).map((r) => r.remote)).size).toBe(40);
  });

  it("counts one token's refusals as one row for a minute from the first, across the clock's minute", () => {
    const c = new Catalog(tmpdir('lb-audit-'));
    try {
      const refusal = (actor: string) => ({ actor, role: 'viewer' as const, method: 'POST', path: '/api/v1/drills', status_code: 403, outcome: 'refused' as const, remote: '127.0.0.1' });
      const t0 = Date.UTC(2026, 11, 4, 23, 59, 59, 500);
      c.audit(refusal('v'), t0);
      c.audit(refusal('v'), t0 + 1000); // the clock's minute has turned
      c.audit(refusal('w'), t0 + 2000);
      c.audit(refusal('v'), t0 + 59_999);
      c.audit(refusal('v'), t0 + 60_000); // a minute after the first: a new row
      c.flushRefusals();
      const rows = c.db.prepare('SELECT actor, time, count FROM audit ORDER BY id').all();
      expect(rows).toEqual([
        { actor: 'v', time: new Date(t0).toISOString(), count: 3 },
        { actor: 'w', time: new Date(t0 + 2000).toISOString(), count: 1 },
        { actor: 'v', time: new Date(t0 + 60_000).toISOString(), count: 1 },
      ]);
    } finally {
      c.close();
    }
  });

  it('is pruned to server.keep_audit (rows, or a duration)', async () => {
    for (let i = 0; i < 300; i++) {
      const r = await call(bare, 'POST', '/api/v1/drills', 'operator', { source: 'nosuch' });
      expect(r.statusCode).toBe(404);
    }
    expect(bare.daemon.catalog.auditRows()).toBeLessThan(50 + 100);
    bare.daemon.catalog.pruneAudit();
    expect(bare.daemon.catalog.auditRows()).toBe(50);
    const dir = tmpdir('lb-audit-');
    const c = new Catalog(dir);
    try {
      c.keepAudit = { seconds: 3600, rows: 1000 };
      for (let i = 0; i < 10; i++) c.audit({ actor: 'a', role: 'admin', method: 'POST', path: '/x', status_code: 200, outcome: 'ok', remote: null }, Date.now() - 2 * 3600_000);
      c.audit({ actor: 'a', role: 'admin', method: 'POST', path: '/x', status_code: 200, outcome: 'ok', remote: null });
      expect(c.pruneAudit()).toBe(10);
      expect(c.auditRows()).toBe(1);
    } finally {
      c.close();
    }
  });
});

describe('tokens', () => {
  it('refuses a duplicate name, revokes exactly one by name, refuses to guess among old duplicates', async () => {
    const a = await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'ci', role: 'viewer' });
    expect(a.statusCode).toBe(201);
    const dup = await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'ci', role: 'admin' });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error).toMatchObject({ code: 'TOKEN_EXISTS', message: 'an active token is already named "ci"' });
    const revoked = await call(t, 'DELETE', '/api/v1/tokens/ci', 'admin');
    expect(revoked.json()).toEqual({ revoked: 1, id: a.json().id, name: 'ci' });
    expect((await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'ci', role: 'viewer' })).statusCode).toBe(201);
    // Catalogs from before names were unique may hold duplicates: revoking by name then names the ids.
    const ins = t.daemon.catalog.db.prepare("INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, 'legacy', 'viewer', ?, '2026-01-01T00:00:00Z')");
    ins.run('aaaaaaaaaaaa', hashToken('one'));
    ins.run('bbbbbbbbbbbb', hashToken('two'));
    const ambiguous = await call(t, 'DELETE', '/api/v1/tokens/legacy', 'admin');
    expect(ambiguous.statusCode).toBe(400);
    expect(ambiguous.json().error.hint).toMatch(/aaaaaaaaaaaa, bbbbbbbbbbbb/);
    expect(t.daemon.catalog.tokens().filter((x) => x.name === 'legacy' && x.state === 'active').length).toBe(2);
    expect((await call(t, 'DELETE', '/api/v1/tokens/aaaaaaaaaaaa', 'admin')).json()).toMatchObject({ revoked: 1, name: 'legacy' });
  });

  it('expires a token given a lifetime: refused with 401 naming it, listed as expired', async () => {
    const r = await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'temp', role: 'viewer', expires: '30d' });
    expect(r.statusCode, r.body).toBe(201);
    const { token, id, expires_at } = r.json() as { token: string; id: string; expires_at: string };
    expect(Math.abs(Date.parse(expires_at) - (Date.now() + 30 * 86400_000))).toBeLessThan(60_000);
    const headers = { authorization: `Bearer ${token}` };
    expect((await t.daemon.app.inject({ method: 'GET', url: '/api/v1/sources', headers })).statusCode).toBe(200);
    t.daemon.catalog.db.prepare('UPDATE tokens SET expires_at = ? WHERE id = ?').run(new Date(Date.now() - 1000).toISOString(), id);
    const expired = await t.daemon.app.inject({ method: 'GET', url: '/api/v1/sources', headers });
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toMatch(/^token "temp" expired at /);
    const list = (await call(t, 'GET', '/api/v1/tokens', 'admin')).json() as Array<{ id: string; state: string }>;
    expect(list.find((x) => x.id === id)?.state).toBe('expired');
    // Its name is free again, and a nonsense lifetime is refused.
    expect((await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'temp', role: 'viewer' })).statusCode).toBe(201);
    expect((await call(t, 'POST', '/api/v1/tokens', 'admin', { name: 'temp2', role: 'viewer', expires: 'soon' })).json().error.code).toBe('USAGE');
  });
});

describe('metrics and listening', () => {
  it('/metrics beyond loopback needs server.metrics_token (or an API token)', async () => {
    const metricsToken = randomBytes(24).toString('hex');
    const d = await testDaemon({ extra: `server:\n  listen: 0.0.0.0:0\n  state_dir: state\n  metrics_token: ${metricsToken}` });
    try {
      const get = (authorization?: string) => d.daemon.app.inject({ method: 'GET', url: '/metrics', ...(authorization ? { headers: { authorization } } : {}) });
      expect((await get()).statusCode).toBe(401);
      expect((await get('Bearer wrong-token-of-some-length')).statusCode).toBe(401);
      const ok = await get(`Bearer ${metricsToken}`);
      expect(ok.statusCode).toBe(200);
      expect(ok.body).toContain('lifeboat_rpo_target_seconds{source="docs"}');
      expect((await get(`Bearer ${d.tokens.viewer}`)).statusCode).toBe(200);
      // Plain HTTP beyond loopback is refused unless --insecure, before any socket opens.
      const refused = await d.daemon.listen().catch((e: unknown) => e);
      expect(isLifeboatError(refused, 'LISTEN_UNSAFE')).toBe(true);
      expect(d.daemon.app.server.listening).toBe(false);
    } finally {
      await d.daemon.stop();
    }
  });
});

describe('files', () => {
  it('keeps the catalog private: directory 0700, database and its WAL 0600, a loose existing state directory tightened', () => {
    expect(statSync(path.join(t.dir, 'state')).mode & 0o777).toBe(0o700);
    for (const f of ['catalog.db', 'catalog.db-wal']) expect(statSync(path.join(t.dir, 'state', f)).mode & 0o777, f).toBe(0o600);
    const loose = path.join(tmpdir('lb-loose-'), 'state');
    mkdirSync(loose, { mode: 0o755 });
    new Catalog(loose).close();
    expect(statSync(loose).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(loose, 'catalog.db')).mode & 0o777).toBe(0o600);
  });
});
