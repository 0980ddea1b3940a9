/**
 * Redis point-in-time recovery end to end, through the real CLI against real Debian
 * redis-server instances (issue 16).
 *
 * An application (test/helpers/redis-writer.ts) writes a few hundred mixed commands a
 * second while `lifeboat redis replicate` runs as a child process. At 20 moments chosen
 * by chance (after a random number of writes) it records the whole dataset, key by key
 * (type, DEBUG DIGEST-VALUE, PEXPIRETIME), with the wall-clock moment between two
 * writes. On the way the replicator is killed with SIGKILL mid-writes and restarted
 * (history carries on: no gap), the Redis server crashes and comes back empty while the
 * writer carries on (a new generation, and a data-loss window reported), and at the end
 * the writer runs FLUSHDB: the accident. Then each moment is restored with
 * `lifeboat redis restore --time` and compared with what was recorded; the restore to
 * just before the FLUSHDB gives every key back.
 *
 * Keys with short expiries are written too; a key whose time ran out between the
 * moment and the reading of the restored copy is legitimately absent, so keys expiring
 * within ten minutes are left out of the comparison on both sides (comparable()).
 *
 * Then bad input through the CLI: a wrong password, a server that is not there, a
 * restore --to a server that is not empty.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/errors.js';
import { cleanupTmp, expectError, initRepo, runCli, tmpdir, type CliResult } from '../helpers.js';
import { RedisReplicator } from '../helpers/redis-replicator.js';
import { RedisServer, comparable, datasetOf, datasetOfRdb, stopAllRedis, type Dataset } from '../helpers/redis-server.js';
import { MixedWriter, prng, type Moment } from '../helpers/redis-writer.js';
import { freePort } from '../pg-cluster.js';

const SOURCE_UNAVAILABLE = ERROR_TABLE.SOURCE_UNAVAILABLE.exit;
const TARGET_EXISTS = ERROR_TABLE.TARGET_EXISTS.exit;
const ENV = { LIFEBOAT_PASSWORD: 'redis-pitr' };
const iso = (ms: number) => new Date(ms).toISOString();

afterAll(async () => {
  await stopAllRedis();
  cleanupTmp();
});

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCli(args, { ...ENV, ...env }, { timeoutMs: 170_000 });
}

async function ok(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const r = await cli(args, env);
  if (r.code !== 0) throw new Error(`lifeboat ${args.join(' ')}: exit ${r.code}\nstdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-3000)}`);
  return r;
}

/** What differs between two datasets, one short line a key (at most 15 lines): [] when equal. */
function differences(got: Dataset, want: Dataset): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(got), ...Object.keys(want)])) {
    const g = got[k];
    const w = want[k];
    if (!g) out.push(`${k}: missing (want ${w?.type})`);
    else if (!w) out.push(`${k}: should not be there (${g.type})`);
    else if (g.type !== w.type || g.digest !== w.digest || g.expireAt !== w.expireAt) {
      out.push(`${k}: ${g.type} ${g.digest.slice(0, 8)} expires ${g.expireAt}, want ${w.type} ${w.digest.slice(0, 8)} expires ${w.expireAt}`);
    }
  }
  return out.length > 15 ? [...out.slice(0, 15), `… and ${out.length - 15} more`] : out;
}

/** Runs `fn` over `items`, `n` at a time (restores start servers: a few at once on two cores). */
async function inBatches<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

/** Some of every type, in databases 0 and 1, before replication starts (the first RDB holds them). */
async function seed(server: RedisServer): Promise<void> {
  const c = await server.client();
  try {
    await c.ok(['SET', 'anchor', 'set before replication began']);
    for (let i = 0; i < 40; i++) {
      await c.ok(['SET', `str:${i}`, `seed-${i}`]);
      await c.ok(['HSET', `h:${i}`, 'f0', `v${i}`, 'f1', 'x']);
      await c.ok(['ZADD', `z:${i % 30}`, i, `m${i}`]);
      await c.ok(['INCRBY', `cnt:${i}`, i]);
    }
    await c.ok(['SELECT', 1]);
    for (let i = 0; i < 10; i++) await c.ok(['SET', `d1:${i}`, `seed-${i}`]);
  } finally {
    c.close();
  }
}

describe('redis point-in-time recovery under a writer', () => {
  let dir: string;
  let repo: string;
  let server: RedisServer;
  let writer: MixedWriter | undefined;
  const replicators: RedisReplicator[] = [];
  const moments: Array<Moment & { label: string }> = [];
  let beforeAccident: Moment | undefined;
  let finalDataset: Dataset = {};
  let crashedAt = 0;
  let lastBeforeCrash = 0;
  let firstGeneration: unknown;

  afterAll(async () => {
    await writer?.stop().catch(() => {});
    for (const r of replicators) await r.kill9();
  });

  const replicate = () => {
    const r = RedisReplicator.start(repo, server.url, 'app', ['--interval', '200ms', '--snapshot-interval', '6s'], ENV);
    replicators.push(r);
    return r;
  };

  it('replicates while a writer writes, through a kill -9 of the replicator, a server crash and a FLUSHDB', async () => {
    dir = tmpdir('lb-redis-pitr-');
    repo = path.join(dir, 'repo');
    server = await RedisServer.start();
    await seed(server);
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);

    let rep = replicate();
    await rep.until((e) => e.kind === 'snapshot', 'a first snapshot');
    firstGeneration = (await rep.until((e) => e.kind === 'generation', 'a generation event')).generation;
    writer = new MixedWriter(server.url, { rate: 300, seed: 16 });
    writer.start();
    const chance = prng(2026);
    // A moment after a random number of writes (between about 0.2 and 0.8 s of them).
    const take = async (label: string): Promise<void> => {
      await (writer as MixedWriter).more(60 + Math.floor(chance() * 180));
      moments.push({ label, ...(await (writer as MixedWriter).moment()) });
    };

    for (let i = 0; i < 7; i++) await take(`before the kill #${i + 1}`);
    // The moments so far are shipped; then writes go on, unshipped, when the replicator dies.
    await rep.archived((moments.at(-1) as Moment).at);
    await writer.more(20 + Math.floor(chance() * 60));
    await rep.kill9();
    // Writes while no replicator is attached: the server's backlog keeps them for the next one.
    await writer.more(300);
    rep = replicate();
    const restartedAt = Date.now();
    await rep.archived(restartedAt);
    for (let i = 0; i < 6; i++) await take(`after the replicator's restart #${i + 1}`);

    // The server crashes (no persistence: its data is gone) while the writer writes; it
    // comes back on the same port, empty, and the writer reconnects and carries on.
    lastBeforeCrash = (moments.at(-1) as Moment).at;
    await rep.archived(lastBeforeCrash);
    const generationsBefore = rep.of('generation').length;
    crashedAt = Date.now();
    await server.kill9();
    server = await server.restart();
    await server.command(['SET', 'anchor', 'set again after the crash']);
    await rep.until((e) => e.kind === 'generation' && rep.of('generation').indexOf(e) >= generationsBefore, 'a new generation after the server restart');
    await rep.until((e) => e.kind === 'snapshot' && Date.parse(String(e.time)) > crashedAt, 'a snapshot of the restarted server');
    await writer.more(150);
    for (let i = 0; i < 6; i++) await take(`after the server's restart #${i + 1}`);

    // The accident, right after the 20th moment.
    await writer.more(60 + Math.floor(chance() * 120));
    beforeAccident = await writer.momentThen(['FLUSHDB']);
    moments.push({ label: 'just before the FLUSHDB', ...beforeAccident });
    await writer.more(100);
    await writer.stop();
    expect(writer.errors).toEqual([]);
    expect(writer.reconnects).toBeGreaterThan(0);
    finalDataset = await datasetOf(server);
    await rep.archived(Date.now());
    await rep.stop();

    expect(moments).toHaveLength(20);
    console.log(`redis-pitr: ${writer.commands} commands in ${((Date.now() - (replicators[0] as RedisReplicator).startedAt) / 1000).toFixed(1)} s; ${moments.length} moments`);
  }, 170_000);

  it('keeps one generation across the kill -9 (the server continued the stream) and starts a new one when the server restarted empty, reporting the data-loss window', () => {
    const [first, second] = replicators as [RedisReplicator, RedisReplicator];
    const resumed = second.of('generation');
    // After kill -9 the restarted replicator continues the same history: no new RDB needed, no gap.
    expect(resumed[0], second.tail()).toMatchObject({ generation: firstGeneration, reason: 'resumed' });
    expect(first.of('generation').map((e) => e.generation)).toEqual([firstGeneration]);
    // The server's restart is a new history: a new generation, and the window of writes
    // that may be lost (sent before the crash, never received) is reported.
    const fresh = resumed.slice(1);
    expect(fresh.length, second.tail()).toBeGreaterThanOrEqual(1);
    expect(fresh[0], second.tail()).toMatchObject({ reason: 'full-resync' });
    expect(fresh[0]?.generation).not.toBe(firstGeneration);
    // The window: from the last moment proven stored in the old history to the new base.
    const loss = second.of('loss');
    expect(loss, `a data-loss window in the events after the crash${second.tail()}`).toHaveLength(1);
    const { since, until, previous, generation } = loss[0] as { since: string; until: string; previous: string; generation: string };
    expect(previous).toBe(firstGeneration);
    expect(generation).toBe(fresh[0]?.generation);
    // It covers the crash, and starts no earlier than the last moment recorded before it (proven stored then).
    expect(Date.parse(since)).toBeLessThanOrEqual(crashedAt);
    expect(Date.parse(since)).toBeGreaterThanOrEqual(lastBeforeCrash);
    expect(Date.parse(until)).toBeGreaterThan(crashedAt);
    console.log(`redis-pitr: data-loss window reported after the server crash: ${since} .. ${until} (${Date.parse(until) - Date.parse(since)} ms)`);
  });

  it('restores each of the 20 moments to exactly the dataset recorded then', async () => {
    expect(moments).toHaveLength(20);
    const results = await inBatches(moments, 3, async (m, i) => {
      const out = path.join(dir, `at-${i}`);
      await ok(['-r', repo, 'redis', 'restore', 'app', '--time', iso(m.at), '--output', out]);
      expect(existsSync(path.join(out, 'dump.rdb'))).toBe(true);
      return datasetOfRdb(path.join(out, 'dump.rdb'));
    });
    const now = Date.now();
    const failures: string[] = [];
    moments.forEach((m, i) => {
      const diff = differences(comparable(results[i] as Dataset, now), comparable(m.dataset, now));
      if (diff.length) failures.push(`moment ${i + 1} (${m.label}, ${iso(m.at)}):\n  ${diff.join('\n  ')}`);
    });
    expect(failures, failures.join('\n')).toEqual([]);
  }, 170_000);

  it('gives every key back when restored to just before the FLUSHDB, and the newest state has the accident', async () => {
    const before = beforeAccident as Moment;
    const db0 = Object.keys(before.dataset).filter((k) => k.startsWith('db0:'));
    expect(db0.length).toBeGreaterThan(100);
    const out = path.join(dir, 'before-accident');
    await ok(['-r', repo, 'redis', 'restore', 'app', '--time', iso(before.at), '--output', out, '--check', 'EXISTS anchor => 1']);
    const now = Date.now();
    expect(differences(comparable(await datasetOfRdb(path.join(out, 'dump.rdb')), now), comparable(before.dataset, now))).toEqual([]);

    // A check the restored data does not pass fails the restore, saying which.
    const failing = await cli(['-r', repo, 'redis', 'restore', 'app', '--time', iso(before.at), '--output', path.join(dir, 'failing-check'), '--check', 'EXISTS anchor => 0']);
    expectError(failing, ERROR_TABLE.RECOVERY_FAILED.exit, /EXISTS anchor/);

    const latest = path.join(dir, 'latest');
    await ok(['-r', repo, 'redis', 'restore', 'app', '--latest', '--output', latest]);
    const restored = await datasetOfRdb(path.join(latest, 'dump.rdb'));
    expect(differences(comparable(restored, Date.now()), comparable(finalDataset, Date.now()))).toEqual([]);
    // The FLUSHDB emptied database 0; what is there was written after it.
    expect(Object.keys(restored).filter((k) => k.startsWith('db0:')).length).toBeLessThan(db0.length / 2);
  }, 170_000);

  it('loads a moment into an empty running server with --to, and refuses one that is not empty (exit 21, nothing changed)', async () => {
    const m = moments[3] as Moment;
    const target = await RedisServer.start();
    try {
      await ok(['-r', repo, 'redis', 'restore', 'app', '--time', iso(m.at), '--to', target.url]);
      const loaded = await datasetOf(target);
      expect(differences(comparable(loaded, Date.now()), comparable(m.dataset, Date.now()))).toEqual([]);
      const other = moments[10] as Moment;
      const r = await cli(['-r', repo, 'redis', 'restore', 'app', '--time', iso(other.at), '--to', target.url]);
      expectError(r, TARGET_EXISTS, /not empty|already|exists|keys/i);
      expect(await datasetOf(target)).toEqual(loaded);
    } finally {
      await target.stop();
    }
    // A target with a password, given the wrong one: refused at login, nothing loaded.
    const locked = await RedisServer.start({ password: 'the-target-password' });
    try {
      const r = await cli(['-r', repo, 'redis', 'restore', 'app', '--time', iso(m.at), '--to', locked.url], { LIFEBOAT_REDIS_PASSWORD: 'not-the-target-password' });
      expectError(r, SOURCE_UNAVAILABLE, /refused the login|WRONGPASS|password/i);
      expect(r.stderr + r.stdout).not.toContain('not-the-target-password');
      expect(await locked.command(['DBSIZE'])).toBe(0);
    } finally {
      await locked.stop();
    }
  }, 120_000);
});

describe('redis CLI refuses bad input with one line, a hint and its exit code', () => {
  let dir: string;
  let repo: string;

  beforeAll(async () => {
    dir = tmpdir('lb-redis-bad-');
    repo = path.join(dir, 'repo');
    await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  });

  it('a wrong password: SOURCE_UNAVAILABLE, and the password is not printed', async () => {
    const server = await RedisServer.start({ password: 'right horse battery staple' });
    try {
      const file = path.join(dir, 'wrong-password');
      const { writeFileSync } = await import('node:fs');
      writeFileSync(file, 'wrong-secret-value\n', { mode: 0o600 });
      const backup = await cli(['-r', repo, 'redis', 'backup', '--url', server.url, '--name', 'locked', '--redis-password-file', file]);
      expectError(backup, SOURCE_UNAVAILABLE, /password|login|WRONGPASS|refused/i);
      expect(backup.stderr + backup.stdout).not.toContain('wrong-secret-value');
      // No password at all against a server that needs one, from the environment this time.
      const none = await cli(['-r', repo, 'redis', 'backup', '--url', server.url, '--name', 'locked'], { LIFEBOAT_REDIS_PASSWORD: undefined, REDISCLI_AUTH: undefined });
      expectError(none, SOURCE_UNAVAILABLE, /NOAUTH|password|login|auth/i);
      // The replicator exits at start-up on a refused login (exit 19, the daemon restarts it with a backoff and shows the error), not a silent retry loop.
      const rep = await cli(['-r', repo, '--json', 'redis', 'replicate', '--url', server.url, '--name', 'locked', '--interval', '200ms'], { LIFEBOAT_REDIS_PASSWORD: 'wrong-secret-value' });
      expectError(rep, SOURCE_UNAVAILABLE, /refused the login|WRONGPASS/);
      expect(rep.stdout + rep.stderr).not.toContain('wrong-secret-value');
      // The right one works (so the refusals above were about the password).
      const right = await cli(['-r', repo, 'redis', 'backup', '--url', server.url, '--name', 'locked'], { LIFEBOAT_REDIS_PASSWORD: 'right horse battery staple' });
      expect(right.code, right.stderr).toBe(0);
    } finally {
      await server.stop();
    }
  });

  it('a server that is not there: SOURCE_UNAVAILABLE naming the address', async () => {
    const port = await freePort();
    const r = await cli(['-r', repo, 'redis', 'backup', '--url', `redis://127.0.0.1:${port}`, '--name', 'nobody']);
    expectError(r, SOURCE_UNAVAILABLE, new RegExp(`127\\.0\\.0\\.1:${port}`));
    const rep = RedisReplicator.start(repo, `redis://127.0.0.1:${port}`, 'nobody', ['--interval', '200ms'], ENV);
    try {
      const status = await rep.until((e) => e.kind === 'status' && e.healthy === false && typeof e.error === 'string', 'an unhealthy status');
      expect(status.error).toMatch(new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port}`));
    } finally {
      await rep.kill9();
    }
  });

  it('a password in the URL: a usage error, before anything connects', async () => {
    const r = await cli(['-r', repo, 'redis', 'backup', '--url', 'redis://:hunter2@127.0.0.1:6379', '--name', 'x']);
    expectError(r, ERROR_TABLE.USAGE.exit, /password/);
    expect(r.stderr).not.toContain('hunter2');
  });
});
