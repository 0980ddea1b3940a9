/**
 * Recoverable windows (engine/window.ts) read back from real repositories: a SQLite
 * source replicated by `sqlite replicate` covers every moment from its snapshot to its
 * last shipped transaction, and a log segment removed from the repository becomes a
 * gap with its reason, cutting the latest moment back to before it; a Redis history whose
 * server could not continue a generation shows the loss between the two generations, and
 * one with a command segment missing the gap after it; the daemon serves
 * a files source's window (backups, last verified drill) to a viewer through the API.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LightMyRequestResponse } from 'fastify';
import type { JobRow } from '../../src/daemon/catalog.js';
import type { RecoverableWindow } from '../../src/engine/window.js';
import { RecoverableWindow as WindowSchema } from '../../src/api/dto.js';
import { cleanupTmp } from '../helpers.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { cli, newRepo, Replicator, runApp } from '../sqlite-helpers.js';
import '../../src/sources/all.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { sourceWindow } from '../../src/engine/window.js';
import { GENERATION, storeBase, storeSegments, type Step } from '../redis-history.js';
import { tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

describe('SQLite window', () => {
  it('covers snapshot to last shipped transaction; a missing segment is a gap with its reason', async () => {
    const { dir, repo } = await newRepo('lb-window-');
    const db = path.join(dir, 'app.db');
    await runApp(db, 5);
    const rep = new Replicator(repo, db, ['--interval', '100ms']);
    await rep.waitFor('snapshot');
    const first = await runApp(db, 20);
    await rep.archived(Date.now());
    const second = await runApp(db, 20);
    await rep.archived(Date.now());
    await rep.stop();
    const w = JSON.parse(await cli(['-r', repo, '--json', 'window', 'app'])) as RecoverableWindow;
    WindowSchema.parse(w);
    expect(w).toMatchObject({ name: 'app', kind: 'sqlite', continuous: true, gaps: [] });
    expect(w.snapshots.length).toBe(1);
    expect(w.coverage.map((c) => c.log)).toEqual(['sqlite']);
    expect(w.earliest).toBe(w.snapshots[0]?.time);
    // Transactions are timed when the replicator saw them: never before their commit.
    const lastCommit = second.committed.at(-1)?.at as number;
    expect(Date.parse(w.latest as string)).toBeGreaterThanOrEqual(lastCommit);

    // Remove the segment holding the first run's transactions: the history after it cannot be replayed.
    const genDir = path.join(repo, 'logs', 'sqlite.app');
    const gen = readdirSync(genDir).find((g) => !g.startsWith('.')) as string;
    const segs = readdirSync(path.join(genDir, gen)).filter((f) => /^[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{12}$/.test(f)).sort();
    expect(segs.length, segs.join(' ')).toBeGreaterThanOrEqual(2);
    rmSync(path.join(genDir, gen, segs[0] as string));
    const cut = JSON.parse(await cli(['-r', repo, '--json', 'window', 'sqlite:app'])) as RecoverableWindow;
    expect(Date.parse(cut.latest as string)).toBeLessThan(first.committed[0]?.at as number);
    expect(cut.gaps).toHaveLength(1);
    expect(cut.gaps[0]?.reason).toMatch(/log segment of generation .* is missing/);
    expect(cut.gaps[0]?.from).toBe(cut.latest);
    expect(Date.parse(cut.gaps[0]?.to as string)).toBeGreaterThanOrEqual(lastCommit);
  });

  it('a quiet stretch between two snapshots of one generation is covered, not a gap', async () => {
    const { dir, repo } = await newRepo('lb-window-quiet-');
    const db = path.join(dir, 'app.db');
    await runApp(db, 5);
    const rep = new Replicator(repo, db, ['--interval', '100ms', '--snapshot-interval', '2s']);
    await rep.waitFor('snapshot');
    await runApp(db, 10);
    await rep.archived(Date.now());
    // Nothing is written after: the replicator's next snapshot is the newest moment.
    await rep.until(() => rep.of('snapshot').length >= 2, 'a second snapshot');
    await rep.stop();
    const w = JSON.parse(await cli(['-r', repo, '--json', 'window', 'app'])) as RecoverableWindow;
    expect(w.snapshots.length).toBeGreaterThanOrEqual(2);
    expect(w.gaps).toEqual([]);
    expect(w.latest).toBe(w.snapshots.at(-1)?.consistent_at);
  });
});

describe('the window through the API', () => {
  let t: TestDaemon;
  const call = (url: string, role?: 'viewer'): Promise<LightMyRequestResponse> => t.daemon.app.inject({ method: 'GET', url, ...(role ? { headers: t.auth(role) } : {}) });
  const job = async (url: string, body?: Record<string, unknown>): Promise<JobRow> => {
    const r = await t.daemon.app.inject({ method: 'POST', url, headers: t.auth('operator'), ...(body ? { payload: body } : {}) });
    expect(r.statusCode, r.body).toBe(202);
    const j = r.json() as JobRow | { jobs: JobRow[] };
    const id = 'jobs' in j ? (j.jobs[0] as JobRow).id : j.id;
    const done = (await t.daemon.runner.wait(id)) as JobRow;
    expect(done.status, done.error ?? '').toBe('succeeded');
    return done;
  };

  beforeAll(async () => {
    t = await testDaemon({ daemon: { reads: { ttlMs: 0 } }, extraSources: '  more: { kind: files, paths: [$DIR/more] }', extra: 'groups:\n  pair: { members: [docs, more], max_hold: 30s }' });
    mkdirSync(path.join(t.dir, 'more'));
    writeFileSync(path.join(t.dir, 'more', 'm.txt'), 'more\n');
  });
  afterAll(async () => {
    await t?.daemon.stop();
  });

  it("serves a files source's backups and last verified drill to a viewer", async () => {
    const empty = await call('/api/v1/sources/docs/window', 'viewer');
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.json()).toMatchObject({ name: 'docs', kind: 'files', earliest: null, latest: null, snapshots: [], last_drill: null });
    const a = await job('/api/v1/sources/docs/backup');
    const b = await job('/api/v1/sources/docs/backup');
    await job('/api/v1/drills', { source: 'docs' });
    const r = await call('/api/v1/sources/docs/window', 'viewer');
    expect(r.statusCode, r.body).toBe(200);
    const w = WindowSchema.parse(r.json());
    expect(w.snapshots.map((s) => s.id)).toEqual([(a.result as { id: string }).id, (b.result as { id: string }).id]);
    expect(w).toMatchObject({ continuous: false, gaps: [], coverage: [], earliest: w.snapshots[0]?.time, latest: w.snapshots[1]?.time });
    expect(w.last_verified_drill?.ok).toBe(true);
    expect(w.last_verified_drill?.rto_seconds).toBeGreaterThan(0);
    expect(w.last_drill?.time).toBe(w.last_verified_drill?.time);
  });

  it("serves a group's points and its members' windows", async () => {
    const j = await job('/api/v1/groups/pair/backup');
    const r = await call('/api/v1/groups/pair/window', 'viewer');
    expect(r.statusCode, r.body).toBe(200);
    const w = WindowSchema.parse(r.json());
    expect(w).toMatchObject({ name: 'pair', kind: 'group', continuous: false });
    expect(w.snapshots.map((s) => s.id)).toEqual([(j.result as { id: string }).id]);
    expect(w.members?.map((m) => `${m.kind}:${m.name}`).sort()).toEqual(['files:docs', 'files:more']);
    expect(w.members?.find((m) => m.name === 'more')?.snapshots).toHaveLength(1);
  });

  it('refuses a caller without a token, and names an unknown source', async () => {
    expect((await call('/api/v1/sources/docs/window')).statusCode).toBe(401);
    const r = await call('/api/v1/sources/nope/window', 'viewer');
    expect(r.statusCode).toBe(404);
    expect(r.json().error.code).toBe('NOT_FOUND');
    expect((await call('/api/v1/groups/nope/window', 'viewer')).statusCode).toBe(404);
  });
});

describe('Redis window', () => {
  const t0 = Date.parse('2026-11-20T10:00:00Z');
  const steps = (from: number, n: number): Step[] => Array.from({ length: n }, (_, i) => ({ cmds: [['SET', `k${from + i}`, String(i)]], time: t0 + (from + i) * 1000 }));
  const rdb = Buffer.from('REDIS0011 not read by the window');

  it('shows the loss between generations and a missing command segment as gaps, with their reasons', async () => {
    const repo = await Repository.init(new LocalStore(path.join(tmpdir('lb-window-redis-'), 'repo')), 'test-password');
    // Generation 1: base at t0, commands until t0+6s; the server restarts empty, generation 2 from a fresh RDB at t0+20s.
    await storeBase(repo, 'cache', rdb, { offset: 1000, generation: GENERATION }, new Date(t0));
    await storeSegments(repo, 'cache', GENERATION, 1000, steps(1, 6));
    const next = 'c'.repeat(20);
    await storeBase(repo, 'cache', rdb, { offset: 0, generation: next, replid: 'd'.repeat(40) }, new Date(t0 + 20_000));
    await storeSegments(repo, 'cache', next, 0, steps(21, 2));
    const w = await sourceWindow(repo, 'redis', 'cache');
    expect(w).toMatchObject({ continuous: true, earliest: new Date(t0).toISOString(), latest: new Date(t0 + 22_000).toISOString() });
    expect(w.coverage.map((c) => [c.log, c.from, c.to])).toEqual([
      ['redis', new Date(t0).toISOString(), new Date(t0 + 6000).toISOString()],
      ['redis', new Date(t0 + 20_000).toISOString(), new Date(t0 + 22_000).toISOString()],
    ]);
    expect(w.gaps).toHaveLength(1);
    expect(w.gaps[0]).toMatchObject({ from: new Date(t0 + 6000).toISOString(), to: new Date(t0 + 20_000).toISOString() });
    expect(w.gaps[0]?.reason).toMatch(/^loss: the server could not continue generation b{20}/);

    // The first of two command segments missing: nothing after the base is reachable.
    await storeBase(repo, 'gappy', rdb, { offset: 1000, generation: GENERATION }, new Date(t0));
    await storeSegments(repo, 'gappy', GENERATION, 1000, steps(1, 6), 3, [0]);
    const g = await sourceWindow(repo, 'redis', 'gappy');
    expect(g.latest).toBe(new Date(t0).toISOString());
    expect(g.gaps).toEqual([{ from: new Date(t0).toISOString(), to: new Date(t0 + 6000).toISOString(), reason: expect.stringMatching(/has a gap after offset 1000 \(a segment is missing\)/) }]);
  });
});
