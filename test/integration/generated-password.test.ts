/**
 * Generated passwords (`key add --generate-password-file`): 256 random bits written to a
 * new 0600 file, in a slot whose scrypt is cheap, tried before the slow slots of chosen
 * passwords. What a per-segment `pg archive-push` opens with (docs/keys.md).
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, promises as fs, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addSlot, generatePassword, openKeyring, passwordOpener, passwordWrapper, type SlotOpener } from '../../src/repo/keyring.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { cleanupTmp, cliExpecting, expectError, initRepo, makeFixture, runCli, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

interface Listed { id: string; type: string; role: string; current: boolean }

/** The KDF parameters of every slot in a local repository, by slot id. */
function kdfs(repo: string): Map<string, { N: number }> {
  const out = new Map<string, { N: number }>();
  for (const id of readdirSync(path.join(repo, 'keys'))) {
    out.set(id, (JSON.parse(readFileSync(path.join(repo, 'keys', id), 'utf8')) as { kdf: { N: number } }).kdf);
  }
  return out;
}

/** A repository in a new directory, which the test's files go beside. */
async function newRepo(): Promise<{ dir: string; repo: string }> {
  const dir = tmpdir('lb-genpw-');
  const repo = path.join(dir, 'repo');
  await initRepo(repo);
  return { dir, repo };
}

describe('key add --generate-password-file', () => {
  it('writes a new 0600 file, adds a cheap slot of the asked role, and the file opens the repository', async () => {
    const { dir, repo } = await newRepo();
    const file = path.join(dir, 'archive.key');
    // Without the tests' cheap scrypt, so the slot's own parameters show.
    const r = await cliExpecting(['key', 'add', '--repo', repo, '--append-only', '--generate-password-file', file, '--json'], 0, { LIFEBOAT_TEST_KDF: undefined });
    const added = JSON.parse(r.stdout) as { id: string; role: string; passwordFile: string };
    expect(added.role).toBe('append');
    expect(added.passwordFile).toBe(file);
    expect(lstatSync(file).mode & 0o777).toBe(0o600);
    const password = readFileSync(file, 'utf8');
    expect(password).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
    // The password is only ever in the file: not on the terminal.
    expect(r.stdout + r.stderr).not.toContain(password.trim());
    expect(kdfs(repo).get(added.id)?.N).toBe(1024);

    // Opens as that slot, with its role: backs up and restores, cannot forget.
    const open = { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: file };
    const listed = JSON.parse((await cliExpecting(['key', 'list', '--repo', repo, '--json'], 0, open)).stdout) as Listed[];
    expect(listed.find((s) => s.current)).toMatchObject({ id: added.id, role: 'append', type: 'password' });
    const data = path.join(dir, 'data');
    await fs.mkdir(data);
    await makeFixture(data);
    await cliExpecting(['backup', '--repo', repo, data, '-q'], 0, open);
    const out = path.join(dir, 'out');
    await cliExpecting(['restore', '--repo', repo, 'latest', '--target', out, '-q'], 0, open);
    expect(await snapshotOf(path.join(out, data))).toEqual(await snapshotOf(data));
    expectError(await runCli(['forget', '--repo', repo, '--keep-last', '1'], open), 18, /append-only/);
  });

  it('never writes over an existing file or through a symlink, and adds no slot then', async () => {
    const { dir, repo } = await newRepo();
    const before = readdirSync(path.join(repo, 'keys')).sort();

    const existing = path.join(dir, 'existing.key');
    writeFileSync(existing, 'keep me\n');
    expectError(await runCli(['key', 'add', '--repo', repo, '--generate-password-file', existing]), 2, /already exists/);
    expect(readFileSync(existing, 'utf8')).toBe('keep me\n');

    // A symlink planted where the file is to go (to a file the attacker wants written).
    const victim = path.join(dir, 'victim');
    const link = path.join(dir, 'link.key');
    symlinkSync(victim, link);
    expectError(await runCli(['key', 'add', '--repo', repo, '--generate-password-file', link]), 2, /already exists/);
    expect(() => lstatSync(victim)).toThrow();

    expectError(await runCli(['key', 'add', '--repo', repo, '--generate-password-file', path.join(dir, 'no-such-dir', 'k')]), 2, /cannot create .*ENOENT/);
    // Given with another way to protect the slot: refused before anything is made.
    const both = path.join(dir, 'both.key');
    expectError(await runCli(['key', 'add', '--repo', repo, '--generate-password-file', both, '--new-password-file', existing]), 2, /give one of/);
    expect(() => lstatSync(both)).toThrow();
    expect(readdirSync(path.join(repo, 'keys')).sort()).toEqual(before);
  });

  it('takes the file back when the slot cannot be stored (a read-only repository)', async (ctx) => {
    const { dir, repo } = await newRepo();
    const readOnly = path.join(dir, 'ro');
    mkdirSync(readOnly);
    try {
      // Read-only even for root: a bind mount remounted ro (where mounting is allowed).
      execFileSync('mount', ['--bind', repo, readOnly], { stdio: 'ignore' });
    } catch {
      return ctx.skip();
    }
    try {
      execFileSync('mount', ['-o', 'remount,bind,ro', readOnly], { stdio: 'ignore' });
      const file = path.join(dir, 'archive.key');
      expectError(await runCli(['key', 'add', '--repo', readOnly, '--generate-password-file', file]), 18, /writing keys\/.*permission denied/);
      expect(() => lstatSync(file)).toThrow();
    } finally {
      execFileSync('umount', [readOnly]);
    }
  });
});

describe('opening tries cheap password slots first', () => {
  it('opens with a generated password without deriving any slow slot’s key, and still opens with the chosen one', async () => {
    const dir = tmpdir('lb-genpw-order-');
    const repoDir = path.join(dir, 'repo');
    // Chosen passwords get the real parameters here (N = 2^15), as outside the tests.
    const fast = process.env.LIFEBOAT_TEST_KDF;
    delete process.env.LIFEBOAT_TEST_KDF;
    try {
      const store = new LocalStore(repoDir);
      await Repository.init(store, 'chosen');
      const admin = await Repository.open(store, 'chosen');
      const generated = generatePassword();
      let keyring = admin.keyring!;
      const cheap = await addSlot(store, keyring, passwordWrapper(generated, { generated: true }), 'append', () => {});
      keyring = cheap.keyring;
      // Slow slots until one comes before the cheap one in storage order (by id), so an
      // opener trying them in that order would derive a slow key first.
      for (let i = 0; i < 30 && readdirSync(path.join(repoDir, 'keys')).sort()[0] === cheap.id; i++) {
        keyring = (await addSlot(store, keyring, passwordWrapper(`chosen-${i}`), 'full', () => {})).keyring;
      }
      expect(readdirSync(path.join(repoDir, 'keys')).sort()[0]).not.toBe(cheap.id);

      const tried = (password: string): { opener: SlotOpener; ids: string[] } => {
        const inner = passwordOpener(password);
        const ids: string[] = [];
        return { ids, opener: { ...inner, unwrap: (slot, id) => (ids.push(id), inner.unwrap(slot, id)) } };
      };
      const g = tried(generated);
      expect((await openKeyring(store, g.opener)).slotId).toBe(cheap.id);
      expect(g.ids).toEqual([cheap.id]);

      const c = tried('chosen');
      expect((await openKeyring(store, c.opener)).slotId).toBe(admin.slotId);
      expect(c.ids[0]).toBe(cheap.id);
      expect(c.ids).toContain(admin.slotId);
    } finally {
      if (fast !== undefined) process.env.LIFEBOAT_TEST_KDF = fast;
    }
  });
});
