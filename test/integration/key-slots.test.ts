/**
 * Key slots beyond passwords, through the real CLI: command slots wrapped by the real
 * `age` and `gpg`, and PKCS#11 slots in a SoftHSM2 token. Each opens the repository
 * with no password at all, backs up and restores exactly; a wrong identity, key or PIN
 * fails with one clear line; roles hold (an append-only command slot cannot forget or
 * add keys); and nothing local is ever taken from the repository.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import pkcs11js from 'pkcs11js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmp, cliExpecting, expectError, initRepo, makeFixture, runCli, snapshotOf, tmpdir } from '../helpers.js';

const FAST = { LIFEBOAT_TEST_KDF: 'fast' };
/** No password anywhere: what opens must be the key command or the token. */
const NO_PASSWORD = { ...FAST, LIFEBOAT_PASSWORD: undefined, LIFEBOAT_PASSWORD_FILE: undefined };

let fixture: string;

beforeAll(async () => {
  fixture = path.join(tmpdir('lb-slots-src-'), 'data');
  await fs.mkdir(fixture);
  await makeFixture(fixture);
});
afterAll(cleanupTmp);

async function newRepo(): Promise<string> {
  const repo = path.join(tmpdir('lb-slots-'), 'repo');
  await initRepo(repo);
  return repo;
}

interface Listed { id: string; type: string; role: string; current: boolean }

async function slots(repo: string, args: string[] = [], env: Record<string, string | undefined> = FAST): Promise<Listed[]> {
  return JSON.parse((await cliExpecting([...args, 'key', 'list', '--repo', repo, '--json'], 0, env)).stdout) as Listed[];
}

/** Backs up the fixture and restores it with `open` (no password), and compares. */
async function roundTrip(repo: string, open: string[], env: Record<string, string | undefined>): Promise<void> {
  await cliExpecting([...open, 'backup', '--repo', repo, fixture], 0, env);
  const target = path.join(tmpdir('lb-slots-restore-'), 'out');
  await cliExpecting([...open, 'restore', '--repo', repo, 'latest', '--target', target], 0, env);
  expect(await snapshotOf(path.join(target, fixture))).toEqual(await snapshotOf(fixture));
}

describe('command key slots with age', () => {
  let dir: string;
  let recipient: string;
  let identity: string;

  beforeAll(() => {
    dir = tmpdir('lb-age-');
    identity = path.join(dir, 'identity.txt');
    execFileSync('age-keygen', ['-o', identity], { stdio: 'ignore' });
    recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();
  });

  it('wraps a slot with age, opens with --key-command alone, backs up and restores exactly', async () => {
    const repo = await newRepo();
    const added = JSON.parse((await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`, '--json'], 0, FAST)).stdout) as { id: string; type: string };
    expect(added.type).toBe('command');
    // The slot holds age's output and nothing of the command: no program name, no recipient.
    const stored = await fs.readFile(path.join(repo, 'keys', added.id), 'utf8');
    expect(stored).not.toContain(recipient);
    expect(stored).not.toContain('age -r');
    expect(Buffer.from((JSON.parse(stored) as { secret: string }).secret, 'base64').toString('latin1')).toMatch(/^age-encryption\.org\/v1\n/);

    const open = ['--key-command', `age -d -i ${identity}`];
    await roundTrip(repo, open, NO_PASSWORD);
    // The slot in use is the command slot, and key list names each slot's type.
    const listed = await slots(repo, open, NO_PASSWORD);
    expect(listed.map((s) => [s.type, s.role, s.current]).sort()).toEqual([['command', 'full', true], ['password', 'full', false]]);
    const human = (await cliExpecting([...open, 'key', 'list', '--repo', repo], 0, NO_PASSWORD)).stdout;
    expect(human).toMatch(new RegExp(`^\\* ${added.id.slice(0, 8)}  command `, 'm'));
    // The environment and the JSON array form work too.
    await cliExpecting(['snapshots', '--repo', repo], 0, { ...NO_PASSWORD, LIFEBOAT_KEY_COMMAND: JSON.stringify(['age', '-d', '-i', identity]) });
  });

  it('fails with one clear line and exit 12 for a wrong identity, and exit 2 for a missing program', async () => {
    const repo = await newRepo();
    await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`], 0, FAST);
    const other = path.join(dir, 'other.txt');
    execFileSync('age-keygen', ['-o', other], { stdio: 'ignore' });
    const hint = expectError(await runCli(['--key-command', `age -d -i ${other}`, 'snapshots', '--repo', repo], NO_PASSWORD), 12, /key command opened none of the 1 command key slot .*"age" exited with 1: .*no identity matched/);
    expect(hint).toMatch(/--key-command/);
    expectError(await runCli(['--key-command', 'no-such-unwrapper -d', 'snapshots', '--repo', repo], NO_PASSWORD), 2, /"no-such-unwrapper" cannot be run: no such program/);
    // A repository without command slots says so rather than "wrong key".
    const plain = await newRepo();
    expectError(await runCli(['--key-command', `age -d -i ${identity}`, 'snapshots', '--repo', plain], NO_PASSWORD), 12, /no command key slot/);
  });

  it('refuses to add a slot the given --unwrap-command cannot open, and writes nothing', async () => {
    const repo = await newRepo();
    const other = path.join(dir, 'other2.txt');
    execFileSync('age-keygen', ['-o', other], { stdio: 'ignore' });
    const before = await fs.readdir(path.join(repo, 'keys'));
    expectError(await runCli(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`, '--unwrap-command', `age -d -i ${other}`], FAST), 1, /unwrap command does not give back/);
    expect(await fs.readdir(path.join(repo, 'keys'))).toEqual(before);
    await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`, '--unwrap-command', `age -d -i ${identity}`], 0, FAST);
    expect(await fs.readdir(path.join(repo, 'keys'))).toHaveLength(2);
  });

  it('gives an append-only command slot an append-only key, and a restricted key cannot add one', async () => {
    const repo = await newRepo();
    await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`, '--append-only'], 0, FAST);
    const host = ['--key-command', `age -d -i ${identity}`];
    await cliExpecting([...host, 'backup', '--repo', repo, fixture], 0, NO_PASSWORD);
    expect((await slots(repo, host, NO_PASSWORD)).find((s) => s.current)?.role).toBe('append');
    expectError(await runCli([...host, 'forget', '--repo', repo, '--keep-last', '1'], NO_PASSWORD), 18, /append-only/);

    // Neither the append-only command slot nor an append-only password slot may add a
    // command slot, and the wrap program is never run for them.
    const marker = path.join(dir, 'wrap-ran');
    const wrap = JSON.stringify(['sh', '-c', `touch ${marker}; age -r ${recipient}`]);
    const keysBefore = await fs.readdir(path.join(repo, 'keys'));
    expectError(await runCli([...host, 'key', 'add', '--repo', repo, '--wrap-command', wrap], NO_PASSWORD), 18, /adding a key needs a full key/);
    const pw = path.join(dir, 'append-pw');
    writeFileSync(pw, 'append-password\n');
    await cliExpecting(['key', 'add', '--repo', repo, '--append-only', '--new-password-file', pw], 0, FAST);
    const keysWithPw = await fs.readdir(path.join(repo, 'keys'));
    expect(keysWithPw).toHaveLength(keysBefore.length + 1);
    expectError(await runCli(['--password-file', pw, 'key', 'add', '--repo', repo, '--wrap-command', wrap], FAST), 18, /adding a key needs a full key/);
    expect(await fs.readdir(path.join(repo, 'keys'))).toEqual(keysWithPw);
    expect(existsSync(marker)).toBe(false);
    // The restores of what the append-only slot wrote are exact.
    const target = path.join(tmpdir('lb-slots-restore-'), 'out');
    await cliExpecting([...host, 'restore', '--repo', repo, 'latest', '--target', target], 0, NO_PASSWORD);
    expect(await snapshotOf(path.join(target, fixture))).toEqual(await snapshotOf(fixture));
  });

  it('takes key_command from lifeboat.yaml for a named repository', async () => {
    const repo = await newRepo();
    await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', `age -r ${recipient}`], 0, FAST);
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(config, `repositories:\n  main:\n    stores: [${repo}]\n    key_command: [age, -d, -i, ${identity}]\n`);
    await cliExpecting(['--config', config, 'snapshots', '--repo', 'main'], 0, NO_PASSWORD);
  });
});

describe('command key slots with gpg', () => {
  let home: string;

  beforeAll(() => {
    // Short path: gpg-agent's socket lives in GNUPGHOME, and socket paths are limited to ~100 bytes.
    home = tmpdir('lb-gpg-');
    // future-default is ed25519/cv25519: made in well under a second, where the default
    // RSA 3072 key took 5-8 s of gpg-agent's time. Which algorithm wraps is not the point here.
    execFileSync('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'test@example.org', 'future-default', 'default', 'never'], { env: { ...process.env, GNUPGHOME: home }, stdio: 'ignore' });
  });
  afterAll(() => {
    execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: home }, stdio: 'ignore' });
  });

  it('wraps with gpg -e, opens with gpg -d, backs up and restores exactly', async () => {
    const env = { ...NO_PASSWORD, GNUPGHOME: home };
    const repo = await newRepo();
    await cliExpecting(['key', 'add', '--repo', repo, '--wrap-command', 'gpg --batch --yes --trust-model always -e -r test@example.org'], 0, { ...FAST, GNUPGHOME: home });
    const open = ['--key-command', 'gpg --batch -d'];
    await roundTrip(repo, open, env);
    expect((await slots(repo, open, env)).find((s) => s.current)?.type).toBe('command');
    // Another keyring (no secret key) cannot open it.
    const empty = tmpdir('lb-gpg-');
    try {
      expectError(await runCli([...open, 'snapshots', '--repo', repo], { ...NO_PASSWORD, GNUPGHOME: empty }), 12, /key command opened none .*"gpg" exited with 2/);
    } finally {
      execFileSync('gpgconf', ['--kill', 'gpg-agent'], { env: { ...process.env, GNUPGHOME: empty }, stdio: 'ignore' });
    }
  });
});

describe('PKCS#11 key slots in SoftHSM2', () => {
  const MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so'].find((p) => existsSync(p)) ?? '/usr/lib/softhsm/libsofthsm2.so';
  let env: Record<string, string | undefined>;
  let pinFile: string;
  let tokenArgs: string[];

  beforeAll(() => {
    const dir = tmpdir('lb-hsm-');
    writeFileSync(path.join(dir, 'softhsm2.conf'), `directories.tokendir = ${dir}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n`);
    execFileSync('mkdir', [path.join(dir, 'tokens')]);
    env = { ...NO_PASSWORD, SOFTHSM2_CONF: path.join(dir, 'softhsm2.conf') };
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'test', '--pin', '1234', '--so-pin', '5678'], { env: { ...process.env, SOFTHSM2_CONF: env.SOFTHSM2_CONF }, stdio: 'ignore' });
    // An AES key that never leaves the token, made through the same binding lifeboat uses.
    process.env.SOFTHSM2_CONF = env.SOFTHSM2_CONF;
    const p = new pkcs11js.PKCS11();
    p.load(MODULE);
    p.C_Initialize();
    try {
      const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === 'test');
      if (!slot) throw new Error('SoftHSM2 token "test" not found');
      const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      p.C_Login(session, pkcs11js.CKU_USER, '1234');
      for (const label of ['lifeboat', 'other']) {
        p.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_LABEL, value: label },
          { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
        ]);
      }
      p.C_Logout(session);
      p.C_CloseSession(session);
    } finally {
      p.C_Finalize();
      delete process.env.SOFTHSM2_CONF;
    }
    pinFile = path.join(dir, 'pin');
    writeFileSync(pinFile, '1234\n');
    tokenArgs = ['--pkcs11-module', MODULE, '--pkcs11-token', 'test', '--pkcs11-key-label', 'lifeboat', '--pkcs11-pin-file', pinFile];
  });

  it('wraps a slot with the token key, opens with the token alone, backs up and restores exactly', async () => {
    const repo = await newRepo();
    // The repository opens with its password; the token options describe the new slot.
    const added = JSON.parse((await cliExpecting([...tokenArgs, 'key', 'add', '--repo', repo, '--pkcs11', '--json'], 0, { ...env, LIFEBOAT_PASSWORD: 'test-password' })).stdout) as { id: string; type: string };
    expect(added.type).toBe('pkcs11');
    const stored = JSON.parse(await fs.readFile(path.join(repo, 'keys', added.id), 'utf8')) as { type: string; pkcs11: { mechanism: string } };
    expect(stored).toMatchObject({ type: 'pkcs11', pkcs11: { mechanism: 'CKM_AES_GCM' } });
    // Nothing local is stored: not the module, the token, the key label or the PIN.
    const text = JSON.stringify(stored);
    for (const local of [MODULE, '"test"', 'lifeboat"', '1234']) expect(text).not.toContain(local);

    await roundTrip(repo, tokenArgs, env);
    expect((await slots(repo, tokenArgs, env)).find((s) => s.current)).toMatchObject({ type: 'pkcs11', role: 'full' });
    // The PIN from the environment works too.
    const viaEnv = tokenArgs.filter((a, i) => a !== '--pkcs11-pin-file' && tokenArgs[i - 1] !== '--pkcs11-pin-file');
    await cliExpecting([...viaEnv, 'snapshots', '--repo', repo], 0, { ...env, LIFEBOAT_PKCS11_PIN: '1234' });
  });

  it('fails clearly for a wrong PIN, and for another key of the token', async () => {
    const repo = await newRepo();
    await cliExpecting([...tokenArgs, 'key', 'add', '--repo', repo, '--pkcs11'], 0, { ...env, LIFEBOAT_PASSWORD: 'test-password' });
    const wrongPin = path.join(tmpdir('lb-hsm-pin-'), 'pin');
    writeFileSync(wrongPin, '9999\n');
    const args = tokenArgs.map((a) => (a === pinFile ? wrongPin : a));
    const hint = expectError(await runCli([...args, 'snapshots', '--repo', repo], env), 12, /PKCS#11 token "test" refused the PIN \(CKR_PIN_INCORRECT\)/);
    expect(hint).toMatch(/--pkcs11-pin-file/);
    const other = tokenArgs.map((a) => (a === 'lifeboat' ? 'other' : a));
    expectError(await runCli([...other, 'snapshots', '--repo', repo], env), 12, /PKCS#11 key "other" of token "test" opened none of the 1 PKCS#11 key slot/);
    expectError(await runCli([...tokenArgs.map((a) => (a === 'test' ? 'nope' : a)), 'snapshots', '--repo', repo], env), 2, /no PKCS#11 token labelled "nope"/);
  });

  it('an append-only PKCS#11 slot is append-only', async () => {
    const repo = await newRepo();
    await cliExpecting([...tokenArgs, 'key', 'add', '--repo', repo, '--pkcs11', '--append-only'], 0, { ...env, LIFEBOAT_PASSWORD: 'test-password' });
    await cliExpecting([...tokenArgs, 'backup', '--repo', repo, fixture], 0, env);
    expect((await slots(repo, tokenArgs, env)).find((s) => s.current)).toMatchObject({ type: 'pkcs11', role: 'append' });
    expectError(await runCli([...tokenArgs, 'key', 'rotate', '--repo', repo], env), 18, /needs a full key/);
  });
});
