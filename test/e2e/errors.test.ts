/**
 * End-to-end bad input: wrong or missing passwords, missing or foreign repositories,
 * unreadable and missing sources, bad arguments, and key management. Each case checks
 * what a user sees (the exit code of docs/exit-codes, one `lifeboat: ...` line and a
 * `  hint: ...` line on stderr) and that nothing stored was damaged by the attempt.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, cleanupTmp, makeFixture, pseudoRandom, runCli, snapshotOf, tmpdir, type CliResult, cliExpecting, expectError } from '../helpers.js';

afterAll(cleanupTmp);

const PASSWORD = 'test-password';
const isRoot = process.getuid?.() === 0;

// ---- helpers -------------------------------------------------------------

function cli(args: string[], expectCode = 0, env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return cliExpecting(args, expectCode, env);
}

/** A commander usage error: exit 2, the reason, and the pointer to --help. */
function expectUsage(r: CliResult, message: RegExp): void {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  expect(r.code, context).toBe(2);
  expect(r.stderr, context).toMatch(message);
  expect(r.stderr, context).toMatch(/--help/);
}

/** sha256 of every stored object except locks and temporary files: what must not change. */
async function fingerprint(repo: string, skip: string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of await fs.readdir(path.join(repo, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (['locks', 'tmp', ...skip].includes(r)) continue;
      if (e.isDirectory()) await walk(r);
      else out[r] = createHash('sha256').update(await fs.readFile(path.join(repo, r))).digest('hex');
    }
  };
  await walk('');
  return out;
}

async function snapshotsOf(repo: string, env: Record<string, string | undefined> = {}): Promise<Array<{ id: string; paths: string[]; tags: string[] }>> {
  return JSON.parse((await cli(['snapshots', '--repo', repo, '--json'], 0, env)).stdout);
}

/** A repository holding one snapshot of a small fixture; returns its paths. */
async function repoWithSnapshot(env: Record<string, string | undefined> = {}): Promise<{ base: string; repo: string; src: string }> {
  const base = tmpdir('lb-err-');
  const src = path.join(base, 'src');
  await makeFixture(src);
  const repo = path.join(base, 'repo');
  await cli(['init', '--repo', repo], 0, env);
  await cli(['backup', '--repo', repo, src], 0, env);
  return { base, repo, src };
}

async function expectRestores(repo: string, ref: string, src: string, env: Record<string, string | undefined> = {}): Promise<void> {
  const out = path.join(tmpdir('lb-out-'), 'target');
  await cli(['restore', '--repo', repo, ref, '--target', out], 0, env);
  expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
}

/** Runs the CLI as the unprivileged `nobody` user (root can read mode-000 files). */
function runAsNobody(args: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('runuser', ['-u', 'nobody', '--', process.execPath, CLI, ...args], {
      cwd,
      env: { ...process.env, LIFEBOAT_PASSWORD: PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
}

// ---- 5. wrong password (real scrypt parameters) ------------------------------

describe('wrong password', () => {
  it('exits 12 with "wrong password" and changes nothing (real KDF parameters)', async () => {
    const real = { LIFEBOAT_TEST_KDF: '' };
    const { base, repo, src } = await repoWithSnapshot(real);
    // The key slot was made with the real parameters, not the cheap test ones.
    const [slotFile] = await fs.readdir(path.join(repo, 'keys'));
    const slot = JSON.parse(await fs.readFile(path.join(repo, 'keys', slotFile as string), 'utf8'));
    expect(slot.kdf.N).toBe(2 ** 15);
    const before = await fingerprint(repo);

    const wrong = { ...real, LIFEBOAT_PASSWORD: 'not-the-password' };
    expectError(await runCli(['snapshots', '--repo', repo], wrong), 12, /wrong password/);
    expectError(await runCli(['backup', '--repo', repo, src], wrong), 12, /wrong password/);
    const target = path.join(base, 'out');
    expectError(await runCli(['restore', '--repo', repo, 'latest', '--target', target], wrong), 12, /wrong password/);
    expect(existsSync(target)).toBe(false);
    expectError(await runCli(['check', '--repo', repo, '--read-data'], wrong), 12, /wrong password/);
    // From a password file too (a trailing newline is not part of the password).
    const pwFile = path.join(base, 'pw');
    await fs.writeFile(pwFile, 'also-wrong\n');
    expectError(await runCli(['snapshots', '--repo', repo, '--password-file', pwFile], real), 12, /wrong password/);
    // An empty password is a wrong password, not "no password".
    expectError(await runCli(['snapshots', '--repo', repo], { ...real, LIFEBOAT_PASSWORD: '' }), 12, /wrong password/);

    expect(await fingerprint(repo)).toEqual(before);
    expect(await fs.readdir(path.join(repo, 'locks')).catch(() => [])).toEqual([]);
    // The right password still opens it, also from a file with a trailing newline.
    await fs.writeFile(pwFile, `${PASSWORD}\n`);
    expect(await snapshotsOf(repo, { ...real, LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: pwFile })).toHaveLength(1);
    await expectRestores(repo, 'latest', src, real);
  }, 60_000);
});

// ---- 6. repository problems ----------------------------------------------------

describe('repository problems', () => {
  it('a missing repository exits 10 and is not created', async () => {
    const base = tmpdir('lb-err-');
    const missing = path.join(base, 'no-such-repo');
    expectError(await runCli(['snapshots', '--repo', missing]), 10, /no repository/);
    expectError(await runCli(['backup', '--repo', missing, base]), 10, /no repository/);
    expectError(await runCli(['check', '--repo', missing]), 10, /no repository/);
    expectError(await runCli(['restore', '--repo', missing, 'latest', '--target', path.join(base, 'out')]), 10, /no repository/);
    expect(existsSync(missing)).toBe(false);
    expect(existsSync(path.join(base, 'out'))).toBe(false);
    // Through the environment variable as well.
    expectError(await runCli(['snapshots'], { LIFEBOAT_REPOSITORY: missing }), 10, /no repository/);
    expect(existsSync(missing)).toBe(false);
  });

  it('a repository of format version 99 exits 14 and is left as it is', async () => {
    const { repo, src } = await repoWithSnapshot();
    const configFile = path.join(repo, 'config');
    const config = JSON.parse(await fs.readFile(configFile, 'utf8'));
    expect(config.version).toBe(2);
    await fs.writeFile(configFile, JSON.stringify({ ...config, version: 99 }, null, 2));
    const before = await fingerprint(repo);
    expectError(await runCli(['snapshots', '--repo', repo]), 14, /version 99/);
    expectError(await runCli(['backup', '--repo', repo, src]), 14, /version 99/);
    expectError(await runCli(['check', '--repo', repo]), 14, /version 99/);
    expectError(await runCli(['restore', '--repo', repo, 'latest', '--target', path.join(repo, '..', 'out')]), 14, /version 99/);
    expectError(await runCli(['key', 'list', '--repo', repo]), 14, /version 99/);
    expectError(await runCli(['init', '--repo', repo]), 2, /already exists/);
    expect(await fingerprint(repo)).toEqual(before);
    // Put back, it is the same repository as before.
    await fs.writeFile(configFile, JSON.stringify(config, null, 2));
    expect(await snapshotsOf(repo)).toHaveLength(1);
  });

  it('no password at all (no variable, no file, no terminal) exits 12', async () => {
    const { base, repo, src } = await repoWithSnapshot();
    const before = await fingerprint(repo);
    const none = { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: undefined };
    expectError(await runCli(['snapshots', '--repo', repo], none), 12, /no password/);
    expectError(await runCli(['backup', '--repo', repo, src], none), 12, /no password/);
    // init without a password creates nothing.
    const fresh = path.join(base, 'fresh');
    expectError(await runCli(['init', '--repo', fresh], none), 12, /no password/);
    expect(existsSync(path.join(fresh, 'config'))).toBe(false);
    expect(await fs.readdir(path.join(fresh, 'keys')).catch(() => [])).toEqual([]);
    // A password file that does not exist is a usage error naming it.
    const nofile = path.join(base, 'no-such-password-file');
    expectError(await runCli(['snapshots', '--repo', repo, '--password-file', nofile], none), 2, new RegExp(nofile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('init twice fails and the first repository still opens with its password', async () => {
    const { repo, src } = await repoWithSnapshot();
    const before = await fingerprint(repo);
    expectError(await runCli(['init', '--repo', repo]), 2, /already exists/);
    expectError(await runCli(['init', '--repo', repo], { LIFEBOAT_PASSWORD: 'another-password' }), 2, /already exists/);
    expect(await fingerprint(repo)).toEqual(before);
    expect(await fs.readdir(path.join(repo, 'keys'))).toHaveLength(1);
    expect(await snapshotsOf(repo)).toHaveLength(1);
    expectError(await runCli(['snapshots', '--repo', repo], { LIFEBOAT_PASSWORD: 'another-password' }), 12, /wrong password/);
    await expectRestores(repo, 'latest', src);
    await cli(['check', '--repo', repo, '--read-data']);
  });
});

// ---- 7. unreadable source file -------------------------------------------------

describe('an unreadable source file', () => {
  it('backup exits 3, names the file, and the snapshot holds everything readable', async () => {
    const base = tmpdir('lb-unread-');
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'readable\n');
    await fs.writeFile(path.join(src, 'sub', 'b.bin'), pseudoRandom(300_000, 5));
    await fs.writeFile(path.join(src, 'sub', 'large.bin'), pseudoRandom(3 * 1024 * 1024, 6));
    const secret = path.join(src, 'sub', 'secret.txt');
    await fs.writeFile(secret, 'nobody may read this\n');
    await fs.chmod(secret, 0o000);
    const repo = path.join(base, 'repo');

    let r: CliResult;
    if (isRoot) {
      // Root reads mode-000 files: run as nobody, who can read everything else.
      await fs.chmod(base, 0o777);
      for (const d of [src, path.join(src, 'sub')]) await fs.chmod(d, 0o755);
      for (const f of ['a.txt', 'sub/b.bin', 'sub/large.bin']) await fs.chmod(path.join(src, f), 0o644);
      const init = await runAsNobody(['init', '--repo', repo], base);
      expect(init.code, init.stderr).toBe(0);
      r = await runAsNobody(['backup', '--repo', repo, src, '--json'], base);
    } else {
      await cli(['init', '--repo', repo]);
      r = await runCli(['backup', '--repo', repo, src, '--json']);
    }
    expectError(r, 3, /could not be read/);
    expect(r.stderr).toContain(secret);
    expect(r.stderr).toMatch(/permission denied|EACCES/i);
    const report = JSON.parse(r.stdout) as { id: string; summary: { errors: number; totalFiles: number }; errors: Array<{ path: string }> };
    expect(report.errors.map((e) => e.path)).toEqual([secret]);
    expect(report.summary.errors).toBe(1);

    // The snapshot exists and holds the readable files, exactly.
    const snaps = await snapshotsOf(repo);
    expect(snaps.map((s) => s.id)).toEqual([report.id]);
    // Not below base: it is open to everyone (for nobody's backup), and a restore refuses such a parent.
    const out = path.join(tmpdir('lb-unread-out-'), 'out');
    await cli(['restore', '--repo', repo, report.id, '--target', out]);
    const restored = path.join(out, src);
    expect(existsSync(path.join(restored, 'sub', 'secret.txt'))).toBe(false);
    for (const f of ['a.txt', 'sub/b.bin', 'sub/large.bin']) {
      expect((await fs.readFile(path.join(restored, f))).equals(await fs.readFile(path.join(src, f))), f).toBe(true);
    }
    const ls = await cli(['ls', '--repo', repo, report.id]);
    expect(ls.stdout).not.toContain('secret.txt');
    expect(ls.stdout).toContain(path.join(src, 'sub', 'large.bin'));
    await cli(['check', '--repo', repo, '--read-data']);
  }, 60_000);
});

// ---- 8. bad arguments ------------------------------------------------------------

describe('bad arguments', () => {
  it('a missing source path: exit 3 when other paths worked, with the path named', async () => {
    const { base, repo, src } = await repoWithSnapshot();
    const missing = path.join(base, 'does-not-exist');
    const r = await runCli(['backup', '--repo', repo, src, missing, '--json']);
    expectError(r, 3, /could not be read/);
    expect(r.stderr).toContain(missing);
    const id = JSON.parse(r.stdout).id as string;
    await expectRestores(repo, id, src);
    expect(existsSync(missing)).toBe(false);
  });

  it('only missing source paths: the backup fails (not 0, not "partial") and stores no snapshot', async () => {
    const { base, repo } = await repoWithSnapshot();
    const before = await snapshotsOf(repo);
    const missing = path.join(base, 'does-not-exist');
    const r = await runCli(['backup', '--repo', repo, missing]);
    expect(r.stderr).toContain(missing);
    expect(r.code, r.stderr).not.toBe(0);
    expect(r.code, `a backup of nothing is not a partial success: ${r.stderr}`).not.toBe(3);
    expect(r.stderr).toMatch(/^lifeboat: .+\n {2}hint: \S/m);
    expect(await snapshotsOf(repo)).toEqual(before);
  });

  it('restore of a snapshot id that does not exist exits 15', async () => {
    const { base, repo } = await repoWithSnapshot();
    const before = await fingerprint(repo);
    const target = path.join(base, 'out');
    expectError(await runCli(['restore', '--repo', repo, 'deadbeef', '--target', target]), 15, /no snapshot deadbeef/);
    expect(existsSync(target)).toBe(false);
    // Not an id at all: a usage error.
    expectError(await runCli(['restore', '--repo', repo, 'not-an-id', '--target', target]), 2, /not a snapshot id/);
    expect(existsSync(target)).toBe(false);
    expect(await fingerprint(repo)).toEqual(before);
  });

  it('restore of "latest" from a repository without snapshots exits 15 (with a hint, like every error)', async () => {
    const base = tmpdir('lb-err-');
    const empty = path.join(base, 'empty');
    await cli(['init', '--repo', empty]);
    const before = await fingerprint(empty);
    const target = path.join(base, 'out');
    expectError(await runCli(['restore', '--repo', empty, 'latest', '--target', target]), 15, /no snapshots/);
    expect(existsSync(target)).toBe(false);
    expect(await fingerprint(empty)).toEqual(before);
  });

  it('malformed options exit 2: --time, --read-data-subset, --threads, unknown command and option, missing --target', async () => {
    const { repo, src } = await repoWithSnapshot();
    const before = await fingerprint(repo);
    expectError(await runCli(['backup', '--repo', repo, src, '--time', 'notatime']), 2, /notatime.*RFC 3339/);
    expectError(await runCli(['backup', '--repo', repo, src, '--time', '2026-13-45T99:00:00Z']), 2, /RFC 3339/);
    expectError(await runCli(['check', '--repo', repo, '--read-data-subset', '500%']), 2, /500%.*percentage/);
    expectError(await runCli(['check', '--repo', repo, '--read-data-subset', '0%']), 2, /percentage/);
    expectError(await runCli(['check', '--repo', repo, '--read-data-subset', 'half']), 2, /percentage/);
    // --threads 0 (or text) once queued the backup's jobs for no worker: exit 0, nothing stored.
    for (const n of ['0', 'abc', '65']) expectError(await runCli(['backup', '--repo', repo, src, '--threads', n]), 2, new RegExp(`--threads "${n}" is not a whole number from 1 to 64`));
    expectError(await runCli(['restore', '--repo', repo, 'latest', '--target', path.join(src, '..', 'never'), '--threads', '0']), 2, /--threads "0" is not a whole number/);
    expect(existsSync(path.join(src, '..', 'never'))).toBe(false);
    expectUsage(await runCli(['frobnicate', '--repo', repo]), /unknown command 'frobnicate'/);
    expectUsage(await runCli(['backup', '--repo', repo, src, '--frobnicate']), /unknown option '--frobnicate'/);
    expectUsage(await runCli(['snapshots', '--repo', repo, '--frobnicate']), /unknown option '--frobnicate'/);
    expectUsage(await runCli(['restore', '--repo', repo, 'latest']), /--target/);
    expectUsage(await runCli(['backup', '--repo', repo]), /missing required argument/);
    expectError(await runCli(['snapshots'], { LIFEBOAT_REPOSITORY: undefined }), 2, /no repository given/);
    expect(await fingerprint(repo)).toEqual(before);
    expect(await snapshotsOf(repo)).toHaveLength(1);
  });
});

// ---- 9. key management ------------------------------------------------------------

describe('key management', () => {
  it('add, list, remove, refuse to remove the slot in use, change the password', async () => {
    const { base, repo, src } = await repoWithSnapshot();
    const stored = await fingerprint(repo, ['keys', 'keyring']);
    const pwB = path.join(base, 'pw-b');
    const pwC = path.join(base, 'pw-c');
    await fs.writeFile(pwB, 'second password\n');
    await fs.writeFile(pwC, 'third password\n');
    const asA = {};
    const asB = { LIFEBOAT_PASSWORD: 'second password' };
    const asC = { LIFEBOAT_PASSWORD: 'third password' };
    type Slot = { id: string; current: boolean };
    const list = async (env: Record<string, string | undefined>): Promise<Slot[]> =>
      JSON.parse((await cli(['key', 'list', '--repo', repo, '--json'], 0, env)).stdout);

    // add
    const added = await cli(['key', 'add', '--repo', repo, '--new-password-file', pwB, '--json']);
    const idB = JSON.parse(added.stdout).id as string;
    expect(idB).toMatch(/^[0-9a-f]{64}$/);
    // the new password opens the repository (from the environment and from a file)
    expect(await snapshotsOf(repo, asB)).toHaveLength(1);
    expect(await snapshotsOf(repo, { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: pwB })).toHaveLength(1);
    // list shows both, and which one is in use
    const slots = await list(asA);
    expect(slots).toHaveLength(2);
    const idA = (slots.find((s) => s.current) as Slot).id;
    expect(idA).not.toBe(idB);
    expect(slots.map((s) => s.id).sort()).toEqual([idA, idB].sort());
    expect((await list(asB)).find((s) => s.current)?.id).toBe(idB);
    // human-readable list marks the slot in use
    const human = await cli(['key', 'list', '--repo', repo]);
    expect(human.stdout).toMatch(new RegExp(`^\\* ${idA.slice(0, 8)} `, 'm'));
    expect(human.stdout).toMatch(new RegExp(`^  ${idB.slice(0, 8)} `, 'm'));

    // removing the slot in use is refused, and nothing changes
    expectError(await runCli(['key', 'remove', '--repo', repo, idA.slice(0, 8)]), 2, /refusing to remove/);
    expect(await list(asA)).toHaveLength(2);
    // an unknown key id
    const unknown = [...'0123456789abcdef'].find((c) => !idA.startsWith(c) && !idB.startsWith(c)) as string;
    expectError(await runCli(['key', 'remove', '--repo', repo, `${unknown}${unknown}${unknown}${unknown}`]), 15, /no key/);

    // remove the other slot: its password stops working, ours still works
    await cli(['key', 'remove', '--repo', repo, idB.slice(0, 8)]);
    expect((await list(asA)).map((s) => s.id)).toEqual([idA]);
    expectError(await runCli(['snapshots', '--repo', repo], asB), 12, /wrong password/);

    // B can now remove A, once B is a slot again (opened with B, A is not in use)
    await cli(['key', 'add', '--repo', repo, '--new-password-file', pwB]);
    const idB2 = ((await list(asB)).find((s) => s.current) as Slot).id;
    await cli(['key', 'remove', '--repo', repo, idA.slice(0, 8)], 0, asB);
    expectError(await runCli(['snapshots', '--repo', repo], asA), 12, /wrong password/);
    expect((await list(asB)).map((s) => s.id)).toEqual([idB2]);

    // passwd: the old password fails with 12, the new one works
    await cli(['key', 'passwd', '--repo', repo, '--new-password-file', pwC], 0, asB);
    expectError(await runCli(['snapshots', '--repo', repo], asB), 12, /wrong password/);
    const after = await list(asC);
    expect(after).toHaveLength(1);
    expect(after[0]?.current).toBe(true);
    expect(after[0]?.id).not.toBe(idB2);

    // The data never changed (key slots and keyring generations aside), and is readable with the new password.
    expect(await fingerprint(repo, ['keys', 'keyring'])).toEqual(stored);
    expect(await snapshotsOf(repo, asC)).toHaveLength(1);
    await expectRestores(repo, 'latest', src, asC);
    await cli(['check', '--repo', repo, '--read-data'], 0, asC);
  }, 180_000); // about 25 CLI runs, each deriving a key: minutes on a loaded 2-core machine
});
