/**
 * Restores from the web dashboard, in a real browser (Debian chromium through
 * playwright-core) against a real daemon: a replicated SQLite source whose log has a
 * real gap (one shipped segment removed from the repository) shows it on its timeline;
 * a moment picked on the timeline after the gap is planned, started as an operator and
 * followed to success, and the restored database holds exactly the rows committed
 * before that moment; a viewer sees why it cannot start one and the API refuses it; a
 * file downloaded from the snapshot browser has the backed-up bytes. Screenshots go
 * to test-results/ (gitignored).
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobRow } from '../../src/daemon/catalog.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { ROOT, cleanupTmp, runCli } from '../helpers.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { transactionsAround } from '../../src/sources/sqlite/transactions.js';
import { appRows, Replicator, runApp, type AppRun } from '../sqlite-helpers.js';
import { processes } from '../pg-streamer.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];
const TEST_TIMEOUT = 120_000;
/** Long enough for a restore job and a few polls on a loaded machine. */
const JOB_TIMEOUT = 60_000;
const SHOTS = path.join(ROOT, 'test-results');

let t: TestDaemon;
let base: string;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** 300 KiB of random bytes in the files source, to download. */
const report = randomBytes(300 * 1024 + 3);
let runs: { first: AppRun; a: AppRun; b: AppRun; c: AppRun; d: AppRun };

/** The segment files of the notes source's log in the repository, by path. */
function segments(): string[] {
  const dir = path.join(t.dir, 'repo', 'logs', 'sqlite.notes');
  return readdirSync(dir)
    .filter((g) => !g.startsWith('.'))
    .flatMap((g) => readdirSync(path.join(dir, g)).filter((f) => /^[0-9a-f]{16}-[0-9a-f]{16}-[0-9a-f]{12}$/.test(f)).map((f) => path.join(dir, g, f)));
}

const last = (r: AppRun) => r.committed[r.committed.length - 1] as AppRun['committed'][number];

beforeAll(async () => {
  t = await testDaemon({
    extraSources: '  notes: { kind: sqlite, path: $DIR/notes.db }\n  bulk: { kind: files, paths: [$DIR/bulk] }',
    // A group of one files member: its points name a snapshot each.
    extra: 'groups:\n  site: { members: [docs], freeze: [/bin/true], thaw: [/bin/true], max_hold: 5s }',
    daemon: { reads: { ttlMs: 0 } },
  });
  writeFileSync(path.join(t.data, 'report.bin'), report);
  t.daemon.start();
  base = await t.daemon.listen();
  const job = t.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' });
  const done = await t.daemon.runner.wait(job.id);
  expect(done.status, done.error ?? '').toBe('succeeded');

  // The application's history, shipped by a replicator into the daemon's repository.
  const db = path.join(t.dir, 'notes.db');
  const first = await runApp(db, 3);
  const rep = new Replicator(path.join(t.dir, 'repo'), db, ['--interval', '100ms', '--snapshot-interval', '1s', '--verify-interval', 'off'], 'notes', { LIFEBOAT_PASSWORD: 'test-password' });
  try {
    await rep.waitFor('snapshot');
    const a = await runApp(db, 5);
    await rep.archived(last(a).doneAt);
    const before = new Set(segments());
    const b = await runApp(db, 5);
    await rep.archived(last(b).doneAt);
    const ofB = segments().filter((s) => !before.has(s));
    expect(ofB.length).toBeGreaterThan(0);
    // A fresh snapshot taken after B's last commit: the history after the gap has a base of its own.
    // (A snapshot event right after B may be one begun before B ended: the window's times say.)
    for (let deadline = Date.now() + 60_000; ; await sleep(200)) {
      const r = await t.daemon.app.inject({ method: 'GET', url: '/api/v1/sources/notes/window', headers: t.auth('viewer') });
      if ((r.json() as { snapshots?: Array<{ time: string }> }).snapshots?.some((x) => Date.parse(x.time) > last(b).doneAt)) break;
      if (Date.now() > deadline) throw new Error(`no snapshot of notes after B's last commit in 60 s: ${r.body}`);
    }
    // The gap: B's shipped transactions are gone from the repository (as if lost in transit).
    for (const s of ofB) rmSync(s);
    const c = await runApp(db, 5);
    await rep.archived(last(c).doneAt);
    const d = await runApp(db, 5);
    await rep.archived(last(d).doneAt);
    runs = { first, a, b, c, d };
  } finally {
    await rep.stop();
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  mkdirSync(SHOTS, { recursive: true });
}, TEST_TIMEOUT);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await t?.daemon.stop();
  cleanupTmp();
}, TEST_TIMEOUT);

/** A fresh page that fails the test on any script error. */
async function newPage(errors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  return page;
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${base}/dashboard/`);
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#dashboard').waitFor({ state: 'visible' });
}

/** Selects a source and waits for its timeline. */
async function openTimeline(page: Page, source: string): Promise<void> {
  await page.locator(`#sources-body tr[data-source="${source}"] [data-action="select"]`).click();
  await expect.poll(() => page.locator('#recover-title').textContent(), { timeout: 10_000 }).toBe(`Recover ${source}`);
  await page.getByTestId('timeline').waitFor({ timeout: 30_000 });
}

/** Clicks the timeline at moment `ms`, below the band (where no backup's dot can take the click). */
async function clickTimelineAt(page: Page, ms: number): Promise<void> {
  const svg = page.getByTestId('timeline');
  const t0 = Number(await svg.getAttribute('data-t0'));
  const t1 = Number(await svg.getAttribute('data-t1'));
  const box = await svg.boundingBox();
  if (!box) throw new Error('the timeline is not visible');
  // The SVG's geometry (timeline.ts TIMELINE): viewBox 1180 × 150, 20 units of margin either side.
  const scale = box.width / 1180;
  const x = box.x + (20 + ((ms - t0) / (t1 - t0)) * 1140) * scale;
  const y = box.y + 98 * scale;
  await page.mouse.click(x, y);
}

interface WindowAnswer {
  gaps: Array<{ from: string; to: string; reason: string }>;
  latest: string;
}

describe('restores from the dashboard', () => {
  it('shows the gap in the timeline, plans a moment after it, restores it as the operator, with exactly the rows before that moment', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await openTimeline(page, 'notes');

    // The gap the daemon reports is the one drawn.
    const res = await fetch(`${base}/api/v1/sources/notes/window`, { headers: t.auth('viewer') });
    expect(res.status).toBe(200);
    const w = (await res.json()) as WindowAnswer;
    expect(w.gaps.length, JSON.stringify(w)).toBeGreaterThanOrEqual(1);
    // Where B was shipped: after A's last commit, before C's first. (A snapshot the replicator took
    // in the middle of B, on a loaded machine, splits it in two: its own moment is still reachable.)
    const gap = w.gaps[0] as WindowAnswer['gaps'][number];
    // The last of the gaps B's deleted segments made (the window may report others: a stretch between
    // a generation's end and the next base, which the moment picked below must not fall in either).
    const missing = w.gaps.filter((g) => /missing/.test(g.reason));
    const lastGap = missing[missing.length - 1] as WindowAnswer['gaps'][number];
    expect(gap.reason).toMatch(/missing/);
    expect(Date.parse(gap.from)).toBeGreaterThanOrEqual(last(runs.a).at);
    // Before the moment picked below (between C and D): it is reachable. (The gap usually ends before C's first
    // commit; once, on a loaded machine, it reached 0.5 s into C: the window then said so, and so does this test.)
    expect(Date.parse(lastGap.to), JSON.stringify({ gaps: w.gaps, b: last(runs.b).doneAt, c: runs.c.committed.map((x) => x.doneAt) })).toBeLessThan(last(runs.c).doneAt);
    await expect.poll(() => page.getByTestId('timeline-gap').count(), { timeout: 10_000 }).toBe(w.gaps.length);
    const drawn = page.getByTestId('timeline-gap').first();
    expect([await drawn.getAttribute('data-from'), await drawn.getAttribute('data-to')]).toEqual([gap.from, gap.to]);
    expect(await drawn.locator('title').textContent()).toContain(gap.reason);
    expect(await page.getByTestId('timeline-backup').count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#recover-sub').textContent()).toMatch(new RegExp(`\\b${w.gaps.length} gaps?\\b`));
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-timeline-gap.png') });

    // A moment inside the gap is planned with a warning naming it.
    const widest = [...w.gaps].sort((x, y) => Date.parse(y.to) - Date.parse(y.from) - (Date.parse(x.to) - Date.parse(x.from)))[0] as WindowAnswer['gaps'][number];
    await clickTimelineAt(page, (Date.parse(widest.from) + Date.parse(widest.to)) / 2);
    await expect.poll(() => page.getByTestId('plan-warning').textContent(), { timeout: 10_000 }).toMatch(/This moment is in a gap .*missing/);

    // Pick the moment between C's last commit and D's first, on the timeline itself.
    const lo = last(runs.c).doneAt;
    const hi = runs.d.committed[0]?.at as number;
    await clickTimelineAt(page, (lo + hi) / 2);
    const picked = Date.parse(await page.locator('#recover-time').inputValue());
    expect(picked).toBeGreaterThan(lo);
    expect(picked).toBeLessThan(hi);
    const plan = page.getByTestId('plan');
    await plan.waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#recover-time').inputValue(), { timeout: 10_000 }).not.toBe('');
    expect(await plan.getAttribute('data-method')).toBe('replay');
    // The base is the newest snapshot at or before the moment, after the gap: its log reaches the moment.
    const after = ((await (await fetch(`${base}/api/v1/sources/notes/window`, { headers: t.auth('viewer') })).json()) as { snapshots: Array<{ id: string; time: string }> }).snapshots.filter((x) => Date.parse(x.time) >= Date.parse(lastGap.to) && Date.parse(x.time) <= picked);
    expect(after.length).toBeGreaterThan(0);
    await expect.poll(() => page.getByTestId('plan-base').textContent(), { timeout: 10_000 }).toBe(after[after.length - 1]?.id.slice(0, 8));
    expect(await page.getByTestId('plan-warning').count()).toBe(0);
    expect(await page.getByTestId('plan-problems').count()).toBe(0);
    const target = await page.getByTestId('recover-target').inputValue();
    expect(target.startsWith(`${t.dir}/restore-notes-`)).toBe(true);
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-recover-plan.png') });

    await page.getByTestId('recover-start').click();
    const row = page.getByTestId('recover-job');
    await row.waitFor({ timeout: 10_000 });
    const id = (await row.getAttribute('data-job')) as string;
    await expect.poll(() => row.getAttribute('data-status'), { timeout: JOB_TIMEOUT, interval: 250 }).toBe('succeeded');
    expect(await page.getByTestId('recover-done').textContent()).toBe(`Restored into ${target}`);
    const job = t.daemon.catalog.job(id) as JobRow;
    expect(job).toMatchObject({ kind: 'restore', source: 'notes', status: 'succeeded', actor: 'olga-operator', trigger: 'api' });
    expect((job.params.restore as { time: string }).time).toBe(new Date(picked).toISOString());

    // The restored database: every row committed before the moment (B's too: the base after the gap holds them), none after.
    const expected = [runs.first, runs.a, runs.b, runs.c].flatMap((r) => r.committed.map((x) => x.marker));
    expect(appRows(target).map((r) => r.marker).sort()).toEqual(expected.sort());
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-recover-done.png') });
    expect(statSync(path.join(SHOTS, 'dashboard-recover-done.png')).size).toBeGreaterThan(10_000);
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('cancels a running restore from its progress row: the job ends INTERRUPTED, naming who canceled it', async () => {
    // A restore that is still running when the button is clicked: its process is stopped
    // (SIGSTOP) as soon as it appears, and let go once the cancel was asked for.
    const bulk = path.join(t.dir, 'bulk');
    mkdirSync(bulk, { recursive: true });
    for (let i = 0; i < 16; i++) writeFileSync(path.join(bulk, `part${i}`), randomBytes(1 << 20));
    const backup = await t.daemon.runner.wait(t.daemon.submit({ kind: 'backup', source: 'bulk', trigger: 'test' }).id);
    expect(backup.status, backup.error ?? '').toBe('succeeded');

    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await openTimeline(page, 'bulk');
    await page.locator('[data-action="recover-latest"]').click();
    await page.getByTestId('plan').waitFor({ timeout: 10_000 });
    const target = await page.getByTestId('recover-target').inputValue();
    let stopped: number[] = [];
    const catching = (async () => {
      for (const until = Date.now() + JOB_TIMEOUT; Date.now() < until; await sleep(2)) {
        stopped = processes('node', target);
        if (stopped.length > 0) {
          for (const pid of stopped) process.kill(pid, 'SIGSTOP');
          return;
        }
      }
      throw new Error(`no restore process for ${target}`);
    })();
    await page.getByTestId('recover-start').click();
    await catching;
    try {
      const row = page.getByTestId('recover-job');
      await row.waitFor({ timeout: 10_000 });
      const id = (await row.getAttribute('data-job')) as string;
      expect(await row.getAttribute('data-status')).toBe('running');
      // A viewer may not cancel it.
      const refused = await fetch(`${base}/api/v1/jobs/${id}/cancel`, { method: 'POST', headers: t.auth('viewer') });
      expect(refused.status).toBe(403);
      await page.getByTestId('recover-cancel').click();
      await expect.poll(() => t.daemon.catalog.log(id, 0).map((l) => l.line).join('\n'), { timeout: 10_000 }).toMatch(/canceled by olga-operator: stopping its process/);
    } finally {
      for (const pid of stopped) process.kill(pid, 'SIGCONT');
    }
    const row = page.getByTestId('recover-job');
    await expect.poll(() => row.getAttribute('data-status'), { timeout: JOB_TIMEOUT, interval: 250 }).toBe('failed');
    expect(await row.textContent()).toMatch(/INTERRUPTED: canceled by olga-operator/);
    expect(await page.getByTestId('recover-cancel').count()).toBe(0);
    const id = (await row.getAttribute('data-job')) as string;
    expect(t.daemon.catalog.job(id)).toMatchObject({ status: 'failed', error_code: 'INTERRUPTED', actor: 'olga-operator' });
    // Nothing left to cancel; an unknown job is named.
    expect((await fetch(`${base}/api/v1/jobs/${id}/cancel`, { method: 'POST', headers: t.auth('operator') })).status).toBe(400);
    expect((await fetch(`${base}/api/v1/jobs/nope/cancel`, { method: 'POST', headers: t.auth('operator') })).status).toBe(404);
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-recover-canceled.png') });
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('plans "before txn N" typed as the moment and restores exactly what `sqlite restore --before-txn N` gives', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await openTimeline(page, 'notes');
    const repo = path.join(t.dir, 'repo');
    const env = { LIFEBOAT_PASSWORD: 'test-password' };
    // A transaction in the middle of A (before the gap), by its number. (Read in-process: `sqlite history`
    // describes the transactions by replaying the generation, which stops at the gap B's removed segments made.)
    const mid = runs.a.committed[Math.floor(runs.a.committed.length / 2)]?.at as number;
    const opened = await Repository.open(new LocalStore(repo), env.LIFEBOAT_PASSWORD);
    const txns = (await transactionsAround(opened, 'notes', { around: new Date(mid), limit: 8 })).txns;
    const n = txns[Math.floor(txns.length / 2)]?.seq as number;
    expect(n).toBeGreaterThan(1);

    await page.locator('#recover-time').fill(`before txn ${n}`);
    await page.getByTestId('recover-plan-time').click();
    await expect.poll(() => page.getByTestId('plan-txn').textContent(), { timeout: 10_000 }).toBe(`to just before transaction ${n}`);
    expect(await page.getByTestId('plan').getAttribute('data-method')).toBe('replay');
    expect(await page.getByTestId('plan-problems').count()).toBe(0);
    const target = await page.getByTestId('recover-target').inputValue();
    await page.getByTestId('recover-start').click();
    const row = page.getByTestId('recover-job');
    await row.waitFor({ timeout: 10_000 });
    const id = (await row.getAttribute('data-job')) as string;
    await expect.poll(() => row.getAttribute('data-status'), { timeout: JOB_TIMEOUT, interval: 250 }).toBe('succeeded');
    expect((t.daemon.catalog.job(id) as JobRow).params.restore).toMatchObject({ beforeTxn: n, target });

    // The same as the CLI's own --before-txn (itself checked row by row in sqlite-undo.test.ts), and short of everything.
    const ref = path.join(t.dir, `ref-before-${n}.db`);
    const cli = await runCli(['-r', repo, 'sqlite', 'restore', 'notes', '--before-txn', String(n), '-o', ref], env);
    expect(cli.code, cli.stderr).toBe(0);
    const got = appRows(target).map((r) => r.marker).sort();
    expect(got).toEqual(appRows(ref).map((r) => r.marker).sort());
    expect(got.length).toBeLessThan(runs.first.committed.length + runs.a.committed.length);
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-recover-txn.png') });
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('shows a viewer why a recovery cannot start, and the API refuses it', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.viewer);
    await openTimeline(page, 'notes');
    await clickTimelineAt(page, (last(runs.c).doneAt + (runs.d.committed[0]?.at as number)) / 2);
    const problems = page.getByTestId('plan-problems');
    await problems.waitFor({ timeout: 10_000 });
    expect(await problems.textContent()).toContain('starting a restore needs the operator role; this token is viewer');
    expect(await page.getByTestId('recover-start').isDisabled()).toBe(true);
    const target = await page.getByTestId('recover-target').inputValue();

    // What the button would have sent, sent with the viewer's token: refused, nothing started or written.
    const jobs = t.daemon.catalog.jobs({ limit: 1000 }).length;
    const time = new Date(Date.parse(await page.locator('#recover-time').inputValue())).toISOString();
    const res = await fetch(`${base}/api/v1/recoveries`, { method: 'POST', headers: { ...t.auth('viewer'), 'content-type': 'application/json' }, body: JSON.stringify({ targets: { notes: target }, time }) });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('PERMISSION');
    expect(t.daemon.catalog.jobs({ limit: 1000 }).length).toBe(jobs);
    expect(() => statSync(target)).toThrow();
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-recover-viewer.png') });
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('downloads a file from the snapshot browser with the backed-up bytes', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await page.locator('#sources-body tr[data-source="docs"] [data-action="select"]').click();
    const snap = t.daemon.catalog.backups('docs')[0]?.snapshot_id as string;
    // "Restore…" on a snapshot plans exactly that snapshot.
    await page.getByTestId(`restore-${snap.slice(0, 8)}`).click();
    await expect.poll(() => page.getByTestId('plan-snapshot').textContent(), { timeout: 10_000 }).toBe(snap.slice(0, 8));
    expect(await page.getByTestId('plan').getAttribute('data-method')).toBe('snapshot');
    await page.getByTestId(`browse-${snap.slice(0, 8)}`).click();
    // Down the directories to the backed-up one, one level at a time.
    for (const part of t.data.split('/').filter(Boolean)) {
      await page.locator(`#browser [data-action="browse-dir"][data-path$="/${part}"]`).last().click();
      await expect.poll(() => page.getByTestId('browse-crumbs').locator('.crumb').last().textContent(), { timeout: 10_000 }).toBe(part);
    }
    const names = await page.getByTestId('browse-entry').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-name')));
    expect(names).toEqual(['a.txt', 'report.bin']);
    await page.locator('#browser-card').screenshot({ path: path.join(SHOTS, 'dashboard-browse.png') });

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.getByTestId('download-report.bin').click()]);
    expect(download.suggestedFilename()).toBe('report.bin');
    // Streamed by the browser from a one-use link, not assembled in the page's memory (a blob: URL).
    expect(download.url()).toMatch(new RegExp(`^${base}/api/v1/downloads/[A-Za-z0-9_-]{43}$`));
    const file = await download.path();
    expect(readFileSync(file).equals(report)).toBe(true);
    expect(errors).toEqual([]);

    // A viewer browses too, but the download is refused with the API's reason.
    const viewer = await newPage(errors);
    await signIn(viewer, t.tokens.viewer);
    await viewer.locator('#sources-body tr[data-source="docs"] [data-action="select"]').click();
    await viewer.getByTestId(`browse-${snap.slice(0, 8)}`).click();
    for (const part of t.data.split('/').filter(Boolean)) {
      await viewer.locator(`#browser [data-action="browse-dir"][data-path$="/${part}"]`).last().click();
      await expect.poll(() => viewer.getByTestId('browse-crumbs').locator('.crumb').last().textContent(), { timeout: 10_000 }).toBe(part);
    }
    await viewer.getByTestId('download-report.bin').click();
    await expect.poll(() => viewer.locator('#notice').textContent(), { timeout: 10_000 }).toMatch(/needs the operator role/);
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it("restores a group to the point picked on its timeline, and shows a viewer the group's plan but not the button", async () => {
    const capture = async (): Promise<string> => {
      const r = await fetch(`${base}/api/v1/groups/site/backup`, { method: 'POST', headers: t.auth('operator') });
      expect(r.status).toBe(202);
      const done = (await t.daemon.runner.wait(((await r.json()) as JobRow).id)) as JobRow;
      expect(done.status, done.error ?? '').toBe('succeeded');
      return (done.result as { id: string }).id;
    };
    writeFileSync(path.join(t.data, 'a.txt'), 'at the first point\n');
    const first = await capture();
    writeFileSync(path.join(t.data, 'a.txt'), 'at the second point\n');
    await capture();

    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await page.getByTestId('recover-group-site').click();
    await expect.poll(() => page.locator('#recover-title').textContent(), { timeout: 10_000 }).toBe('Recover group site');
    await expect.poll(() => page.getByTestId('timeline-backup').count(), { timeout: 30_000 }).toBe(2);
    // The older point's dot: the group comes back to it.
    await page.locator(`[data-testid="timeline-backup"][data-snapshot="${first}"]`).click();
    await expect.poll(() => page.getByTestId('plan-point').textContent(), { timeout: 30_000 }).toBe(first.slice(0, 12));
    await expect.poll(() => page.getByTestId('plan-member').count(), { timeout: 10_000 }).toBe(1);
    const target = (await page.getByTestId('plan-member').locator('td').nth(4).textContent()) as string;
    expect(target.startsWith(`${t.dir}/restore-site-`)).toBe(true);
    await page.locator('#recover-card').screenshot({ path: path.join(SHOTS, 'dashboard-group-plan.png') });
    await page.getByTestId('recover-start').click();
    const row = page.getByTestId('recover-job');
    await row.waitFor({ timeout: 10_000 });
    await expect.poll(() => row.getAttribute('data-status'), { timeout: JOB_TIMEOUT, interval: 250 }).toBe('succeeded');
    const job = t.daemon.catalog.job((await row.getAttribute('data-job')) as string) as JobRow;
    expect(job).toMatchObject({ kind: 'group-restore', source: 'site', actor: 'olga-operator' });
    expect(readFileSync(path.join(target, t.data, 'a.txt'), 'utf8')).toBe('at the first point\n');
    expect(readFileSync(path.join(target, t.data, 'report.bin')).equals(report)).toBe(true);
    expect(errors).toEqual([]);

    // A viewer sees the same plan with the reason it cannot start it; the API refuses the call.
    const viewer = await newPage(errors);
    await signIn(viewer, t.tokens.viewer);
    await viewer.getByTestId('recover-group-site').click();
    await expect.poll(() => viewer.getByTestId('timeline-backup').count(), { timeout: 30_000 }).toBe(2);
    await viewer.locator('[data-action="recover-latest"]').click();
    await expect.poll(() => viewer.getByTestId('plan-problems').textContent(), { timeout: 30_000 }).toContain('starting a restore needs the operator role; this token is viewer');
    expect(await viewer.getByTestId('recover-start').isDisabled()).toBe(true);
    const refused = await fetch(`${base}/api/v1/groups/site/restore`, { method: 'POST', headers: { ...t.auth('viewer'), 'content-type': 'application/json' }, body: JSON.stringify({ targets: { docs: path.join(t.dir, 'viewer-site') } }) });
    expect(refused.status).toBe(403);
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);
});
