/**
 * Redis point-in-time recovery benchmark (issue 16, "Measured"). Runs the real CLI
 * (build first: npm run build) against scratch Debian redis-server instances and prints
 * a table:
 *
 *  1. data-loss window after kill -9 of `lifeboat redis replicate` at 1000 writes/s
 *     (goal <= 1 s): a writer SETs one new key a write and logs when each was
 *     acknowledged; the replicator is killed mid-writes and, before any restart,
 *     `redis restore --latest` shows which acknowledged writes are missing: the window
 *     is the kill time minus the acknowledgement time of the oldest missing write (0
 *     when none is missing);
 *  2. overhead on the writer (goal <= 5 %): redis-benchmark -t set,get throughput with
 *     and without the replicator attached, and with a stock redis-server replica attached
 *     instead (what any replica costs the master: the floor), alternated ROUNDS times;
 *  3. restore of a dataset of REDIS_BENCH_BYTES (default 1 GB of 1 KiB incompressible
 *     values) plus an hour of commands (REDIS_BENCH_COMMANDS, default 360 000: 100 a
 *     second for an hour, written in fast-forward as fast as the replicator takes them)
 *     to a moment near the end (goal <= 60 s): wall, CPU seconds and peak RSS of
 *     `lifeboat redis restore --time` (GNU time -v; the CPU seconds include the scratch
 *     redis-server it starts, the peak RSS is its largest process), and the restored
 *     dataset's DEBUG DIGEST against the one the source had at the moment.
 *
 * Run: npm run build && node bench/redis-pitr.mjs
 * Env: REDIS_BENCH_BYTES=1e9 REDIS_BENCH_COMMANDS=360000 REDIS_BENCH_TRIALS=3
 *      REDIS_BENCH_ROUNDS=3 REDIS_BENCH_N=200000 (redis-benchmark requests per run)
 *      REDIS_BENCH_RATE=1000 BENCH_DIR=/tmp/lb-redis-bench REDIS_BENCH_ONLY=loss,overhead,restore
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'bin', 'lifeboat.js');
const { RedisConnection, parseRedisUrl } = await import(path.join(ROOT, 'dist', 'sources', 'redis', 'connection.js'));
const DIR = process.env.BENCH_DIR ?? '/tmp/lb-redis-bench';
const BYTES = Number(process.env.REDIS_BENCH_BYTES ?? 1e9);
const COMMANDS = Number(process.env.REDIS_BENCH_COMMANDS ?? 360_000);
const TRIALS = Number(process.env.REDIS_BENCH_TRIALS ?? 3);
const ROUNDS = Number(process.env.REDIS_BENCH_ROUNDS ?? 3);
const BENCH_N = Number(process.env.REDIS_BENCH_N ?? 200_000);
const RATE = Number(process.env.REDIS_BENCH_RATE ?? 1000);
const ONLY = new Set((process.env.REDIS_BENCH_ONLY ?? 'loss,overhead,restore').split(','));
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench', LIFEBOAT_TEST_KDF: process.env.LIFEBOAT_TEST_KDF ?? 'fast' };
const run = promisify(execFile);

const rows = [];
/** One line of the final table. */
function report(what, value, goal = '') {
  rows.push([what, value, goal]);
  console.log(`  ${what}: ${value}${goal ? ` (goal ${goal})` : ''}`);
}

async function lifeboat(args) {
  const r = await run(process.execPath, [CLI, ...args], { env, maxBuffer: 64 << 20 });
  return r.stdout;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

const servers = new Set();
process.once('exit', () => {
  for (const s of servers) s.child.kill('SIGKILL');
});

/** A scratch redis-server (no persistence, DEBUG allowed), ready when PING answers PONG. */
async function startRedis(name, rdb, extra = []) {
  const dir = path.join(DIR, `redis-${name}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  if (rdb) await run('cp', [rdb, path.join(dir, 'dump.rdb')]);
  const port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', 'save ""', 'appendonly no', `dir ${dir}`, 'dbfilename dump.rdb', `logfile ${dir}/redis.log`, 'shutdown-timeout 0', 'enable-debug-command local', ...extra, ''].join('\n'),
  );
  const child = spawn('/usr/bin/redis-server', [conf], { stdio: 'ignore' });
  const server = { child, port, dir, url: `redis://127.0.0.1:${port}` };
  servers.add(server);
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server ${name} exited`);
    try {
      const c = await connect(server);
      const pong = await c.call(['PING']);
      c.close();
      if (pong === 'PONG') return server;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
}

async function stopRedis(server) {
  servers.delete(server);
  if (server.child.exitCode === null) {
    const exited = new Promise((r) => server.child.on('close', r));
    server.child.kill('SIGTERM');
    await exited;
  }
  rmSync(server.dir, { recursive: true, force: true });
}

const connect = (server) => RedisConnection.open(parseRedisUrl(server.url), { timeoutMs: 120_000 });

async function command(server, args) {
  const c = await connect(server);
  try {
    return await c.ok(args);
  } finally {
    c.close();
  }
}

/** `lifeboat redis replicate`, its --json events kept. */
function replicate(repo, server, extra = []) {
  const child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'redis', 'replicate', '--url', server.url, '--name', 'bench', ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const rep = { child, events: [], stderr: '', exited: new Promise((r) => child.on('close', r)) };
  createInterface({ input: child.stdout }).on('line', (l) => {
    // Events are one JSON object a line; the summary printed on the way out is not.
    if (l.startsWith('{"')) rep.events.push(JSON.parse(l));
  });
  child.stderr.on('data', (d) => (rep.stderr += d.toString()));
  return rep;
}

async function until(rep, what, match, timeoutMs = 600_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const e = rep.events.find(match);
    if (e) return e;
    if (rep.child.exitCode !== null) throw new Error(`redis replicate exited before ${what}: ${rep.stderr.slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`no ${what} in ${timeoutMs} ms: ${rep.stderr.slice(-2000)}`);
    await sleep(20);
  }
}

const archived = (rep, ms) => until(rep, `archivedThrough >= ${new Date(ms).toISOString()}`, (e) => e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= ms);

async function stopReplicator(rep, signal = 'SIGINT') {
  if (rep.child.exitCode === null) {
    rep.child.kill(signal);
    await rep.exited;
  }
}

async function freshRepo(name) {
  const repo = path.join(DIR, name);
  rmSync(repo, { recursive: true, force: true });
  await lifeboat(['init', '-r', repo]);
  return repo;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** 1. The data-loss window after kill -9 of the replicator at RATE writes/s. */
async function dataLossWindow() {
  console.log(`data-loss window after kill -9 of the replicator at ${RATE} writes/s (${TRIALS} trials, --interval 1s):`);
  const windows = [];
  const lost = [];
  for (let trial = 0; trial < TRIALS; trial++) {
    const server = await startRedis(`loss-${trial}`);
    const repo = await freshRepo(`loss-repo-${trial}`);
    const rep = replicate(repo, server, ['--interval', '1s']);
    await until(rep, 'the first snapshot', (e) => e.kind === 'snapshot');
    const c = await connect(server);
    const acks = [];
    let killedAt = 0;
    // Kill at a different point of the shipping interval each trial, 2 to 3 s into the writes.
    const killAfter = 2000 + (trial * 1000) / TRIALS;
    const started = Date.now();
    let stopAt = Infinity;
    for (let n = 0; Date.now() < stopAt; n++) {
      await c.ok(['SET', `w:${n}`, String(Date.now())]);
      acks.push(Date.now());
      if (!killedAt && Date.now() - started >= killAfter) {
        killedAt = Date.now();
        rep.child.kill('SIGKILL');
        // Writes go on a second after the kill (they must not be in the restore).
        stopAt = killedAt + 1000;
      }
      const due = started + ((n + 1) * 1000) / RATE;
      if (due > Date.now()) await sleep(due - Date.now());
    }
    await rep.exited;
    c.close();
    const out = path.join(DIR, `loss-${trial}-restored`);
    rmSync(out, { recursive: true, force: true });
    await lifeboat(['-r', repo, 'redis', 'restore', 'bench', '--latest', '--output', out]);
    const restored = await startRedis(`loss-${trial}-restored`, path.join(out, 'dump.rdb'));
    const rc = await connect(restored);
    const keys = new Set((await rc.ok(['KEYS', 'w:*'])).map((k) => k.toString()));
    rc.close();
    await stopRedis(restored);
    await stopRedis(server);
    let oldestMissing = -1;
    let missing = 0;
    acks.forEach((t, n) => {
      if (t <= killedAt && !keys.has(`w:${n}`)) {
        missing++;
        if (oldestMissing < 0) oldestMissing = n;
      }
    });
    const window = oldestMissing < 0 ? 0 : killedAt - acks[oldestMissing];
    windows.push(window);
    lost.push(missing);
    console.log(`  trial ${trial + 1}: ${acks.filter((t) => t <= killedAt).length} writes acknowledged before the kill, ${missing} not in the restore, window ${window} ms`);
  }
  report(`data-loss window after kill -9 at ${RATE} writes/s`, `median ${median(windows)} ms, max ${Math.max(...windows)} ms (${windows.join(', ')})`, '<= 1000 ms');
  report('writes lost (acknowledged before the kill, not restored)', lost.join(', '));
}

/** user + system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** requests/s of SET and GET from one redis-benchmark run. */
async function redisBenchmark(server) {
  const r = await run('redis-benchmark', ['-p', String(server.port), '-t', 'set,get', '-n', String(BENCH_N), '-r', '100000', '-q']);
  const rate = (name) => Number(new RegExp(`${name}: ([\\d.]+) requests per second`).exec(r.stdout.replace(/\r/g, '\n'))?.[1]);
  return { set: rate('SET'), get: rate('GET') };
}

/** 2. redis-benchmark with and without the replicator attached, alternated. */
async function overhead() {
  console.log(`overhead on the writer: redis-benchmark -t set,get -n ${BENCH_N} -r 100000, alone and with the replicator attached, ${ROUNDS} rounds:`);
  const server = await startRedis('overhead');
  const repo = await freshRepo('overhead-repo');
  const alone = [];
  const attached = [];
  const stock = [];
  for (let round = 0; round < ROUNDS; round++) {
    const a = await redisBenchmark(server);
    alone.push(a);
    // A stock replica (diskless, nothing saved), synchronised before the run.
    const replica = await startRedis('overhead-replica', undefined, [`replicaof 127.0.0.1 ${server.port}`, 'repl-diskless-load swapdb']);
    const rc = await connect(replica);
    while (!/master_link_status:up/.test(String(await rc.call(['INFO', 'replication'])))) await sleep(50);
    rc.close();
    const st = await redisBenchmark(server);
    stock.push(st);
    await stopRedis(replica);
    const rep = replicate(repo, server, ['--interval', '1s']);
    await until(rep, 'a snapshot', (e) => e.kind === 'snapshot');
    const cpu0 = cpuSeconds(rep.child.pid);
    const t0 = performance.now();
    const b = await redisBenchmark(server);
    b.replicatorCpu = cpuSeconds(rep.child.pid) - cpu0;
    b.seconds = (performance.now() - t0) / 1000;
    attached.push(b);
    await archived(rep, Date.now());
    await stopReplicator(rep);
    console.log(
      `  round ${round + 1}: SET ${a.set.toFixed(0)}/s alone, ${b.set.toFixed(0)}/s attached, ${st.set.toFixed(0)}/s with a stock replica; GET ${a.get.toFixed(0)}/s alone, ${b.get.toFixed(0)}/s attached, ${st.get.toFixed(0)}/s with a stock replica; ` +
        `the replicator used ${b.replicatorCpu.toFixed(1)} CPU s in the ${b.seconds.toFixed(1)} s attached run`,
    );
  }
  await stopRedis(server);
  report('replicator CPU during the attached runs', attached.map((b) => `${b.replicatorCpu.toFixed(1)} s of ${b.seconds.toFixed(1)} s`).join(', '));
  for (const op of ['set', 'get']) {
    const x = median(alone.map((r) => r[op]));
    const y = median(attached.map((r) => r[op]));
    const z = median(stock.map((r) => r[op]));
    report(`redis-benchmark ${op.toUpperCase()} (median of ${ROUNDS})`, `${x.toFixed(0)}/s alone, ${y.toFixed(0)}/s attached: overhead ${((1 - y / x) * 100).toFixed(1)} %; a stock replica: ${((1 - z / x) * 100).toFixed(1)} %`, op === 'set' ? '<= 5 %' : '');
  }
}

/** Fills the server with `bytes` of 1 KiB random values (pipelined, 1000 a batch). */
async function fill(server, bytes) {
  const keys = Math.max(1, Math.round(bytes / 1024));
  const c = await connect(server);
  for (let i = 0; i < keys; i += 1000) {
    const n = Math.min(1000, keys - i);
    const blob = randomBytes(n * 1024);
    const batch = [];
    for (let j = 0; j < n; j++) batch.push(c.ok(['SET', `k:${i + j}`, blob.subarray(j * 1024, (j + 1) * 1024)]));
    await Promise.all(batch);
  }
  c.close();
  return keys;
}

/** GNU time -v of one command: wall s, CPU s (user + system, waited-for children included), peak RSS MB. */
async function timed(args) {
  const t = performance.now();
  const r = await run('/usr/bin/time', ['-v', process.execPath, CLI, ...args], { env, maxBuffer: 64 << 20 });
  const num = (re) => Number(re.exec(r.stderr)?.[1]);
  return {
    wall: (performance.now() - t) / 1000,
    cpu: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
    rssMb: Math.round(num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024),
    stdout: r.stdout,
  };
}

/** 3. Restore of BYTES of data plus COMMANDS commands to a moment near the end. */
async function restoreTime() {
  console.log(`restore of ${(BYTES / 1e9).toFixed(2)} GB plus ${COMMANDS} commands (an hour at ${(COMMANDS / 3600).toFixed(0)}/s, written in fast-forward) to a moment:`);
  const server = await startRedis('restore');
  let t = Date.now();
  const keys = await fill(server, BYTES);
  const mem = (await command(server, ['INFO', 'memory'])).toString();
  console.log(`  filled ${keys} keys in ${((Date.now() - t) / 1000).toFixed(1)} s (used_memory_human ${/used_memory_human:(\S+)/.exec(mem)?.[1]})`);
  const repo = await freshRepo('restore-repo');
  t = Date.now();
  const rep = replicate(repo, server, ['--interval', '1s', '--snapshot-interval', '48h']);
  await until(rep, 'the first snapshot', (e) => e.kind === 'snapshot');
  report(`first snapshot of ${(BYTES / 1e9).toFixed(2)} GB (replicator start to snapshot stored)`, `${((Date.now() - t) / 1000).toFixed(1)} s`);

  // The hour of commands, as fast as the replicator takes them: pipelined batches, and
  // every 20 batches a WAIT until the replica has acknowledged everything.
  const c = await connect(server);
  t = Date.now();
  let moment = 0;
  let digest = '';
  const counters = 1000;
  for (let i = 0; i < COMMANDS; i += 1000) {
    const n = Math.min(1000, COMMANDS - i);
    const batch = [];
    const blob = randomBytes(n * 64);
    for (let j = 0; j < n; j++) {
      const x = i + j;
      if (x % 4 === 0) batch.push(c.ok(['INCR', `counter:${x % counters}`]));
      else if (x % 4 === 1) batch.push(c.ok(['HSET', `h:${x % 5000}`, `f${x % 13}`, blob.subarray(j * 64, j * 64 + 64)]));
      else batch.push(c.ok(['SETRANGE', `k:${(x * 7919) % keys}`, (x % 16) * 64, blob.subarray(j * 64, j * 64 + 64)]));
    }
    await Promise.all(batch);
    if ((i / 1000) % 20 === 19) await c.ok(['WAIT', 1, 600_000]);
    // The moment: after 90 % of the commands, between two batches, once the replica has them.
    if (!moment && i + n >= COMMANDS * 0.9) {
      await c.ok(['WAIT', 1, 600_000]);
      digest = (await c.ok(['DEBUG', 'DIGEST'])).toString();
      moment = Date.now();
      while (Date.now() <= moment) await new Promise((r) => setImmediate(r));
    }
  }
  c.close();
  const wrote = (Date.now() - t) / 1000;
  await archived(rep, Date.now());
  await stopReplicator(rep);
  const ships = rep.events.filter((e) => e.kind === 'ship');
  report(`${COMMANDS} commands written and shipped`, `${wrote.toFixed(1)} s (${(COMMANDS / wrote).toFixed(0)}/s), ${ships.length} segments`);
  await stopRedis(server);

  const out = path.join(DIR, 'restored');
  rmSync(out, { recursive: true, force: true });
  const r = await timed(['-r', repo, 'redis', 'restore', 'bench', '--time', new Date(moment).toISOString(), '--output', out]);
  report(`restore --time (90 % into the commands) of ${(BYTES / 1e9).toFixed(2)} GB + ${COMMANDS} commands`, `${r.wall.toFixed(1)} s wall, ${r.cpu.toFixed(1)} CPU s, peak RSS ${r.rssMb} MB`, '<= 60 s');
  const restored = await startRedis('restored', path.join(out, 'dump.rdb'));
  const got = (await command(restored, ['DEBUG', 'DIGEST'])).toString();
  await stopRedis(restored);
  report('restored dataset equals the source at the moment (DEBUG DIGEST)', got === digest ? 'yes' : `NO (${got} vs ${digest})`);
  rmSync(out, { recursive: true, force: true });
}

async function main() {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const cpus = readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length;
  const { stdout: version } = await run('/usr/bin/redis-server', ['--version']);
  console.log(`# lifeboat redis point-in-time benchmark, ${new Date().toISOString()}, node ${process.version}, ${cpus} CPUs, ${version.trim().split(' ').slice(0, 3).join(' ')}`);
  try {
    if (ONLY.has('loss')) await dataLossWindow();
    if (ONLY.has('overhead')) await overhead();
    if (ONLY.has('restore')) await restoreTime();
  } finally {
    for (const s of [...servers]) await stopRedis(s);
  }
  const w = [0, 1, 2].map((i) => Math.max(...[['measure', 'result', 'goal'], ...rows].map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(w[i])).join(' | ')} |`;
  console.log(`\n${line(['measure', 'result', 'goal'])}\n| ${w.map((n) => '-'.repeat(n)).join(' | ')} |`);
  for (const r of rows) console.log(line(r));
  rmSync(DIR, { recursive: true, force: true });
}

await main();
