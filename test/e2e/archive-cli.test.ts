/**
 * pg archive-push / archive-get work however the command line is written: straight
 * to the lean entry point, or through the full CLI when global options come first.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, cleanupTmp, expectError, loadedModules, runCli, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

/** A 16 MiB segment with a valid PostgreSQL 15 long page header. */
function segment(segno: number): Buffer {
  const seg = Buffer.alloc(16 * 1024 * 1024);
  seg.writeUInt16LE(0xd110, 0);
  seg.writeUInt16LE(0x0002, 2);
  seg.writeUInt32LE(1, 4);
  seg.writeBigUInt64LE(BigInt(segno) * 16n * 1024n * 1024n, 8);
  seg.writeBigUInt64LE(7300000000000000001n, 24);
  seg.writeUInt32LE(16 * 1024 * 1024, 32);
  seg.writeUInt32LE(8192, 36);
  seg.fill(0x41, 40, 4096);
  return seg;
}

describe('pg archive-push / archive-get command lines', () => {
  it('accept global options before or after the subcommand, with the same results', async () => {
    const dir = tmpdir();
    const repo = path.join(dir, 'repo');
    expect((await runCli(['init', '--repo', repo])).code).toBe(0);
    const names = ['000000010000000000000003', '000000010000000000000004'];
    for (const n of names) await fs.writeFile(path.join(dir, n), segment(parseInt(n.slice(16), 16)));

    // Lean path (subcommand first) and full CLI path (global option first).
    let r = await runCli(['pg', 'archive-push', '--name', 'm', '--repo', repo, path.join(dir, names[0]!)]);
    expect(r.code, r.stderr).toBe(0);
    r = await runCli(['--repo', repo, 'pg', 'archive-push', '--name', 'm', path.join(dir, names[1]!)]);
    expect(r.code, r.stderr).toBe(0);

    for (const [i, args] of [['pg', 'archive-get', '--name', 'm', '--repo', repo], ['--repo', repo, 'pg', 'archive-get', '--name', 'm']].entries()) {
      const out = path.join(dir, `out-${i}`);
      r = await runCli([...args, names[i]!, out]);
      expect(r.code, r.stderr).toBe(0);
      expect((await fs.readFile(out)).equals(await fs.readFile(path.join(dir, names[i]!)))).toBe(true);
      r = await runCli([...args, '000000010000000000000009', out]);
      expect(r.code).toBe(15);
      expect(r.stderr).toMatch(/not in the archive/);
    }

    // What is not archived is told from the object names, without the key (recovery
    // asks for absent history files at its end): a wrong password still answers
    // "not there", while an archived segment is only ever read with the right one.
    const wrong = { LIFEBOAT_PASSWORD: 'not-the-password' };
    r = await runCli(['pg', 'archive-get', '--name', 'm', '--repo', repo, '00000002.history', path.join(dir, 'h')], wrong);
    expect(r.code, r.stderr).toBe(15);
    expect(r.stderr).toMatch(/00000002\.history is not in the archive of m/);
    r = await runCli(['pg', 'archive-get', '--name', 'm', '--repo', repo, names[0]!, path.join(dir, 'w')], wrong);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBe(15);
    expect(r.stderr).toMatch(/password/i);
    await expect(fs.stat(path.join(dir, 'w'))).rejects.toThrow();
  });

  it('an archive_command whose generated password was removed fails every push (exit 12) and stores nothing', async () => {
    const dir = tmpdir();
    const repo = path.join(dir, 'repo');
    expect((await runCli(['init', '--repo', repo])).code).toBe(0);
    const key = path.join(dir, 'archive.key');
    const added = await runCli(['key', 'add', '--repo', repo, '--append-only', '--generate-password-file', key, '--json']);
    expect(added.code, added.stderr).toBe(0);
    const id = (JSON.parse(added.stdout) as { id: string }).id;
    const push = (n: string) => runCli(['pg', 'archive-push', '--name', 'm', '--repo', repo, '--password-file', key, path.join(dir, n)], { LIFEBOAT_PASSWORD: undefined });
    const names = ['000000010000000000000003', '000000010000000000000004'];
    for (const n of names) await fs.writeFile(path.join(dir, n), segment(parseInt(n.slice(16), 16)));
    expect((await push(names[0]!)).code).toBe(0);
    // An administrator retires the host's key while PostgreSQL keeps archiving.
    expect((await runCli(['key', 'remove', '--repo', repo, id.slice(0, 8)])).code).toBe(0);
    // Non-zero, so PostgreSQL keeps the segment and retries (its failed_count rises): never a silent 0.
    expectError(await push(names[1]!), 12, /wrong password|was removed/);
    const get = await runCli(['pg', 'archive-get', '--name', 'm', '--repo', repo, names[1]!, path.join(dir, 'out')]);
    expect(get.code, get.stderr).toBe(15);
  });

  it('with one of two destinations down: archive-get succeeds by either path (exit 0, never DEGRADED), and a file it cannot rule out stops recovery (128)', async () => {
    const dir = tmpdir();
    const local = path.join(dir, 'repo');
    expect((await runCli(['init', '--repo', local])).code).toBe(0);
    const config = path.join(dir, 'lifeboat.yaml');
    await fs.writeFile(config, `repositories:\n  main:\n    stores: [${local}, "s3:http://127.0.0.1:1/gone/x"]\n    write_quorum: 1\n`);
    const env = { LIFEBOAT_STORE_RETRIES: '1', AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', AWS_REGION: 'us-east-1' };
    const name = '000000010000000000000005';
    await fs.writeFile(path.join(dir, name), segment(5));
    let r = await runCli(['pg', 'archive-push', '--name', 'm', '--repo', local, path.join(dir, name)]);
    expect(r.code, r.stderr).toBe(0);
    const g = ['--config', config, '--repo', 'main'];
    // The lean path, and the full CLI (a global option first).
    for (const [i, args] of [['pg', 'archive-get', '--name', 'm', ...g], [...g, 'pg', 'archive-get', '--name', 'm']].entries()) {
      const out = path.join(dir, `out-${i}`);
      r = await runCli([...args, name, out], env);
      expect(r.code, r.stderr).toBe(0);
      expect((await fs.readFile(out)).equals(await fs.readFile(path.join(dir, name)))).toBe(true);
      // Only the destination that is down could say this file is not there: not "the end of the archive".
      r = await runCli([...args, '00000002.history', path.join(dir, `h-${i}`)], env);
      expect(r.code, r.stderr).toBe(128);
      expect(r.stderr).toMatch(/00000002\.history could not be read from the archive \(STORE_UNAVAILABLE\)/);
    }
    // A password file that cannot be read is no "not in the archive" either.
    r = await runCli(['pg', 'archive-get', '--name', 'm', '--repo', local, '--password-file', path.join(dir, 'missing'), name, path.join(dir, 'w')], { LIFEBOAT_PASSWORD: '' });
    expect(r.code, r.stderr).toBe(128);
  });

  it('refuses a path that names no WAL file before touching the repository or the password', async () => {
    const dir = tmpdir();
    const file = path.join(dir, 'not-a-segment');
    await fs.writeFile(file, segment(3));
    // No repository there and no password anywhere: the name alone decides.
    const r = await runCli(['pg', 'archive-push', '--name', 'm', '--repo', path.join(dir, 'no-repo'), file], { LIFEBOAT_PASSWORD: undefined });
    expectError(r, 2, /"not-a-segment" is not a WAL file name/);
  });

  it('the lean path loads neither the option parser nor the config schemas (its start-up is paid per WAL segment)', async () => {
    const dir = tmpdir();
    const repo = path.join(dir, 'repo');
    expect((await runCli(['init', '--repo', repo])).code).toBe(0);
    const seg = path.join(dir, '000000010000000000000003');
    await fs.writeFile(seg, segment(3));
    const log = path.join(dir, 'modules');
    const preload = ['--import', path.join(ROOT, 'test/fixtures/module-log.mjs')].join(' ');
    // Module URLs, or for the bundle the modules joined into each file it loaded.
    const loaded = () => loadedModules(log);
    for (const args of [['pg', 'archive-push', '--name', 'm', '--repo', repo, seg], ['pg', 'archive-get', '--name', 'm', '--repo', repo, '000000010000000000000003', path.join(dir, 'out')]]) {
      await fs.rm(log, { force: true });
      const r = await runCli(args, { NODE_OPTIONS: preload, MODULE_LOG: log });
      expect(r.code, r.stderr).toBe(0);
      // The log works: the lean entry point itself is in it.
      expect(loaded().some((u) => u.endsWith('/dist/cli/lean.js'))).toBe(true);
      expect(loaded().filter((u) => /\/node_modules\/(zod|commander)\/|\/dist\/cli\/main\.js$|\/dist\/config\//.test(u))).toEqual([]);
    }
  });
});
