/**
 * WAL streaming: after a disaster (the primary stops dead, the streamer is killed
 * with SIGKILL), a restore to the latest WAL loses only about one shipping interval
 * of commits, where archive_command alone would lose up to a whole segment. A killed
 * streamer leaves no receiver on the slot, a successor takes over only what a dead
 * streamer left, and status events prove progress (idle = archived up to now) and
 * report a stopped server within an interval.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, asPostgres, lifeboatAsPostgres, PG_BIN, type ScratchCluster } from '../pg-cluster.js';
import { processes, receiversOf, slotHolder, Streamer, waitUntil } from '../pg-streamer.js';

let base = '';
let cluster: ScratchCluster | undefined;

afterAll(async () => {
  spawnSync('pkill', ['-9', '-f', `${base}/spool`]);
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('pg stream', () => {
  it('keeps the data-loss window to about a second after kill -9', async () => {
    const setup = await archivedCluster('lb-pgs-');
    const { repo, pw, cluster: c } = setup;
    base = setup.base;
    cluster = c;
    const spool = path.join(base, 'spool');
    const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);
    await c.query('create table events (id serial primary key, at timestamptz not null default clock_timestamp())');
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', c.dsn]);
    expect(b.code, b.stderr).toBe(0);

    // The streamer runs as postgres; runuser does not forward signals, so it is
    // found and killed by its own pid (its command line names the spool).
    const streamer = spawn('runuser', ['-u', 'postgres', '--', process.execPath, CLI, 'pg', 'stream', '--name', 'main', '--dsn', c.dsn,
      '--repo', repo, '--password-file', pw, '--spool', spool, '--bin-dir', PG_BIN, '--interval', '1s', '-q'], { stdio: 'ignore' });
    // Commits start once WAL is streaming (a fixed 2.5 s wait fell short on a loaded machine).
    await waitUntil('pg_receivewal streaming', async () => (await c.query<{ n: number }>("select count(*)::int as n from pg_stat_replication where state = 'streaming'"))[0]!.n > 0, 60_000);

    // Commits every 50 ms for 5 s; remember when each committed.
    let last = { id: 0, at: 0 };
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const [row] = await c.query<{ id: number }>('insert into events default values returning id');
      last = { id: row!.id, at: Date.now() };
      await new Promise((r) => setTimeout(r, 50));
    }
    // Disaster: the primary stops dead and the streamer is killed where it stands.
    await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', c.data, '-m', 'immediate', '-w', 'stop']);
    spawnSync('pkill', ['-9', '-f', spool]);
    streamer.kill('SIGKILL');

    const dir = path.join(base, 'restored');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--port', String(c.port)]);
    expect(r.code, r.stderr).toBe(0);
    await c.start(dir);
    await c.waitPromoted();
    const [got] = await c.query<{ id: number; at: Date }>('select id, at from events order by id desc limit 1');
    await c.stop(dir);
    const lostCommits = last.id - got!.id;
    const windowMs = last.at - got!.at.getTime();
    console.log(`pg stream data-loss window: ${lostCommits} commits, ${windowMs} ms (last commit ${last.id}, recovered up to ${got!.id})`);
    expect(got!.id).toBeGreaterThan(0);
    // About one interval (1 s) plus the time to ship; never a whole segment's worth.
    expect(windowMs).toBeLessThan(2500);
  }, 120_000);
});

describe('pg stream owns its receiver and reports its progress', () => {
  let setup: Awaited<ReturnType<typeof archivedCluster>> | undefined;
  const spool = () => path.join(setup?.base as string, 'spool');
  const start = () => Streamer.start({ cluster: setup!.cluster, repo: setup!.repo, pw: setup!.pw, spool: spool() });
  afterAll(async () => {
    if (!setup) return;
    for (const p of [...processes('node', setup.base), ...processes('pg_receivewal', setup.base)]) process.kill(p, 'SIGKILL');
    await setup.cluster.destroy();
    rmSync(setup.base, { recursive: true, force: true });
  });

  it('kill -9 of pg stream leaves no receiver on the slot, and the next streamer streams at once', async () => {
    setup = await archivedCluster('lb-pgo-');
    /** The runuser of the streamer killed last time, held stopped (see below). */
    let unreaped: number | undefined;
    try {
      for (let i = 0; i < 3; i++) {
        const s = start();
        await waitUntil(
          () =>
            `a receiver on the slot (receivers ${receiversOf(spool()).length}, streamer ${s.exited()}last lines: ${s.lines.slice(-3).join(' | ')}; last receiver exit: ${s.lines.filter((l) => l.includes('"receiver-exit"')).pop() ?? 'none'}; server log: ${readFileSync(path.join(setup!.cluster.dir, `log-${path.basename(setup!.cluster.data)}.txt`), 'utf8').split('\n').slice(-15).join(' | ')})`,
          async () => receiversOf(spool()).length === 1 && (await slotHolder(setup!.cluster)) !== null,
        );
        if (unreaped !== undefined) {
          process.kill(unreaped, 'SIGCONT');
          unreaped = undefined;
        }
        // Once, the killed streamer's parent does not reap it at once (runuser on a loaded
        // host: a full run beside stress-ng saw it): the next streamer meets a zombie, which is gone.
        if (i === 1) {
          unreaped = s.child.pid as number;
          process.kill(unreaped, 'SIGSTOP');
        }
        s.kill9();
        await waitUntil('the receiver to die with its streamer', () => receiversOf(spool()).length === 0, 15_000);
        await waitUntil('the slot to be free', async () => (await slotHolder(setup!.cluster)) === null, 15_000);
      }
      // A receiver killed while it zero-filled a new .partial leaves it short of a segment,
      // which pg_receivewal refuses for good ("has N bytes"): the next streamer still streams.
      const partial = readdirSync(spool()).find((f) => f.endsWith('.partial'));
      expect(partial).toBeDefined();
      truncateSync(path.join(spool(), partial!), 13 * 1024 * 1024);
      const s = start();
      await waitUntil('a receiver on the slot after a short .partial', async () => receiversOf(spool()).length === 1 && (await slotHolder(setup!.cluster)) !== null);
      s.kill9();
      await waitUntil('the receiver to die with its streamer', () => receiversOf(spool()).length === 0, 15_000);
    } finally {
      if (unreaped !== undefined) process.kill(unreaped, 'SIGCONT');
    }
  });

  it('takes the slot over from what a dead streamer left, and never from anyone else', async () => {
    const { cluster } = setup!;
    // What a streamer on a machine without setpriv would leave behind: a receiver on
    // the slot, connected under the name of a streamer that is gone.
    const gone = spawnSync('true').pid as number;
    const receiver = (dir: string, appName?: string) => {
      mkdirSync(dir, { recursive: true });
      chownSync(dir, Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString()));
      return spawn('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_receivewal'), '-D', dir, '-S', 'lifeboat_main', '-d', cluster.dsn, '--synchronous', '--no-loop'], {
        stdio: 'ignore',
        env: { ...process.env, ...(appName ? { PGAPPNAME: appName } : {}) },
      });
    };
    const elsewhere = path.join(setup!.base, 'elsewhere');

    // Somebody else's receiver (its own application_name) is never stopped: the streamer says why it cannot stream.
    receiver(elsewhere);
    await waitUntil('the foreign receiver on the slot', async () => (await slotHolder(cluster)) !== null);
    const s = start();
    const refused = await s.status('an unhealthy status naming the slot', (e) => !e.healthy && /slot lifeboat_main is in use/.test(e.error ?? ''));
    expect(refused.error).toMatch(/not by a lifeboat streamer/);
    expect(receiversOf(elsewhere)).toHaveLength(1);
    for (const p of receiversOf(elsewhere)) process.kill(p, 'SIGKILL');
    const from = s.statuses.length;
    await s.status('healthy once the slot is free', (e) => e.healthy, 60_000, from);
    await s.stop();
    expect(receiversOf(spool())).toEqual([]);

    // A receiver named after a streamer that is gone: its walsender is ended and the slot taken.
    receiver(elsewhere, `lifeboat-stream-${gone}@${os.hostname()}`);
    await waitUntil('the orphan on the slot', async () => (await slotHolder(cluster)) !== null);
    const t = start();
    await t.status('healthy after the takeover', (e) => e.healthy);
    expect(t.lines.some((l) => l.includes('"kind":"takeover"'))).toBe(true);
    await waitUntil('the orphan to exit', () => receiversOf(elsewhere).length === 0, 15_000);

    // A receiver in the spool whose streamer is gone, recorded in the pid file: killed before anything starts.
    t.kill9();
    await waitUntil('the slot to be free', async () => (await slotHolder(cluster)) === null, 15_000);
    receiver(spool(), 'pg_receivewal');
    const [orphan] = await waitUntil('the orphan in the spool', () => (receiversOf(spool()).length === 1 ? receiversOf(spool()) : undefined));
    const started = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    writeFileSync(path.join(spool(), 'lifeboat-stream.pid'), JSON.stringify({ streamer: { pid: gone, start: '1' }, parent: null, receiver: { pid: orphan, start: started(orphan!) } }));
    const u = start();
    await u.status('healthy after killing the orphan', (e) => e.healthy);
    expect(receiversOf(spool())).not.toContain(orphan);
    await u.stop();
  });

  it('reports an idle cluster as archived up to now, and a stopped one as unhealthy within an interval', async () => {
    const { cluster } = setup!;
    const s = start();
    const first = await s.status('healthy', (e) => e.healthy);
    // Healthy means proven: the first healthy status already proves a moment (holding the slot alone does not).
    expect(first.archivedThrough).not.toBeNull();
    // Idle: every status proves (nearly) its own moment, however long ago the last WAL was shipped.
    const idleFrom = s.statuses.length;
    await waitUntil('three more statuses', () => s.statuses.length >= idleFrom + 3, 30_000);
    for (const e of s.statuses.slice(idleFrom)) {
      expect(e.healthy).toBe(true);
      expect(Date.parse(e.time) - Date.parse(e.archivedThrough as string)).toBeLessThan(3000);
    }
    const stoppedAt = Date.now();
    await cluster.stop();
    const down = await s.status('unhealthy after the stop', (e) => !e.healthy, 30_000, s.statuses.length);
    expect(Date.parse(down.time) - stoppedAt).toBeLessThan(5000);
    expect(down.error).toMatch(/PostgreSQL|pg_receivewal/);
    // Nothing is proven while the server is down: archivedThrough stays before the stop.
    await waitUntil('another status while down', () => s.statuses.filter((e) => !e.healthy).length >= 2, 30_000);
    for (const e of s.statuses.filter((x) => !x.healthy)) expect(Date.parse(e.archivedThrough as string)).toBeLessThanOrEqual(stoppedAt);
    const restartedAt = Date.now();
    await cluster.start();
    const up = await s.status('healthy again', (e) => e.healthy && Date.parse(e.archivedThrough as string) > restartedAt, 60_000, s.statuses.length);
    expect(up.error).toBeUndefined();
    expect(s.statuses.filter((e) => e.healthy && e.archivedThrough === null)).toEqual([]);
    await s.stop();
  });

  it('drills an idle streamed cluster to an RPO of 0 when given its dsn, however old its last commit', async () => {
    const { cluster, repo, pw } = setup!;
    const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);
    await cluster.query('create table drilled (id int)');
    await cluster.query('insert into drilled values (1)');
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(b.code, b.stderr).toBe(0);
    const s = start();
    await s.status('healthy', (e) => e.healthy);
    const lastCommit = Date.now();
    // Idle for a while: the newest transaction ages, nothing is lost.
    await s.status('a status proving a moment 10 s after the last commit', (e) => e.healthy && Date.parse(e.archivedThrough as string) > lastCommit + 10_000, 60_000);
    const d = await lb(['drill', '--source', 'main', '--dsn', cluster.dsn, '--json']);
    expect(d.code, d.stderr).toBe(0);
    const record = JSON.parse(d.stdout) as { ok: boolean; rpo_seconds: number; rpo_basis: string; checks: Array<{ name: string; detail: string }> };
    expect(record).toMatchObject({ ok: true, rpo_seconds: 0, rpo_basis: 'source-position' });
    expect(record.checks.find((c) => c.name === 'rpo')?.detail).toMatch(/nothing committed before the drill is missing/);
    await s.stop();
  });
});
