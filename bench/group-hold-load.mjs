#!/usr/bin/env node
// The write hold of `lifeboat group backup` (freeze start to thaw end, as the point
// records it) for a group of a PostgreSQL, a SQLite and a Redis member UNDER LOAD:
// writers at full speed on all three while CAPTURES points are taken back to back
// (issue 18's goal: p99 <= 50 ms, independent of data size). The stores are scratch
// instances holding about SIZE_MB of data in all (a third each), so the hold can be
// compared at two sizes:
//   SIZE_MB=10 node bench/group-hold-load.mjs
//   SIZE_MB=1000 node bench/group-hold-load.mjs
// freeze and thaw are the members' built-in holds (HOOKS=command: /bin/true, as
// bench/group-hold.sh; then the writers are not held, and a capture is refused with 49
// HOLD_BROKEN once a member's log moved while "frozen", which it will under load:
// counted as refused). Each member's archiver runs (pg
// stream, redis replicate, sqlite replicate), since a point is stored only once each
// archive holds it; that wait comes after thaw and is not part of the hold. Prints the load average, the
// writers' rates during the captures, and min/p50/p99/max of the hold.
// Needs root (initdb runs as postgres via runuser), PostgreSQL 15, redis-server.
// Env: SIZE_MB (default 10), CAPTURES (default 60), BENCH_DIR (default /tmp/lb-group-load), HOOKS=builtin (default) | command,
// RATE (rows or keys per second per writer; unset: as fast as each can, which outruns the archivers on 2 cores).
// Each archiver's output goes to BENCH_DIR/*.log.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, openSync, mkdirSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer, connect } from 'node:net';
import { loadavg } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const PG_BIN = '/usr/lib/postgresql/15/bin';
const SIZE_MB = Number(process.env.SIZE_MB ?? 10);
const CAPTURES = Number(process.env.CAPTURES ?? 60);
// HOOKS=builtin: the members' own holds (Redis CLIENT PAUSE WRITE, SQLite's write lock; PostgreSQL's restore point); command: two /bin/true processes.
const HOOKS = process.env.HOOKS === 'command' ? 'freeze: [/bin/true], thaw: [/bin/true]' : 'freeze: builtin, thaw: builtin';
const D = process.env.BENCH_DIR ?? '/tmp/lb-group-load';
const LB = [path.join(HERE, 'bin/lifeboat.js')];
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench' };
const third = (SIZE_MB * 1024 * 1024) / 3;
const ROW = 1000; // bytes of payload per row / value

// ---- writers (this file run again as a child: node group-hold-load.mjs --writer KIND ARG)
async function writer(kind, arg) {
  let n = 0;
  let stop = false;
  process.on('SIGTERM', () => (stop = true));
  const pad = 'w'.repeat(200);
  const report = () => process.stdout.write(`${JSON.stringify({ kind, n })}\n`);
  const tick = setInterval(report, 1000);
  // RATE (rows or keys per second per writer) paces the writer; unset, it writes as fast as it can.
  const rate = Number(process.env.RATE ?? 0);
  const t0 = Date.now();
  const pace = async () => {
    if (!rate) return;
    const ahead = n - ((Date.now() - t0) * rate) / 1000;
    if (ahead > 0) await new Promise((r) => setTimeout(r, (ahead * 1000) / rate));
  };
  if (kind === 'postgres') {
    const pg = require('pg');
    const c = new pg.Client({ connectionString: arg });
    await c.connect();
    while (!stop) {
      await c.query('INSERT INTO w (pad) VALUES ($1)', [pad]);
      n++;
      await pace();
    }
    await c.end();
  } else if (kind === 'sqlite') {
    const Database = require('better-sqlite3');
    const db = new Database(arg);
    db.pragma('busy_timeout = 10000');
    db.pragma('synchronous = NORMAL');
    const ins = db.prepare('INSERT INTO w (pad) VALUES (?)');
    // Yield now and then so SIGTERM is seen.
    while (!stop) {
      // The replicator's checkpoints take the write lock now and then: wait, as an application would.
      for (let i = 0; i < (rate ? 10 : 200); i++, n++) {
        for (;;) {
          try {
            ins.run(pad);
            break;
          } catch (err) {
            if (err.code !== 'SQLITE_BUSY') throw err;
            await new Promise((r) => setTimeout(r, 1));
          }
        }
      }
      await new Promise((r) => setImmediate(r));
      await pace();
    }
    db.close();
  } else {
    const sock = connect({ host: '127.0.0.1', port: Number(arg) });
    await new Promise((r) => sock.once('connect', r));
    let pending = 0;
    let wake;
    sock.on('data', (d) => {
      for (const b of d) if (b === 0x0a) pending--;
      if (pending < 50) wake?.();
    });
    while (!stop) {
      sock.write(`*3\r\n$3\r\nSET\r\n$${String(n % 100000).length + 2}\r\nw:${n % 100000}\r\n$${pad.length}\r\n${pad}\r\n`);
      pending++;
      n++;
      if (pending >= 100) await new Promise((r) => (wake = r));
      if (n % 10 === 0) await pace();
    }
    sock.end();
  }
  clearInterval(tick);
  report();
  process.exit(0);
}

function sh(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env, ...opts }).toString();
}
const asPostgres = (cmd, args) => sh('runuser', ['-u', 'postgres', '--', cmd, ...args]);
const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');

async function main() {
  rmSync(D, { recursive: true, force: true });
  mkdirSync(D, { recursive: true });
  const started = [];
  const cleanup = () => {
    for (const c of started) if (c.exitCode === null) c.kill('SIGKILL');
    try {
      asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', path.join(D, 'pg', 'data'), '-m', 'immediate', 'stop']);
    } catch {}
  };
  process.on('exit', cleanup);
  process.on('SIGINT', () => process.exit(130));
  process.on('SIGTERM', () => process.exit(143));
  console.log(`load average at start: ${load()}; size ${SIZE_MB} MB in all, ${CAPTURES} captures`);

  // PostgreSQL: a scratch cluster.
  const pgDir = path.join(D, 'pg');
  mkdirSync(pgDir);
  const ids = sh('id', ['-u', 'postgres']).trim();
  chownSync(pgDir, Number(ids), Number(sh('id', ['-g', 'postgres']).trim()));
  asPostgres(path.join(PG_BIN, 'initdb'), ['-D', path.join(pgDir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const pgPort = await freePort();
  appendFileSync(path.join(pgDir, 'data', 'postgresql.conf'), `\nport = ${pgPort}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '${pgDir}'\nwal_level = replica\nmax_wal_senders = 5\nshared_buffers = 128MB\n`);
  asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', path.join(pgDir, 'data'), '-l', path.join(pgDir, 'log'), '-w', 'start']);
  const dsn = `postgresql://postgres@127.0.0.1:${pgPort}/postgres`;
  const pg = require('pg');
  const c = new pg.Client({ connectionString: dsn });
  await c.connect();
  await c.query(`CREATE TABLE base (id int, pad text); CREATE TABLE w (id bigserial PRIMARY KEY, pad text)`);
  const rows = Math.ceil(third / ROW);
  await c.query(`INSERT INTO base SELECT g, repeat(md5(g::text), ${Math.ceil(ROW / 32)}) FROM generate_series(1, ${rows}) g`);
  await c.query('CHECKPOINT');
  const pgSize = (await c.query(`SELECT pg_database_size('postgres') AS s`)).rows[0].s;
  await c.end();

  // SQLite.
  const Database = require('better-sqlite3');
  const file = path.join(D, 'meta.db');
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`CREATE TABLE base (id INTEGER, pad TEXT); CREATE TABLE w (id INTEGER PRIMARY KEY, pad TEXT)`);
  db.exec(`WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < ${rows}) INSERT INTO base SELECT x, hex(randomblob(${ROW / 2})) FROM g`);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();

  // Redis, with a replica attached so it keeps a backlog (its offset moves).
  const redisPort = await freePort();
  const replicaPort = await freePort();
  const redis = (port, extra) => {
    const ch = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', D, '--dbfilename', `${port}.rdb`, '--enable-debug-command', 'yes', ...extra], { stdio: 'ignore' });
    started.push(ch);
  };
  redis(redisPort, []);
  await waitRedis(redisPort);
  sh('redis-cli', ['-p', String(redisPort), 'DEBUG', 'POPULATE', String(rows), 'base', String(ROW)]);
  redis(replicaPort, ['--replicaof', '127.0.0.1', String(redisPort)]);
  for (;;) {
    if (sh('redis-cli', ['-p', String(redisPort), 'INFO', 'replication']).includes('repl_backlog_active:1') && sh('redis-cli', ['-p', String(replicaPort), 'INFO', 'replication']).includes('master_link_status:up')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const redisMem = /used_memory:(\d+)/.exec(sh('redis-cli', ['-p', String(redisPort), 'INFO', 'memory']))[1];
  const sqliteSize = Number(sh('stat', ['-c', '%s', file]));
  console.log(`data: PostgreSQL ${(pgSize / 1e6).toFixed(0)} MB, SQLite ${(sqliteSize / 1e6).toFixed(0)} MB, Redis ${(redisMem / 1e6).toFixed(0)} MB (used_memory)`);

  sh(process.execPath, [...LB, 'init', '-r', path.join(D, 'repo')]);
  writeFileSync(
    path.join(D, 'lifeboat.yaml'),
    `repositories:\n  main: { stores: [${path.join(D, 'repo')}] }\nsources:\n  warm: { kind: postgres, dsn: "${dsn}" }\n  hot: { kind: redis, url: "redis://127.0.0.1:${redisPort}" }\n  meta: { kind: sqlite, path: meta.db }\ngroups:\n  tiers: { members: [hot, warm, meta], ${HOOKS}, max_hold: 5s }\n`,
  );

  // Each member's own archiver: group backup stores a point only once every member's
  // archive holds its position (the proof after thaw, outside the hold).
  const cfg = path.join(D, 'lifeboat.yaml');
  const archivers = [];
  for (const args of [['pg', 'stream', '--name', 'warm', '--dsn', dsn], ['redis', 'replicate', '--url', `redis://127.0.0.1:${redisPort}`, '--name', 'hot'], ['sqlite', 'replicate', file, '--name', 'meta']]) {
    // Each archiver's output goes to a log beside the data, to read when a capture is refused.
    const log = openSync(path.join(D, `${args[0]}-${args[1]}.log`), 'a');
    const ch = spawn(process.execPath, [...LB, '--config', cfg, '--repo', 'main', ...args], { env, stdio: ['ignore', log, log] });
    started.push(ch);
    archivers.push([`${args[0]} ${args[1]}`, ch]);
  }
  // Writers at full speed on all three.
  const counts = {};
  for (const [kind, arg] of [['postgres', dsn], ['sqlite', file], ['redis', String(redisPort)]]) {
    const w = spawn(process.execPath, [fileURLToPath(import.meta.url), '--writer', kind, arg], { stdio: ['ignore', 'pipe', 'inherit'] });
    started.push(w);
    w.stdout.on('data', (d) => {
      for (const line of d.toString().trim().split('\n')) counts[kind] = JSON.parse(line).n;
    });
  }
  await new Promise((r) => setTimeout(r, 2000));
  // A first capture (not counted) returns once every archiver is up and has caught up.
  for (let tries = 0; ; tries++) {
    const ok = await capture().then(() => true, (err) => (tries < 10 ? false : Promise.reject(err)));
    if (ok) break;
  }
  const before = { ...counts };
  const t0 = Date.now();
  const holds = [];
  // A capture whose archives fall behind is refused (exit 48) after its hold, one whose writers were not held (49): counted, with why, not fatal.
  const refused = [];
  for (let i = 0; i < CAPTURES; i++) {
    try {
      const hold = await capture();
      holds.push(hold);
      if (process.env.VERBOSE) console.log(`capture ${i + 1}: ${hold} ms`);
    } catch (err) {
      refused.push(err.message.split('\n')[0]);
      if (process.env.VERBOSE) console.log(`capture ${i + 1} refused: ${refused.at(-1)}`);
      if (refused.length > CAPTURES / 4) throw new Error(`${refused.length} captures refused; the last: ${refused.at(-1)}`);
    }
  }
  if (refused.length) console.log(`${refused.length} of ${CAPTURES} captures refused (their holds are not in the figures), e.g. ${refused[0]}`);
  const secs = (Date.now() - t0) / 1000;
  const rates = Object.fromEntries(Object.keys(counts).map((k) => [k, Math.round((counts[k] - (before[k] ?? 0)) / secs)]));
  // The archivers kept up (else captures are refused) with bounded memory: their peak RSS, and the SQLite WAL they let grow.
  const peak = (pid) => /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  console.log(`archivers' peak RSS: ${archivers.map(([name, ch]) => `${name} ${Math.round(peak(ch.pid) / 1024)} MB`).join(', ')}; SQLite WAL at end ${(Number(sh('stat', ['-c', '%s', `${file}-wal`])) / 1e6).toFixed(0)} MB`);
  for (const w of started.slice(-6)) w.kill('SIGTERM');
  holds.sort((a, b) => a - b);
  const q = (p) => holds[Math.min(holds.length - 1, Math.ceil(p * holds.length) - 1)];
  console.log(`writers during the captures (rows or keys per second): postgres ${rates.postgres}, sqlite ${rates.sqlite}, redis ${rates.redis}`);
  console.log(`hold over ${holds.length} captures under load, ${SIZE_MB} MB: min ${holds[0].toFixed(1)} ms, p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${holds.at(-1).toFixed(1)} ms`);
  console.log(`load average at end: ${load()}`);
  await new Promise((r) => setTimeout(r, 300));
  process.exit(0);
}

/** One `group backup`; resolves with its hold. Not execFileSync: the writers' counts must keep arriving meanwhile. */
function capture() {
  return new Promise((resolve, reject) => {
    const ch = spawn(process.execPath, [...LB, '--config', path.join(D, 'lifeboat.yaml'), '--json', 'group', 'backup', 'tiers'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    let err = '';
    ch.stdout.on('data', (d) => (text += d));
    ch.stderr.on('data', (d) => (err += d));
    ch.on('close', (code) => (code === 0 ? resolve(JSON.parse(text).hold_ms) : reject(new Error(`group backup exited ${code}: ${err.trim()}`))));
  });
}

async function waitRedis(port) {
  for (let i = 0; i < 200; i++) {
    try {
      if (sh('redis-cli', ['-p', String(port), 'PING']).trim() === 'PONG') return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis on ${port} did not start`);
}

if (process.argv[2] === '--writer') await writer(process.argv[3], process.argv[4]);
else await main();
