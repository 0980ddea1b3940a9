/**
 * PostgreSQL base backups, WAL archiving and point-in-time recovery against real
 * PostgreSQL 15 scratch clusters. Every lifeboat call runs as the `postgres` user,
 * the way archive_command runs it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fs, readdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLsn, segmentName } from '../../src/sources/postgres/wal.js';
import { expectError, snapshotsJson } from '../helpers.js';
import { archivedCluster, asPostgres, freePort, lifeboatAsPostgres, PG_BIN, type ScratchCluster, writeAsPostgres } from '../pg-cluster.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { resolvePath } from '../../src/engine/browse/tree-walk.js';
import { keys } from '../../src/repo/format.js';
import { requirePgPoint } from '../../src/sources/postgres/point.js';
import { pgRestore } from '../../src/sources/postgres/restore.js';
import { incompleteOf } from '../../src/engine/restore/restorer.js';
import { switchAndArchive as archiveWal } from '../pg-load.js';
import { waitUntil } from '../pg-streamer.js';

/** Replaces pg restore's control files in DIR with symlinks to VICTIM, again and again, until STOP exists. */
const PLANTER = `
const fs = require('fs');
const [dir, victim, stop] = process.argv.slice(1);
let planted = 0, n = 0;
for (;;) {
  if (n++ % 50 === 0 && fs.existsSync(stop)) break;
  for (const name of ['recovery.signal', 'backup_label', 'postgresql.auto.conf']) {
    const p = dir + '/' + name;
    try {
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (st && st.isSymbolicLink()) continue;
      if (st) fs.unlinkSync(p);
      fs.symlinkSync(victim, p);
      planted++;
    } catch {}
  }
}
process.stdout.write(String(planted));
`;

let base: string;
let repo: string;
let pw: string;
let cluster: ScratchCluster;
const restored: string[] = [];

const lb = (args: string[]) => lifeboatAsPostgres([...args, '--repo', repo, '--password-file', pw]);
/** What `lb(['snapshots', '--json'])` prints, parsed (listed in this process: the password file's content). */
const password = async () => (await fs.readFile(pw, 'utf8')).replace(/\r?\n$/, '');
const listSnapshots = async () => snapshotsJson(repo, await password());
/** Table t's file, relative to the data directory. */
const tFile = async () => (await cluster.query<{ p: string }>("select pg_relation_filepath('t') as p"))[0]!.p;

/** A complete restored copy in DIR (with `flags`) whose table t's file then differs; t's file. */
async function copyWithTChanged(dir: string, flags: string[] = []): Promise<string> {
  const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', ...flags]);
  expect(r.code, r.stderr).toBe(0);
  const rel = await tFile();
  await fs.writeFile(path.join(dir, rel), Buffer.alloc(8192, 7));
  return rel;
}

const switchAndArchive = () => archiveWal(cluster);

/** Restores with the given target flags, starts the copy in place of the original (its port), runs fn, and puts the original back. */
async function withRestored<T>(flags: string[], fn: () => Promise<T>): Promise<T> {
  const dir = path.join(base, `restore-${restored.length}`);
  restored.push(dir);
  const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--port', String(cluster.port), ...flags]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  // The copy never archives into the original's history.
  expect(await fs.readFile(path.join(dir, 'postgresql.auto.conf'), 'utf8')).toMatch(/^archive_mode = off$/m);
  return inPlaceOf(dir, fn);
}

/** Starts the restored copy in DIR in place of the original (its port), waits for promotion, runs fn, and puts the original back. */
async function inPlaceOf<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  await cluster.stop();
  try {
    await cluster.start(dir);
    await cluster.waitPromoted();
    return await fn();
  } finally {
    await cluster.stop(dir);
    await cluster.start();
  }
}

/**
 * A time strictly between what was committed before the call and what is committed
 * after it, in whole milliseconds (what a target time can say): waits for the server's
 * clock to pass it instead of sleeping a second on each side (as pg-restored-copy does).
 */
async function momentBetweenCommits(): Promise<Date> {
  const ms = async () => Number((await cluster.query<{ ms: string }>('select floor(extract(epoch from clock_timestamp()) * 1000)::text as ms'))[0]!.ms);
  const after = await ms();
  let target = await ms();
  while (target <= after + 1) target = await ms();
  while ((await ms()) <= target);
  return new Date(target);
}

/** Archives what is committed, restores with `flags`, and checks which row came back and which did not. */
async function expectRecovered(flags: string[], present: number, absent: number): Promise<void> {
  await switchAndArchive();
  await withRestored(flags, async () => {
    const got = await ids();
    expect(got).toContain(present);
    expect(got).not.toContain(absent);
  });
}

/** Inserts each row in a segment of its own, archived; the archive's directory and the first of those segments. */
async function twoMoreSegments(rows: number[]): Promise<{ logs: string; victim: string }> {
  for (const id of rows) {
    await cluster.query('insert into t values ($1, $2)', [id, 'filler']);
    await switchAndArchive();
  }
  const logs = path.join(repo, 'logs', 'postgres.main', '00000001');
  const archived = (await fs.readdir(logs)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
  return { logs, victim: archived[archived.length - 2]! };
}

const ids = async (): Promise<number[]> => (await cluster.query<{ id: number }>('select id from t order by id')).map((r) => r.id);

beforeAll(async () => {
  ({ base, repo, pw, cluster } = await archivedCluster('lb-pgt-'));
  await cluster.query('create table t (id int primary key, note text)');
  await cluster.query("insert into t select g, 'row ' || g from generate_series(1, 1000) g");
  const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn, '--json']);
  expect(b.code, b.stderr).toBe(0);
  const snap = JSON.parse(b.stdout) as { consistency: Record<string, unknown> };
  expect(snap.consistency).toMatchObject({ timeline: 1, pgMajor: 15 });
  expect(String(snap.consistency.startLsn)).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  await switchAndArchive();
}, 180_000);

afterAll(async () => {
  await cluster?.destroy();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('PostgreSQL point-in-time recovery', () => {
  it('to a time between two commits returns exactly the rows committed before it', async () => {
    await cluster.query('insert into t values (2001, $1)', ['before']);
    const target = await momentBetweenCommits();
    await cluster.query('insert into t values (2002, $1)', ['after']);
    await switchAndArchive();
    await withRestored(['--time', target.toISOString()], async () => {
      const got = await ids();
      expect(got).toContain(2001);
      expect(got).not.toContain(2002);
      expect(got.length).toBe(1001);
    });
  });

  it('to an LSN', async () => {
    await cluster.query('insert into t values (3001, $1)', ['at lsn']);
    const [{ lsn }] = (await cluster.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')) as [{ lsn: string }];
    await cluster.query('insert into t values (3002, $1)', ['after lsn']);
    await expectRecovered(['--lsn', lsn], 3001, 3002);
  });

  it('to a named restore point', async () => {
    await cluster.query('insert into t values (4001, $1)', ['before point']);
    await cluster.query("select pg_create_restore_point('before-4002')");
    await cluster.query('insert into t values (4002, $1)', ['after point']);
    await expectRecovered(['--restore-point', 'before-4002'], 4001, 4002);
  });

  it('after an accidental DROP TABLE: to the latest WAL (dropped) and to just before it (all rows back)', async () => {
    await cluster.query('create table precious (v int)');
    await cluster.query('insert into precious select generate_series(1, 500)');
    const beforeDrop = await momentBetweenCommits();
    await cluster.query('drop table precious');
    await switchAndArchive();
    await withRestored(['--latest'], async () => {
      const [r] = await cluster.query<{ n: string | null }>("select to_regclass('precious')::text as n");
      expect(r!.n).toBeNull();
    });
    await withRestored(['--time', beforeDrop.toISOString()], async () => {
      const [r] = await cluster.query<{ n: string }>('select count(*)::text as n from precious');
      expect(r!.n).toBe('500');
    });
  });
});

describe('PostgreSQL restore variants', () => {
  it('to a transaction id', async () => {
    const [{ xid }] = (await cluster.query<{ xid: string }>("insert into t values (5001, 'in xid') returning xmin::text as xid")) as [{ xid: string }];
    await cluster.query('insert into t values (5002, $1)', ['after xid']);
    await expectRecovered(['--xid', xid], 5001, 5002);
  });

  it('--delta rewrites only what differs in a stopped data directory', async () => {
    const dir = path.join(base, 'delta');
    // Damage the copy: a changed relation file, a stray file, a missing file.
    await copyWithTChanged(dir);
    await writeAsPostgres(path.join(dir, 'stray.txt'), 'not in the backup');
    await fs.rm(path.join(dir, 'PG_VERSION'));
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--delta', '--port', String(cluster.port), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { files: number; unchanged: number; removed: number };
    expect(out.removed).toBeGreaterThanOrEqual(1);
    expect(out.unchanged).toBeGreaterThan(out.files / 2);
    await expect(fs.stat(path.join(dir, 'stray.txt'))).rejects.toThrow();
    const expected = await ids();
    await inPlaceOf(dir, async () => {
      expect(await ids()).toEqual(expected);
      await cluster.query('create extension if not exists amcheck');
      await cluster.query("select bt_index_check('t_pkey', true)");
    });
  });

  it('a restore or --delta that stops part-way leaves a directory PostgreSQL refuses to start; --delta from a sound copy then finishes it', async () => {
    const rel = await tFile();
    // A copy of the repository in which table t's file cannot be read back, in every base backup.
    const damaged = path.join(base, 'repo-damaged');
    await fs.cp(repo, damaged, { recursive: true });
    const copy = await Repository.open(new LocalStore(damaged), await password());
    const flipped = new Set<string>();
    for (const s of (await copy.listSnapshots()).filter((x) => x.source.kind === 'postgres')) {
      const found = await resolvePath(copy, s.tree, path.posix.join(requirePgPoint(s).dataDirectory, rel));
      const id = ('node' in found && found.node.content?.[0]) || '';
      const loc = await copy.locate(Buffer.from(id, 'hex'));
      const pack = path.join(damaged, keys.pack(copy.index.packId(loc.packIndex).toString('hex')));
      if (flipped.has(`${pack}:${loc.offset}`)) continue;
      flipped.add(`${pack}:${loc.offset}`);
      const bytes = await fs.readFile(pack);
      bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0xff;
      await fs.chmod(pack, 0o600);
      await fs.writeFile(pack, bytes);
    }
    execFileSync('chown', ['-R', 'postgres:postgres', damaged]);
    const fromDamaged = (args: string[]) => lifeboatAsPostgres([...args, '--repo', damaged, '--password-file', pw]);
    /** pg_ctl start on DIR: what PostgreSQL says (and the copy stopped again, should it have started). */
    const tryStart = async (dir: string) => {
      const r = await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', dir, '-w', '-t', '60', '-o', `-p ${await freePort()} -k ${base}`, '-l', path.join(base, 'start.log'), 'start']);
      if (r.code === 0) await asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', dir, '-m', 'immediate', 'stop']);
      return r;
    };
    const refused = async (dir: string) => {
      expect(readdirSync(dir)).not.toContain('PG_VERSION');
      expect(readdirSync(dir).filter((n) => n.startsWith('.lifeboat-'))).toEqual([]);
      const r = await tryStart(dir);
      expect(r.code, 'PostgreSQL started a copy that is not all there').not.toBe(0);
      expect(r.stderr).toMatch(/not a database cluster directory/);
    };

    // A new copy: the restore stops at table t's file.
    const fresh = path.join(base, 'stopped-fresh');
    let r = await fromDamaged(['pg', 'restore', '--name', 'main', '--target-dir', fresh, '--latest']);
    expect(r.code, r.stderr).toBe(13);
    expect(r.stderr).toMatch(/PostgreSQL refuses to start/);
    await refused(fresh);

    // --delta over a complete, startable copy whose table t differs: it stops at t's file.
    const dir = path.join(base, 'stopped-delta');
    await copyWithTChanged(dir, ['--port', String(cluster.port)]);
    expect(readdirSync(dir)).toContain('PG_VERSION');
    r = await fromDamaged(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--delta']);
    expect(r.code, r.stderr).toBe(13);
    await refused(dir);

    // From the sound repository, --delta finishes the copy, which starts and holds the rows.
    r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--delta', '--port', String(cluster.port)]);
    expect(r.code, r.stderr).toBe(0);
    const expected = await ids();
    await inPlaceOf(dir, async () => expect(await ids()).toEqual(expected));
  });

  it('--delta while another process removes a restored file: pg restore fails naming it, and PG_VERSION is not written', async () => {
    const dir = path.join(base, 'delta-interfered');
    // Table t's file must be rewritten, so there is a write (and a progress event) once
    // every file was compared; pg_hba.conf, unchanged, gets its metadata after the writes.
    await copyWithTChanged(dir);
    const victim = path.join(dir, 'pg_hba.conf');
    const repoObj = await Repository.open(new LocalStore(repo), await password());
    const err = await pgRestore(repoObj, {
      name: 'main',
      targetDir: dir,
      target: { kind: 'latest' },
      archiveGetCommand: ['lifeboat'],
      delta: true,
      onProgress: (e) => {
        if (e.bytes > 0 && existsSync(victim)) rmSync(victim);
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'RESTORE_INCOMPLETE' });
    expect((err as Error).message).toContain('pg_hba.conf');
    expect(incompleteOf(err)).toEqual([victim]);
    expect(readdirSync(dir)).not.toContain('PG_VERSION');
    expect(readdirSync(dir).filter((n) => n.startsWith('.lifeboat-'))).toEqual([]);
  });

  it('a remote base backup over the replication protocol restores like a local one', async () => {
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn, '--remote', '--spool', path.join(base, 'bb-spool'), '--bin-dir', PG_BIN, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const snap = JSON.parse(b.stdout) as { id: string; consistency: { startLsn: string; stopLsn: string; systemId: string } };
    const [{ sysid }] = (await cluster.query<{ sysid: string }>('select system_identifier::text as sysid from pg_control_system()')) as [{ sysid: string }];
    expect(snap.consistency.systemId).toBe(sysid);
    await expect(fs.stat(path.join(base, 'bb-spool'))).rejects.toThrow(); // the staging copy is gone
    await cluster.query('insert into t values (7001, $1)', ['after the remote backup']);
    await switchAndArchive();
    const dir = path.join(base, `restore-remote`);
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--port', String(cluster.port), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { snapshot: string }).snapshot).toBe(snap.id);
    const expected = await ids();
    expect(expected).toContain(7001);
    await inPlaceOf(dir, async () => expect(await ids()).toEqual(expected));
  });

  it('--snapshot starts from an older base backup, for a restore point the newest backup is past', async () => {
    const snaps = await listSnapshots();
    const older = snaps.filter((x) => x.source.kind === 'postgres').at(-1)!.id;
    await cluster.query('insert into t values (5501, $1)', ['before the point']);
    await cluster.query("select pg_create_restore_point('before-newer-backup')");
    await cluster.query('insert into t values (5502, $1)', ['after the point']);
    await switchAndArchive();
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    expect(b.code, b.stderr).toBe(0);
    await withRestored(['--restore-point', 'before-newer-backup', '--snapshot', older.slice(0, 8)], async () => {
      const got = await ids();
      expect(got).toContain(5501);
      expect(got).not.toContain(5502);
    });
  });

  it('refuses --delta on a running cluster', async () => {
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', cluster.data, '--latest', '--delta']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is running/);
  });
});

describe('PostgreSQL archive safety and bad input', () => {
  it('archive-push refuses corrupted, foreign and mismatched segments, and accepts the same segment twice', async () => {
    const logs = path.join(repo, 'logs', 'postgres.main', '00000001');
    const archived = (await fs.readdir(logs)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    expect(archived.length).toBeGreaterThan(2);
    const get = await lb(['pg', 'archive-get', '--name', 'main', archived[0]!, path.join(base, 'seg')]);
    expect(get.code, get.stderr).toBe(0);
    const seg = await fs.readFile(path.join(base, 'seg'));
    const work = path.join(base, 'push');
    await fs.mkdir(work, { recursive: true });
    const push = async (name: string, data: Buffer) => {
      await writeAsPostgres(path.join(work, name), '');
      await fs.writeFile(path.join(work, name), data);
      return lb(['pg', 'archive-push', '--name', 'main', path.join(work, name)]);
    };
    // The same segment again: fine (archive_command retries after a crash).
    expect((await push(archived[0]!, seg)).code).toBe(0);
    // A damaged header.
    const damaged = Buffer.from(seg);
    damaged[0] = damaged[0]! ^ 0xff;
    let r = await push('000000010000000000000F00', damaged);
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/refused: bad page magic/);
    // A real segment under another segment's name.
    r = await push('000000010000000000000F01', seg);
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/page address does not match/);
    // Different content under a name already archived.
    const other = await fs.readFile(path.join(logs, archived[1]!)).then(() => lb(['pg', 'archive-get', '--name', 'main', archived[1]!, path.join(base, 'seg2')]));
    expect(other.code).toBe(0);
    r = await push(archived[0]!, Buffer.concat([seg.subarray(0, 40), Buffer.alloc(seg.length - 40, 1)]));
    expect(r.code).toBe(13);
    expect(r.stderr).toMatch(/already archived .* with different content/);
    // Nothing was stored for the refused names, and the archived copy is intact.
    expect(await fs.readdir(logs)).not.toContain('000000010000000000000F00');
    const again = await lb(['pg', 'archive-get', '--name', 'main', archived[0]!, path.join(base, 'seg3')]);
    expect(again.code).toBe(0);
    expect((await fs.readFile(path.join(base, 'seg3'))).equals(seg)).toBe(true);
  });

  it('archives a burst of WAL in batches: every segment stored, every marker consumed', async () => {
    await cluster.query("create table burst as select g as id, repeat(md5(g::text), 16) as pad from generate_series(1, 150000) g");
    await switchAndArchive();
    const [{ last }] = (await cluster.query<{ last: string }>('select last_archived_wal as last from pg_stat_archiver')) as [{ last: string }];
    const logs = path.join(repo, 'logs', 'postgres.main', '00000001');
    const stored = new Set(await fs.readdir(logs));
    const ready = await fs.readdir(path.join(cluster.data, 'pg_wal', 'archive_status'));
    const done = ready.filter((f) => f.endsWith('.done')).map((f) => f.slice(0, -5)).filter((f) => /^[0-9A-F]{24}$/.test(f));
    expect(done.length).toBeGreaterThan(3);
    for (const f of done) expect(stored.has(f), `${f} archived`).toBe(true);
    expect(stored.has(last)).toBe(true);
    const spool = await fs.readdir(path.join(cluster.data, 'lifeboat-archive-spool')).catch(() => [] as string[]);
    expect(spool).toEqual([]);
    await cluster.query('drop table burst');
  });

  it('restore with a missing segment stops with an error naming it, before writing anything', async () => {
    // Two more segments after the newest base backup; the first of them goes missing.
    const { logs, victim } = await twoMoreSegments([6001, 6002]);
    const saved = path.join(base, 'saved-segment');
    await fs.rename(path.join(logs, victim), saved);
    try {
      const dir = path.join(base, 'gap');
      const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest']);
      expect(r.code).toBe(13);
      expect(r.stderr).toContain(victim);
      expect(r.stderr).toMatch(/hint:/);
      await expect(fs.readdir(dir)).rejects.toThrow();
    } finally {
      await fs.rename(saved, path.join(logs, victim));
    }
  });

  it('a WAL segment that cannot be read during replay stops recovery with FATAL instead of ending it early; sound again, a restart recovers every row', async () => {
    const segments = await twoMoreSegments([6101, 6102]);
    const victim = path.join(segments.logs, segments.victim);
    const dir = path.join(base, 'unreadable');
    restored.push(dir);
    // Every name is there, so the restore's check of the archive passes; the damage is
    // found only when replay reads the segment.
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest', '--port', String(cluster.port)]);
    expect(r.code, r.stderr).toBe(0);
    const sound = await fs.readFile(victim);
    const bad = Buffer.from(sound);
    bad[bad.length >> 1] = bad[bad.length >> 1]! ^ 0xff;
    await fs.writeFile(victim, bad);
    await cluster.stop();
    try {
      // pg_ctl may find the copy ready (consistent, read-only) before replay reaches the segment.
      await cluster.start(dir).catch(() => undefined);
      // It stops (FATAL), or (the old way) promotes early and keeps running.
      const log = await waitUntil('the copy to stop or promote', async () => {
        const text = await cluster.log(dir);
        return (!existsSync(path.join(dir, 'postmaster.pid')) || /selected new timeline ID/.test(text)) && text;
      }, 120_000);
      // Exit 1..125 would have read as "not in the archive": recovery would end at the
      // segment before and promote, and rows 6101 and 6102 would be gone for good.
      expect(log).toMatch(/could not be read from the archive \(CORRUPT\)/);
      expect(log).toMatch(/FATAL/);
      expect(log).not.toMatch(/selected new timeline ID/);
      await fs.writeFile(victim, sound);
      await cluster.start(dir);
      await cluster.waitPromoted();
      expect(await ids()).toEqual(expect.arrayContaining([6101, 6102]));
    } finally {
      await fs.writeFile(victim, sound);
      await cluster.stop(dir);
      await cluster.start();
    }
  });

  it('a server that goes down while the data directory is read: the backup fails with the reason and stores no snapshot', async () => {
    const snapshotsNow = listSnapshots;
    const before = (await snapshotsNow()).length;
    const run = lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
    let settled = false;
    void run.finally(() => (settled = true));
    // Once pg_backup_start has returned, its session's server process is killed:
    // PostgreSQL restarts (every session ends, the backup with it) while the files are read.
    let backend: number | undefined;
    while (backend === undefined && !settled) {
      const rows = await cluster.query<{ pid: number }>("select pid from pg_stat_activity where query like 'select pg_backup_start%' and state = 'idle'");
      backend = rows[0]?.pid;
    }
    expect(backend, 'the backup ended before it was seen started').toBeDefined();
    process.kill(backend!, 'SIGKILL');
    const r = await run;
    await cluster.waitPromoted();
    expectError(r, 19, /^lifeboat: PostgreSQL ended the session of main's base backup before it could be stopped \(.*\); no snapshot was stored$/);
    expect((await snapshotsNow()).length).toBe(before);
  }, 180_000);

  it('bad input: unreachable server, a time before the first backup, a non-empty target', async () => {
    let r = await lb(['pg', 'backup', '--name', 'main', '--dsn', 'postgresql://postgres@127.0.0.1:1/postgres']);
    expect(r.code).toBe(19);
    expect(r.stderr).toMatch(/cannot reach PostgreSQL/);

    r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'early'), '--time', '2001-01-01T00:00:00Z']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no base backup .* finished before/);

    const full = path.join(base, 'full');
    await fs.mkdir(full);
    await fs.writeFile(path.join(full, 'keep.txt'), 'mine');
    r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', full, '--latest']);
    expect(r.code).toBe(21);
    expect(r.stderr).toMatch(/already exists/);
    expect(await fs.readFile(path.join(full, 'keep.txt'), 'utf8')).toBe('mine');

    r = await lb(['pg', 'restore', '--name', 'nope', '--target-dir', path.join(base, 'nope'), '--latest']);
    expect(r.code).toBe(15);
  });

  it('an existing empty target is refused without --delta (exit 21) and used with it', async () => {
    const empty = path.join(base, 'empty-target');
    execFileSync('runuser', ['-u', 'postgres', '--', 'mkdir', empty]);
    let r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', empty, '--latest']);
    expect(r.code, r.stderr).toBe(21);
    expect(r.stderr).toMatch(/already exists.*\n.*--delta/);
    expect(readdirSync(empty)).toEqual([]);
    r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', empty, '--latest', '--delta']);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(empty)).toContain('recovery.signal');
  });

  it('control files planted as symlinks while the restore runs are replaced, never written or read through', async () => {
    const victim = path.join(base, 'victim.conf');
    await writeAsPostgres(victim, 'precious\n');
    const dir = path.join(base, 'planted');
    const stop = path.join(base, 'planted.stop');
    // The data directory's owner plants symlinks where pg restore writes its control files.
    const planter = spawn(process.execPath, ['-e', PLANTER, dir, victim, stop], { stdio: ['ignore', 'pipe', 'inherit'] });
    let said = '';
    planter.stdout.on('data', (d: Buffer) => (said += d.toString()));
    const exited = new Promise<void>((resolve) => planter.on('close', () => resolve()));
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--latest']);
    await fs.writeFile(stop, '');
    await exited;
    expect(Number(said), 'symlinks were planted during the restore').toBeGreaterThan(0);
    expect(await fs.readFile(victim, 'utf8'), `exit ${r.code}: ${r.stderr}`).toBe('precious\n');
  });

  it('bad input: wrong credentials are refused with exit 19, and the password is not echoed', async () => {
    await cluster.query("create role alice login password 'right-secret'");
    // First match wins in pg_hba.conf: alice must use her password over TCP.
    const hba = path.join(cluster.data, 'pg_hba.conf');
    await fs.writeFile(hba, `host all alice 127.0.0.1/32 scram-sha-256\n${await fs.readFile(hba, 'utf8')}`);
    await cluster.query('select pg_reload_conf()');
    const before = await listSnapshots();
    const r = await lb(['pg', 'backup', '--name', 'main', '--dsn', `postgresql://alice:wrong-secret@127.0.0.1:${cluster.port}/postgres`]);
    expect(r.code).toBe(19);
    expect(r.stderr).toMatch(/refused the login/);
    expect(r.stderr).toMatch(/hint:/);
    expect(r.stderr).not.toContain('wrong-secret');
    expect(await listSnapshots()).toEqual(before);
  });
});

describe('PostgreSQL retention', () => {
  it('forget keeps the WAL the oldest remaining base backup needs, and no more', async () => {
    const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn, '--json']);
    expect(b.code, b.stderr).toBe(0);
    const start = (JSON.parse(b.stdout) as { consistency: { startLsn: string } }).consistency.startLsn;
    await cluster.query('insert into t values (7501, $1)', ['after the last base backup']);
    await switchAndArchive();
    const logs = path.join(repo, 'logs', 'postgres.main', '00000001');
    const segs = async () => (await fs.readdir(logs)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();
    const firstNeeded = segmentName(1, parseLsn(start) / BigInt(16 * 1024 * 1024));
    expect((await segs())[0]! < firstNeeded).toBe(true);

    // Only PostgreSQL snapshots live in this repository: one group by host, keep the newest.
    const r = await lb(['forget', '--keep-last', '1', '--group-by', 'host', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { removed: string[]; wal: Array<{ source: string; removed: number; keptFrom: string }> };
    expect(out.removed.length).toBeGreaterThan(1);
    expect(out.wal).toEqual([{ source: 'main', removed: expect.any(Number), keptFrom: start }]);
    expect(out.wal[0]!.removed).toBeGreaterThan(0);
    const left = await segs();
    expect(left[0]).toBe(firstNeeded);

    // What remains still restores to the latest WAL.
    await withRestored(['--latest'], async () => {
      expect(await ids()).toContain(7501);
    });
  });
});

describe('PostgreSQL timelines', () => {
  // Last in the file: the copy put into service stays production for what follows.
  it('a PITR copy put into service as the primary: restores follow its timeline from its first base backup on, and say so before', async () => {
    const olderBackup = (await listSnapshots()).filter((x) => x.source.kind === 'postgres').at(-1)!.id;
    const target = await momentBetweenCommits();
    await cluster.query('insert into t values (8001, $1)', ['timeline 1 only']);
    await switchAndArchive();
    // Undo by point-in-time recovery: the copy takes the primary's place and, as the
    // comment in its postgresql.auto.conf says, gets archiving back.
    const dir = path.join(base, 'timeline2');
    const r = await lb(['pg', 'restore', '--name', 'main', '--target-dir', dir, '--time', target.toISOString(), '--port', String(cluster.port)]);
    expect(r.code, r.stderr).toBe(0);
    const auto = await fs.readFile(path.join(dir, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toMatch(/^#\s+archive_mode = on$/m);
    // Each word shell-quoted, then quoted again for the configuration file (util/shell.ts).
    expect(auto).toMatch(/^#\s+archive_command = '.*''pg'' ''archive-push'' ''--name'' ''main'' .*%p'$/m);
    await fs.appendFile(path.join(dir, 'postgresql.auto.conf'), 'archive_mode = on\n');
    await cluster.stop();
    await cluster.start(dir);
    try {
      await cluster.waitPromoted();
      const [{ tli }] = (await cluster.query<{ tli: number }>('select timeline_id as tli from pg_control_checkpoint()')) as [{ tli: number }];
      expect(tli).toBe(2);
      await cluster.query('insert into t values (9001, $1)', ['timeline 2']);
      await switchAndArchive();

      // Before its first base backup nothing shows production moved: restores stay on
      // timeline 1 and name timeline 2 with both ways out; --timeline 2 follows it.
      const before = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'tl-before'), '--latest', '--json']);
      expect(before.code, before.stderr).toBe(0);
      expect((JSON.parse(before.stdout) as { timeline: number }).timeline).toBe(1);
      expect(before.stderr).toMatch(/warning: timeline 2 in the archive of main is not on production's history .*take a base backup of it.*--move-aside 2/);
      const pinned = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'tl-pinned'), '--latest', '--timeline', '2', '--json']);
      expect(pinned.code, pinned.stderr).toBe(0);
      expect((JSON.parse(pinned.stdout) as { timeline: number; recovery: string[] }).recovery).toContain("recovery_target_timeline = '2'");

      const b = await lb(['pg', 'backup', '--name', 'main', '--dsn', cluster.dsn]);
      expect(b.code, b.stderr).toBe(0);
    } finally {
      await cluster.stop(dir);
    }
    // Now timeline 2 is production's: the older backup on timeline 1 recovers along 1 → 2.
    const timelines = JSON.parse((await lb(['pg', 'timelines', '--name', 'main', '--json'])).stdout) as { production: { head: number } };
    expect(timelines.production.head).toBe(2);
    await withRestored(['--latest', '--snapshot', olderBackup.slice(0, 8)], async () => {
      const got = await ids();
      expect(got).toContain(9001);
      expect(got).not.toContain(8001);
    });

    // Without the first segment of timeline 2, recovery from the older backup would
    // stop at the switch point and promote there: the restore must refuse and name it.
    const tl2 = path.join(repo, 'logs', 'postgres.main', '00000002');
    const first = (await fs.readdir(tl2)).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort()[0]!;
    await fs.rename(path.join(tl2, first), path.join(base, 'tl2-first'));
    const gap = await lb(['pg', 'restore', '--name', 'main', '--target-dir', path.join(base, 'tl2-gap'), '--latest', '--snapshot', olderBackup.slice(0, 8)]);
    expect(gap.code).toBe(13);
    expect(gap.stderr).toContain(first);
    await fs.rename(path.join(base, 'tl2-first'), path.join(tl2, first));
  });
});
