#!/usr/bin/env node
// The group RTO for issue 18's three-tier stack with about SIZE_MB (default 1000) of
// data in all, a third in each tier: Redis (hot, followed by `lifeboat redis replicate`),
// SQLite (warm, followed by `lifeboat sqlite replicate`) and a directory (cold, a files
// member copied at the point). IDS ids, each a 64 KiB value in Redis (SET mem:<id>, SADD
// active <id>), a row with a 64 KiB payload in SQLite, and a 64 KiB blob file, so the
// group's three checks hold. One `group backup`, then `group drill` (restore all three
// into scratch, start Redis from the dump, check each member, run the cross-member
// checks) timed: its rto_ms is the figure (issue 18's goal: <= 60 s here).
//   node bench/group-rto.mjs            (SIZE_MB=1000, BENCH_DIR=/tmp/lb-group-rto)
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect, createServer } from 'node:net';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const SIZE_MB = Number(process.env.SIZE_MB ?? 1000);
const D = process.env.BENCH_DIR ?? '/tmp/lb-group-rto';
const VALUE = 64 * 1024;
const IDS = Math.round((SIZE_MB * 1024 * 1024) / 3 / VALUE);
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench' };
const LB = path.join(HERE, 'bin/lifeboat.js');
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const started = [];
process.on('exit', () => {
  for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
});
process.on('SIGINT', () => process.exit(130));

const lb = (args) =>
  new Promise((resolve, reject) => {
    const t0 = Date.now();
    const ch = spawn(process.execPath, [LB, '--config', path.join(D, 'lifeboat.yaml'), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    ch.stdout.on('data', (d) => (out += d));
    ch.stderr.on('data', (d) => (err += d));
    ch.on('close', (code) => (code === 0 ? resolve({ out, ms: Date.now() - t0 }) : reject(new Error(`lifeboat ${args.join(' ')} exited ${code}: ${err}`))));
  });
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

rmSync(D, { recursive: true, force: true });
mkdirSync(path.join(D, 'cold', 'blobs'), { recursive: true });
console.log(`load average at start: ${load()}; ${SIZE_MB} MB in all: ${IDS} ids of 64 KiB in each tier`);
// Random bytes, different for every id and tier: nothing deduplicates or compresses away.
const payload = () => randomBytes(VALUE);

// hot
const port = await freePort();
started.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', D, '--repl-diskless-sync-delay', '0'], { stdio: 'ignore' }));
const sock = await new Promise((resolve, reject) => {
  const tryConnect = (n) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => resolve(s));
    s.once('error', () => (n > 100 ? reject(new Error('redis did not start')) : setTimeout(() => tryConnect(n + 1), 50)));
  };
  tryConnect(0);
});
let replies = 0;
sock.on('data', (d) => {
  for (const b of d) if (b === 0x0a) replies++;
});
const cmd = (...args) => Buffer.concat([Buffer.from(`*${args.length}\r\n`), ...args.flatMap((a) => { const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a)); return [Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]; })]);
for (let id = 1; id <= IDS; id++) {
  sock.write(cmd('SET', `mem:${id}`, Buffer.concat([Buffer.from(`${id}.bin:`), payload()])));
  sock.write(cmd('SADD', 'active', id));
  if (id % 500 === 0) while (replies < id * 2 - 1000) await new Promise((r) => setTimeout(r, 5));
}
while (replies < IDS * 2) await new Promise((r) => setTimeout(r, 5));
sock.end();

// warm
const Database = require('better-sqlite3');
const db = new Database(path.join(D, 'warm.db'));
db.pragma('journal_mode = WAL');
db.exec('CREATE TABLE memories (id INTEGER PRIMARY KEY, blob TEXT NOT NULL, pad BLOB)');
const ins = db.prepare('INSERT INTO memories VALUES (?, ?, ?)');
db.transaction(() => {
  for (let id = 1; id <= IDS; id++) ins.run(id, `${id}.bin`, payload());
})();
db.pragma('wal_checkpoint(TRUNCATE)');
db.close();

// cold
for (let id = 1; id <= IDS; id++) writeFileSync(path.join(D, 'cold', 'blobs', `${id}.bin`), payload());

execFileSync(process.execPath, [LB, 'init', '-r', path.join(D, 'repo')], { env, stdio: 'ignore' });
writeFileSync(
  path.join(D, 'lifeboat.yaml'),
  `repositories:
  main: { stores: [${path.join(D, 'repo')}] }
sources:
  hot: { kind: redis, url: "redis://127.0.0.1:${port}" }
  warm: { kind: sqlite, path: warm.db }
  cold: { kind: files, paths: [cold] }
groups:
  engram:
    members: [warm, hot, cold]
    max_hold: 10min
    checks:
      - { name: cached ids are rows, every: { member: hot, redis: [SMEMBERS, active] }, in: { member: warm, sql: "SELECT id FROM memories" } }
      - { name: rows have their blobs, every: { member: warm, sql: "SELECT blob FROM memories" }, in: { member: cold, files: blobs } }
`,
);
const t0 = Date.now();
for (const args of [['redis', 'replicate', '--url', `redis://127.0.0.1:${port}`, '--name', 'hot'], ['sqlite', 'replicate', path.join(D, 'warm.db'), '--name', 'warm']]) {
  started.push(spawn(process.execPath, [LB, '--config', path.join(D, 'lifeboat.yaml'), '--repo', 'main', ...args], { env, stdio: 'ignore' }));
}
for (;;) {
  const snaps = JSON.parse((await lb(['--repo', 'main', '--json', 'snapshots'])).out);
  if (snaps.some((s) => s.source?.kind === 'redis') && snaps.some((s) => s.source?.kind === 'sqlite')) break;
  await new Promise((r) => setTimeout(r, 1000));
}
console.log(`base snapshots of hot and warm stored in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
// No freeze: nothing writes (the positions are read back to back, which is one moment here).
const b = await lb(['--repo', 'main', '--json', 'group', 'backup', 'engram']);
const point = JSON.parse(b.out);
console.log(`group backup: ${(b.ms / 1000).toFixed(1)} s (the cold copy is in the hold: ${point.hold_ms.toFixed(0)} ms)`);
for (const c of started.slice(1)) c.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 2000));
const repoMB = Number(execFileSync('du', ['-sm', path.join(D, 'repo')]).toString().split('\t')[0]);
console.log(`repository: ${repoMB} MB; load average before the drill: ${load()}`);
const d = await lb(['--repo', 'main', '--json', 'group', 'drill', 'engram']).catch((err) => ({ out: JSON.stringify({ ok: false, error: String(err) }), ms: 0 }));
const r = JSON.parse(d.out);
if (!r.ok) console.log(`drill failed: ${r.error}`);
console.log(`group drill: ok=${r.ok}, RTO ${(r.rto_ms / 1000).toFixed(1)} s (command ${(d.ms / 1000).toFixed(1)} s); restores ${r.members?.map((m) => `${m.name} ${(m.restore_ms / 1000).toFixed(1)} s`).join(', ')}; checks ${r.checks?.map((c) => `${c.name}: ${c.every.values}/${c.in.values}, ${c.violations} violations`).join('; ')}`);
console.log(`load average at end: ${load()}`);
process.exit(0);
