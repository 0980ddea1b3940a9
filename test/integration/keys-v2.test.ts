/**
 * Keys of a format 2 repository, tried as an attacker would: a backup host holding an
 * append-only password, storage it can write to, an old slot file someone kept. Each
 * case is one of issue 13's attacks; each fails on format 1.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { Repository } from '../../src/repo/repository.js';
import { cleanupTmp, cliExpecting, expectError, initRepo, makeFixture, runCli, snapshotOf, snapshotsJson, tmpdir } from '../helpers.js';

const ENV = { LIFEBOAT_TEST_KDF: 'fast', LIFEBOAT_PROGRESS: 'none' };
const ADMIN = { ...ENV, LIFEBOAT_PASSWORD: 'admin-password' };
const HOST = { ...ENV, LIFEBOAT_PASSWORD: 'host-password' };

async function listing(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ['keys', 'keyring']) {
    for (const f of await fs.readdir(path.join(dir, sub)).catch(() => [] as string[])) out.push(`${sub}/${f}`);
  }
  return out.sort();
}

async function copyDir(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  for (const f of await fs.readdir(from)) await fs.copyFile(path.join(from, f), path.join(to, f));
}

describe('format 2 keys', () => {
  let dir: string;
  let repo: string;
  let src: string;

  beforeAll(async () => {
    dir = tmpdir('lb-keys-');
    repo = path.join(dir, 'repo');
    src = path.join(dir, 'src');
    await makeFixture(src);
    await cliExpecting(['-r', repo, 'init'], 0, ADMIN);
    await cliExpecting(['-r', repo, 'backup', src], 0, ADMIN);
    await fs.writeFile(path.join(dir, 'host-pw'), 'host-password');
    await cliExpecting(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', path.join(dir, 'host-pw')], 0, ADMIN);
  }, 120_000);
  afterAll(cleanupTmp);

  it('writes format 2: config version 2, a keyring generation, envelopes of format 2', async () => {
    const config = JSON.parse(await fs.readFile(path.join(repo, 'config'), 'utf8')) as { version: number };
    expect(config.version).toBe(2);
    expect((await fs.readdir(path.join(repo, 'keyring'))).length).toBeGreaterThan(0);
    const snap = (await fs.readdir(path.join(repo, 'snapshots')))[0] as string;
    expect((await fs.readFile(path.join(repo, 'snapshots', snap)))[0]).toBe(2);
  });

  it('a restricted key can neither add, upgrade nor remove keys, and writes nothing trying', async () => {
    const before = await listing(repo);
    await fs.writeFile(path.join(dir, 'new-pw'), 'attacker-password');
    expectError(await runCli(['-r', repo, 'key', 'add', '--new-password-file', path.join(dir, 'new-pw')], HOST), 18, /adding a key needs a full key/);
    expectError(await runCli(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', path.join(dir, 'new-pw')], HOST), 18, /needs a full key/);
    expectError(await runCli(['-r', repo, 'key', 'passwd', '--new-password-file', path.join(dir, 'new-pw')], HOST), 18, /changing a password needs a full key/);
    const admin = JSON.parse((await cliExpecting(['-r', repo, '--json', 'key', 'list'], 0, ADMIN)).stdout) as Array<{ id: string; current: boolean }>;
    const adminId = admin.find((s) => s.current)?.id as string;
    expectError(await runCli(['-r', repo, 'key', 'remove', adminId.slice(0, 8)], HOST), 18, /removing a key needs a full key/);
    expectError(await runCli(['-r', repo, 'key', 'rotate'], HOST), 18, /rotating keys needs a full key/);
    expect(await listing(repo)).toEqual(before);
    // The new password opens nothing.
    expectError(await runCli(['-r', repo, 'snapshots'], { ...ENV, LIFEBOAT_PASSWORD: 'attacker-password' }), 12, /wrong password/);
  });

  it('an append-only key cannot raise itself: a forged slot object claiming "full" gets what its grant holds', async () => {
    // The host holds its own slot secret; it can rewrite its slot's public JSON at will.
    const host = await Repository.open(new LocalStore(repo), 'host-password');
    expect(host.role).toBe('append');
    const slotFile = path.join(repo, 'keys', host.slotId);
    const slot = JSON.parse(await fs.readFile(slotFile, 'utf8')) as { role: string };
    slot.role = 'full';
    const forged = Buffer.from(JSON.stringify(slot, null, 2));
    const { createHash } = await import('node:crypto');
    const forgedId = createHash('sha256').update(forged).digest('hex');
    await fs.writeFile(path.join(repo, 'keys', forgedId), forged);
    try {
      const again = await Repository.open(new LocalStore(repo), 'host-password');
      // The forged object has no grant of its own, and the real one stays append-only.
      expect(again.role).toBe('append');
      expect(again.key.macKey).toBeUndefined();
    } finally {
      await fs.rm(path.join(repo, 'keys', forgedId));
    }
  });

  it('snapshots an append-only key writes are marked untrusted to the administrator', async () => {
    await cliExpecting(['-r', repo, 'backup', src], 0, HOST);
    const snaps = JSON.parse((await cliExpecting(['-r', repo, '--json', 'snapshots'], 0, ADMIN)).stdout) as Array<{ trusted?: boolean; writer?: string }>;
    expect(snaps).toHaveLength(2);
    expect(snaps[0]?.trusted).not.toBe(false);
    expect(snaps[1]?.trusted).toBe(false);
  });

  it('a log segment renamed or swapped with another is refused and named', async () => {
    const r = await Repository.open(new LocalStore(repo), 'admin-password');
    await r.putLog('db', '1', 'seg-a', Buffer.from('first segment'));
    await r.putLog('db', '1', 'seg-b', Buffer.from('second segment'));
    const a = path.join(repo, 'logs', 'db', '1', 'seg-a');
    const b = path.join(repo, 'logs', 'db', '1', 'seg-b');
    const [ba, bb] = [await fs.readFile(a), await fs.readFile(b)];
    await fs.writeFile(a, bb);
    await fs.writeFile(b, ba);
    await expect(r.getLog('db', '1', 'seg-a')).rejects.toThrow(/logs\/db\/1\/seg-a: failed authentication \(damaged, tampered with, or stored under another name\)/);
    await expect(r.getLog('db', '1', 'seg-b')).rejects.toThrow(/logs\/db\/1\/seg-b: failed authentication/);
    await fs.writeFile(a, ba);
    await fs.writeFile(b, bb);
    expect((await r.getLog('db', '1', 'seg-a'))?.toString()).toBe('first segment');
  });

  it('a damaged or forged key slot never blocks the other passwords', async () => {
    const junk = Buffer.from('not a key slot');
    const { createHash } = await import('node:crypto');
    const junkId = createHash('sha256').update(junk).digest('hex');
    // A slot demanding absurd scrypt work (N = 2^40) would hang or exhaust every opener.
    const bomb = Buffer.from(JSON.stringify({ version: 2, type: 'password', role: 'full', created: '2000-01-01T00:00:00Z', hostname: 'x', username: 'x', createdBy: '', publicKey: '', kdf: { name: 'scrypt', N: 2 ** 40, r: 8, p: 1, salt: 'AAAAAAAAAAAAAAAAAAAAAA==' }, secret: '' }));
    const bombId = createHash('sha256').update(bomb).digest('hex');
    await fs.writeFile(path.join(repo, 'keys', '0000' + junkId.slice(4)), junk); // also misnamed
    await fs.writeFile(path.join(repo, 'keys', bombId), bomb);
    try {
      const r = await cliExpecting(['-r', repo, 'snapshots'], 0, ADMIN);
      expect(r.stderr).toMatch(/warning: key slot 0000[0-9a-f]{4} skipped: .* does not match its name/);
      expect(r.stderr).toMatch(new RegExp(`warning: key slot ${bombId.slice(0, 8)} skipped: .*out of bounds`));
      await cliExpecting(['-r', repo, 'snapshots'], 0, HOST);
    } finally {
      await fs.rm(path.join(repo, 'keys', '0000' + junkId.slice(4)));
      await fs.rm(path.join(repo, 'keys', bombId));
    }
  });

  it('refuses empty passwords', async () => {
    const d = tmpdir('lb-keys-empty-');
    expectError(await runCli(['-r', path.join(d, 'repo'), 'init'], { ...ENV, LIFEBOAT_PASSWORD: '' }), 2, /empty password|password/);
  });

  it('after key remove, prune --reseal and the epochs destroyed, a removed slot put back opens nothing', async () => {
    await fs.writeFile(path.join(dir, 'old-pw'), 'old-password');
    await cliExpecting(['-r', repo, 'key', 'add', '--new-password-file', path.join(dir, 'old-pw')], 0, ADMIN);
    const OLD = { ...ENV, LIFEBOAT_PASSWORD: 'old-password' };
    await cliExpecting(['-r', repo, 'snapshots'], 0, OLD);
    // What a departing administrator (or a versioned bucket) keeps.
    await copyDir(path.join(repo, 'keys'), path.join(dir, 'kept-keys'));
    await copyDir(path.join(repo, 'keyring'), path.join(dir, 'kept-keyring'));
    const list = JSON.parse((await cliExpecting(['-r', repo, '--json', 'key', 'list'], 0, OLD)).stdout) as Array<{ id: string; current: boolean }>;
    const oldId = list.find((s) => s.current)?.id as string;
    await cliExpecting(['-r', repo, 'key', 'remove', oldId.slice(0, 12)], 0, ADMIN);
    expectError(await runCli(['-r', repo, 'snapshots'], OLD), 12, /wrong password/);

    // Data written after the removal is sealed under a new epoch.
    await fs.writeFile(path.join(src, 'after-removal'), 'written after the key was removed');
    await cliExpecting(['-r', repo, 'backup', src], 0, ADMIN);
    const pruned = JSON.parse((await cliExpecting(['-r', repo, '--json', 'prune', '--reseal', '--grace', '0'], 0, ADMIN)).stdout) as { reseal: { droppedEpochs: string[]; remaining: Record<string, number> } };
    expect(pruned.reseal.droppedEpochs.length).toBeGreaterThan(0);
    expect(pruned.reseal.remaining).toEqual({});
    const keys = JSON.parse((await cliExpecting(['-r', repo, '--json', 'key', 'epochs'], 0, ADMIN)).stdout) as { epochs: unknown[] };
    expect(keys.epochs).toHaveLength(1);

    // Put back the slot and every old keyring generation: the password opens a keyring
    // whose epochs no object uses any more.
    await copyDir(path.join(dir, 'kept-keys'), path.join(repo, 'keys'));
    await copyDir(path.join(dir, 'kept-keyring'), path.join(repo, 'keyring'));
    const r = await runCli(['-r', repo, '--json', 'snapshots'], OLD);
    expect(r.stdout).not.toMatch(/"tree"/);
    const target = path.join(dir, 'stolen');
    expect((await runCli(['-r', repo, 'restore', 'latest', '--target', target], OLD)).code).not.toBe(0);
    expect(await fs.readdir(target).catch(() => [])).toEqual([]);
    // Through the library too: every object is sealed under an epoch that key lacks.
    const held = await Repository.open(new LocalStore(repo), 'old-password');
    const names = await fs.readdir(path.join(repo, 'snapshots'));
    expect(names.length).toBeGreaterThan(0);
    for (const s of names) await expect(held.loadSnapshot(s)).rejects.toThrow(/does not hold/);

    // The administrator still restores everything exactly, and check finds nothing wrong.
    await cliExpecting(['-r', repo, 'check', '--read-data'], 0, ADMIN);
    const out = path.join(dir, 'restored');
    await cliExpecting(['-r', repo, 'restore', 'latest', '--target', out], 0, ADMIN);
    expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
  }, 120_000);
});

describe('forgotten snapshots put back', () => {
  it('stay forgotten: listings, restores and retention ignore them and name them; a restricted key cannot forge a tombstone', async () => {
    const dir = tmpdir('lb-tomb-');
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    await fs.mkdir(src);
    await initRepo(repo, ADMIN.LIFEBOAT_PASSWORD);
    for (const n of [1, 2, 3]) {
      await fs.writeFile(path.join(src, 'f'), `version ${n}\n`);
      await cliExpecting(['-r', repo, 'backup', src], 0, ADMIN);
    }
    const list = () => snapshotsJson(repo, ADMIN.LIFEBOAT_PASSWORD);
    const [first, second, third] = await list();
    // What a thief keeps, and puts back once the administrator has forgotten it.
    const copy = await fs.readFile(path.join(repo, 'snapshots', first!.id));
    await cliExpecting(['-r', repo, 'forget', first!.id], 0, ADMIN);
    expect((await fs.readdir(path.join(repo, 'forgotten'))).some((f) => f.startsWith(`${first!.id}.`))).toBe(true);
    await fs.writeFile(path.join(repo, 'snapshots', first!.id), copy);

    const listed = await runCli(['-r', repo, '--json', 'snapshots'], ADMIN);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((s) => s.id)).toEqual([second!.id, third!.id]);
    expect(listed.stderr).toContain(`warning: snapshots/${first!.id} skipped: this snapshot was forgotten`);
    expect((await runCli(['-r', repo, 'restore', first!.id, '--target', path.join(dir, 'r')], ADMIN)).code).not.toBe(0);
    const checked = await cliExpecting(['-r', repo, 'check'], 0, ADMIN);
    expect(checked.stderr).toContain(`snapshots/${first!.id} was forgotten`);
    // forget by id removes the copy again.
    await cliExpecting(['-r', repo, 'forget', first!.id], 0, ADMIN);
    await expect(fs.stat(path.join(repo, 'snapshots', first!.id))).rejects.toThrow();

    // A tombstone an append-only key (or anyone without a metadata key) makes hides nothing.
    await fs.writeFile(path.join(dir, 'host-pw'), 'host-password');
    await cliExpecting(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', path.join(dir, 'host-pw')], 0, ADMIN);
    const host = await Repository.open(new LocalStore(repo), 'host-password');
    const forged = `forgotten/${second!.id}.${(host.key.keyId >>> 0).toString(16).padStart(8, '0')}.${'0'.repeat(64)}`;
    await fs.writeFile(path.join(repo, forged), '');
    expect((await list()).map((s) => s.id)).toEqual([second!.id, third!.id]);

    // Rotation and re-sealing carry tombstones into the new epoch.
    await fs.rm(path.join(repo, forged));
    await cliExpecting(['-r', repo, 'key', 'rotate'], 0, ADMIN);
    await cliExpecting(['-r', repo, 'prune', '--reseal', '--grace', '0'], 0, ADMIN);
    const epochs = JSON.parse((await cliExpecting(['-r', repo, '--json', 'key', 'epochs'], 0, ADMIN)).stdout) as { epochs: Array<{ id: string; current: boolean }> };
    const current = epochs.epochs.find((e) => e.current)?.id as string;
    expect(await fs.readdir(path.join(repo, 'forgotten'))).toEqual([expect.stringMatching(new RegExp(`^${first!.id}\\.${current}\\.`))]);
    await fs.writeFile(path.join(repo, 'snapshots', first!.id), copy);
    expect((await list()).map((s) => s.id)).toEqual([second!.id, third!.id]);
  }, 120_000);
});
