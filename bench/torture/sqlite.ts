/**
 * SQLite replication torture: the real CLI replicating a real database for N minutes
 * while the other processes misbehave, checking every claim the replicator makes.
 *
 *   npx tsx bench/torture/sqlite.ts --scenario NAME [--minutes 10] [--rate 300] [--dir D] [--keep]
 *
 * Scenarios (the application is test/fixtures/sqlite-app.mjs, one row per transaction):
 *   replicator-crash  the replicator is killed with SIGKILL every 2–15 s and restarted after 1 s
 *   writer-crash      the application is killed with SIGKILL every 1–8 s and restarted; every
 *                     third time inside COMMIT (synchronous=FULL, an LD_PRELOAD shim kills it
 *                     in its Nth WAL sync, after the frames are written, before they are committed)
 *   app-restart       the application exits cleanly after 50–2000 commits and starts again
 *   reconnect         one application run that reconnects every 50 commits
 *
 * Every ~20 s a probe reads the newest `status` event (archivedThrough = A) and restores
 * --latest at once: every row whose COMMIT returned at or before A must be there (else a
 * false claim), no row may be one SQLite never committed (phantom), and the rows must
 * be a prefix of the commit order. A restore to a random earlier moment must be a prefix
 * too. At the end the application stops, the replicator is stopped cleanly, and
 * --latest must hold exactly the committed rows. Prints one JSON summary.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
const APP = path.join(ROOT, 'test', 'fixtures', 'sqlite-app.mjs');
const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? (process.argv[i + 1] as string) : fallback;
};
const SCENARIO = arg('--scenario', 'replicator-crash');
const MINUTES = Number(arg('--minutes', '10'));
const RATE = Number(arg('--rate', '300'));
const DIR = path.resolve(arg('--dir', `/tmp/lb-torture-sqlite-${SCENARIO}-${process.pid}`));
const env = { ...process.env, LIFEBOAT_PASSWORD: 'torture' };
const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

interface Row {
  marker: string;
  doneAt: number;
}

const committed: Row[] = [];
const phantoms = new Set<string>();
const stats = {
  scenario: SCENARIO,
  minutes: MINUTES,
  rate: RATE,
  commits: 0,
  appRuns: 0,
  appKills: 0,
  killedInCommit: 0,
  replicatorKills: 0,
  probes: 0,
  falseClaims: 0,
  phantomRowsSeen: 0,
  notPrefix: 0,
  claimedRpoMs: [] as number[],
  /** From a replicator's start to its first status proving everything up to its start is stored. */
  restartToProvenMs: [] as number[],
  /** Per restore to an earlier moment: how long before it the oldest commit it lacks returned (0: none lacking). */
  missedBeforeMomentMs: [] as number[],
  generations: {} as Record<string, number>,
  snapshots: 0,
  verifications: 0,
  divergences: 0,
  errors: [] as string[],
  final: { lost: 0, phantom: 0, extra: 0, rows: 0 },
};

function lifeboat(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', maxBuffer: 256 << 20 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

// ---- the replicator ---------------------------------------------------------

let replicator: ChildProcess | undefined;
let lastClaim: number | undefined;

function startReplicator(repo: string, db: string): void {
  const started = Date.now();
  let proven = false;
  const child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'sqlite', 'replicate', db, '--name', 'app'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  replicator = child;
  createInterface({ input: child.stdout! }).on('line', (l) => {
    if (!l.startsWith('{"')) return;
    const e = JSON.parse(l) as Record<string, unknown>;
    if (e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string') {
      lastClaim = Date.parse(e.archivedThrough);
      if (!proven && lastClaim >= started) {
        proven = true;
        stats.restartToProvenMs.push(Date.now() - started);
      }
    }
    if (e.kind === 'generation') stats.generations[String(e.reason)] = (stats.generations[String(e.reason)] ?? 0) + 1;
    if (e.kind === 'snapshot') stats.snapshots++;
    if (e.kind === 'verified') stats.verifications++;
    if (e.kind === 'diverged') stats.divergences++;
    if (e.kind === 'error' && stats.errors.length < 20) stats.errors.push(String(e.message));
  });
  child.stderr!.on('data', (d: Buffer) => {
    if (stats.errors.length < 20) stats.errors.push(d.toString().trim());
  });
}

async function killReplicator(signal: NodeJS.Signals): Promise<void> {
  const c = replicator;
  if (!c || c.exitCode !== null) return;
  const closed = new Promise((r) => c.once('close', r));
  c.kill(signal);
  await closed;
}

// ---- the application --------------------------------------------------------

let app: ChildProcess | undefined;
let appDone: Promise<void> = Promise.resolve();

function startApp(db: string, rows: number, extra: string[] = [], extraEnv: Record<string, string> = {}): void {
  stats.appRuns++;
  const child = spawn(process.execPath, [APP, db, String(rows), String(RATE), ...extra], { env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
  app = child;
  let begun: string | undefined;
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const [word, , , marker, doneAt] = l.split(' ');
    if (word === 'begin') begun = l.split(' ')[1];
    if (word === 'done') {
      committed.push({ marker: marker as string, doneAt: Number(doneAt) });
      begun = undefined;
    }
  });
  appDone = new Promise((resolve) =>
    child.on('close', (code) => {
      // Killed between "begin" and "done": committed if SQLite says so now, else it must never be restored.
      if (code !== 0 && begun) {
        if (isLive(db, begun)) committed.push({ marker: begun, doneAt: Date.now() });
        else phantoms.add(begun);
      }
      resolve();
    }),
  );
}

async function killApp(): Promise<void> {
  const c = app;
  if (!c || c.exitCode !== null) return;
  c.kill('SIGKILL');
  await appDone;
}

function shim(): string {
  const out = path.join(DIR, 'kill-in-wal-sync.so');
  const r = spawnSync('gcc', ['-shared', '-fPIC', '-O2', '-o', out, path.join(ROOT, 'test', 'fixtures', 'kill-in-wal-sync.c'), '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`gcc: ${r.stderr}`);
  return out;
}

// ---- probes -----------------------------------------------------------------

function markers(file: string): string[] {
  const db = new Database(file, { fileMustExist: true, readonly: true });
  try {
    return (db.prepare('SELECT marker FROM app ORDER BY id').all() as Array<{ marker: string }>).map((r) => r.marker);
  } finally {
    db.close();
  }
}

function isLive(file: string, marker: string): boolean {
  const db = new Database(file, { fileMustExist: true, readonly: true });
  try {
    return db.prepare('SELECT 1 FROM app WHERE marker = ?').get(marker) !== undefined;
  } finally {
    db.close();
  }
}

let probeNo = 0;
function restore(repo: string, ...target: string[]): string[] | undefined {
  const out = path.join(DIR, `probe-${probeNo++}.db`);
  const r = lifeboat(['-r', repo, 'sqlite', 'restore', 'app', '-o', out, ...target]);
  if (r.code !== 0) {
    if (stats.errors.length < 20) stats.errors.push(`restore ${target.join(' ')}: ${r.err.trim()}`);
    return undefined;
  }
  const got = markers(out);
  for (const suffix of ['', '-wal', '-shm']) rmSync(out + suffix, { force: true });
  return got;
}

/**
 * Rows restored must be the first k committed ones (commit order), none a phantom. A
 * row whose "done" line has not been read yet is committed if the live database has it.
 */
function checkPrefix(got: string[], db: string): void {
  const order = new Map(committed.map((r, i) => [r.marker, i]));
  let late = 0;
  for (const m of got) {
    if (phantoms.has(m)) stats.phantomRowsSeen++;
    else if (!order.has(m)) {
      if (isLive(db, m)) late++;
      else stats.phantomRowsSeen++;
    }
  }
  const sorted = got.map((m) => order.get(m)).filter((i): i is number => i !== undefined).sort((a, b) => a - b);
  if (sorted.some((v, i) => v !== i) || (late > 0 && sorted.length !== committed.length)) stats.notPrefix++;
}

function probe(repo: string, db: string): void {
  const claim = lastClaim;
  if (claim === undefined) return;
  const now = Date.now();
  const got = restore(repo, '--latest');
  if (!got) return;
  stats.probes++;
  stats.claimedRpoMs.push(now - claim);
  const have = new Set(got);
  const missing = committed.filter((r) => r.doneAt <= claim && !have.has(r.marker));
  if (missing.length > 0) {
    stats.falseClaims++;
    stats.errors.push(`false claim: ${missing.length} rows committed up to ${claim - (missing[0] as Row).doneAt} ms before archivedThrough are missing`);
  }
  checkPrefix(got, db);
  const moment = now - rand(500, 20_000);
  const earlier = restore(repo, '--time', new Date(moment).toISOString());
  if (earlier) {
    checkPrefix(earlier, db);
    // Commits that returned before the moment and are not in a restore to it: how long before.
    const there = new Set(earlier);
    const missed = committed.filter((r) => r.doneAt <= moment && !there.has(r.marker)).map((r) => moment - r.doneAt);
    stats.missedBeforeMomentMs.push(missed.length ? Math.max(...missed) : 0);
  }
}

// ---- scenarios --------------------------------------------------------------

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const repo = path.join(DIR, 'repo');
  const db = path.join(DIR, 'app.db');
  if (lifeboat(['init', '-r', repo]).code !== 0) throw new Error('init failed');
  const killer = SCENARIO === 'writer-crash' ? shim() : '';
  const sync = SCENARIO === 'writer-crash' ? ['--synchronous', 'FULL'] : [];
  startApp(db, 20);
  await appDone;
  startReplicator(repo, db);
  const end = Date.now() + MINUTES * 60_000;
  let nextProbe = Date.now() + 20_000;
  let nextEvent = Date.now() + rand(2000, 15_000);
  let kills = 0;
  const forever = 1e9;
  if (SCENARIO === 'reconnect') startApp(db, forever, ['--reconnect-every', '50']);
  else if (SCENARIO !== 'app-restart') startApp(db, forever, sync);
  while (Date.now() < end) {
    await sleep(100);
    const now = Date.now();
    if (SCENARIO === 'app-restart' && app?.exitCode !== null) startApp(db, Math.floor(rand(50, 2000)));
    if (SCENARIO === 'replicator-crash' && now >= nextEvent) {
      nextEvent = now + rand(2000, 15_000);
      stats.replicatorKills++;
      await killReplicator('SIGKILL');
      await sleep(1000); // the daemon's first backoff
      startReplicator(repo, db);
    }
    if (SCENARIO === 'writer-crash' && now >= nextEvent) {
      nextEvent = now + rand(1000, 8000);
      stats.appKills++;
      if (++kills % 3 === 0) {
        // The running app finishes normally at its next kill point; this run dies inside COMMIT.
        await killApp();
        stats.killedInCommit++;
        startApp(db, forever, ['--synchronous', 'FULL', '--no-autocheckpoint'], { LD_PRELOAD: killer, LIFEBOAT_KILL_AT_WAL_SYNC: String(Math.floor(rand(20, 400))) });
      } else {
        await killApp();
        startApp(db, forever, sync);
      }
    }
    if (SCENARIO === 'writer-crash' && app?.exitCode !== null) startApp(db, forever, sync); // the shim killed it
    if (now >= nextProbe) {
      nextProbe = now + 20_000;
      probe(repo, db);
    }
  }
  await killApp();
  await appDone;
  const stoppedAt = Date.now();
  while (lastClaim === undefined || lastClaim < stoppedAt) {
    await sleep(50);
    if (replicator?.exitCode !== null) startReplicator(repo, db);
  }
  await killReplicator('SIGINT');
  const got = restore(repo, '--latest') ?? [];
  const have = new Set(got);
  const want = new Set(committed.map((r) => r.marker));
  stats.commits = committed.length;
  stats.final = {
    rows: got.length,
    lost: committed.filter((r) => !have.has(r.marker)).length,
    phantom: got.filter((m) => phantoms.has(m)).length,
    extra: got.filter((m) => !want.has(m)).length,
  };
  const live = existsSync(db) ? markers(db) : [];
  const sorted = [...stats.claimedRpoMs].sort((a, b) => a - b);
  const pick = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? null;
  const summary = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { n: s.length, median: s[Math.floor(s.length / 2)] ?? null, max: s.at(-1) ?? null };
  };
  console.log(
    JSON.stringify({
      ...stats,
      liveRows: live.length,
      claimedRpoMs: { median: pick(0.5), p95: pick(0.95), max: sorted.at(-1) ?? null },
      restartToProvenMs: summary(stats.restartToProvenMs),
      missedBeforeMomentMs: summary(stats.missedBeforeMomentMs),
    }),
  );
  if (!process.argv.includes('--keep')) rmSync(DIR, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
