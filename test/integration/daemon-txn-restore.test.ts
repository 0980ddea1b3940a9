/**
 * Restores to a transaction through the daemon's API: a Redis source replicated by the
 * real CLI, an accident (DEL of two keys), then GET /sources/:name/restore-plan with
 * `before_txn` says what comes back and how to start it, a viewer may look but not
 * start, an operator's POST /restores with `before_txn` runs a job whose result is the
 * dataset just before the DEL (key by key), and requests a kind cannot take (a
 * transaction for a files source, a transaction and a time together) are refused
 * before any job starts.
 */
import * as path from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../src/daemon/catalog.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { RedisReplicator } from '../helpers/redis-replicator.js';
import { RedisServer, datasetOf, datasetOfRdb, stopAllRedis } from '../helpers/redis-server.js';
import { cleanupTmp, runCli } from '../helpers.js';

const ENV = { LIFEBOAT_PASSWORD: 'test-password' };
let t: TestDaemon | undefined;

afterAll(async () => {
  await t?.daemon.stop();
  await stopAllRedis();
  cleanupTmp();
});

const call = (d: TestDaemon, method: 'GET' | 'POST', url: string, role: 'viewer' | 'operator', payload?: unknown): Promise<LightMyRequestResponse> =>
  d.daemon.app.inject({ method, url, headers: d.auth(role), ...(payload !== undefined ? { payload: payload as Record<string, unknown> } : {}) });

describe('API restores to a transaction', () => {
  it('plans, refuses a viewer, and restores a Redis source to just before a DEL', async () => {
    const server = await RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });
    t = await testDaemon({ extraSources: `  cache:\n    kind: redis\n    url: "${server.url}"` });
    const repo = path.join(t.dir, 'repo');
    const rep = RedisReplicator.start(repo, server.url, 'cache', ['--interval', '200ms'], ENV);
    const c = await server.client();
    let before;
    let latest;
    try {
      await rep.until((e) => e.kind === 'generation', 'a generation');
      for (let i = 0; i < 5; i++) await c.ok(['SET', `a${i}`, `v${i}`]);
      before = await datasetOf(server);
      await c.ok(['DEL', 'a1', 'a2']);
      await c.ok(['SET', 'b', 'after']);
      await rep.archived(Date.now());
      latest = await datasetOf(server);
    } finally {
      c.close();
      await rep.stop();
    }
    const h = JSON.parse((await runCli(['-r', repo, '--json', 'redis', 'history', 'cache', '--around', new Date().toISOString()], ENV)).stdout) as {
      generation: string;
      transactions: Array<{ seq: number; commands: Array<{ name: string }> }>;
    };
    const del = h.transactions.find((x) => x.commands[0]?.name === 'DEL');
    expect(del?.seq).toBe(6);

    // The plan: anyone may look; it names the transaction and the call that starts it.
    const target = path.join(t.dir, 'undone');
    const planned = await call(t, 'GET', `/api/v1/sources/cache/restore-plan?before_txn=6&generation=${h.generation}&target=${encodeURIComponent(target)}`, 'viewer');
    expect(planned.statusCode, planned.body).toBe(200);
    const plan = planned.json();
    expect(plan).toMatchObject({ method: 'replay', txn: { number: 6, included: false, generation: h.generation }, start: { method: 'POST', url: '/api/v1/restores', body: { source: 'cache', target, before_txn: 6, generation: h.generation } } });
    expect(plan.problems.map((p: { code: string }) => p.code)).toEqual(['PERMISSION']);
    expect((await call(t, 'GET', `/api/v1/sources/cache/restore-plan?before_txn=6&target=${encodeURIComponent(target)}`, 'operator')).json().problems).toEqual([]);

    // Starting it: not a viewer; an operator's job restores exactly the data before the DEL.
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    expect((await call(t, 'POST', '/api/v1/restores', 'viewer', plan.start.body)).statusCode).toBe(403);
    for (const [body, message] of [
      [{ source: 'cache', target, before_txn: 6, time: new Date().toISOString() }, /give one of "snapshot", "time", "txn" and "before_txn"/],
      [{ source: 'cache', target, generation: h.generation }, /"generation" goes with "txn" or "before_txn"/],
      [{ source: 'docs', target, txn: 2 }, /a files restore takes no "txn"/],
    ] as const) {
      const r = await call(t, 'POST', '/api/v1/restores', 'operator', body);
      expect(r.statusCode, r.body).toBe(400);
      expect(r.json().error).toMatchObject({ code: 'USAGE' });
      expect(r.json().error.message).toMatch(message);
    }
    expect((await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'cache', target, before_txn: 0 })).statusCode).toBe(400);
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    const started = await call(t, 'POST', '/api/v1/restores', 'operator', plan.start.body);
    expect(started.statusCode, started.body).toBe(202);
    const job = await t.daemon.runner.wait((started.json() as JobRow).id);
    expect(job.status, JSON.stringify(job)).toBe('succeeded');
    expect(await datasetOfRdb(path.join(target, 'dump.rdb'))).toEqual(before);

    // Neither a moment nor a snapshot: the newest data, the stream replayed to its end, not
    // only the base snapshot the catalog knows (the job used to pass it as --snapshot).
    await t.daemon.rebuildCatalog();
    expect(t.daemon.catalog.backups('cache').length).toBeGreaterThan(0);
    const newest = path.join(t.dir, 'newest');
    const all = await call(t, 'POST', '/api/v1/restores', 'operator', { source: 'cache', target: newest });
    expect(all.statusCode, all.body).toBe(202);
    const allJob = await t.daemon.runner.wait((all.json() as JobRow).id);
    expect(allJob.status, JSON.stringify(allJob)).toBe('succeeded');
    expect(await datasetOfRdb(path.join(newest, 'dump.rdb'))).toEqual(latest);
  }, 180_000);
});
