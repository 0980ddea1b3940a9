/**
 * The web dashboard in a real browser (Debian chromium through playwright-core)
 * against a real daemon over a real repository: signing in with a token, reading
 * sources, jobs, snapshots and drills, starting a backup and a drill with the
 * buttons, and a viewer's token being refused with the API's own message.
 */
import { mkdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createToken, type Role } from '../../src/daemon/auth.js';
import type { JobRow } from '../../src/daemon/catalog.js';
import type { SourceStatus } from '../../src/daemon/metrics.js';
import type { Group } from '../../src/api/dto.js';
import { testDaemon, type TestDaemon } from '../daemon-helpers.js';
import { ROOT, cleanupTmp } from '../helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-quic'];
const TEST_TIMEOUT = 90_000;
/** Long enough for a backup or drill job and a few 2 s polls on a slow machine. */
const JOB_TIMEOUT = 30_000;

let t: TestDaemon;
let base: string;
let browser: Browser;
const contexts: BrowserContext[] = [];

/** An application's connection keeping the group member's SQLite file open in WAL mode. */
let app: Database.Database | undefined;

beforeAll(async () => {
  t = await testDaemon({
    // The group member's log is kept by the daemon (sqlite replicate), as a real group's is.
    extraSources: '  index: { kind: sqlite, path: $DIR/index.db, replicate: true }',
    extra: 'groups:\n  engram: { members: [index], freeze: [/bin/true], thaw: [/bin/true], max_hold: 5s }',
  });
  app = new Database(path.join(t.dir, 'index.db'));
  app.pragma('journal_mode = WAL');
  app.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
  t.daemon.start();
  base = await t.daemon.listen();
  // One backup before the browser opens, so the source has a last backup to show.
  const job = t.daemon.submit({ kind: 'backup', source: 'docs', trigger: 'test' });
  const done = await t.daemon.runner.wait(job.id);
  expect(done.status, done.error ?? '').toBe('succeeded');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, TEST_TIMEOUT);

afterAll(async () => {
  for (const c of contexts) await c.close().catch(() => {});
  await browser?.close();
  await t?.daemon.stop();
  app?.close();
  cleanupTmp();
}, TEST_TIMEOUT);

/** GET an API path with a role's token; fails the test unless it answers 200. */
async function apiGet<T>(p: string, role: Role = 'viewer'): Promise<T> {
  const res = await fetch(`${base}${p}`, { headers: t.auth(role) });
  expect(res.status, `GET ${p}`).toBe(200);
  return (await res.json()) as T;
}

/** A fresh page (its own localStorage) that fails the test on any script error. */
async function newPage(errors: string[]): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  contexts.push(context);
  const page = await context.newPage();
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // A refused call is logged by the browser as a failed resource load; that is expected.
    if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) errors.push(`console: ${msg.text()}`);
  });
  return page;
}

/** Opens the daemon's root, which redirects to the dashboard, and signs in. */
async function signIn(page: Page, token: string): Promise<void> {
  await page.goto(`${base}/`);
  expect(new URL(page.url()).pathname).toBe('/dashboard/');
  await page.locator('#token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#dashboard').waitFor({ state: 'visible' });
}

/** The token the page keeps in localStorage (evaluated in the page; the tests have no DOM types). */
async function storedToken(page: Page): Promise<string | null> {
  return page.evaluate<string | null>('localStorage.getItem("lifeboat.token")');
}

async function jobRowIds(page: Page): Promise<string[]> {
  return page.locator('#jobs-body tr').evaluateAll((rows) => rows.map((r) => (r.getAttribute('data-testid') ?? '').replace(/^job-/, '')));
}

/** Waits for a job row of `kind` that was not there before and returns its id. */
async function newJobRow(page: Page, before: string[], kind: string): Promise<string> {
  let found: string | undefined;
  await expect
    .poll(
      async () => {
        const rows = await page.locator('#jobs-body tr').evaluateAll((trs) => trs.map((tr) => [(tr.getAttribute('data-testid') ?? '').replace(/^job-/, ''), tr.children[1]?.textContent?.trim() ?? '']));
        found = rows.find(([id, k]) => id && !before.includes(id) && k === kind)?.[0];
        return found;
      },
      { timeout: JOB_TIMEOUT, interval: 100 },
    )
    .toBeDefined();
  return found as string;
}

/** Waits, through the dashboard's own polling, until a job row shows `succeeded`. */
async function waitSucceeded(page: Page, id: string): Promise<void> {
  await expect
    .poll(async () => (await page.getByTestId(`job-${id}`).locator('.status').textContent())?.trim(), { timeout: JOB_TIMEOUT, interval: 250 })
    .toBe('succeeded');
}

describe('the web dashboard', () => {
  it('shows the sources, starts a backup and a drill as the operator, and charts the backups', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);

    // The last backup the page shows is the one the API reports.
    const [docs] = (await apiGet<SourceStatus[]>('/api/v1/sources')).filter((s) => s.name === 'docs');
    expect(docs?.last_backup).not.toBeNull();
    const lastBackup = page.getByTestId('last-backup-docs');
    await expect.poll(() => lastBackup.textContent(), { timeout: 10_000 }).toBe(new Date(docs?.last_backup?.time as string).toISOString());
    await expect.poll(() => page.locator('#snapshots-body tr').count(), { timeout: 10_000 }).toBe(1);

    // "Back up now": a new job row appears and the page's polling moves it to succeeded.
    const before = await jobRowIds(page);
    expect(before.length).toBeGreaterThan(0);
    await page.getByTestId('backup-docs').click();
    const backupId = await newJobRow(page, before, 'backup');
    await waitSucceeded(page, backupId);
    const row = page.getByTestId(`job-${backupId}`);
    expect(await row.locator('td').nth(5).textContent()).toBe('olga-operator');
    const viaApi = await apiGet<JobRow>(`/api/v1/jobs/${backupId}`);
    expect(viaApi).toMatchObject({ kind: 'backup', source: 'docs', status: 'succeeded', trigger: 'api', actor: 'olga-operator' });
    expect(t.daemon.catalog.job(backupId)?.actor).toBe('olga-operator');

    // The new backup reaches the sources table, the snapshot list and the chart.
    const [after] = (await apiGet<SourceStatus[]>('/api/v1/sources')).filter((s) => s.name === 'docs');
    expect(after?.last_backup?.time).not.toBe(docs?.last_backup?.time);
    await expect.poll(() => lastBackup.textContent(), { timeout: 10_000 }).toBe(new Date(after?.last_backup?.time as string).toISOString());
    await expect.poll(() => page.locator('#snapshots-body tr').count(), { timeout: 10_000 }).toBe(2);
    const chart = page.getByTestId('backup-chart');
    await expect.poll(() => chart.locator('circle.point.size').count(), { timeout: 10_000 }).toBe(2);
    expect(await chart.locator('rect.point.duration').count()).toBe(2);
    expect(await chart.locator('text.axis-title').allTextContents()).toEqual(['Size', 'Duration', 'Time (UTC)']);

    // "Run drill": the drill job succeeds and lands in the drill history and the RTO column.
    const beforeDrill = await jobRowIds(page);
    await page.getByTestId('drill-docs').click();
    const drillId = await newJobRow(page, beforeDrill, 'drill');
    await waitSucceeded(page, drillId);
    expect((await apiGet<JobRow>(`/api/v1/jobs/${drillId}`)).actor).toBe('olga-operator');
    await expect.poll(() => page.locator('#drills-body tr').count(), { timeout: 10_000 }).toBe(1);
    expect(await page.locator('#drills-body tr .badge').textContent()).toBe('passed');
    const drills = await apiGet<Array<{ rto_seconds: number | null }>>('/api/v1/drills');
    expect(drills[0]?.rto_seconds).not.toBeNull();
    await expect.poll(() => page.getByTestId('rto-docs').getAttribute('class'), { timeout: 10_000 }).toMatch(/\bok\b/);
    await expect.poll(() => page.getByTestId('rpo-docs').getAttribute('class'), { timeout: 10_000 }).toMatch(/\bok\b/);

    // A picture for humans (and CI artifacts).
    const dir = path.join(ROOT, 'test-results');
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    expect(statSync(file).size).toBeGreaterThan(20_000);

    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('shows the consistency groups and captures a point as the operator', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.operator);
    await expect.poll(() => page.getByTestId('members-engram').textContent(), { timeout: 10_000 }).toBe('index sqlite');
    expect(await page.getByTestId('point-engram').textContent()).toBe('never');
    expect(await page.getByTestId('age-engram').textContent()).toBe('no point');

    // "Capture now": a group-backup job row appears and succeeds; the row shows the point the API reports.
    const before = await jobRowIds(page);
    await page.getByTestId('group-backup-engram').click();
    const id = await newJobRow(page, before, 'group-backup');
    await waitSucceeded(page, id);
    expect(await page.getByTestId(`job-${id}`).locator('td').nth(2).textContent()).toBe('engram');
    const [engram] = (await apiGet<Group[]>('/api/v1/groups')).filter((g) => g.name === 'engram');
    const point = engram?.last_point;
    expect(point?.id).toBe((t.daemon.catalog.job(id)?.result as { id: string }).id);
    await expect.poll(() => page.getByTestId('point-engram').textContent(), { timeout: 10_000 }).toBe(point?.id);
    expect(await page.getByTestId('hold-engram').textContent()).toBe(`${point?.hold_ms.toFixed(1)} ms`);
    expect(await page.getByTestId('hold-engram').getAttribute('class')).toMatch(/\bok\b/);
    expect(await page.getByTestId('capture-engram').textContent()).toBe('succeeded');
    expect(await page.getByTestId('age-engram').textContent()).not.toBe('no point');

    const dir = path.join(ROOT, 'test-results');
    mkdirSync(dir, { recursive: true });
    await page.getByTestId('group-engram').screenshot({ path: path.join(dir, 'dashboard-groups.png') });
    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it("shows a viewer the API's refusal and starts no job", async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await signIn(page, t.tokens.viewer);
    await page.getByTestId('last-backup-docs').waitFor();
    const jobsBefore = (await apiGet<JobRow[]>('/api/v1/jobs?limit=1000')).length;

    // A group capture is refused the same way.
    await page.getByTestId('group-backup-engram').click();
    await expect.poll(() => page.locator('#notice').textContent(), { timeout: 10_000 }).toMatch(/POST \/api\/v1\/groups\/engram\/backup needs the operator role/);
    await page.locator('#notice [data-action="dismiss"]').click();

    await page.getByTestId('backup-docs').click();
    const notice = page.locator('#notice');
    await notice.waitFor({ state: 'visible' });
    await expect.poll(() => notice.textContent(), { timeout: 10_000 }).toMatch(/PERMISSION/);
    const text = (await notice.textContent()) ?? '';
    expect(text).toContain('needs the operator role');
    expect(text).toContain('"alice-viewer" is viewer');
    expect(text).toContain('ask an admin for a token with that role');
    expect(await notice.getAttribute('class')).toMatch(/\berror\b/);

    // Give a job that should not exist time to show up, then check there is none.
    await page.waitForTimeout(2_500);
    expect((await apiGet<JobRow[]>('/api/v1/jobs?limit=1000')).length).toBe(jobsBefore);
    expect(t.daemon.catalog.jobs({ limit: 1000 }).filter((j) => j.actor === 'alice-viewer')).toEqual([]);
    const refused = t.daemon.catalog.auditLog().filter((a) => a.actor === 'alice-viewer' && a.method === 'POST');
    // Refusals of one token in a minute are one row (the first call's path) with a count.
    expect(refused.map((a) => [a.status_code, a.outcome, a.path, a.count])).toEqual([[403, 'refused', '/api/v1/groups/engram/backup', 2]]);
    // The refusal does not end the session: the page stays signed in and keeps polling.
    expect(await page.locator('#dashboard').isVisible()).toBe(true);
    expect(await page.locator('#signin').isVisible()).toBe(false);

    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);

  it('refuses a bad token at sign-in and returns to sign-in when the token is revoked', async () => {
    const errors: string[] = [];
    const page = await newPage(errors);
    await page.goto(`${base}/dashboard/`);
    await page.locator('#token').fill('lbt_not_a_real_token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('#signin-message').textContent(), { timeout: 10_000 }).toMatch(/not accepted: no valid API token/);
    expect(await page.locator('#dashboard').isVisible()).toBe(false);
    expect(await storedToken(page)).toBeNull();

    const { token } = createToken(t.daemon.catalog, 'viewer', 'victor-viewer');
    await page.locator('#token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#dashboard').waitFor({ state: 'visible' });
    expect(await storedToken(page)).toBe(token);
    // A reload keeps the session (the token is in localStorage).
    await page.reload();
    await page.locator('#dashboard').waitFor({ state: 'visible' });

    // Revoked while signed in: the next poll gets 401 and the page goes back to sign-in.
    expect(t.daemon.catalog.revokeToken('victor-viewer').revoked?.name).toBe('victor-viewer');
    await page.locator('#signin').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await page.locator('#signin-message').textContent()).toMatch(/no valid API token/);
    expect(await storedToken(page)).toBeNull();

    expect(errors).toEqual([]);
  }, TEST_TIMEOUT);
});
