/**
 * The daemon running `redis replicate` for a `replicate: true` source while the other
 * side fails: writes are proven archived and restore; a Redis server killed with -9 turns
 * lifeboat_archive_up to 0 with the reason within one check interval and is notified
 * once; restarted without persistence it is a new history, so the replicator starts a
 * new generation and the daemon counts and notifies the gap once (archive_gap, the
 * LifeboatArchiveGap rule's counter), then archiving is up again and its return is
 * notified. What was proven before the crash still restores to a moment before it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { SourceStatus } from '../../src/daemon/metrics.js';
import { rpoCovers, sourceMetric, watchingDaemon, type WatchingDaemon } from '../daemon-helpers.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { runCli } from '../helpers.js';
import { waitUntil } from '../pg-streamer.js';

const CHECK_INTERVAL_S = 3;
const RPO_TARGET_S = 60;

let dir: string;
let server: RedisServer;
let daemon: Daemon;
let receiver: WatchingDaemon['receiver'];

const metric = (name: string) => sourceMetric(daemon, 'cache', name);
const archive = () => (daemon.sources().find((s) => s.name === 'cache') as SourceStatus).archive;
/** Notifications since `from` (an index into what the receiver got). */
let from = 0;
const sent = (event: string) => receiver.bodies.slice(from).filter((n) => n.event === event && n.source === 'cache');

/** Writes `n` keys named `prefix:i`; returns when the server acknowledged the last. */
async function write(prefix: string, n: number): Promise<void> {
  const c = await server.client();
  try {
    for (let i = 0; i < n; i++) await c.ok(['SET', `${prefix}:${i}`, String(i)]);
  } finally {
    c.close();
  }
}

/** Waits until the RPO proves everything acknowledged by `t` is archived. */
const provenThrough = (t: number) => rpoCovers(daemon, 'cache', t);

async function restoredKeys(...args: string[]): Promise<Record<string, number>> {
  const out = path.join(mkdtempSync(path.join(dir, 'out-')), 'r');
  const r = await runCli(['--config', path.join(dir, 'lifeboat.yaml'), '--repo', 'main', '--json', 'redis', 'restore', 'cache', '-o', out, ...args]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { keys: Record<string, number> }).keys;
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lb-dredis-'));
  server = await RedisServer.start();
  ({ daemon, receiver } = await watchingDaemon(dir, [`cache: { kind: redis, url: "${server.url}", replicate: true, interval: 1s, targets: { rpo: ${RPO_TARGET_S}s } }`], CHECK_INTERVAL_S));
});

afterAll(async () => {
  await daemon?.stop();
  await receiver?.close();
  await stopAllRedis();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('daemon supervision of Redis replication', () => {
  let beforeCrash = 0;

  it('archives what the server acknowledged, as the RPO proves, and it restores', async () => {
    await waitUntil('replication up', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    expect(await metric('lifeboat_archive_gaps_total')).toBe(0);
    await write('a', 50);
    await provenThrough(Date.now());
    // A moment by which the replicator had received every write (a command's time is when it arrived).
    beforeCrash = Date.now();
    expect(archive()).toMatchObject({ up: true, error: null });
    expect(await restoredKeys('--latest')).toEqual({ db0: 50 });
  });

  it('reports the server killed with -9 within a check interval; restarted empty, the gap is counted and told once, and archiving comes back', async () => {
    // Counted from here: on a loaded machine attaching at start-up can take longer than a check interval, which is an incident of its own.
    from = receiver.bodies.length;
    const killedAt = Date.now();
    await server.kill9();
    await waitUntil('archive_up 0', async () => (await metric('lifeboat_archive_up')) === 0, 30_000, 50);
    const noticed = Date.now() - killedAt;
    console.log(`redis-server killed: archive_up 0 after ${noticed} ms (check_interval ${CHECK_INTERVAL_S} s)`);
    expect(noticed).toBeLessThan(CHECK_INTERVAL_S * 1000);
    expect(archive()?.error).toMatch(/Redis|127\.0\.0\.1/);
    await waitUntil('the archive_down notification', () => sent('archive_down').length > 0, 4 * CHECK_INTERVAL_S * 1000);

    // Restarted without persistence: empty, with a new replication history.
    server = await server.restart();
    await waitUntil('the gap counted', async () => (await metric('lifeboat_archive_gaps_total')) === 1, 60_000);
    await waitUntil('the archive_gap notification', () => sent('archive_gap').length > 0, 10_000);
    expect(sent('archive_gap')[0]?.message).toMatch(/may be missing|missing/);
    await waitUntil('archive_up 1 again', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    await waitUntil('the recovery notification', () => sent('recovery').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    await write('b', 7);
    await provenThrough(Date.now());
    await daemon.notifier.idle();
    expect(sent('archive_down')).toHaveLength(1);
    expect(sent('archive_gap')).toHaveLength(1);
    expect(sent('recovery')).toHaveLength(1);
    // The newest data is the restarted server's; what was proven before the crash restores to a moment before it.
    expect(await restoredKeys('--latest')).toEqual({ db0: 7 });
    expect(await restoredKeys('--time', new Date(beforeCrash).toISOString())).toEqual({ db0: 50 });
  });
});
