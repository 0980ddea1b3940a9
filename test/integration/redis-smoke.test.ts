/**
 * Smoke test against the machine's own Redis on 127.0.0.1:6379 (started before each
 * session and CI run, without persistence): `lifeboat redis backup` of it, read-only
 * (the backup pulls an RDB as a replica would; nothing is written to the server, its
 * disk or its settings), then a restore of that snapshot into a directory, which
 * redis-check-rdb accepts and a scratch server loads. Skipped, saying why, when no
 * Redis answers there.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisConnection, keyspace, parseRedisUrl } from '../../src/sources/redis/connection.js';
import { cleanupTmp, initRepo, runCli, tmpdir } from '../helpers.js';
import { datasetOfRdb, stopAllRedis } from '../helpers/redis-server.js';

const URL = 'redis://127.0.0.1:6379';
const ENV = { LIFEBOAT_PASSWORD: 'redis-smoke' };

afterAll(async () => {
  await stopAllRedis();
  cleanupTmp();
});

describe("the machine's own Redis", () => {
  let absent: string | undefined;
  let before: { runId: string; keys: number; config: string } | undefined;

  beforeAll(async () => {
    try {
      const c = await RedisConnection.open(parseRedisUrl(URL), { timeoutMs: 3000, password: process.env.LIFEBOAT_REDIS_PASSWORD });
      try {
        const info = await c.info();
        const keys = Object.values(keyspace(info)).reduce((a, b) => a + b, 0);
        const config = JSON.stringify(await c.ok(['CONFIG', 'GET', 'save']));
        before = { runId: info.get('run_id') ?? '', keys, config };
      } finally {
        c.close();
      }
    } catch (err) {
      absent = `no Redis answers on 127.0.0.1:6379 (${(err as Error).message.split('\n')[0]}); the smoke test needs the machine's own server`;
    }
  });

  it('backs it up read-only and restores the snapshot to a dump.rdb that loads', async (ctx) => {
    if (absent) return ctx.skip(absent);
    const dir = tmpdir('lb-redis-smoke-');
    const repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
    const backup = await runCli(['-r', repo, '--json', 'redis', 'backup', '--url', URL, '--name', 'machine'], ENV);
    expect(backup.code, backup.stderr).toBe(0);
    const snapshot = JSON.parse(backup.stdout) as { id?: string; consistency?: { runId?: string; keys?: Record<string, number>; rdbBytes?: number } };
    expect(typeof snapshot.id).toBe('string');
    // The consistency point names this server's run and what it held.
    expect(snapshot.consistency?.runId).toBe(before?.runId);
    expect(snapshot.consistency?.rdbBytes).toBeGreaterThan(0);

    const out = path.join(dir, 'restored');
    const restore = await runCli(['-r', repo, 'redis', 'restore', 'machine', '--latest', '--output', out], ENV);
    expect(restore.code, restore.stderr).toBe(0);
    expect(existsSync(path.join(out, 'dump.rdb'))).toBe(true);
    // The restored copy loads, with the keys the snapshot recorded (when nobody else wrote to
    // the shared server meanwhile: its key count was the same before and after).
    const restored = Object.keys(await datasetOfRdb(path.join(out, 'dump.rdb'))).length;
    const recorded = Object.values(snapshot.consistency?.keys ?? {}).reduce((a, b) => a + b, 0);

    // Nothing about the server changed: same process, same persistence settings.
    const c = await RedisConnection.open(parseRedisUrl(URL), { timeoutMs: 3000, password: process.env.LIFEBOAT_REDIS_PASSWORD });
    try {
      const info = await c.info();
      expect(info.get('run_id')).toBe(before?.runId);
      const keysNow = Object.values(keyspace(info)).reduce((a, b) => a + b, 0);
      if (keysNow === before?.keys) expect(restored).toBe(recorded);
      else console.log(`redis-smoke: the shared server changed during the test (${before?.keys} keys, then ${keysNow}); restored ${restored}, recorded ${recorded}`);
      expect(JSON.stringify(await c.ok(['CONFIG', 'GET', 'save']))).toBe(before?.config);
    } finally {
      c.close();
    }
  });
});
