/**
 * `lifeboat redis replicate` through the real CLI against scratch redis-servers without
 * persistence, while a writer keeps writing: the stored segments chain from the base's
 * offset with no gap and, replayed onto the base RDB in a stock redis-server, give
 * exactly the server's data (DEBUG DIGEST); `kill -9` of the replicator and a restart
 * continue the same generation through the server's backlog; a restart of the server
 * (a new history) starts a new generation from a fresh RDB and reports the loss window.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, cliExpecting, initRepo, tmpdir } from '../helpers.js';
import { RedisServer, stopAllRedis } from '../helpers/redis-server.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { basesOf, segmentsOf } from '../../src/sources/redis/history.js';
import { logSource } from '../../src/sources/redis/names.js';
import { RespReader, commandName, type RespValue } from '../../src/sources/redis/resp.js';
import { chainFrom, decodeSegment, type Segment } from '../../src/sources/redis/segment.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw' };
type Event = Record<string, unknown>;

const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await stopAllRedis();
  cleanupTmp();
});

/** A server whose full syncs start at once (servers wait 5 s for more replicas by default). */
const startServer = () => RedisServer.start({ conf: ['repl-diskless-sync-delay 0'] });

class Replicator {
  readonly events: Event[] = [];
  readonly child: ChildProcess;
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(repo: string, url: string, name: string, extra: string[] = []) {
    this.child = spawn(process.execPath, [CLI, '-r', repo, '--json', 'redis', 'replicate', '--url', url, '--name', name, '--interval', '200ms', ...extra], {
      env: { ...process.env, ...ENV },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(this.child);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      if (l.startsWith('{"time"')) this.events.push(JSON.parse(l) as Event);
    });
    this.child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('close', resolve));
  }

  /** The first event from index `from` on that matches. */
  async until(match: (e: Event) => boolean, what: string, timeoutMs = 60_000, from = 0): Promise<Event> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(match);
      if (found) return found;
      if (this.child.exitCode !== null) throw new Error(`replicator exited ${this.child.exitCode} before ${what}: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`no ${what} in ${timeoutMs} ms: ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Waits until the replicator proves everything the server acknowledged before `ms` is stored. */
  archived(ms: number): Promise<Event> {
    return this.until((e) => e.kind === 'status' && e.healthy === true && typeof e.archivedThrough === 'string' && Date.parse(e.archivedThrough) >= ms, `archivedThrough ≥ ${new Date(ms).toISOString()}`);
  }

  async stop(): Promise<void> {
    this.child.kill('SIGINT');
    const code = await this.exited;
    if (code !== 0) throw new Error(`replicator exited ${code}: ${this.stderr}`);
  }
}

/** Mixed writes (strings, counters, hashes, sorted sets, expiries, transactions) until stopped. */
function writer(s: RedisServer): { stop: () => Promise<number> } {
  let running = true;
  let n = 0;
  const done = (async () => {
    const c = await s.client();
    try {
      while (running) {
        n++;
        await c.ok(['SET', `s:${n % 500}`, `v${n}`]);
        await c.ok(['INCR', 'counter']);
        await c.ok(['HSET', `h:${n % 50}`, `f${n % 7}`, n]);
        await c.ok(['ZADD', 'z', n, `m${n % 300}`]);
        if (n % 5 === 0) await c.ok(['SET', `e:${n}`, 'x', 'EX', 3600]);
        if (n % 10 === 0) {
          await c.ok(['MULTI']);
          await c.ok(['SELECT', 2]);
          await c.ok(['INCRBY', 'tx', 2]);
          await c.ok(['SELECT', 0]);
          await c.ok(['EXEC']);
        }
        if (n % 20 === 0) await sleep(5);
      }
    } finally {
      c.close();
    }
    return n;
  })();
  return {
    stop: async () => {
      running = false;
      return done;
    },
  };
}

async function openRepo(repo: string): Promise<Repository> {
  return Repository.open(new LocalStore(repo), 'pw');
}

/** A generation's segments from `from` in order; fails on a gap. */
async function chain(repo: Repository, name: string, generation: string, from: number): Promise<Segment[]> {
  const source = logSource(name);
  const { chain: names, gapAt } = chainFrom(from, segmentsOf(await repo.listLogs(source), generation));
  expect(gapAt, `gap in generation ${generation}`).toBeUndefined();
  const out: Segment[] = [];
  let at = from;
  for (const n of names) {
    const seg = decodeSegment((await repo.getLog(source, generation, n.file)) as Buffer, n.file);
    expect(seg.meta.start).toBe(at);
    let prev = seg.meta.start;
    for (const [offset] of seg.meta.marks) {
      expect(offset).toBeGreaterThan(prev);
      prev = offset;
    }
    at = seg.meta.end;
    out.push(seg);
  }
  return out;
}

/** The commands of a chain of segments (decoded as RESP, so a segment that cuts a command would fail here). */
function commands(segs: Segment[]): RespValue[][] {
  const r = new RespReader();
  const out: RespValue[][] = [];
  for (const s of segs) {
    r.push(s.stream);
    for (let v = r.next(); v; v = r.next()) out.push(v.value as RespValue[]);
    expect(r.buffered, 'a segment ends inside a command').toBe(0);
  }
  return out;
}

/** Loads the base snapshot's RDB into a stock server and applies the commands, as a restore would. */
async function replay(repoDir: string, snapshotId: string, name: string, cmds: RespValue[][]): Promise<RedisServer> {
  const target = path.join(tmpdir('lb-redis-rep-out-'), 'out');
  await cliExpecting(['-r', repoDir, 'restore', snapshotId, '-t', target], 0, ENV);
  const copy = await RedisServer.start({ rdb: path.join(target, 'redis', name, 'dump.rdb') });
  const c = await copy.client();
  try {
    for (const cmd of cmds) {
      const word = commandName(cmd);
      if (word === 'ping' || word === 'replconf') continue;
      await c.ok(cmd as Buffer[]);
    }
  } finally {
    c.close();
  }
  return copy;
}

async function digest(s: RedisServer): Promise<string> {
  return String((await s.run(['DEBUG', 'DIGEST']))[0]);
}

async function newRepo(): Promise<string> {
  const repo = path.join(tmpdir('lb-redis-rep-'), 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
  return repo;
}

describe('redis replicate', () => {
  it('ships the command stream with no gap; each base + the segments after it replay to exactly the server', async () => {
    const server = await startServer();
    await server.run(['SET', 'before', 'replication'], ['SELECT', 1], ['HSET', 'h1', 'a', 'b']);
    const repoDir = await newRepo();
    const rep = new Replicator(repoDir, server.url, 'app', ['--snapshot-interval', '1s']);
    const gen = await rep.until((e) => e.kind === 'generation', 'a generation');
    expect(gen.reason).toBe('first');
    const w = writer(server);
    await rep.until((e) => e.kind === 'ship', 'a segment');
    // A periodic snapshot: a second full synchronisation in the same generation, while the writes go on.
    await rep.until((e) => e.kind === 'snapshot' && e.generation === gen.generation && e.id !== rep.events.find((f) => f.kind === 'snapshot')?.id, 'a periodic snapshot');
    const writes = await w.stop();
    expect(writes).toBeGreaterThan(10);
    // WAIT counts the replicator once the write is stored (it acknowledges what it shipped).
    const c = await server.client();
    try {
      await c.ok(['SET', 'waited', 'for']);
      expect(await c.ok(['WAIT', 1, 20_000])).toBe(1);
    } finally {
      c.close();
    }
    const stoppedAt = Date.now();
    await rep.archived(stoppedAt); // the proof: the server's offset at a moment after the last write is shipped
    await rep.stop();
    const repo = await openRepo(repoDir);
    const bases = basesOf(await repo.listSnapshots(), 'app').sort((a, b) => a.point.offset - b.point.offset);
    expect(bases.length).toBeGreaterThanOrEqual(2);
    const offset = Number(((await server.run(['INFO', 'replication']))[0] as Buffer).toString().match(/master_repl_offset:(\d+)/)![1]);
    const want = await digest(server);
    for (const base of [bases[0]!, bases[bases.length - 1]!]) {
      expect(base.point.generation).toBe(gen.generation);
      expect(base.point.replid).toBe(bases[0]!.point.replid);
      const all = await chain(repo, 'app', String(gen.generation), bases[0]!.point.offset);
      expect(all[all.length - 1]!.meta.end).toBeGreaterThanOrEqual(offset - 100); // at most a trailing PING unshipped
      // From a later base: the segment holding its offset is replayed from there (a base's offset is a command boundary).
      // A base taken after the last write (a periodic one) has nothing after it to replay.
      const segs = all.filter((s) => s.meta.end > base.point.offset);
      const first = segs[0];
      if (first) segs[0] = { meta: { ...first.meta, start: base.point.offset }, stream: first.stream.subarray(base.point.offset - first.meta.start) };
      const copy = await replay(repoDir, base.snapshot.id, 'app', commands(segs));
      expect(await digest(copy)).toBe(want);
    }
  });

  it('kill -9 of the replicator mid-writes: a restart continues the same generation with no gap', async () => {
    const server = await startServer();
    const repoDir = await newRepo();
    const first = new Replicator(repoDir, server.url, 'app');
    const gen = await first.until((e) => e.kind === 'generation', 'a generation');
    const w = writer(server);
    await first.until((e) => e.kind === 'ship', 'a segment');
    first.child.kill('SIGKILL');
    await first.exited;
    await sleep(300); // writes go on while no replicator runs
    const second = new Replicator(repoDir, server.url, 'app');
    const resumed = await second.until((e) => e.kind === 'generation', 'a generation');
    expect(resumed.reason).toBe('resumed');
    expect(resumed.generation).toBe(gen.generation);
    await second.until((e) => e.kind === 'ship', 'a segment after the restart');
    await w.stop();
    await second.archived(Date.now());
    await second.stop();
    const repo = await openRepo(repoDir);
    const bases = basesOf(await repo.listSnapshots(), 'app');
    expect(bases).toHaveLength(1);
    const segs = await chain(repo, 'app', String(gen.generation), bases[0]!.point.offset);
    const copy = await replay(repoDir, bases[0]!.snapshot.id, 'app', commands(segs));
    expect(await digest(copy)).toBe(await digest(server));
  });

  it('a dropped link continues the generation (+CONTINUE); a server that stops answering is reported unhealthy until it answers again', async () => {
    const server = await startServer();
    const repoDir = await newRepo();
    const rep = new Replicator(repoDir, server.url, 'app');
    const gen = await rep.until((e) => e.kind === 'generation', 'a generation');
    const w = writer(server);
    await rep.until((e) => e.kind === 'ship', 'a segment');
    await server.run(['CLIENT', 'KILL', 'TYPE', 'replica']);
    // A FIN, or a reset when our acknowledgements reach the closed socket first (what was unread is asked for again).
    await rep.until((e) => e.kind === 'error' && /closed the replication link|replication link to Redis at .* failed/.test(String(e.message)), 'the link failure');
    await rep.until((e) => e.kind === 'ship', 'a segment after the reconnect', 60_000, rep.events.length);
    await w.stop();
    await rep.archived(Date.now());
    expect(rep.events.filter((e) => e.kind === 'generation')).toHaveLength(1);
    // Stuck: the server stops answering; the proof cannot advance and the status says so.
    const stoppedAt = rep.events.length;
    server.child.kill('SIGSTOP');
    try {
      const sick = await rep.until((e) => e.kind === 'status' && e.healthy === false, 'an unhealthy status', 30_000, stoppedAt);
      expect(String(sick.error)).toMatch(/cannot read the server's replication offset|no reply/);
    } finally {
      server.child.kill('SIGCONT');
    }
    const resumedAt = Date.now();
    await rep.archived(resumedAt);
    await rep.stop();
    const repo = await openRepo(repoDir);
    const bases = basesOf(await repo.listSnapshots(), 'app');
    expect(bases).toHaveLength(1);
    const segs = await chain(repo, 'app', String(gen.generation), bases[0]!.point.offset);
    const copy = await replay(repoDir, bases[0]!.snapshot.id, 'app', commands(segs));
    expect(await digest(copy)).toBe(await digest(server));
  });

  it('a restart of the server (no persistence, a new history) starts a new generation and reports the loss window', async () => {
    let server = await startServer();
    const repoDir = await newRepo();
    const rep = new Replicator(repoDir, server.url, 'app');
    const gen = await rep.until((e) => e.kind === 'generation', 'a generation');
    await server.run(['SET', 'old', '1']);
    await rep.archived(Date.now());
    await server.shutdown();
    // A proof's moment comes before its INFO, which the old server answered: it cannot be after the server is gone.
    const stoppedAt = Date.now();
    server = await server.restart();
    await server.run(['SET', 'after-restart', 'yes']);
    const loss = await rep.until((e) => e.kind === 'loss', 'a loss report');
    expect(loss.previous).toBe(gen.generation);
    expect(typeof loss.since).toBe('string');
    const next = await rep.until((e) => e.kind === 'generation' && e.generation !== gen.generation, 'a new generation');
    expect(next.reason).toBe('full-resync');
    expect(loss.generation).toBe(next.generation);
    // Nothing after the restart was claimed archived before the new generation's base was stored.
    for (const e of rep.events.slice(0, rep.events.indexOf(next))) {
      if (e.kind === 'status' && typeof e.archivedThrough === 'string') expect(Date.parse(e.archivedThrough)).toBeLessThanOrEqual(stoppedAt);
    }
    const w = writer(server);
    await rep.until((e) => e.kind === 'ship' && e.generation === next.generation, 'a segment of the new generation');
    await w.stop();
    await rep.archived(Date.now());
    await rep.stop();
    const repo = await openRepo(repoDir);
    const bases = basesOf(await repo.listSnapshots(), 'app').filter((b) => b.point.generation === next.generation);
    expect(bases).toHaveLength(1);
    const segs = await chain(repo, 'app', String(next.generation), bases[0]!.point.offset);
    const copy = await replay(repoDir, bases[0]!.snapshot.id, 'app', commands(segs));
    expect(await digest(copy)).toBe(await digest(server));
  });

  it('a writer killed inside MULTI leaves nothing of its transaction in a restore; a committed one is whole', async () => {
    const server = await startServer();
    const repoDir = await newRepo();
    const rep = new Replicator(repoDir, server.url, 'app');
    await rep.until((e) => e.kind === 'generation', 'a generation');
    // A separate process: one transaction committed, a second queued and never executed.
    const script = [
      "const s = require('node:net').connect(Number(process.argv[1]), '127.0.0.1');",
      "const cmd = (...a) => `*${a.length}\\r\\n` + a.map((x) => `$${Buffer.byteLength(String(x))}\\r\\n${x}\\r\\n`).join('');",
      "let got = '';",
      "s.on('data', (d) => { got += d; if (/\\+QUEUED\\r\\n\\+QUEUED\\r\\n\\*2[\\s\\S]*\\+QUEUED\\r\\n\\+QUEUED\\r\\n$/.test(got)) process.stdout.write('queued\\n'); });",
      "s.write(cmd('MULTI') + cmd('SET', 'done:a', '1') + cmd('SET', 'done:b', '2') + cmd('EXEC') + cmd('MULTI') + cmd('SET', 'half:a', '1') + cmd('SET', 'half:b', '2'));",
    ].join('\n');
    const app = spawn(process.execPath, ['-e', script, String(server.port)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(app);
    await new Promise<void>((resolve, reject) => {
      app.stdout!.on('data', (d: Buffer) => d.toString().includes('queued') && resolve());
      app.once('exit', (code) => reject(new Error(`the writer exited (${code}) before queueing`)));
    });
    app.kill('SIGKILL');
    await server.run(['SET', 'after', '1']);
    await rep.archived(Date.now());
    await rep.stop();
    const out = path.join(tmpdir(), 'restored');
    await cliExpecting(['-r', repoDir, 'redis', 'restore', 'app', '--output', out], 0, ENV);
    const copy = await RedisServer.start({ rdb: path.join(out, 'dump.rdb') });
    expect(await copy.run(['EXISTS', 'done:a'], ['EXISTS', 'done:b'], ['EXISTS', 'half:a'], ['EXISTS', 'half:b'], ['EXISTS', 'after'])).toEqual([1, 1, 0, 0, 1]);
  });

  it('a restored copy started in place of the server is a new generation with a loss report, never a continuation of the old history', async () => {
    let server = await startServer();
    const repoDir = await newRepo();
    const rep = new Replicator(repoDir, server.url, 'app');
    const gen = await rep.until((e) => e.kind === 'generation', 'a generation');
    await server.run(['SET', 'before', '1']);
    await rep.archived(Date.now());
    const out = path.join(tmpdir(), 'restored');
    await cliExpecting(['-r', repoDir, 'redis', 'restore', 'app', '--output', out], 0, ENV);
    // Writes the restored copy will not have: the original goes on, then is replaced by the copy.
    await server.run(['SET', 'lost-with-the-original', '1']);
    await rep.archived(Date.now());
    server = await server.restart({ rdb: path.join(out, 'dump.rdb') });
    expect(await server.run(['EXISTS', 'before'], ['EXISTS', 'lost-with-the-original'])).toEqual([1, 0]);
    await server.run(['SET', 'after-restore', 'yes']);
    const next = await rep.until((e) => e.kind === 'generation' && e.generation !== gen.generation, 'a new generation');
    expect(next.reason).toBe('full-resync');
    expect(next.replid).not.toBe(gen.replid);
    expect((await rep.until((e) => e.kind === 'loss', 'a loss report')).previous).toBe(gen.generation);
    await rep.archived(Date.now());
    await rep.stop();
    // The newest data is the copy's history, and the old generation still restores the original's.
    const latest = path.join(tmpdir(), 'latest');
    await cliExpecting(['-r', repoDir, 'redis', 'restore', 'app', '--output', latest], 0, ENV);
    const copy = await RedisServer.start({ rdb: path.join(latest, 'dump.rdb') });
    expect(await copy.run(['GET', 'after-restore'], ['EXISTS', 'lost-with-the-original'])).toEqual([Buffer.from('yes'), 0]);
    expect(await digest(copy)).toBe(await digest(server));
  });
});
