/**
 * restore_command's read-ahead against a real PostgreSQL 15 scratch cluster: a
 * point-in-time restore that stops part way through the archive replays to the right
 * row, and once the copy is promoted neither the spool of fetched segments (up to
 * 256 MiB inside the data directory) nor the background fetcher is left behind.
 */
import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archivedCluster, lifeboatAsPostgres, type ScratchCluster } from '../pg-cluster.js';
import { switchAndArchive } from '../pg-load.js';
import { processesNaming } from '../helpers.js';
import { waitUntil } from '../pg-streamer.js';

/** waitUntil (test/pg-streamer.ts) with this file's timeout and polling interval. */
const until = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000) => waitUntil(what, cond, timeoutMs, 50);

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);

/** Inserts row `id` and closes its WAL segment. */
async function rowInItsOwnSegment(id: number): Promise<void> {
  await cluster.query('insert into t values ($1)', [id]);
  await cluster.query('select pg_switch_wal()');
}

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pgprefetch-'));
  await cluster.query('create table t (id int primary key)');
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
  expect(b.code, b.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('restore_command reads ahead', () => {
  it('replays a point-in-time restore that stops mid-archive, then leaves no spool and no fetcher', async () => {
    for (let id = 1; id <= 6; id++) await rowInItsOwnSegment(id);
    const [{ t }] = (await cluster.query<{ t: string }>('select clock_timestamp()::text as t')) as [{ t: string }];
    await until('the clock to pass the target', async () => (await cluster.query<{ after: boolean }>('select clock_timestamp() > $1::timestamptz as after', [t]))[0]!.after);
    for (let id = 7; id <= 26; id++) await rowInItsOwnSegment(id);
    await switchAndArchive(cluster);

    const dir = path.join(base, 'restored');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--time', new Date(t).toISOString(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const copy = cluster.copy(dir, (JSON.parse(r.stdout) as { port: number }).port);
    const spool = path.join(dir, 'lifeboat-prefetch');
    await copy.start();
    try {
      await copy.waitPromoted();
      expect((await copy.query<{ id: number }>('select id from t order by id')).map((x) => x.id)).toEqual([1, 2, 3, 4, 5, 6]);
      // Recovery stopped with archived segments still ahead of it: the fetcher sees the
      // promotion, removes the spool and exits.
      await until('the spool to be removed', async () => !(await fs.stat(spool).then(() => true, () => false)));
      await until('no fetcher to run', () => processesNaming(spool).length === 0);
      expect(await copy.log(dir)).toMatch(/restored log file "[0-9A-F]{24}" from archive/);
    } finally {
      await copy.stop(dir);
    }
  }, 240_000);
});
