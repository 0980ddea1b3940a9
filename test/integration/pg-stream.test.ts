/**
 * WAL streaming: after a disaster (the primary stops dead, the streamer is killed
 * with SIGKILL), a restore to the latest WAL loses only about one shipping interval
 * of commits, where archive_command alone would lose up to a whole segment.
 */
import { spawn, spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers.js';
import { archivedCluster, asPostgres, lifeboatAsPostgres, PG_BIN, type ScratchCluster } from '../pg-cluster.js';

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
      '--repo', repo, '--password-file', pw, '--spool', spool, '--bin-dir', PG_BIN, '--interval', '1000', '-q'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 2500));

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
