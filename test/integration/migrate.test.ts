/**
 * lifeboat migrate: a format 1 repository with several snapshots, a retiring list, an
 * archived log and an append-only key is upgraded while being killed at random points
 * and resumed; afterwards `check --read-data` passes and every snapshot restores
 * exactly, by the same data as before.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { CLI, cleanupTmp, cliExpecting, expectError, makeFixture, runCli, snapshotOf, snapshotsJson, tmpdir } from '../helpers.js';

const ENV = { LIFEBOAT_TEST_KDF: 'fast', LIFEBOAT_PROGRESS: 'none', LIFEBOAT_PASSWORD: 'admin' };

/** Runs `lifeboat migrate`, which kills itself at its `crashAt`-th step; resolves how it ended. */
function migrateCrashingAt(repo: string, crashAt: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...ENV, LIFEBOAT_TEST_MIGRATE_CRASH_AT: String(crashAt) };
    const child = spawn(process.execPath, [CLI, '-r', repo, 'migrate'], { env, stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
}

describe('lifeboat migrate', () => {
  afterAll(cleanupTmp);

  it('upgrades format 1 to format 2, killed at random points and resumed; restores stay exact', async () => {
    const dir = tmpdir('lb-migrate-');
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await Repository.init(new LocalStore(repo), 'admin', { version: 1 });
    await fs.writeFile(path.join(dir, 'host-pw'), 'host');
    await cliExpecting(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', path.join(dir, 'host-pw')], 0, ENV);

    // Three states of the data, a snapshot of each; the first one forgotten and pruned
    // (a retiring list), and an archived log segment.
    const states: Array<Awaited<ReturnType<typeof snapshotOf>>> = [];
    await makeFixture(src);
    for (let i = 0; i < 4; i++) {
      await fs.writeFile(path.join(src, `state-${i}.txt`), `state ${i}\n`.repeat(1000 * (i + 1)));
      await cliExpecting(['-r', repo, 'backup', src], 0, ENV);
      states.push(await snapshotOf(src));
    }
    const first = await snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD);
    await cliExpecting(['-r', repo, 'forget', first[0]!.id], 0, ENV);
    states.shift();
    await cliExpecting(['-r', repo, 'prune', '--grace', '1h'], 0, ENV);
    const v1 = await Repository.open(new LocalStore(repo), 'admin');
    await v1.putLog('db', '1', '000000010000000000000001', Buffer.from('a WAL segment'));
    expect(JSON.parse(await fs.readFile(path.join(repo, 'config'), 'utf8')).version).toBe(1);
    expect((await fs.readdir(path.join(repo, 'prune'))).length).toBe(1);

    const dry = JSON.parse((await cliExpecting(['-r', repo, '--json', 'migrate', '--dry-run'], 0, ENV)).stdout) as Record<string, number>;
    expect(dry).toMatchObject({ from: 1, snapshots: 3, lists: 1, logs: 1, oldSlots: 2 });
    expect(JSON.parse(await fs.readFile(path.join(repo, 'config'), 'utf8')).version).toBe(1);

    // Killed (SIGKILL) at every step boundary in turn: run N resumes what runs 1..N-1
    // left and dies at its own Nth step, until a run has fewer steps than that.
    let kills = 0;
    for (let n = 1; n < 40; n++) {
      const r = await migrateCrashingAt(repo, n);
      if (r.signal === 'SIGKILL') kills++;
      else if (r.code === 0) break;
      else throw new Error(`migrate exited ${String(r.code)} when resumed after ${kills} kills`);
    }
    console.log(`migrate killed ${kills} time(s) before a run finished`);
    expect(kills).toBeGreaterThan(5);
    const done = await runCli(['-r', repo, '--json', 'migrate'], ENV);
    expect(done.code, done.stderr).toBe(0);

    const config = JSON.parse(await fs.readFile(path.join(repo, 'config'), 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ version: 2, v1Blobs: true });
    expect(config.migrating).toBeUndefined();
    expect(JSON.parse((await cliExpecting(['-r', repo, '--json', 'migrate'], 0, ENV)).stdout)).toMatchObject({ from: 'done' });

    // Format 1 slots are gone: the host's password must be added again.
    expectError(await runCli(['-r', repo, 'snapshots'], { ...ENV, LIFEBOAT_PASSWORD: 'host' }), 12, /wrong password/);
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ENV);
    const snaps = await snapshotsJson(repo, ENV.LIFEBOAT_PASSWORD);
    expect(snaps).toHaveLength(states.length);
    for (const [i, s] of snaps.entries()) {
      const target = path.join(dir, `restored-${i}`);
      await cliExpecting(['-r', repo, 'restore', s.id, '--target', target], 0, ENV);
      expect(await snapshotOf(path.join(target, src))).toEqual(states[i]);
    }
    const v2 = await Repository.open(new LocalStore(repo), 'admin');
    expect((await v2.getLog('db', '1', '000000010000000000000001'))?.toString()).toBe('a WAL segment');
    for (const f of await fs.readdir(path.join(repo, 'snapshots'))) expect((await fs.readFile(path.join(repo, 'snapshots', f)))[0]).toBe(2);
    for (const f of await fs.readdir(path.join(repo, 'index'))) expect((await fs.readFile(path.join(repo, 'index', f)))[0]).toBe(2);

    // Backups deduplicate against the migrated data (blob ids kept), and --reseal leaves
    // no format 1 object behind.
    const again = JSON.parse((await cliExpecting(['-r', repo, '--json', 'backup', src], 0, ENV)).stdout) as { summary: { addedBytes: number } };
    expect(again.summary.addedBytes).toBeLessThan(4096);
    await cliExpecting(['-r', repo, 'prune', '--reseal', '--grace', '0'], 0, ENV);
    for (const sub of ['index', 'snapshots', 'prune']) {
      for (const f of await fs.readdir(path.join(repo, sub)).catch(() => [] as string[])) expect((await fs.readFile(path.join(repo, sub, f)))[0]).toBe(2);
    }
    for (const d of await fs.readdir(path.join(repo, 'data'))) {
      for (const f of await fs.readdir(path.join(repo, 'data', d))) expect((await fs.readFile(path.join(repo, 'data', d, f)))[0]).toBe(2);
    }
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ENV);
    const last = path.join(dir, 'restored-last');
    await cliExpecting(['-r', repo, 'restore', 'latest', '--target', last], 0, ENV);
    expect(await snapshotOf(path.join(last, src))).toEqual(states.at(-1));
  }, 300_000);
});
