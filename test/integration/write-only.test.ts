/**
 * A write-only key slot (issue 13): a backup host that can add backups but read
 * nothing back. Through the real CLI: the host backs up twice and detects unchanged
 * files from its local cache; every reading command is refused and writes nothing;
 * with the host's key the library opens no snapshot, index file or blob; the
 * administrator lists, restores, checks, forgets, prunes and re-seals what it wrote.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { Repository } from '../../src/repo/repository.js';
import { authenticator } from '../../src/repo/maintenance/repair.js';
import { cleanupTmp, cliExpecting, expectError, initRepo, makeFixture, runCli, snapshotOf, snapshotsJson, tmpdir, type Meta } from '../helpers.js';

const ENV = { LIFEBOAT_TEST_KDF: 'fast', LIFEBOAT_PROGRESS: 'none' };
const ADMIN = { ...ENV, LIFEBOAT_PASSWORD: 'admin-password' };

interface Summary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  totalFiles: number;
  processedBytes: number;
}

/** Every object of the repository (locks included), with its size. */
async function everything(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else out.push(`${r} ${(await fs.stat(path.join(dir, r))).size}`);
    }
  };
  await walk('');
  return out.sort();
}

describe('write-only key slots', () => {
  let dir: string;
  let repo: string;
  let src: string;
  let HOST: Record<string, string>;
  let APPEND: Record<string, string>;
  const snaps: Array<{ id: string; state: Record<string, Meta> }> = [];

  const hostBackup = async (): Promise<{ id: string; summary: Summary }> =>
    JSON.parse((await cliExpecting(['-r', repo, '--json', 'backup', src], 0, HOST)).stdout) as { id: string; summary: Summary };

  const restoresExactly = async (id: string, state: Record<string, Meta>): Promise<void> => {
    const out = path.join(dir, `restore-${id.slice(0, 8)}-${Math.random().toString(16).slice(2)}`);
    await cliExpecting(['-r', repo, 'restore', id, '--target', out], 0, ADMIN);
    expect(await snapshotOf(path.join(out, src))).toEqual(state);
  };

  beforeAll(async () => {
    dir = tmpdir('lb-write-only-');
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    HOST = { ...ENV, LIFEBOAT_PASSWORD: 'host-password', LIFEBOAT_CACHE_DIR: path.join(dir, 'host-cache') };
    APPEND = { ...ENV, LIFEBOAT_PASSWORD: 'append-password' };
    await makeFixture(src);
    await initRepo(repo, ADMIN.LIFEBOAT_PASSWORD);
    await fs.writeFile(path.join(dir, 'host-pw'), 'host-password');
    await fs.writeFile(path.join(dir, 'append-pw'), 'append-password');
    const added = await cliExpecting(['-r', repo, 'key', 'add', '--write-only', '--new-password-file', path.join(dir, 'host-pw')], 0, ADMIN);
    expect(added.stdout).toMatch(/added write-only key/);
    await cliExpecting(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', path.join(dir, 'append-pw')], 0, ADMIN);
  }, 120_000);
  afterAll(cleanupTmp);

  it('backs up twice; the second run reads only what changed, judged from its local cache', async () => {
    const first = await hostBackup();
    expect(first.summary.filesNew).toBe(first.summary.totalFiles);
    snaps.push({ id: first.id, state: await snapshotOf(src) });
    // One session object per run, named by its key id.
    expect((await fs.readdir(path.join(repo, 'sessions'))).length).toBe(1);

    const unchanged = await hostBackup();
    expect(unchanged.summary.filesUnmodified).toBe(unchanged.summary.totalFiles);
    expect(unchanged.summary.processedBytes).toBe(0);

    await fs.writeFile(path.join(src, 'docs', 'notes.md'), '# changed notes\n'.repeat(500));
    const changed = await hostBackup();
    expect(changed.summary.filesChanged).toBe(1);
    expect(changed.summary.filesUnmodified).toBe(changed.summary.totalFiles - 1);
    expect(changed.summary.processedBytes).toBe('# changed notes\n'.length * 500);
    snaps.push({ id: changed.id, state: await snapshotOf(src) });
    expect((await fs.readdir(path.join(repo, 'sessions'))).length).toBe(3);
  }, 120_000);

  it('refuses every reading command with PERMISSION (exit 18) and writes nothing', async () => {
    const before = await everything(repo);
    const target = path.join(dir, 'host-restore');
    for (const args of [['snapshots'], ['ls', 'latest'], ['restore', 'latest', '--target', target], ['check'], ['forget', '--keep-last', '1'], ['prune'], ['key', 'list']]) {
      const hint = expectError(await runCli(['-r', repo, ...args], HOST), 18, /write-only/);
      expect(hint).toMatch(/this key may only add backups/);
    }
    expect(await fs.readdir(target).catch(() => [])).toEqual([]);
    expect(await everything(repo)).toEqual(before);
  }, 120_000);

  it('through the library, the host key opens no snapshot, index file or blob', async () => {
    const host = await Repository.open(new LocalStore(repo), 'host-password');
    expect(host.role).toBe('write');
    const admin = await Repository.open(new LocalStore(repo), 'admin-password');
    await expect(host.loadSnapshot(snaps[0]?.id as string)).rejects.toThrow(/does not hold/);
    const indexKey = `index/${(await fs.readdir(path.join(repo, 'index')))[0] as string}`;
    await expect(host.readIndexFile(indexKey)).rejects.toThrow(/does not hold/);
    const packs = await admin.readIndexFile(indexKey);
    for (const p of packs) host.addToIndex(p);
    const blob = packs[0]?.entries[0];
    expect(blob).toBeDefined();
    await expect(host.loadBlob(blob?.id as Buffer)).rejects.toThrow(/does not hold/);
    // The administrator's key reads the snapshot, and calls it untrusted.
    expect((await admin.loadSnapshot(snaps[0]?.id as string)).trusted).toBe(false);
    // What each grant holds: the write slot only the idKey and the recipient's public
    // key, the append slot nothing of the recipient, the full slot its private key.
    expect(host.keyring?.payload.epochs).toEqual([]);
    expect(Object.keys(host.keyring?.payload.writeRecipient ?? {})).toEqual(['publicKey']);
    expect(host.keyring?.payload.grantKeys).toBeUndefined();
    const append = await Repository.open(new LocalStore(repo), 'append-password');
    expect(append.role).toBe('append');
    expect(append.keyring?.payload.writeRecipient).toBeUndefined();
    await expect(append.loadSnapshot(snaps[0]?.id as string)).rejects.toThrow(/does not hold/);
    expect(admin.keyring?.payload.writeRecipient?.privateKey).toBeTruthy();
  });

  it('a damaged session object is skipped with a warning; the others still open', async () => {
    const junk = path.join(repo, 'sessions', '00000000');
    await fs.writeFile(junk, '{"version": 2, "epk": "AAAA", "box": "AAAA"}');
    const r = await cliExpecting(['-r', repo, '--json', 'snapshots'], 0, ADMIN);
    expect(r.stderr).toMatch(/sessions\/00000000 skipped/);
    expect((JSON.parse(r.stdout) as unknown[]).length).toBe(3);
    await fs.rm(junk);
    // repair (several destinations) copies a session object only when it opens under its own name.
    const admin = await Repository.open(new LocalStore(repo), 'admin-password');
    const auth = authenticator(admin, undefined);
    const [one, two] = (await fs.readdir(path.join(repo, 'sessions'))).sort();
    const bytes = await fs.readFile(path.join(repo, 'sessions', one as string));
    expect(auth(`sessions/${one as string}`, bytes)).toBe(true);
    expect(auth(`sessions/${two as string}`, bytes)).toBe(false);
    expect(authenticator(await Repository.open(new LocalStore(repo), 'append-password'), undefined)(`sessions/${one as string}`, bytes)).toBe(false);
  });

  it('a restricted key cannot add a write-only slot', async () => {
    const before = await everything(repo);
    await fs.writeFile(path.join(dir, 'new-pw'), 'attacker-password');
    expectError(await runCli(['-r', repo, 'key', 'add', '--write-only', '--new-password-file', path.join(dir, 'new-pw')], APPEND), 18, /needs a full key/);
    expectError(await runCli(['-r', repo, 'key', 'add', '--write-only', '--new-password-file', path.join(dir, 'new-pw')], HOST), 18, /write-only/);
    expect(await everything(repo)).toEqual(before);
  });

  it('the administrator lists (untrusted), restores each exactly and checks every byte', async () => {
    const list = JSON.parse((await cliExpecting(['-r', repo, '--json', 'snapshots'], 0, ADMIN)).stdout) as Array<{ id: string; trusted?: boolean }>;
    expect(list.length).toBe(3);
    for (const s of list) expect(s.trusted).toBe(false);
    for (const s of snaps) await restoresExactly(s.id, s.state);
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ADMIN);
  }, 120_000);

  it('forget and prune work on what the host wrote', async () => {
    const list = await snapshotsJson(repo, ADMIN.LIFEBOAT_PASSWORD);
    const middle = list.map((s) => s.id).filter((id) => !snaps.some((s) => s.id === id));
    expect(middle.length).toBe(1);
    await cliExpecting(['-r', repo, 'forget', middle[0] as string], 0, ADMIN);
    await cliExpecting(['-r', repo, 'prune', '--grace', '0'], 0, ADMIN);
    for (const s of snaps) await restoresExactly(s.id, s.state);
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ADMIN);
  }, 120_000);

  it('after key rotate and prune --reseal the session objects are gone and restores stay exact', async () => {
    await cliExpecting(['-r', repo, 'key', 'rotate'], 0, ADMIN);
    for (let i = 0; i < 3 && (await fs.readdir(path.join(repo, 'sessions')).catch(() => [])).length > 0; i++) {
      await cliExpecting(['-r', repo, 'prune', '--reseal', '--grace', '0'], 0, ADMIN);
    }
    expect(await fs.readdir(path.join(repo, 'sessions')).catch(() => [])).toEqual([]);
    for (const s of snaps) await restoresExactly(s.id, s.state);
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ADMIN);
    // The host backs up again: its cached blobs' packs were re-sealed away, so it stores them anew.
    await fs.writeFile(path.join(src, 'hello.txt'), 'hello again\n');
    // An administrator's process opened before this run learns its session key when it meets its objects.
    const admin = await Repository.open(new LocalStore(repo), 'admin-password');
    const again = await hostBackup();
    expect(again.summary.totalFiles).toBeGreaterThan(0);
    await admin.loadIndex();
    expect((await admin.loadSnapshot(again.id)).trusted).toBe(false);
    await restoresExactly(again.id, await snapshotOf(src));
  }, 180_000);
});
