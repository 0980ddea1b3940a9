/**
 * What proving costs (docs/performance.md, "SQLite replication proof"): on a database
 * of DB_MB megabytes, the real CLI replicating it reports
 *
 *  1. how long one page-by-page verification of the live database takes (`verified`
 *     events' durationMs) while a writer commits RATE transactions a second;
 *  2. after the writer stops, kill -9 and a restart that resumes the generation, how
 *     long until the page model is rebuilt from the repository and the first
 *     verification passes;
 *  3. the replicator's CPU seconds per minute, idle and under the writer.
 *
 * Run: npx tsx bench/sqlite-verify-bench.ts   (env: DB_MB=1024 RATE=200 BENCH_DIR=/tmp/lb-verify-bench)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
const APP = path.join(ROOT, 'test', 'fixtures', 'sqlite-app.mjs');
const DIR = process.env.BENCH_DIR ?? '/tmp/lb-verify-bench';
const DB_MB = Number(process.env.DB_MB ?? 1024);
const RATE = Number(process.env.RATE ?? 200);
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench' };

type Event = Record<string, unknown>;

function replicator(repo: string, db: string): { child: ChildProcess; events: Event[] } {
  const child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'sqlite', 'replicate', db, '--name', 'big', '--verify-interval', '20s'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const events: Event[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    if (l.startsWith('{"')) events.push({ ...(JSON.parse(l) as Event), at: Date.now() });
  });
  return { child, events };
}

async function until(events: Event[], match: (e: Event) => boolean, timeoutMs = 30 * 60_000): Promise<Event> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = events.find(match);
    if (e) return e;
    if (Date.now() > deadline) throw new Error('timed out');
    await sleep(100);
  }
}

/** CPU seconds (user + system) the process has used. */
function cpu(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const repo = path.join(DIR, 'repo');
  const db = path.join(DIR, 'big.db');
  execFileSync(process.execPath, [CLI, 'init', '-r', repo], { env });
  const d = new Database(db);
  d.pragma('journal_mode = WAL');
  d.exec('CREATE TABLE filler (id INTEGER PRIMARY KEY, v BLOB)');
  const ins = d.prepare('INSERT INTO filler (v) VALUES (randomblob(1000))');
  const rows = Math.round((DB_MB * 1024 * 1024) / 1100);
  for (let i = 0; i < rows; i += 10_000) d.transaction(() => { for (let j = 0; j < 10_000; j++) ins.run(); })();
  d.close();

  const first = replicator(repo, db);
  await until(first.events, (e) => e.kind === 'snapshot');
  const idle0 = cpu(first.child.pid!);
  await sleep(60_000);
  const idleCpu = cpu(first.child.pid!) - idle0;
  const app = spawn(process.execPath, [APP, db, String(RATE * 120), String(RATE)], { stdio: 'ignore' });
  const busy0 = cpu(first.child.pid!);
  const verified = await until(first.events, (e) => e.kind === 'verified');
  await sleep(60_000);
  const busyCpu = cpu(first.child.pid!) - busy0;
  // The writer stops first, so the WAL still holds where the generation ends and the restart resumes it.
  app.kill();
  const stoppedAt = Date.now();
  await until(first.events, (e) => e.kind === 'status' && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) > stoppedAt);
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('close', r));

  const startedAt = Date.now();
  const second = replicator(repo, db);
  const gen = await until(second.events, (e) => e.kind === 'generation');
  const again = await until(second.events, (e) => e.kind === 'verified');
  second.child.kill('SIGINT');
  await new Promise((r) => second.child.once('close', r));
  console.log(
    JSON.stringify({
      dbMB: DB_MB,
      writerRate: RATE,
      verification: { pages: verified.pages, durationMs: verified.durationMs },
      restart: { generation: gen.reason, firstVerifiedAfterMs: (again.at as number) - startedAt, durationMs: again.durationMs },
      replicatorCpuSecondsPerMinute: { idle: +idleCpu.toFixed(2), underWriter: +busyCpu.toFixed(2) },
    }),
  );
  rmSync(DIR, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
