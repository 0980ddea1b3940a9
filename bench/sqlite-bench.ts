/**
 * SQLite replication benchmark (docs/performance.md, "SQLite"). Runs the real CLI
 * (build first: npm run build) against real databases and reports:
 *
 *  1. data-loss window after kill -9 of the replicator at 1000 commits/s (goal <= 1 s);
 *  2. write overhead: a writer at 1000 commits/s and at full speed, alone and while
 *     replicated (goal <= 10 % at 1000 commits/s), slowest commit, largest WAL;
 *  3. objects created per hour of writing, before and after compaction;
 *  4. restore time of a 1 GB database plus a day of frames (goal <= 60 s): one
 *     snapshot, then DAY_TX transactions (default 86 400: one a second for a day,
 *     each updating a random row and adding one) written in fast-forward while the
 *     replicator ships them, then `sqlite restore --latest`.
 *
 * Run: npx tsx bench/sqlite-bench.ts   (env: DB_MB=1024 DAY_TX=86400 TRIALS=5 BENCH_DIR=/tmp/lb-sqlite-bench)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
const WRITER = path.join(ROOT, 'test', 'fixtures', 'sqlite-writer.mjs');
const DIR = process.env.BENCH_DIR ?? '/tmp/lb-sqlite-bench';
const DB_MB = Number(process.env.DB_MB ?? 1024);
const DAY_TX = Number(process.env.DAY_TX ?? 86_400);
const TRIALS = Number(process.env.TRIALS ?? 5);
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench' };

function lifeboat(args: string[]): string {
  return execFileSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function freshRepo(name: string): string {
  const repo = path.join(DIR, name);
  rmSync(repo, { recursive: true, force: true });
  lifeboat(['init', '-r', repo]);
  return repo;
}

function freshDb(name: string): string {
  const file = path.join(DIR, name);
  for (const s of ['', '-wal', '-shm']) rmSync(file + s, { force: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pad TEXT)');
  db.close();
  return file;
}

class Replicator {
  readonly events: Array<Record<string, unknown>> = [];
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  constructor(repo: string, db: string, extra: string[] = []) {
    this.child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'sqlite', 'replicate', db, '--name', 'bench', ...extra], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.startsWith('{"time"')) this.events.push(JSON.parse(l) as Record<string, unknown>);
    });
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }
  async ready(): Promise<void> {
    while (!this.events.some((e) => e.kind === 'snapshot')) {
      if (this.child.exitCode !== null) throw new Error('replicator exited');
      await sleep(20);
    }
  }
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    this.child.kill(signal);
    await this.exited;
  }
}

interface WriterSummary {
  transactions: number;
  rate: number;
  maxLatencyMs: number;
  walMaxBytes: number;
}

function writer(db: string, rate: number, seconds: number): Promise<WriterSummary> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRITER, db, String(rate), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as WriterSummary) : reject(new Error(`writer ${code}`))));
  });
}

function restoreRows(repo: string, out: string): Array<{ id: number }> {
  for (const s of ['', '-wal', '-shm']) rmSync(out + s, { force: true });
  lifeboat(['-r', repo, 'sqlite', 'restore', 'bench', '-o', out, '--latest']);
  const db = new Database(out);
  const rows = db.prepare('SELECT id FROM t ORDER BY id').all() as Array<{ id: number }>;
  db.close();
  return rows;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function dataLossWindow(): Promise<void> {
  const windows: number[] = [];
  const lostCounts: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    const repo = freshRepo(`loss-repo-${i}`);
    const db = freshDb(`loss-${i}.db`);
    const rep = new Replicator(repo, db);
    await rep.ready();
    const writing = writer(db, 1000, 4);
    // Kill at a different point of the shipping interval each trial.
    await sleep(2000 + (i * 1000) / TRIALS);
    const killedAt = Date.now();
    await rep.stop('SIGKILL');
    await writing;
    const restored = restoreRows(repo, path.join(DIR, `loss-${i}-restored.db`)).length;
    const src = new Database(db);
    const before = src.prepare('SELECT id, at FROM t WHERE at <= ? ORDER BY id').all(killedAt) as Array<{ id: number; at: number }>;
    src.close();
    const lost = before.slice(restored);
    windows.push(lost.length ? killedAt - (lost[0] as { at: number }).at : 0);
    lostCounts.push(lost.length);
  }
  console.log(`data-loss window after kill -9 at 1000 commits/s (${TRIALS} trials, --interval 1s):`);
  console.log(`  windows ms: ${windows.join(', ')}; median ${median(windows)} ms, max ${Math.max(...windows)} ms`);
  console.log(`  transactions lost: ${lostCounts.join(', ')}`);
}

async function overhead(): Promise<void> {
  const rows: string[] = [];
  for (const rate of [1000, 0]) {
    const alone = await writer(freshDb(`alone-${rate}.db`), rate, 5);
    const repo = freshRepo(`ovh-repo-${rate}`);
    const db = freshDb(`rep-${rate}.db`);
    const rep = new Replicator(repo, db);
    await rep.ready();
    const replicated = await writer(db, rate, 5);
    await sleep(1200);
    await rep.stop();
    const ships = rep.events.filter((e) => e.kind === 'ship').length;
    const blocked = rep.events.filter((e) => e.kind === 'checkpoint').map((e) => Number(e.blockedMs));
    const label = rate ? `${rate}/s target` : 'full speed';
    const lost = (1 - replicated.rate / alone.rate) * 100;
    rows.push(
      `  ${label}: alone ${alone.rate.toFixed(0)}/s (slowest ${alone.maxLatencyMs.toFixed(1)} ms, WAL max ${(alone.walMaxBytes / 1e6).toFixed(1)} MB); ` +
        `replicated ${replicated.rate.toFixed(0)}/s (slowest ${replicated.maxLatencyMs.toFixed(1)} ms, WAL max ${(replicated.walMaxBytes / 1e6).toFixed(1)} MB); ` +
        `overhead ${lost.toFixed(1)} %; ${ships} segments; ${blocked.length} checkpoints holding writers ${blocked.length ? `${median(blocked)} ms median, ${Math.max(...blocked)} ms max` : '-'}`,
    );
    if (rate === 1000) {
      // Segments while writing, from the first to the last (the final one at stop excluded).
      const times = rep.events.filter((e) => e.kind === 'ship').map((e) => Date.parse(String(e.time)));
      const perHour = times.length > 2 ? ((times.length - 2) / ((times[times.length - 2] as number) - (times[0] as number))) * 3_600_000 : NaN;
      rows.push(`  objects created per hour at 1000 commits/s: ${perHour.toFixed(0)} segment PUTs (one per interval), + 60 minute merges + 1 hour merge; kept per hour of history after compaction: 1`);
    }
  }
  console.log('write overhead (5 s per run, one small row per transaction, synchronous=NORMAL):');
  for (const r of rows) console.log(r);
}

function makeBigDb(file: string, mb: number): void {
  for (const s of ['', '-wal', '-shm']) rmSync(file + s, { force: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, pad TEXT)');
  db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, body BLOB NOT NULL)');
  const rows = Math.round((mb * 1e6) / 1100);
  const ins = db.prepare('INSERT INTO big (v, body) VALUES (?, randomblob(1000))');
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) ins.run(i);
  });
  for (let i = 0; i < rows; i += 50_000) batch(i, Math.min(rows, i + 50_000));
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

async function dayRestore(): Promise<void> {
  const db = path.join(DIR, 'big.db');
  let t = Date.now();
  makeBigDb(db, DB_MB);
  const size = statSync(db).size;
  console.log(`restore of a ${(size / 1e9).toFixed(2)} GB database with a day of frames (${DAY_TX} transactions):`);
  console.log(`  built the database in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const repo = freshRepo('day-repo');
  t = Date.now();
  const rep = new Replicator(repo, db, ['--snapshot-interval', '48h']);
  await rep.ready();
  console.log(`  first snapshot (replicator start to snapshot stored): ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const conn = new Database(db);
  conn.pragma('synchronous = NORMAL');
  conn.pragma('busy_timeout = 10000');
  const maxId = (conn.prepare('SELECT max(id) AS m FROM big').get() as { m: number }).m;
  const upd = conn.prepare('UPDATE big SET v = v + 1, body = randomblob(1000) WHERE id = ?');
  const ins = conn.prepare('INSERT INTO t (at, pad) VALUES (?, ?)');
  const tx = conn.transaction((id: number) => {
    upd.run(id);
    ins.run(Date.now(), 'day');
  });
  t = Date.now();
  let seed = 12345;
  for (let i = 0; i < DAY_TX; i++) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    tx(1 + (seed % maxId));
    // Let the replicator keep up (a real day has 86 400 s for it).
    if (i % 2000 === 1999) await sleep(20);
  }
  conn.close();
  console.log(`  wrote the day's transactions in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  await sleep(2000);
  await rep.stop();
  const segs = rep.events.filter((e) => e.kind === 'ship');
  const bytes = segs.reduce((n, e) => n + Number(e.bytes), 0);
  console.log(`  shipped ${segs.length} segments, ${(bytes / 1e6).toFixed(0)} MB stored (compressed, encrypted)`);
  const out = path.join(DIR, 'big-restored.db');
  for (const s of ['', '-wal', '-shm']) rmSync(out + s, { force: true });
  t = Date.now();
  const r = JSON.parse(lifeboat(['-r', repo, '--json', 'sqlite', 'restore', 'bench', '-o', out, '--latest'])) as { commits: number; segments: number };
  const secs = (Date.now() - t) / 1000;
  console.log(`  restore --latest: ${secs.toFixed(1)} s (snapshot + ${r.commits} transactions from ${r.segments} segments, integrity_check included)`);
  const a = new Database(db, { readonly: true });
  const b = new Database(out, { readonly: true });
  const sum = (d: Database.Database) => d.prepare('SELECT count(*) AS n, sum(v) AS s FROM big').get();
  const same = JSON.stringify(sum(a)) === JSON.stringify(sum(b));
  a.close();
  b.close();
  console.log(`  restored rows match the source: ${same}`);
  rmSync(out, { force: true });
}

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  console.log(`# lifeboat sqlite benchmark, ${new Date().toISOString()}, node ${process.version}, ${readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length} CPUs`);
  await dataLossWindow();
  await overhead();
  await dayRestore();
  rmSync(DIR, { recursive: true, force: true });
}

await main();
