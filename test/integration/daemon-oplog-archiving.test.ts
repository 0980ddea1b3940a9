/**
 * The daemon running `oplog replicate` for a `replicate: true` operation-log source while
 * the application beside it fails: what it appended is proven archived and restores; a
 * writer that crashes in the middle of a record (and, restarted, cuts the torn tail and
 * goes on) costs no whole record and no generation; a journal removed with nothing in its
 * place turns lifeboat_archive_up to 0 with the reason and is notified once, instead of
 * staying green while nothing is archived; created again, archiving comes back, its
 * return is notified, and the records of both files restore.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../src/daemon/daemon.js';
import type { SourceStatus } from '../../src/daemon/metrics.js';
import { rpoCovers, sourceMetric, watchingDaemon, type WatchingDaemon } from '../daemon-helpers.js';
import { runCli } from '../helpers.js';
import { waitUntil } from '../pg-streamer.js';

const CHECK_INTERVAL_S = 3;

let dir: string;
let journal: string;
let daemon: Daemon;
let receiver: WatchingDaemon['receiver'];

const metric = (name: string) => sourceMetric(daemon, 'journal', name);
const archive = () => (daemon.sources().find((s) => s.name === 'journal') as SourceStatus).archive;
let from = 0;
const sent = (event: string) => receiver.bodies.slice(from).filter((n) => n.event === event && n.source === 'journal');

let seq = 0;
/** Appends `n` records, each with its own id and time, as the application would. */
function append(n: number): void {
  let text = '';
  for (let i = 0; i < n; i++) text += `${JSON.stringify({ id: ++seq, ts: new Date().toISOString(), op: 'create_memory' })}\n`;
  appendFileSync(journal, text);
}

const provenThrough = (t: number) => rpoCovers(daemon, 'journal', t);

/** The ids of the records `oplog restore` gives (every one must be a whole JSON record). */
async function restoredIds(...args: string[]): Promise<number[]> {
  const out = path.join(mkdtempSync(path.join(dir, 'out-')), 'journal.jsonl');
  const r = await runCli(['--config', path.join(dir, 'lifeboat.yaml'), '--repo', 'main', 'oplog', 'restore', 'journal', '-o', out, ...args]);
  expect(r.code, r.stderr).toBe(0);
  const text = readFileSync(out, 'utf8');
  expect(text.endsWith('\n') || text === '').toBe(true);
  return text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: number }).id);
}

const ids = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'lb-doplog-'));
  journal = path.join(dir, 'oplog.jsonl');
  append(10);
  ({ daemon, receiver } = await watchingDaemon(dir, [`journal: { kind: oplog, path: "${journal}", format: jsonl, time_field: ts, replicate: true, interval: 1s, targets: { rpo: 60s } }`], CHECK_INTERVAL_S));
});

afterAll(async () => {
  await daemon?.stop();
  await receiver?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('daemon supervision of an operation log', () => {
  it('archives what the application appended, as the RPO proves, and it restores', async () => {
    await waitUntil('archiving up', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    append(20);
    await provenThrough(Date.now());
    expect(archive()).toMatchObject({ up: true, error: null });
    expect(await restoredIds()).toEqual(ids(1, 30));
  });

  it('a writer crashing inside a record ships no torn bytes: restarted, it cuts the torn tail and goes on, and every record restores once', async () => {
    const whole = statSync(journal).size;
    appendFileSync(journal, '{"id":31,"ts":"'); // the crash
    await provenThrough(Date.now());
    expect(await restoredIds()).toEqual(ids(1, 30));
    // The application, restarted, drops what it never finished and appends again.
    truncateSync(journal, whole);
    seq = 30;
    append(5);
    await provenThrough(Date.now());
    expect(await restoredIds()).toEqual(ids(1, 35));
    expect(archive()).toMatchObject({ up: true, error: null });
  });

  it('a journal removed with nothing in its place is reported within a check interval and told once; created again, archiving comes back', async () => {
    from = receiver.bodies.length;
    const removedAt = Date.now();
    rmSync(journal);
    await waitUntil('archive_up 0', async () => (await metric('lifeboat_archive_up')) === 0, 30_000, 50);
    console.log(`journal removed: archive_up 0 after ${Date.now() - removedAt} ms (interval 1 s, check_interval ${CHECK_INTERVAL_S} s)`);
    expect(archive()?.error).toMatch(/was removed and nothing has taken its place/);
    await waitUntil('the archive_down notification', () => sent('archive_down').length > 0, 4 * CHECK_INTERVAL_S * 1000);

    writeFileSync(journal, '');
    append(4);
    await waitUntil('archive_up 1 again', async () => (await metric('lifeboat_archive_up')) === 1, 60_000);
    await waitUntil('the recovery notification', () => sent('recovery').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    append(3);
    await provenThrough(Date.now());
    await daemon.notifier.idle();
    expect(sent('archive_down')).toHaveLength(1);
    expect(sent('recovery')).toHaveLength(1);
    // The new file is a new history after the old one: a restore to now gives both.
    expect(await restoredIds()).toEqual(ids(1, 42));
  });
  it('a journal rewritten from its start (not a restored copy) is counted as a gap and told once; what was archived still restores', async () => {
    from = receiver.bodies.length;
    const gaps = (await metric('lifeboat_archive_gaps_total')) ?? 0;
    writeFileSync(journal, ''); // the application starts its journal over, in place
    append(2);
    await waitUntil('the gap counted', async () => (await metric('lifeboat_archive_gaps_total')) === gaps + 1, 60_000);
    await waitUntil('the archive_gap notification', () => sent('archive_gap').length > 0, 4 * CHECK_INTERVAL_S * 1000);
    expect(sent('archive_gap')[0]?.message).toMatch(/truncated or rewritten.*not in the archive/);
    await provenThrough(Date.now());
    await daemon.notifier.idle();
    expect(sent('archive_gap')).toHaveLength(1);
    expect(archive()).toMatchObject({ up: true, error: null });
    // The new history follows the old one: a restore to now gives both.
    expect(await restoredIds()).toEqual(ids(1, 44));
  });
});
