/**
 * Torture: `pg stream` killed with SIGKILL at random moments, the database restarted
 * now and then, while a writer commits rows with known ids. Each round ends in a
 * disaster (streamer killed and the primary stopped dead at once), a `pg restore
 * --latest`, and a count of the rows lost and phantom against what the writer was told
 * committed. Reported: receivers left on the slot after kills, restart-to-streaming
 * delays, rows lost/phantom, and the RPO the status events claimed versus the real one
 * (a claim is honest when no row committed at or before its archivedThrough is lost).
 *
 *   npx tsc -p tsconfig.json && npx tsx bench/torture/pg-stream-kill.ts --minutes 10
 */
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { archivedCluster, asPostgres, lifeboatAsPostgres, PG_BIN } from '../../test/pg-cluster.js';
import { receiversOf, Streamer, waitUntil } from '../../test/pg-streamer.js';
import { minutesArg, restoreAndCount, sleep, stats, Writer } from './pg-stream-common.js';

const minutes = minutesArg(10);
const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);
const log = (line: string) => console.log(`${new Date().toISOString()} ${line}`);

const { base, repo, pw, cluster } = await archivedCluster('lb-torture-pgkill-');
const spool = path.join(base, 'spool');
const alive = (pid: number | undefined) => pid !== undefined && (() => { try { process.kill(pid, 0); return true; } catch { return false; } })();
let streamer: Streamer | undefined;
const writer = new Writer(cluster.dsn);

const kills = { n: 0, receiverSurvived: 0, slotHeld: 0 };
const spawnToStreaming: number[] = [];
const killToStreaming: number[] = [];
const dbRestartToProven: number[] = [];
let dbRestarts = 0;
const disasters: Array<{ lost: number; phantom: number; uncertain: number; claimedRpoMs: number | null; realRpoMs: number; honest: 'yes' | 'no' | 'ambiguous'; restoreMs: number }> = [];

/** Starts a streamer and waits for its first healthy status; returns the delay. */
async function startStreamer(): Promise<number> {
  const spawned = Date.now();
  streamer = Streamer.start({ cluster, repo, pw, spool });
  const s = await streamer.status('a healthy status', (e) => e.healthy, 180_000);
  return Date.parse(s.time) - spawned;
}

/** Who holds the slot now, by application_name (null: nobody). */
async function slotApp(): Promise<string | null> {
  const [row] = await cluster.query<{ app: string | null }>(
    "select a.application_name as app from pg_replication_slots s join pg_stat_activity a on a.pid = s.active_pid where s.slot_name = 'lifeboat_main'",
  );
  return row?.app ?? null;
}

/**
 * kill -9 of the streamer and a new one started at once; 3 s after the kill, is the
 * killed streamer's receiver still alive, or its connection still on the slot?
 */
async function killAndRestart(): Promise<void> {
  const s = streamer as Streamer;
  const pid = s.pid() as number;
  const oldReceivers = receiversOf(spool);
  const t = Date.now();
  s.kill9();
  kills.n++;
  await waitUntil('the streamer to die', () => !alive(pid), 10_000);
  const starting = startStreamer();
  await sleep(Math.max(0, t + 3000 - Date.now()));
  const survived = oldReceivers.filter(alive);
  if (survived.length > 0) kills.receiverSurvived++;
  const holder = await slotApp().catch(() => null);
  if (holder?.startsWith(`lifeboat-stream-${pid}@`)) kills.slotHeld++;
  const d = await starting;
  spawnToStreaming.push(d);
  killToStreaming.push(Date.parse((streamer as Streamer).statuses.find((e) => e.healthy)!.time) - t);
  log(`kill ${kills.n}: ${survived.length} receiver(s) of the killed streamer alive after 3 s; the next streamer streamed ${d} ms after its start`);
}

async function restartDatabase(): Promise<void> {
  const mode = dbRestarts % 2 === 0 ? 'fast' : 'immediate';
  await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', cluster.data, '-m', mode, '-w', 'stop']);
  await sleep(rand(1000, 4000));
  await cluster.start();
  const started = Date.now();
  dbRestarts++;
  const s = streamer as Streamer;
  const proven = await s.status('archivedThrough past the restart', (e) => e.healthy && Date.parse(e.archivedThrough ?? '') > started, 180_000, s.statuses.length);
  dbRestartToProven.push(Date.parse(proven.time) - started);
  log(`database restarted (-m ${mode}); streaming proven again after ${Date.parse(proven.time) - started} ms`);
}

async function disaster(round: number): Promise<void> {
  const s = streamer as Streamer;
  const claim = [...s.statuses].reverse().find((e) => e.archivedThrough !== null);
  const oldReceivers = receiversOf(spool);
  const D = Date.now();
  s.kill9();
  await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', cluster.data, '-m', 'immediate', '-w', 'stop']);
  kills.n++;
  await sleep(3000);
  if (oldReceivers.some(alive)) kills.receiverSurvived++;
  await writer.stop();
  const r = await restoreAndCount({ cluster, repo, pw, base, writer, tag: String(round) });
  const oldest = r.lost.map((id) => writer.acked.get(id)!).sort((a, b) => a.sent - b.sent)[0];
  const through = claim?.archivedThrough ? Date.parse(claim.archivedThrough) : null;
  const honest = !oldest ? 'yes' : through === null || oldest.sent >= through ? 'yes' : oldest.acked <= through ? 'no' : 'ambiguous';
  const d = { lost: r.lost.length, phantom: r.phantom.length, uncertain: writer.uncertain.size, claimedRpoMs: through === null ? null : D - through, realRpoMs: oldest ? D - oldest.sent : 0, honest: honest as 'yes' | 'no' | 'ambiguous', restoreMs: r.restoreMs };
  disasters.push(d);
  log(`disaster ${round}: ${r.ids.size} rows restored, lost ${d.lost}, phantom ${d.phantom}, uncertain ${d.uncertain}; RPO claimed ${d.claimedRpoMs} ms, real ≤ ${d.realRpoMs} ms, claim honest: ${honest}`);
  await cluster.start();
  writer.start();
}

try {
  await cluster.query('create table rows (id bigint primary key, at timestamptz not null default clock_timestamp())');
  const b = await lifeboatAsPostgres(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn, '--repo', repo, '--password-file', pw]);
  if (b.code !== 0) throw new Error(`pg backup failed: ${b.stderr}`);
  writer.start();
  const end = Date.now() + minutes * 60_000;
  const rounds = Math.max(1, Math.round(minutes / 2.5));
  for (let round = 1; round <= rounds; round++) {
    spawnToStreaming.push(await startStreamer());
    const roundEnd = Date.now() + (end - Date.now()) / (rounds - round + 1);
    let nextKill = Date.now() + rand(5000, 30_000);
    let nextDb = Date.now() + rand(45_000, 120_000);
    while (Date.now() < roundEnd) {
      if (Date.now() >= nextKill) {
        await killAndRestart();
        nextKill = Date.now() + rand(5000, 30_000);
      } else if (Date.now() >= nextDb) {
        await restartDatabase();
        nextDb = Date.now() + rand(45_000, 120_000);
      } else {
        await sleep(200);
      }
    }
    await disaster(round);
  }
  await writer.stop();
  const lost = disasters.reduce((a, d) => a + d.lost, 0);
  const phantom = disasters.reduce((a, d) => a + d.phantom, 0);
  const report = {
    minutes,
    rowsCommitted: writer.acked.size,
    writerErrors: writer.errors,
    kills: kills.n,
    receiversSurvivingTheirStreamer: kills.receiverSurvived,
    slotHeldByADeadStreamer3sAfterKill: kills.slotHeld,
    spawnToStreaming: stats(spawnToStreaming),
    killToStreaming: stats(killToStreaming),
    dbRestarts,
    dbRestartToProven: stats(dbRestartToProven),
    disasters,
    lost,
    phantom,
    dishonestClaims: disasters.filter((d) => d.honest === 'no').length,
  };
  console.log(JSON.stringify(report, null, 1));
} finally {
  await writer.stop().catch(() => {});
  const pid = streamer?.pid();
  if (pid) process.kill(pid, 'SIGKILL');
  for (const p of receiversOf(spool)) process.kill(p, 'SIGKILL');
  await cluster.destroy();
  rmSync(base, { recursive: true, force: true });
}
