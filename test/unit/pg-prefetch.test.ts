/**
 * restore_command's background fetcher (src/sources/postgres/prefetch.ts) against a
 * real local repository and a spool inside a directory laid out as a data directory,
 * with a real process standing for the postmaster. Everything the fetcher must prove
 * before it goes on: it keeps the spool topped up as recovery takes segments, and it
 * exits (never lingers) when the server dies, when recovery is over (removing the
 * spool), at the end of the archive, on another timeline, when another fetcher holds
 * the spool, and on a damaged segment, which it never spools.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { logSource, timelineDir } from '../../src/sources/postgres/names.js';
import { runArchiveCall } from '../../src/cli/lean.js';
import { recordWanted, runFetcher } from '../../src/sources/postgres/prefetch.js';
import { segmentName } from '../../src/sources/postgres/wal.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { ThrottleStore } from '../../src/storage/wrappers/throttle.js';
import { CLI, cleanupTmp, processesNaming, pseudoRandom, runCli, tmpdir } from '../helpers.js';
import { waitUntil } from '../pg-streamer.js';

/** waitUntil (test/pg-streamer.ts) with this file's timeout and polling interval. */
const until = (what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 30_000) => waitUntil(what, cond, timeoutMs, 10);

let repo: Repository;
let repoDir: string;
const children: ChildProcess[] = [];
const SEGS = 12;
const seg = (n: number, tl = 1) => segmentName(tl, BigInt(n));
const content = (n: number) => Buffer.alloc(4096, n);

beforeAll(async () => {
  repoDir = path.join(tmpdir('lb-prefetch-'), 'repo');
  await Repository.init(new LocalStore(repoDir), 'pw');
  repo = await Repository.open(new LocalStore(repoDir), 'pw');
  for (let n = 1; n <= SEGS; n++) await repo.putLog(logSource('main'), timelineDir(1), seg(n), content(n));
});

afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
  cleanupTmp();
});

/** A process standing for the postmaster; its pid goes into postmaster.pid. */
function postmaster(): ChildProcess {
  const c = spawn('sleep', ['600'], { stdio: 'ignore' });
  children.push(c);
  return c;
}

async function dataDir(pm: ChildProcess, signal = 'recovery.signal'): Promise<{ data: string; spool: string }> {
  const data = tmpdir('lb-prefetch-data-');
  await fs.writeFile(path.join(data, 'PG_VERSION'), '15\n');
  await fs.writeFile(path.join(data, 'postmaster.pid'), `${pm.pid}\n${data}\n`);
  await fs.writeFile(path.join(data, signal), '');
  const spool = path.join(data, 'lifeboat-prefetch');
  await fs.mkdir(spool, { mode: 0o700 });
  return { data, spool };
}

const spooled = async (spool: string) => (await fs.readdir(spool).catch(() => [] as string[])).filter((f) => /^[0-9A-F]{24}$/.test(f)).sort();

/** Recovery taking `name` from the spool the way restore_command's `mv` does. */
async function take(spool: string, name: string, into: string): Promise<Buffer> {
  await fs.rename(path.join(spool, name), path.join(into, name));
  return fs.readFile(path.join(into, name));
}

/** Flips a byte of the stored object of segment `name` in the local repository at `dir`. */
async function damage(dir: string, name: string): Promise<void> {
  const stored = (await fs.readdir(dir, { recursive: true })).map(String).find((f) => f.includes(name));
  expect(stored).toBeDefined();
  const file = path.join(dir, stored!);
  const bytes = await fs.readFile(file);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 5) ^ 0xff, bytes.length - 5);
  await fs.writeFile(file, bytes);
}

/** A repository (password test-password, as runCli gives) holding segments 1..count of timeline 1. */
async function cliRepo(count: number): Promise<string> {
  const dir = path.join(tmpdir('lb-prefetch-cli-'), 'repo');
  await Repository.init(new LocalStore(dir), 'test-password');
  const r = await Repository.open(new LocalStore(dir), 'test-password');
  for (let n = 1; n <= count; n++) await r.putLog(logSource('main'), timelineDir(1), seg(n), content(n));
  return dir;
}

/**
 * A repository whose every read is slow: segments 2 and 3 of 64 KiB that do not
 * compress, read at 4000 bytes a second (16 s a segment), standing for a store that
 * does not answer.
 */
async function slowRepo(): Promise<Repository> {
  const dir = path.join(tmpdir('lb-prefetch-slow-'), 'repo');
  await Repository.init(new LocalStore(dir), 'pw');
  const r = await Repository.open(new LocalStore(dir), 'pw');
  for (let n = 2; n <= 3; n++) await r.putLog(logSource('main'), timelineDir(1), seg(n), pseudoRandom(64 * 1024, n));
  return Repository.open(new ThrottleStore(new LocalStore(dir), { download: 4000 }), 'pw');
}

describe('the background fetcher of restore_command', () => {
  it('keeps the spool topped up as recovery takes segments, then exits when the server dies, leaving the spool', async () => {
    const pm = postmaster();
    const { data, spool } = await dataDir(pm);
    const fetcher = runFetcher(repo, 'main', seg(2), spool, { ahead: 3 });
    await until('three segments spooled', async () => (await spooled(spool)).length === 3);
    expect(await spooled(spool)).toEqual([seg(3), seg(4), seg(5)]);
    const wal = path.join(data, 'pg_wal');
    await fs.mkdir(wal);
    expect(await take(spool, seg(3), wal)).toEqual(content(3));
    await until('the next one spooled', async () => (await spooled(spool)).includes(seg(6)));
    expect(await spooled(spool)).toEqual([seg(4), seg(5), seg(6)]);
    expect(existsSync(path.join(spool, '.fetcher'))).toBe(true);

    pm.kill('SIGKILL');
    await expect(fetcher).resolves.toBe('server stopped');
    // Whole archived segments, kept for the recovery a restart resumes; the lock is released.
    expect(await spooled(spool)).toEqual([seg(4), seg(5), seg(6)]);
    expect(existsSync(path.join(spool, '.fetcher'))).toBe(false);
  });

  it('removes the spool and exits once recovery is over (the server promoted)', async () => {
    const { data, spool } = await dataDir(postmaster());
    const fetcher = runFetcher(repo, 'main', seg(1), spool, { ahead: 4 });
    await until('four segments spooled', async () => (await spooled(spool)).length === 4);
    await fs.rm(path.join(data, 'recovery.signal'));
    await expect(fetcher).resolves.toBe('recovery over');
    expect(existsSync(spool)).toBe(false);
  });

  it('skips past a segment a call fetched itself, drops what recovery has passed, and stops on another timeline', async () => {
    const { spool } = await dataDir(postmaster(), 'standby.signal');
    const fetcher = runFetcher(repo, 'main', seg(1), spool, { ahead: 2 });
    await until('two segments spooled', async () => (await spooled(spool)).length === 2);
    // Recovery was faster than the spool: restore_command fetched segment 7 itself.
    await recordWanted(spool, seg(7));
    await until('segments 8 and 9 spooled', async () => (await spooled(spool)).join() === [seg(8), seg(9)].join());
    await recordWanted(spool, seg(9, 2));
    await expect(fetcher).resolves.toBe('another timeline');
  });

  it('exits at the end of the archive once recovery has taken every spooled segment', async () => {
    const { data, spool } = await dataDir(postmaster());
    const wal = path.join(data, 'pg_wal');
    await fs.mkdir(wal);
    const fetcher = runFetcher(repo, 'main', seg(SEGS - 2), spool, { ahead: 8 });
    await until('the last two spooled', async () => (await spooled(spool)).length === 2);
    let done = false;
    void fetcher.then(() => (done = true));
    await take(spool, seg(SEGS - 1), wal);
    await until('the fetcher to see one taken', async () => (await spooled(spool)).length === 1);
    expect(done).toBe(false);
    await take(spool, seg(SEGS), wal);
    await expect(fetcher).resolves.toBe('end of archive');
  });

  it('leaves a spool another live fetcher holds, and takes over the lock of a dead one', async () => {
    const { spool } = await dataDir(postmaster());
    const other = postmaster();
    await fs.writeFile(path.join(spool, '.fetcher'), String(other.pid));
    await expect(runFetcher(repo, 'main', seg(1), spool, { ahead: 1, idleMs: 0 })).resolves.toBe('another fetcher runs');
    other.kill('SIGKILL');
    await until('the other fetcher to be dead', () => other.exitCode !== null || other.signalCode !== null);
    await expect(runFetcher(repo, 'main', seg(1), spool, { ahead: 1, idleMs: 0 })).resolves.toBe('idle');
    expect(await spooled(spool)).toEqual([seg(2)]);
  });

  it('fails on a damaged segment and never spools it', async () => {
    const dir = tmpdir('lb-prefetch-bad-');
    await Repository.init(new LocalStore(dir), 'pw');
    const bad = await Repository.open(new LocalStore(dir), 'pw');
    for (let n = 1; n <= 3; n++) await bad.putLog(logSource('main'), timelineDir(1), seg(n), content(n));
    await damage(dir, seg(3));
    const { spool } = await dataDir(postmaster());
    await expect(runFetcher(bad, 'main', seg(1), spool, { ahead: 4 })).rejects.toMatchObject({ code: 'CORRUPT' });
    expect(await spooled(spool)).toEqual([seg(2)]);
    expect(existsSync(path.join(spool, '.fetcher'))).toBe(false);
  });

  it('a call whose own segment was fetched succeeds when reading ahead fails; the damaged segment fails its own call', async () => {
    // PostgreSQL takes any failing restore_command as "not in the archive": a call that
    // wrote its segment and then failed on the next one would end recovery there.
    const dir = await cliRepo(3);
    await damage(dir, seg(2));
    const spool = path.join(tmpdir('lb-prefetch-ahead-'), 'spool');
    const wal = tmpdir('lb-prefetch-wal-');
    const get = (n: number) => runCli(['pg', 'archive-get', '--name', 'main', '--repo', dir, '--prefetch', spool, seg(n), path.join(wal, seg(n))]);
    const first = await get(1);
    expect(first.code, first.stderr).toBe(0);
    expect(await fs.readFile(path.join(wal, seg(1)))).toEqual(content(1));
    expect(await spooled(spool)).toEqual([]);
    const second = await get(2);
    // Over 125, so PostgreSQL stops recovery instead of taking it as the archive's end.
    expect(second.code, second.stderr).toBe(128);
    expect(second.stderr).toMatch(/^lifeboat: 0+10+2 could not be read from the archive \(CORRUPT\): /m);
    expect(existsSync(path.join(wal, seg(2)))).toBe(false);
    await until('no fetcher to run', () => processesNaming(spool).length === 0);
  });

  it('makes each spooled segment durable before naming it (a spool is kept across a server crash)', async () => {
    const dir = await cliRepo(3);
    const spool = path.join(tmpdir('lb-prefetch-sync-'), 'spool');
    await fs.mkdir(spool, { mode: 0o700 });
    const trace = path.join(tmpdir('lb-prefetch-trace-'), 'strace.out');
    const c = spawn('strace', ['-f', '-y', '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', '-o', trace, process.execPath, CLI, 'pg', 'archive-prefetch', '--name', 'main', '--repo', dir, '--prefetch', spool, seg(1)], {
      env: { ...process.env, LIFEBOAT_PASSWORD: 'test-password' },
      stdio: 'ignore',
    });
    children.push(c);
    const exited = new Promise<number | null>((resolve) => c.on('exit', (code) => resolve(code)));
    await until('segments 2 and 3 spooled', async () => (await spooled(spool)).length === 2);
    // Recovery takes both; at the end of the archive the fetcher exits.
    for (const f of await spooled(spool)) await fs.rm(path.join(spool, f));
    expect(await exited).toBe(0);
    const lines = (await fs.readFile(trace, 'utf8')).split('\n');
    for (const n of [2, 3]) {
      const renamed = lines.findIndex((l) => /^\d+\s+rename/.test(l) && l.includes(`${path.join(spool, seg(n))}"`));
      expect(renamed, `rename of ${seg(n)}`).toBeGreaterThanOrEqual(0);
      const synced = lines.findIndex((l) => /^\d+\s+f(data)?sync\(/.test(l) && l.includes(`${path.join(spool, seg(n))}.`));
      expect(synced, `fsync of ${seg(n)}'s temporary before its rename`).toBeGreaterThanOrEqual(0);
      expect(synced).toBeLessThan(renamed);
    }
  });

  it('never spools into a spool made again after its own was removed (a fetcher still fetching when its server stopped)', async () => {
    // The server stops while the fetcher waits on a slow repository; `pg restore
    // --delta` removes the spool, and the new recovery's first miss makes it again.
    // What the old fetcher then fetches is another recovery's business, possibly of
    // another cluster: it must not appear there under a segment's name.
    const slow = await slowRepo();
    const { spool } = await dataDir(postmaster());
    const fetcher = runFetcher(slow, 'main', seg(1), spool, { ahead: 4 });
    await until('the fetcher to hold the spool', () => existsSync(path.join(spool, '.fetcher')));
    await fs.rm(spool, { recursive: true });
    await fs.mkdir(spool, { mode: 0o700 });
    // (Between the two it may find no spool at all, and stop there.)
    await expect(fetcher).resolves.toMatch(/^(spool gone|lock taken)$/);
    expect(await fs.readdir(spool)).toEqual([]);
  });

  it('takes from the spool only a file named as a WAL segment, never a path', async () => {
    const dir = await cliRepo(1);
    const base = tmpdir('lb-prefetch-name-');
    const spool = path.join(base, 'spool');
    await fs.mkdir(spool, { mode: 0o700 });
    await fs.writeFile(path.join(base, 'victim'), 'not WAL');
    const dest = path.join(base, 'RECOVERYXLOG');
    const r = await runCli(['pg', 'archive-get', '--name', 'main', '--repo', dir, '--prefetch', spool, '../victim', dest]);
    expect(r.code).not.toBe(0);
    expect(existsSync(dest)).toBe(false);
    expect(await fs.readFile(path.join(base, 'victim'), 'utf8')).toBe('not WAL');
  });

  it('stops when the server stops without waiting for a fetch in flight (a repository that hangs)', async () => {
    // The fetcher must not outlive its server for as long as a fetch hangs.
    const slow = await slowRepo();
    const pm = postmaster();
    const { spool } = await dataDir(pm);
    const fetcher = runFetcher(slow, 'main', seg(1), spool, { ahead: 4 });
    await until('the fetcher to hold the spool', () => existsSync(path.join(spool, '.fetcher')));
    pm.kill('SIGKILL');
    await expect(fetcher).resolves.toBe('server stopped');
    // It returned before its fetch of segment 2 finished: nothing was spooled.
    expect(await spooled(spool)).toEqual([]);
    expect(existsSync(path.join(spool, '.fetcher'))).toBe(false);
  });

  it('reads ahead synchronously, with no fetcher, when restore_command has options a fetcher would not get (a download limit)', async () => {
    const { data, spool } = await dataDir(postmaster());
    const pw = path.join(data, 'pw');
    await fs.writeFile(path.join(pw), 'pw\n', { mode: 0o600 });
    const dest = path.join(data, 'RECOVERYXLOG');
    const g = { repo: repoDir, passwordFile: pw, limitDownload: '100000' };
    await runArchiveCall({ verb: 'archive-get', name: 'main', prefetch: spool, g, args: [seg(1), dest] });
    expect(await fs.readFile(dest)).toEqual(content(1));
    // Everything up to the spool's size came in this call, under the limit; none later.
    expect(await spooled(spool)).toEqual(Array.from({ length: SEGS - 1 }, (_, i) => seg(i + 2)));
    expect(existsSync(path.join(spool, '.fetcher'))).toBe(false);
  });
});
