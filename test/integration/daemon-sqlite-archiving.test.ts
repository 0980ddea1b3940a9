/**
 * The daemon's view of SQLite replication when the other side fails: an application
 * that restarts keeps archiving up and the RPO small; a database file that disappears
 * turns lifeboat_archive_up to 0 with the reason within one check interval, is notified
 * once, and its return once; a change behind SQLite's back is counted, notified once
 * and alerted on; and what the RPO claimed was stored really restores.
 */
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { SourceStatus } from '../../src/daemon/metrics.js';
import { rpoCovers, sourceMetric, watchingDaemon, type WatchingDaemon } from '../daemon-helpers.js';
import { runCli } from '../helpers.js';
import { waitUntil } from '../pg-streamer.js';
import { appRows, expectRows, flipOldRow, runApp, type AppRun } from '../sqlite-helpers.js';

const CHECK_INTERVAL_S = 3;
const RPO_TARGET_S = 30;

let dir: string;
let db: string;
let daemon: Daemon;
let receiver: WatchingDaemon['receiver'];
const runs: AppRun[] = [];

const metric = (name: string) => sourceMetric(daemon, 'memory', name);
const archive = () => (daemon.sources().find((s) => s.name === 'memory') as SourceStatus).archive;
const sent = (event: string) => receiver.bodies.filter((n) => n.event === event && n.source === 'memory');

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lb-dsql-'));
  db = path.join(dir, 'memory.db');
  runs.push(await runApp(db, 20));
  ({ daemon, receiver } = await watchingDaemon(dir, [`memory: { kind: sqlite, path: ${db}, replicate: true, verify_interval: 1s, targets: { rpo: ${RPO_TARGET_S}s } }`], CHECK_INTERVAL_S));
});

afterAll(async () => {
  await daemon?.stop();
  await receiver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('daemon monitoring of SQLite replication', () => {
  it('stays up through application restarts, with an RPO of seconds that a restore confirms', async () => {
    await waitUntil('replication up', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    for (let i = 0; i < 3; i++) runs.push(await runApp(db, 200, { rate: 500 }));
    const lastCommit = Date.now();
    await rpoCovers(daemon, 'memory', lastCommit, 'the RPO to cover the last commit');
    expect(await metric('lifeboat_archive_up')).toBe(1);
    expect(archive()).toMatchObject({ up: true, error: null });
    const out = path.join(dir, 'restored.db');
    const r = await runCli(['--config', path.join(dir, 'lifeboat.yaml'), '--repo', 'main', 'sqlite', 'restore', 'memory', '-o', out, '--latest']);
    expect(r.code, r.stderr).toBe(0);
    expectRows(appRows(out), runs.flatMap((x) => x.committed));
  });

  it('reports a database file that disappeared within one check interval, and notifies once and once on its return', async () => {
    const aside = `${db}.aside`;
    const goneAt = Date.now();
    renameSync(db, aside);
    await waitUntil('archive_up 0', async () => (await metric('lifeboat_archive_up')) === 0, 30_000, 50);
    const noticed = Date.now() - goneAt;
    console.log(`database file gone: archive_up 0 after ${noticed} ms (check_interval ${CHECK_INTERVAL_S} s)`);
    expect(noticed).toBeLessThan(CHECK_INTERVAL_S * 1000);
    expect(archive()?.error).toMatch(/memory\.db/);
    await waitUntil('the archive_down notification', () => sent('archive_down').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    // Down for several more check intervals: still one incident.
    await new Promise((r) => setTimeout(r, 3 * CHECK_INTERVAL_S * 1000));
    renameSync(aside, db);
    await waitUntil('archive_up 1 again', async () => (await metric('lifeboat_archive_up')) === 1, 120_000);
    await waitUntil('the recovery notification', () => sent('recovery').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    await daemon.notifier.idle();
    expect(sent('archive_down')).toHaveLength(1);
    expect(sent('recovery')).toHaveLength(1);
  });

  it('counts and notifies a history that no longer reproduces the database, once', async () => {
    expect(await metric('lifeboat_archive_divergences_total')).toBe(0);
    runs.push(await runApp(db, 20));
    flipOldRow(db);
    await waitUntil('the divergence counted', async () => (await metric('lifeboat_archive_divergences_total')) === 1, 60_000);
    await waitUntil('the diverged notification', () => sent('diverged').length > 0, 10_000);
    expect(sent('diverged')[0]?.message).toMatch(/^the replicated history of memory no longer reproduces the database \(page \d+ differs\)/);
    await waitUntil('replication up again', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    await daemon.notifier.idle();
    expect(sent('diverged')).toHaveLength(1);
  });
});
