/**
 * Torture: restored copies started beside a busy primary (issue 12).
 *
 * Production commits rows with known ids nonstop (one connection, so their order is
 * exact) and makes a restore point now and then; its WAL is archived by
 * archive_command into a repository, with a base backup every few minutes. In a
 * loop, production is restored to a random recent moment, the copy is started
 * beside the primary (its own port, as pg restore chooses), written to and
 * stopped. Every --pollute-every'th copy gets archiving turned back on first, the
 * way an older Lifeboat or an operator would leave it, so it pushes its own
 * timeline into production's archive. After each copy, production itself is
 * restored (`--latest`, a time, a restore point, in turn) and its rows counted:
 *
 *   lost     committed in production before the target, absent
 *   late     committed in production after the target, present
 *   phantom  never committed in production (a copy's rows, or ids nobody wrote)
 *
 * Copies are counted the same way against their own target time. A non-polluting
 * copy must leave no timeline in the archive; a polluting one must show up in
 * `pg timelines` as not production's. Prints one JSON summary on stdout.
 *
 * Run: npx tsc -p tsconfig.json && npx tsx bench/torture/pg-restored-copy.ts --minutes 10 [--pollute-every 4] [--keep]
 */
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { Cluster, Lifeboat, postgresDir, writeAsPostgres, type Ran } from './pg-scratch.js';

const { values: args } = parseArgs({
  options: { minutes: { type: 'string', default: '10' }, 'pollute-every': { type: 'string', default: '4' }, keep: { type: 'boolean', default: false } },
});
const MINUTES = Number(args.minutes);
const POLLUTE_EVERY = Number(args['pollute-every']);
const COPY_IDS = 100_000_000; // a copy writes ids from here on: never production's
const BACKUP_EVERY_MS = 3 * 60_000;
const say = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

interface Row {
  id: number;
  /** Client clock before the insert was sent, and after its commit returned. */
  sent: number;
  acked: number;
}

interface Tally {
  runs: number;
  failed: number;
  lost: number;
  late: number;
  phantom: number;
}
const tally = (): Tally => ({ runs: 0, failed: 0, lost: 0, late: 0, phantom: 0 });

const stats = {
  production: { rows: 0, restorePoints: 0, baseBackups: 0 },
  copies: { started: 0, polluting: 0, rowsWritten: 0, recovered: tally(), leftTimelines: 0, pollutedTimelinesNotFlagged: 0 },
  restores: { latest: tally(), time: tally(), restorePoint: tally() },
  failures: [] as string[],
  warningsSeen: 0,
};

const base = await postgresDir('lb-torture-pgcopy-');
const lb = new Lifeboat(path.join(base, 'repo'), path.join(base, 'password'));
await writeAsPostgres(lb.passwordFile, 'torture\n');
if ((await lb.run(['init'])).code !== 0) throw new Error('lifeboat init failed');
const prod = await Cluster.create(base, lb.archiveCommand('main'), ['archive_timeout = 5']);
await prod.start();
const clusters = new Set<Cluster>([prod]);

async function cleanup(): Promise<void> {
  for (const c of clusters) await c.stop('immediate').catch(() => undefined);
  if (!args.keep) rmSync(base, { recursive: true, force: true });
}
process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));

await prod.query('create table t (id bigint primary key, origin text not null)');

// --- production's writer: known ids, exact order, restore points between commits ---
const rows: Row[] = [];
const points: Array<{ name: string; boundary: number; at: number }> = [];
let writing = true;
const writer = (async () => {
  const c: pg.Client = await prod.client();
  let id = 0;
  try {
    while (writing) {
      id++;
      const sent = Date.now();
      await c.query('insert into t values ($1, $2)', [id, 'production']);
      rows.push({ id, sent, acked: Date.now() });
      if (id % 250 === 0) {
        const name = `rp-${id}`;
        await c.query('select pg_create_restore_point($1)', [name]);
        points.push({ name, boundary: id, at: Date.now() });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    await c.end().catch(() => undefined);
  }
})();

const backups: Array<{ id: string; stopTime: number }> = [];
async function baseBackup(): Promise<void> {
  const { value } = await lb.json<{ id: string; consistency: { stopTime: string } }>(['pg', 'backup', '--name', 'main', '--dsn', prod.dsn]);
  backups.push({ id: value.id, stopTime: Date.parse(value.consistency.stopTime) });
  stats.production.baseBackups++;
}
while (rows.length < 50) await new Promise((r) => setTimeout(r, 50));
await baseBackup();
let lastBackup = Date.now();

/** The archive's timeline directories that hold files. */
async function archivedTimelines(): Promise<Set<string>> {
  const out = new Set<string>();
  for (const src of ['postgres.main', 'postgres.main~stream']) {
    const root = path.join(lb.repo, 'logs', src);
    for (const d of await fs.readdir(root).catch(() => [] as string[])) if (/^[0-9A-F]{8}$/.test(d) && (await fs.readdir(path.join(root, d))).length) out.add(d);
  }
  return out;
}

/** Restores with FLAGS, starts the copy beside production, runs fn on it, stops and removes it. */
let n = 0;
async function withCopy<T>(flags: string[], fn: (c: Cluster, info: { timeline: number; warnings: string[] }) => Promise<T>, before?: (dir: string) => Promise<void>): Promise<T> {
  const dir = path.join(base, `copy-${n++}`);
  const { value } = await lb.json<{ port: number; timeline: number; warnings: string[] }>(['pg', 'restore', '--name', 'main', '--target-dir', dir, ...flags]);
  stats.warningsSeen += value.warnings.length;
  await before?.(dir);
  const c = prod.copy(dir, value.port);
  clusters.add(c);
  try {
    await c.start();
    await c.waitPromoted();
    return await fn(c, value);
  } finally {
    await c.stop();
    clusters.delete(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

const ids = async (c: Cluster) => new Set((await c.query<{ id: string }>('select id::text as id from t')).map((r) => Number(r.id)));

/** Counts lost, late and phantom rows of a restore: BEFORE must be there, AFTER must not, the rest may. */
function count(t: Tally, got: Set<number>, isBefore: (r: Row) => boolean, isAfter: (r: Row) => boolean): void {
  const known = new Map(rows.map((r) => [r.id, r]));
  for (const r of rows) {
    if (isBefore(r) && !got.has(r.id)) t.lost++;
    if (isAfter(r) && got.has(r.id)) t.late++;
  }
  for (const id of got) if (!known.has(id)) t.phantom++;
}

async function attempt(t: Tally, what: string, fn: () => Promise<void>): Promise<void> {
  t.runs++;
  try {
    await fn();
  } catch (err) {
    t.failed++;
    const msg = `${what}: ${err instanceof Error ? err.message : String(err)}`.slice(0, 400);
    stats.failures.push(msg);
    say(`FAILED ${msg}`);
  }
}

/**
 * A moment from the recent past that the archive covers: at least a second old, after
 * the first base backup, and followed by a commit in WAL that is switched and archived
 * (PostgreSQL refuses to open a copy whose target time no archived commit passes).
 */
async function recentMoment(windowMs: number): Promise<number> {
  const first = backups[0]!.stopTime + 1000;
  while (Date.now() - 1000 <= first) await new Promise((r) => setTimeout(r, 50));
  const from = Math.max(first, Date.now() - windowMs);
  const at = from + Math.floor(Math.random() * (Date.now() - 1000 - from));
  while (!rows.some((r) => r.sent > at + 1)) await new Promise((r) => setTimeout(r, 10));
  await prod.switchAndArchive();
  return at;
}

const deadline = Date.now() + MINUTES * 60_000;
let round = 0;
say(`production on port ${prod.port}; running ${MINUTES} min, every ${POLLUTE_EVERY || 'no'}th copy pollutes`);
while (Date.now() < deadline) {
  round++;
  if (Date.now() - lastBackup > BACKUP_EVERY_MS) {
    await baseBackup().catch((err: unknown) => stats.failures.push(`base backup: ${String(err)}`));
    lastBackup = Date.now();
  }

  // 1. A copy of a recent moment, beside the primary, written to.
  const polluting = POLLUTE_EVERY > 0 && round % POLLUTE_EVERY === 0;
  const at = await recentMoment(60_000);
  const before = await archivedTimelines();
  let copyTimeline = 0;
  await attempt(stats.copies.recovered, `copy to ${new Date(at).toISOString()}`, () =>
    withCopy(
      ['--time', new Date(at).toISOString()],
      async (c) => {
        stats.copies.started++;
        count(stats.copies.recovered, await ids(c), (r) => r.acked < at, (r) => r.sent > at);
        copyTimeline = (await c.query<{ tli: number }>('select timeline_id as tli from pg_control_checkpoint()'))[0]!.tli;
        const k = COPY_IDS + round * 1000;
        await c.query("insert into t select g, 'copy' from generate_series($1::bigint, $2::bigint) g", [k, k + 199]);
        stats.copies.rowsWritten += 200;
        if (polluting) await c.switchAndArchive();
        else await c.query('select pg_switch_wal()');
      },
      polluting
        ? async (dir) => {
            stats.copies.polluting++;
            await fs.appendFile(path.join(dir, 'postgresql.auto.conf'), 'archive_mode = on\n');
          }
        : undefined,
    ),
  );
  const added = [...(await archivedTimelines())].filter((d) => !before.has(d));
  if (!polluting) stats.copies.leftTimelines += added.length;
  else if (copyTimeline) {
    const list = await lb.json<{ timelines: Array<{ timeline: number; onProduction: boolean }> }>(['pg', 'timelines', '--name', 'main']);
    if (list.value.timelines.find((t) => t.timeline === copyTimeline)?.onProduction !== false) stats.copies.pollutedTimelinesNotFlagged++;
  }

  // 2. Production restored, one kind of target per round in turn.
  const kind = (['latest', 'time', 'restorePoint'] as const)[round % 3]!;
  if (kind === 'latest') {
    const upTo = Date.now(); // everything acked before the switch below is in the segment it archives
    await prod.switchAndArchive();
    await attempt(stats.restores.latest, 'restore --latest', () => withCopy(['--latest'], async (c) => count(stats.restores.latest, await ids(c), (r) => r.acked < upTo, () => false)));
  } else if (kind === 'time') {
    const t = await recentMoment(5 * 60_000);
    await attempt(stats.restores.time, `restore --time ${new Date(t).toISOString()}`, () =>
      withCopy(['--time', new Date(t).toISOString()], async (c) => count(stats.restores.time, await ids(c), (r) => r.acked < t, (r) => r.sent > t)),
    );
  } else {
    // A restore point after the first backup, from the newest backup before it.
    const usable = points.filter((p) => p.at > backups[0]!.stopTime + 1000);
    const p = usable[Math.floor(Math.random() * usable.length)];
    if (p) {
      const from = backups.filter((b) => b.stopTime < p.at).at(-1)!;
      await prod.switchAndArchive();
      await attempt(stats.restores.restorePoint, `restore --restore-point ${p.name}`, () =>
        withCopy(['--restore-point', p.name, '--snapshot', from.id.slice(0, 12)], async (c) => count(stats.restores.restorePoint, await ids(c), (r) => r.id <= p.boundary, (r) => r.id > p.boundary)),
      );
    }
  }
  say(`round ${round}: ${rows.length} rows, copies ${stats.copies.started} (${stats.copies.polluting} polluting), lost ${stats.restores.latest.lost + stats.restores.time.lost + stats.restores.restorePoint.lost}, phantom ${stats.restores.latest.phantom + stats.restores.time.phantom + stats.restores.restorePoint.phantom}, failures ${stats.failures.length}`);
}

writing = false;
await writer;
stats.production.rows = rows.length;
stats.production.restorePoints = points.length;
const final = await lb.json<{ production: { head: number }; timelines: Array<{ timeline: number; state: string; onProduction: boolean }> }>(['pg', 'timelines', '--name', 'main']);
const check: Ran = await lb.run(['check']);
const summary = {
  scenario: 'pg-restored-copy',
  minutes: MINUTES,
  rounds: round,
  ...stats,
  failures: stats.failures.slice(0, 10),
  failureCount: stats.failures.length,
  timelines: {
    productionHead: final.value.production.head,
    onProduction: final.value.timelines.filter((t) => t.onProduction).length,
    notProduction: final.value.timelines.filter((t) => !t.onProduction).map((t) => `${t.timeline}:${t.state}`),
  },
  check: { exit: check.code, warnings: check.stderr.split('\n').filter((l) => l.startsWith('warning:')).length },
};
console.log(JSON.stringify(summary, null, 2));
await cleanup();
