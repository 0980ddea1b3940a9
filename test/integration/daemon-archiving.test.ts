/**
 * Monitoring that tells the truth, on a real scratch cluster watched by a real daemon
 * and scraped by a real Prometheus: an idle streamed cluster stays within its RPO
 * target; archive_command failures (the server's pg_stat_archiver) become metrics, a
 * dashboard state and one notification; a stopped database turns lifeboat_archive_up
 * to 0 with the reason within one check interval, the shipped LifeboatArchiveDown rule
 * fires, and the outage is notified once and its end once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { SourceStatus } from '../../src/daemon/metrics.js';
import { watchingDaemon, type WatchingDaemon } from '../daemon-helpers.js';
import { archivedCluster, PG_BIN } from '../pg-cluster.js';
import { waitUntil } from '../pg-streamer.js';
import { shippedRules, TestPrometheus } from '../prometheus.js';

const CHECK_INTERVAL_S = 5;
/** A short RPO target, so that several times its length keeps the suite fast (the 10-minute run is bench/torture/pg-stream-kill.ts --idle). */
const RPO_TARGET_S = 15;

let setup: Awaited<ReturnType<typeof archivedCluster>>;
let dir: string;
let daemon: Daemon;
let prometheus: TestPrometheus;
let receiver: WatchingDaemon['receiver'];
const notices = () => receiver.bodies;

const metric = async (name: string, source: string): Promise<number | undefined> => {
  const text = await daemon.metrics.render();
  const m = new RegExp(`^${name}\\{source="${source}"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};
const status = (source: string) => daemon.sources().find((s) => s.name === source) as SourceStatus;
const sent = (event: string, source: string) => notices().filter((n) => n.event === event && n.source === source);

beforeAll(async () => {
  setup = await archivedCluster('lb-dmon-');
  dir = mkdtempSync(path.join(os.tmpdir(), 'lb-dmon-daemon-'));
  let base: string;
  ({ daemon, receiver, url: base } = await watchingDaemon(dir, [
    `streamed: { kind: postgres, dsn: "${setup.cluster.dsn}", stream: true, bin_dir: ${PG_BIN}, targets: { rpo: ${RPO_TARGET_S}s } }`,
    // The same server's archive_command (lifeboat pg archive-push), watched through pg_stat_archiver.
    `pushed: { kind: postgres, dsn: "${setup.cluster.dsn}" }`,
  ], CHECK_INTERVAL_S));
  const url = new URL(base);
  // The shipped expressions, verbatim; only `for` is shortened from 5m.
  prometheus = await TestPrometheus.start(mkdtempSync(path.join(os.tmpdir(), 'lb-prom-')), url.host, shippedRules({ LifeboatArchiveDown: '5s', LifeboatArchiveCommandFailures: '0s' }));
});

afterAll(async () => {
  await prometheus?.stop();
  await daemon?.stop();
  await receiver?.close();
  await setup?.cluster.destroy();
  for (const d of [dir, setup?.base]) if (d) rmSync(d, { recursive: true, force: true });
});

describe('daemon monitoring of PostgreSQL archiving', () => {
  it('keeps an idle streamed cluster within its RPO target: no breach for several times the target', async () => {
    // Up is not enough: the RPO exists only once the streamer has proven a moment archived (on a loaded machine that comes a beat later).
    await waitUntil('the streamer to be up and to prove a moment', async () => (await metric('lifeboat_archive_up', 'streamed')) === 1 && (await metric('lifeboat_rpo_seconds', 'streamed')) !== undefined, 60_000);
    const until = Date.now() + 3 * RPO_TARGET_S * 1000;
    let worst = 0;
    while (Date.now() < until) {
      const rpo = (await metric('lifeboat_rpo_seconds', 'streamed')) as number;
      worst = Math.max(worst, rpo);
      expect(rpo, 'RPO of an idle, healthy cluster').toBeLessThan(RPO_TARGET_S);
      expect(await metric('lifeboat_archive_up', 'streamed')).toBe(1);
      await new Promise((r) => setTimeout(r, 1000));
    }
    console.log(`idle streamed cluster: worst RPO ${worst.toFixed(1)} s over ${3 * RPO_TARGET_S} s (target ${RPO_TARGET_S} s)`);
    await daemon.notifier.idle();
    expect(notices().filter((n) => n.event === 'rpo_breach')).toEqual([]);
    expect(status('streamed').archive).toMatchObject({ method: 'stream', up: true, state: 'ok', error: null });
    expect(status('pushed').archive).toMatchObject({ method: 'archive_command', up: true });
  });

  it('turns archive_command failures into metrics, the alert, a dashboard state and one notification', async () => {
    const c = setup.cluster;
    await waitUntil('the archive_command watch to report', () => status('pushed').archive?.up === true, 60_000);
    expect(await metric('lifeboat_archive_command_failures_total', 'pushed')).toBe(0);
    await c.query("alter system set archive_command = 'false'");
    await c.query('select pg_reload_conf()');
    await c.query('create table t (id int)');
    await c.query('select pg_switch_wal()');
    await waitUntil('archive_command failures in the metrics', async () => ((await metric('lifeboat_archive_command_failures_total', 'pushed')) ?? 0) > 0, 30_000);
    expect(await metric('lifeboat_archive_command_failing', 'pushed')).toBe(1);
    expect(await metric('lifeboat_archive_up', 'pushed')).toBe(0);
    expect(status('pushed').archive).toMatchObject({ state: 'failing', error: expect.stringMatching(/^archive_command failed for 0000000100000000000000\w\w at /) });
    await waitUntil('LifeboatArchiveCommandFailures to fire', async () => (await prometheus.alert('LifeboatArchiveCommandFailures', 'pushed'))?.state === 'firing', 30_000);
    await waitUntil('the archive_down notification', () => sent('archive_down', 'pushed').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    // Repeated failures (PostgreSQL retries) are the same incident.
    await new Promise((r) => setTimeout(r, 2 * CHECK_INTERVAL_S * 1000));
    await c.query('alter system reset archive_command');
    await c.query('select pg_reload_conf()');
    await waitUntil('archiving up again', async () => (await metric('lifeboat_archive_up', 'pushed')) === 1, 90_000);
    await waitUntil('the recovery notification', () => sent('recovery', 'pushed').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    expect(sent('archive_down', 'pushed')).toHaveLength(1);
    expect(sent('archive_down', 'pushed')[0]?.message).toMatch(/^archiving of pushed is down: archive_command failed for /);
    expect(sent('recovery', 'pushed')).toHaveLength(1);
    expect(sent('archive_down', 'streamed')).toEqual([]);
  });

  it('reports a stopped database within one check interval, fires LifeboatArchiveDown, and notifies once and once on recovery', async () => {
    const c = setup.cluster;
    const before = notices().length;
    const stoppedAt = Date.now();
    await c.stop();
    await waitUntil('archive_up 0', async () => (await metric('lifeboat_archive_up', 'streamed')) === 0, 60_000, 50);
    const noticed = Date.now() - stoppedAt;
    const a = status('streamed').archive;
    expect(a?.error, 'the reason is reported').toMatch(/PostgreSQL|pg_receivewal/);
    expect(a?.last_error).toBe(a?.error);
    expect(a?.state).toBe('down');
    console.log(`database stopped: archive_up 0 after ${noticed} ms (check_interval ${CHECK_INTERVAL_S} s)`);
    expect(noticed).toBeLessThan(CHECK_INTERVAL_S * 1000);

    // The shipped rule (for: 5s in this copy) goes pending, then fires.
    const pending = await waitUntil('LifeboatArchiveDown pending or firing', () => prometheus.alert('LifeboatArchiveDown', 'streamed'), 30_000);
    const fired = await waitUntil('LifeboatArchiveDown firing', async () => {
      const x = await prometheus.alert('LifeboatArchiveDown', 'streamed');
      return x?.state === 'firing' ? x : undefined;
    }, 30_000);
    expect(fired.activeAt).toBe(pending.activeAt);
    // Keep it down past the RPO target too: each incident is told once.
    await waitUntil('the RPO breach', async () => ((await metric('lifeboat_rpo_seconds', 'streamed')) ?? 0) > RPO_TARGET_S + CHECK_INTERVAL_S, 60_000);
    await waitUntil('the notifications', () => sent('archive_down', 'streamed').length > 0 && sent('rpo_breach', 'streamed').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    await new Promise((r) => setTimeout(r, 2 * CHECK_INTERVAL_S * 1000));

    await c.start();
    await waitUntil('archive_up 1 again', async () => (await metric('lifeboat_archive_up', 'streamed')) === 1, 90_000);
    await waitUntil('the recoveries', () => sent('recovery', 'streamed').length >= 2, 6 * CHECK_INTERVAL_S * 1000);
    await waitUntil('LifeboatArchiveDown resolved', async () => (await prometheus.alert('LifeboatArchiveDown', 'streamed')) === undefined, 30_000);
    await daemon.notifier.idle();
    const during = notices().slice(before).filter((n) => n.source === 'streamed');
    expect(during.map((n) => n.event).sort()).toEqual(['archive_down', 'recovery', 'recovery', 'rpo_breach']);
    expect(sent('archive_down', 'streamed')[0]?.message).toMatch(/^archiving of streamed is down: /);
  });
});
