/**
 * A cluster re-created under an old source name (initdb again, or a DSN that now
 * points at another server). Before: pg_receivewal started where the old cluster's
 * partial segment in the spool ended, the server refused ("requested starting point
 * is ahead of the WAL flush position") and the streamer retried forever; and into a
 * repository that held the old cluster's WAL, the new cluster's segments of the same
 * names were dropped as "already archived" while the stream said it had shipped them.
 * Now the spool's foreign WAL is set aside, and a repository of another cluster is
 * refused with both system identifiers named.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { archivedCluster, lifeboatAsPostgres, ScratchCluster } from '../pg-cluster.js';
import { Streamer, waitUntil } from '../pg-streamer.js';

let setup: Awaited<ReturnType<typeof archivedCluster>> | undefined;
let other: ScratchCluster | undefined;
const streamers: Streamer[] = [];

afterAll(async () => {
  // Only those still running: stop() of one that exited waits for a close that already happened.
  for (const s of streamers) if (s.child.exitCode === null && s.child.signalCode === null) await s.stop().catch(() => {});
  if (setup) spawnSync('pkill', ['-9', '-f', `${setup.base}/spool`]);
  await other?.destroy();
  await setup?.cluster.destroy();
  if (setup) rmSync(setup.base, { recursive: true, force: true });
});

const sysid = async (c: ScratchCluster) => (await c.query<{ id: string }>('select system_identifier::text as id from pg_control_system()'))[0]!.id;

describe('pg stream and a re-created cluster', () => {
  it('sets aside the old cluster\'s WAL in the spool, refuses a repository of another cluster, and streams the new one into a new repository', async () => {
    setup = await archivedCluster('lb-pgsf-');
    const { base, repo, pw, cluster: a } = setup;
    const spool = path.join(base, 'spool');
    // Cluster A streams a few segments; its partial stays in the spool when the streamer stops.
    const sa = Streamer.start({ cluster: a, repo, pw, spool });
    streamers.push(sa);
    await sa.status('A healthy', (e) => e.healthy);
    await a.query('create table t (x int)');
    for (let i = 0; i < 3; i++) {
      await a.query('insert into t select generate_series(1, 1000)');
      await a.query('select pg_switch_wal()');
    }
    // WAL in the segment after the last switch: only then does pg_receivewal open its .partial
    // (right at a segment boundary there is none, whatever the timing).
    await a.query('insert into t values (0)');
    const [{ lsn, wal }] = (await a.query<{ lsn: string; wal: string }>('select pg_current_wal_lsn()::text as lsn, pg_walfile_name(pg_current_wal_lsn()) as wal')) as [{ lsn: string; wal: string }];
    await sa.status('A proven past its switches', (e) => e.healthy && e.archivedThrough !== null && Date.parse(e.archivedThrough) > Date.now() - 2000);
    // That segment's own .partial: the previous segment's, seen a moment before it completes, is
    // renamed and shipped away, and a stop right then would leave no partial at all.
    await waitUntil(() => `the streamer to open ${wal}.partial (spool: ${readdirSync(spool).join(', ')})`, () => existsSync(path.join(spool, `${wal}.partial`)), 60_000, 50);
    await sa.stop();
    const partials = readdirSync(spool).filter((f) => f.endsWith('.partial'));
    expect(partials.length, `spool holds ${readdirSync(spool).join(', ')} after A at ${lsn}`).toBeGreaterThan(0);
    const aWal = path.join(repo, 'logs');
    expect(existsSync(aWal)).toBe(true);

    // Cluster B: a new initdb (a new system identifier), at its first segment.
    other = await ScratchCluster.create();
    await other.start();
    const b = other;
    expect(await sysid(b)).not.toBe(await sysid(a));

    // Into A's repository: refused, naming both clusters, and nothing of B is stored.
    const refused = Streamer.start({ cluster: b, repo, pw, spool });
    streamers.push(refused);
    const bad = await refused.status('refused as another cluster', (e) => !e.healthy && /another cluster/.test(e.error ?? ''), 90_000);
    expect(bad.error).toContain(await sysid(a));
    expect(bad.error).toContain(await sysid(b));
    expect(bad.archivedThrough).toBeNull();
    await refused.stop();

    // Into a repository of its own, with the same (stale) spool: B streams and proves its WAL.
    const repo2 = path.join(base, 'repo2');
    const init = await lifeboatAsPostgres(['init', '--repo', repo2, '--password-file', pw]);
    expect(init.code, init.stderr).toBe(0);
    const sb = Streamer.start({ cluster: b, repo: repo2, pw, spool });
    streamers.push(sb);
    const startedAt = Date.now();
    await b.query('create table u (x int)');
    const ok = await sb.status('B healthy and proven', (e) => e.healthy && e.archivedThrough !== null && Date.parse(e.archivedThrough) > startedAt, 90_000);
    expect(ok.error).toBeUndefined();
    // Another cluster's (its header names A), or ahead of B (a partial pg_receivewal had only zero-filled yet).
    expect(sb.lines.some((l) => l.includes('"kind":"foreign"') && /another cluster|ahead of everything/.test(l)), sb.lines.slice(-5).join('\n')).toBe(true);
    // A's WAL is kept aside, not deleted.
    const aside = readdirSync(path.join(spool, 'foreign'));
    expect(aside.some((f) => partials.some((p) => f.startsWith(p)))).toBe(true);
    // The segment B streamed first is B's own in the new repository.
    await waitUntil('a segment of B stored', () => readdirSync(path.join(repo2, 'logs'), { recursive: true }).length > 0, 30_000);
    expect(readFileSync(path.join(spool, 'foreign', aside[0]!)).length).toBeGreaterThan(0);
    await sb.stop();
  }, 240_000);
});
