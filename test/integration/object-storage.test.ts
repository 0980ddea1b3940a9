/**
 * Repositories on object storage, through the real CLI against a real S3-compatible
 * server (s3rver on 127.0.0.1): init, backup, byte-identical restore, check, forget;
 * what is written is ordinary S3 objects an independent client (rclone) lists; a
 * backup through a store failing 10 % of its calls; several destinations with one
 * down, then `repair`; `copy` to an offsite repository; append-only clients; and the
 * errors a user can cause (unknown scheme, missing bucket, wrong credentials,
 * unreachable endpoint), each naming the store with its documented exit code.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { restore } from '../../src/engine/restore/restorer.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { FaultyStore } from '../../src/storage/wrappers/faulty.js';
import { RetryStore } from '../../src/storage/wrappers/retry.js';
import { cleanupTmp, cliExpecting, expectError, initRepo, makeFixture, runCli, snapshotOf, tmpdir } from '../helpers.js';
import { startAzurite } from '../azurite.js';
import { rcloneS3Env, S3_ENV, type S3Server, startS3rver } from '../s3rver.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw', ...S3_ENV, LIFEBOAT_STORE_RETRIES: '2' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

let server: S3Server;
let fixture: string;
beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket('lifeboat');
  fixture = tmpdir('lb-os-src-');
  await makeFixture(fixture);
}, 60_000);
afterAll(async () => {
  await server?.stop();
  cleanupTmp();
});

const s3 = (prefix: string) => `s3:${server.endpoint}/lifeboat/${prefix}`;

async function restoredMatches(repo: string, extra: string[] = [], code = 0): Promise<void> {
  const target = path.join(tmpdir('lb-os-restore-'), 'out');
  await cli(['-r', repo, ...extra, 'restore', 'latest', '--target', target], code);
  expect(await snapshotOf(path.join(target, fixture))).toEqual(await snapshotOf(fixture));
}

describe('an S3 repository', () => {
  it('backs up, restores byte for byte, checks and forgets; rclone sees ordinary objects', async () => {
    const repo = s3('main');
    await cli(['init', '-r', repo]);
    await cli(['-r', repo, 'backup', fixture, '--tag', 'first']);
    await cli(['-r', repo, 'backup', fixture, '--tag', 'second']);
    await restoredMatches(repo);
    const check = await cli(['-r', repo, 'check', '--read-data']);
    expect(check.stdout).toMatch(/no errors/);
    await cli(['-r', repo, 'forget', '--keep-last', '1']);
    const snaps = JSON.parse((await cli(['-r', repo, '--json', 'snapshots'])).stdout) as Array<{ tags: string[] }>;
    expect(snaps.map((s) => s.tags)).toEqual([['second']]);

    const rclone = execFileSync('rclone', ['lsf', '--recursive', '--files-only', 's3:lifeboat/main'], {
      env: rcloneS3Env(server.endpoint),
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean);
    expect(rclone).toContain('config');
    expect(rclone.some((k) => /^data\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(k))).toBe(true);
    expect(rclone.filter((k) => k.startsWith('snapshots/'))).toHaveLength(1);
    expect(rclone.some((k) => k.startsWith('keys/'))).toBe(true);
  });

  it('explains bad locations, a missing bucket, wrong credentials and an unreachable endpoint', async () => {
    expectError(await runCli(['init', '-r', 'ftp://host/x'], ENV), 2, /unknown repository scheme "ftp:"/);
    expectError(await runCli(['init', '-r', 's3:not a url'], ENV), 2, /cannot read S3 location/);
    expectError(await runCli(['snapshots', '-r', `s3:${server.endpoint}/no-bucket/x`], ENV), 10, /bucket "no-bucket" does not exist/);
    const wrong = await runCli(['snapshots', '-r', s3('main')], { ...ENV, AWS_ACCESS_KEY_ID: 'NOBODY' });
    expectError(wrong, 18, new RegExp(`s3:http://127\\.0\\.0\\.1:\\d+/lifeboat/main.*access denied`));
    const down = await runCli(['snapshots', '-r', 's3:http://127.0.0.1:9/lifeboat/x'], ENV);
    expectError(down, 16, /s3:http:\/\/127\.0\.0\.1:9\/lifeboat\/x/);
  });
});

describe('an Azure repository', () => {
  it('backs up, restores byte for byte, checks and forgets (azurite)', async () => {
    const azurite = await startAzurite();
    try {
      await azurite.service.getContainerClient('lifeboat').create();
      const env = { ...ENV, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString };
      const az = (args: string[]) => cliExpecting(args, 0, env);
      const repo = 'azure:lifeboat/main';
      await az(['init', '-r', repo]);
      await az(['-r', repo, 'backup', fixture, '--tag', 'first']);
      await az(['-r', repo, 'backup', fixture, '--tag', 'second']);
      const target = path.join(tmpdir('lb-az-restore-'), 'out');
      await az(['-r', repo, 'restore', 'latest', '--target', target]);
      expect(await snapshotOf(path.join(target, fixture))).toEqual(await snapshotOf(fixture));
      expect((await az(['-r', repo, 'check', '--read-data'])).stdout).toMatch(/no errors/);
      await az(['-r', repo, 'forget', '--keep-last', '1']);
      expect(JSON.parse((await az(['-r', repo, '--json', 'snapshots'])).stdout)).toHaveLength(1);
      expectError(await runCli(['-r', 'azure:no-such-container/x', 'snapshots'], env), 10, /azure:no-such-container\/x/);
    } finally {
      await azurite.stop();
    }
  });
});

describe('a store that fails 10 % of its calls', () => {
  it('still backs up completely (retries), and the restore is exact', async () => {
    const root = tmpdir('lb-faulty-');
    const faulty = new FaultyStore(new LocalStore(root), { rate: 0.1, seed: 7, kinds: ['error', 'timeout', 'truncate'], timeoutMs: 5 });
    const store = new RetryStore(faulty, { attempts: 10, baseMs: 1, capMs: 5 });
    await Repository.init(store, 'pw');
    const repo = await Repository.open(store, 'pw');
    // Three backups of changing data and two restores: a few hundred store calls.
    let last = (await backup(repo, { paths: [fixture] })).snapshot;
    for (let i = 0; i < 2; i++) {
      await fs.writeFile(path.join(fixture, `changed-${i}.bin`), Buffer.alloc(3 << 20, i + 1));
      last = (await backup(repo, { paths: [fixture] })).snapshot;
      const target = path.join(tmpdir('lb-faulty-restore-'), 'out');
      await restore(repo, last, { target });
      expect(await snapshotOf(path.join(target, fixture))).toEqual(await snapshotOf(fixture));
    }
    expect(faulty.faults).toBeGreaterThan(0);
    // And the repository left behind is whole, read without faults.
    const check = await cli(['-r', root, 'check', '--read-data']);
    expect(check.stdout).toMatch(/no errors/);
  });
});

describe('several destinations', () => {
  it('backs up with one destination down when the quorum allows, and repair restores redundancy', async () => {
    const dir = tmpdir('lb-multi-');
    const local = path.join(dir, 'local');
    // A second server for this test alone: it is stopped and brought back.
    let offsite = await startS3rver();
    await offsite.createBucket('offsite');
    const config = path.join(dir, 'lifeboat.yaml');
    const writeConfig = (endpoint: string) =>
      writeFileSync(config, `repositories:\n  main:\n    stores:\n      - ${local}\n      - s3:${endpoint}/offsite/main\n    write_quorum: 1\n`);
    writeConfig(offsite.endpoint);
    const g = ['--config', config, '-r', 'main'];
    await cli([...g, 'init']);
    const at = { directory: offsite.directory, port: offsite.port };
    await offsite.stop();
    // Stored on the local destination, and the exit status says the offsite one was
    // left out (DEGRADED), not only a warning among the output.
    const b = await cli([...g, 'backup', fixture], 28);
    expect(b.stderr).toMatch(/left out for the rest of this run/);
    expect(b.stderr).toMatch(new RegExp(`lifeboat: done, but s3:${offsite.endpoint.replace(/[.]/g, '\\.')}/offsite/main was left out`));
    // A restore reads what the local one holds, and says its view lacked the offsite one.
    await restoredMatches('main', ['--config', config], 28);

    offsite = await startS3rver(at);
    try {
      const r = JSON.parse((await cli([...g, '--json', 'repair'])).stdout) as { copied: Record<string, number> };
      expect(Object.values(r.copied).reduce((a, n) => a + n, 0)).toBeGreaterThan(3);
      const again = JSON.parse((await cli([...g, '--json', 'repair'])).stdout) as { copied: Record<string, number> };
      expect(Object.values(again.copied).every((n) => n === 0)).toBe(true);
      // The offsite copy alone is now a whole repository.
      const alone = `s3:${offsite.endpoint}/offsite/main`;
      expect((await cli(['-r', alone, 'check', '--read-data'])).stdout).toMatch(/no errors/);
      await restoredMatches(alone);
    } finally {
      await offsite.stop();
    }
  });

  it('refuses a malformed configuration, naming the key and line', async () => {
    const dir = tmpdir('lb-conf-');
    const config = path.join(dir, 'lifeboat.yaml');
    await fs.writeFile(config, 'repositories:\n  main:\n    stores: [/tmp/x]\n    write_qorum: 1\n');
    expectError(await runCli(['--config', config, '-r', 'main', 'snapshots'], ENV), 2, /lifeboat\.yaml:4: unknown key "write_qorum"/);
  });
});

describe('copy and append-only', () => {
  it('copies snapshots to an offsite repository with other keys, once', async () => {
    const local = path.join(tmpdir('lb-copy-'), 'repo');
    await initRepo(local, ENV.LIFEBOAT_PASSWORD);
    await cli(['-r', local, 'backup', fixture]);
    const offsite = s3('copy-target');
    await cli(['init', '-r', offsite]);
    const first = JSON.parse((await cli(['--json', 'copy', '--from-repo', local, '--to-repo', offsite])).stdout) as { copied: unknown[] };
    expect(first.copied).toHaveLength(1);
    await restoredMatches(offsite);
    const second = JSON.parse((await cli(['--json', 'copy', '--from-repo', local, '--to-repo', offsite])).stdout) as { copied: unknown[]; skipped: unknown[] };
    expect(second).toMatchObject({ copied: [], skipped: [expect.any(String)] });
  });

  it('lets an append-only client add snapshots but refuses forget, by flag and by key slot', async () => {
    const repo = s3('append-only');
    await cli(['init', '-r', repo]);
    await cli(['-r', repo, 'backup', fixture]);
    expectError(await runCli(['-r', repo, '--append-only', 'forget', '--keep-last', '1'], ENV), 18, /append-only: .* refuses forget/);

    const keyFile = path.join(tmpdir('lb-ao-'), 'backup-host');
    await fs.writeFile(keyFile, 'host-password\n');
    await cli(['-r', repo, 'key', 'add', '--append-only', '--new-password-file', keyFile]);
    const host = ['-r', repo, '--password-file', keyFile];
    await cli([...host, 'backup', fixture]);
    expectError(await runCli([...host, 'forget', '--keep-last', '1'], ENV), 18, /append-only/);
    expectError(await runCli([...host, 'forget', 'latest'], ENV), 18, /append-only/);
    const snaps = JSON.parse((await cli(['-r', repo, '--json', 'snapshots'])).stdout) as unknown[];
    expect(snaps).toHaveLength(2);
    // The owner's key may forget.
    await cli(['-r', repo, 'forget', '--keep-last', '1']);
  });
});
