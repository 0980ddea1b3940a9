/**
 * Group members without a continuous log, through the real CLI: a files member copied
 * while frozen, a files member captured by a snapshot hook (`cp -a` standing in for a
 * btrfs/LVM/ZFS snapshot command: it fixes the tree while frozen just the same), and a
 * bucket member on s3rver listed while frozen and copied after thaw. Each thaw changes
 * the data (over an HTTP thaw hook for the bucket), so the snapshots can show they hold
 * the data as it was at the point, not as it was when copied.
 */
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmp, expectError, initRepo, runCli, snapshotsJson, tmpdir } from '../helpers.js';
import { S3_ENV, startS3rver, type S3Server } from '../s3rver.js';
import { startAzurite, type Azurite } from '../azurite.js';

interface Point {
  id: string;
  time: string;
  hold_ms: number;
  members: Array<{ name: string; kind: string; position: { kind: string; method?: string; snapshot?: string; objects?: number; listing_ms?: number; copy_ms?: number } }>;
}
interface Snap {
  id: string;
  time: string;
  paths: string[];
  source: { kind: string; name?: string };
  consistency?: Record<string, unknown>;
}

let dir: string;
let repo: string;
let cfg: string;
let s3: S3Server;
let client: S3Client;
let hooks: Server;
/** What the HTTP thaw hook does to the bucket (set by each test). */
let onThaw: () => Promise<void> = async () => {};
const ENV = { ...S3_ENV, LIFEBOAT_STORE_RETRIES: '1' };

const cli = (args: string[]) => runCli(['--config', cfg, ...args], ENV);

async function backup(group: string): Promise<Point> {
  const r = await cli(['group', 'backup', group, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Point;
}

async function snapshots(): Promise<Snap[]> {
  return snapshotsJson<Snap>(repo);
}

/** Restores a files snapshot and returns the restored tree's files with their contents. */
async function restoredFiles(id: string, snapPath: string): Promise<Record<string, string>> {
  const target = path.join(tmpdir('lb-group-restore-'), 't');
  const r = await runCli(['-r', repo, 'restore', id, '--target', target]);
  expect(r.code, r.stderr).toBe(0);
  const root = path.join(target, snapPath);
  return Object.fromEntries(readdirSync(root).map((f) => [f, readFileSync(path.join(root, f), 'utf8')]));
}

beforeAll(async () => {
  dir = tmpdir('lb-group-data-');
  s3 = await startS3rver();
  await s3.createBucket('cold');
  client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  for (let i = 0; i < 50; i++) await client.send(new PutObjectCommand({ Bucket: 'cold', Key: `blobs/b${String(i).padStart(3, '0')}`, Body: `blob ${i}\n` }));
  hooks = createServer((req, res) => {
    req.resume();
    void onThaw().then(
      () => res.end('ok'),
      (err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      },
    );
  });
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  const hookUrl = (p: string) => `http://127.0.0.1:${(hooks.address() as { port: number }).port}${p}`;

  mkdirSync(path.join(dir, 'live'));
  mkdirSync(path.join(dir, 'snaps'));
  for (const f of ['a', 'b']) writeFileSync(path.join(dir, 'live', f), `${f} at the start\n`);
  repo = path.join(dir, 'repo');
  await initRepo(repo);
  cfg = path.join(dir, 'lifeboat.yaml');
  const sh = (script: string) => JSON.stringify(['/bin/sh', '-c', script]);
  writeFileSync(
    cfg,
    [
      'repositories:',
      `  main: { stores: [${repo}] }`,
      'sources:',
      '  docs: { kind: files, paths: [live] }',
      `  cold: { kind: bucket, location: "s3:${s3.endpoint}/cold/blobs" }`,
      'groups:',
      // Thaw rewrites a and adds c: the copy made while frozen must not see either.
      `  copied: { members: [docs], freeze: [/bin/true], thaw: ${sh('echo "a after thaw" > live/a; echo c > live/c')}, max_hold: 10s }`,
      '  snapped:',
      '    members: [docs]',
      `    freeze: [/bin/true]`,
      `    thaw: ${sh('echo "b after thaw" > live/b')}`,
      '    max_hold: 10s',
      '    snapshots:',
      '      docs: { create: [/bin/cp, -a, live, "snaps/{point}"], release: [/bin/rm, -rf, "snaps/{point}"], path: "snaps/{point}" }',
      '  printed:',
      '    members: [docs]',
      // The snapshot hook (a shell, cp) runs inside the hold: the default 200 ms is too little on a loaded machine.
      '    max_hold: 10s',
      '    snapshots:',
      `      docs: { create: ${sh('cp -a live "snaps/p-$LIFEBOAT_GROUP_POINT" && echo "snaps/p-$LIFEBOAT_GROUP_POINT"')}, release: [/bin/rm, -rf, "snaps/p-{point}"] }`,
      '  tooslow: { members: [docs], max_hold: 1ms }',
      '  snapfail:',
      '    members: [docs]',
      `    freeze: [/bin/true]`,
      `    thaw: ${sh('echo cannot resume >&2; exit 3')}`,
      // cp runs inside the hold; this test is about the thaw failing, not max_hold.
      '    max_hold: 10s',
      '    snapshots:',
      '      docs: { create: [/bin/cp, -a, live, "snaps/f-{point}"], release: [/bin/rm, -rf, "snaps/f-{point}"], path: "snaps/f-{point}" }',
      `  listed: { members: [cold], freeze: [/bin/true], thaw: { http: { url: "${hookUrl('/thaw')}" } }, max_hold: 10s }`,
      `  raced: { members: [cold], freeze: [/bin/true], thaw: { http: { url: "${hookUrl('/thaw')}" } }, max_hold: 10s }`,
      `  both: { members: [docs, cold], freeze: [/bin/true], thaw: { http: { url: "${hookUrl('/thaw')}" } }, max_hold: 10s }`,
      '',
    ].join('\n'),
  );
}, 120_000);

afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => hooks?.close(resolve));
  await s3?.stop();
  cleanupTmp();
});

describe('files members', () => {
  it('without a snapshot hook: copies the tree while frozen, says so, and the snapshot holds it as it was at the point', async () => {
    const p = await backup('copied');
    const m = p.members[0]!;
    expect(m.position).toMatchObject({ kind: 'files', method: 'frozen-copy' });
    expect(m.position.copy_ms).toBeLessThanOrEqual(p.hold_ms);
    const snap = (await snapshots()).find((s) => s.id === m.position.snapshot)!;
    expect(snap.source).toEqual({ kind: 'files', name: 'docs' });
    expect(snap.time).toBe(p.time);
    expect(snap.consistency).toMatchObject({ group: 'copied', point: p.id });
    // Thaw rewrote a and added c; the snapshot has neither change.
    expect(readFileSync(path.join(dir, 'live', 'a'), 'utf8')).toBe('a after thaw\n');
    expect(await restoredFiles(snap.id, snap.paths[0]!)).toEqual({ a: 'a at the start\n', b: 'b at the start\n' });

    const human = await cli(['group', 'backup', 'copied']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/docs \(files\): snapshot [0-9a-f]{8}, copied while frozen \(\d+\.\d ms of the hold: the hold grows with the data\)/);
  }, 120_000);

  it('fails the capture when the frozen copy makes the hold exceed max_hold, and leaves no snapshot behind', async () => {
    const before = (await snapshots()).length;
    const r = await cli(['group', 'backup', 'tooslow']);
    expectError(r, 47, /group "tooslow": (recording the positions ran past max_hold|writes were held .* more than max_hold) \(1 ms\)/);
    expect((await snapshots()).length).toBe(before);
    expect((await cli(['group', 'points', 'tooslow', '--json'])).stdout).toMatch(/"points": \[\]/);
  }, 120_000);

  it('with a snapshot hook: backs up the filesystem snapshot made while frozen, after thaw, then releases it', async () => {
    const p = await backup('snapped');
    const m = p.members[0]!;
    expect(m.position).toMatchObject({ kind: 'files', method: 'snapshot-hook' });
    const snap = (await snapshots()).find((s) => s.id === m.position.snapshot)!;
    expect(snap.paths).toEqual([path.join(dir, 'snaps', p.id)]);
    expect(snap.time).toBe(p.time);
    // Thaw rewrote b before the backup ran; the snapshot has b as it was when frozen.
    expect(readFileSync(path.join(dir, 'live', 'b'), 'utf8')).toBe('b after thaw\n');
    expect(await restoredFiles(snap.id, snap.paths[0]!)).toEqual({ a: 'a after thaw\n', b: 'b at the start\n', c: 'c\n' });
    // Released: the filesystem snapshot is gone.
    expect(existsSync(path.join(dir, 'snaps', p.id))).toBe(false);

    // group restore brings the member back from the snapshot the point names.
    const target = path.join(tmpdir('lb-group-grestore-'), 't');
    const r = await cli(['group', 'restore', 'snapped', '--point', p.id, '--target', `docs=${target}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(target, snap.paths[0]!, 'b'), 'utf8')).toBe('b at the start\n');
  }, 120_000);

  it('releases the filesystem snapshot when the capture fails after create ran, and stores nothing', async () => {
    const before = (await snapshots()).length;
    const r = await cli(['group', 'backup', 'snapfail']);
    expectError(r, 1, /group "snapfail": thaw failed \(exit status 3\): cannot resume; writes may still be held/);
    expect(readdirSync(path.join(dir, 'snaps')).filter((f) => f.startsWith('f-'))).toEqual([]);
    expect((await snapshots()).length).toBe(before);
  }, 120_000);

  it('with a snapshot hook that prints its directory (and no freeze): backs that up', async () => {
    const p = await backup('printed');
    const snap = (await snapshots()).find((s) => s.id === p.members[0]!.position.snapshot)!;
    expect(snap.paths).toEqual([path.join(dir, 'snaps', `p-${p.id}`)]);
    expect(existsSync(path.join(dir, 'snaps', `p-${p.id}`))).toBe(false);
  }, 120_000);
});

describe('bucket members', () => {
  it('lists the bucket while frozen and copies exactly the listed objects after thaw', async () => {
    onThaw = async () => {
      await client.send(new PutObjectCommand({ Bucket: 'cold', Key: 'blobs/late', Body: 'written after the point\n' }));
    };
    const p = await backup('listed');
    const m = p.members[0]!;
    expect(m.position).toMatchObject({ kind: 'bucket', method: 'listing', objects: 50 });
    expect(m.position.listing_ms).toBeLessThan(p.hold_ms);
    const snap = (await snapshots()).find((s) => s.id === m.position.snapshot)!;
    expect(snap.source).toEqual({ kind: 'bucket', name: 'cold' });
    expect(snap.time).toBe(p.time);
    expect(snap.consistency).toMatchObject({ objects: 50, group: 'listed', point: p.id });
    // The object added by thaw exists in the bucket but not in the snapshot.
    const out = path.join(tmpdir('lb-group-bucket-'), 'o');
    const r = await runCli(['-r', repo, 'bucket', 'restore', 'cold', '--snapshot', snap.id, '--output', out], ENV);
    expect(r.code, r.stderr).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toHaveLength(50);
    expect(files).not.toContain('late');
    expect(readFileSync(path.join(out, 'b007'), 'utf8')).toBe('blob 7\n');
    await client.send(new DeleteObjectCommand({ Bucket: 'cold', Key: 'blobs/late' }));
  }, 120_000);

  it('takes an object overwritten after the point from the parent snapshot when it was unchanged since (its listed ETag is the parent\'s)', async () => {
    onThaw = async () => {
      await client.send(new PutObjectCommand({ Bucket: 'cold', Key: 'blobs/b030', Body: 'overwritten after the point\n' }));
    };
    const p = await backup('listed');
    const out = path.join(tmpdir('lb-group-bucket-'), 'o');
    const r = await runCli(['-r', repo, 'bucket', 'restore', 'cold', '--snapshot', p.members[0]!.position.snapshot!, '--output', out], ENV);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(out, 'b030'), 'utf8')).toBe('blob 30\n');
    await client.send(new PutObjectCommand({ Bucket: 'cold', Key: 'blobs/b030', Body: 'blob 30\n' }));
  }, 120_000);

  it('fails the member, stores no point and keeps no snapshot, when an object new since the last snapshot changes after the point', async () => {
    await client.send(new PutObjectCommand({ Bucket: 'cold', Key: 'blobs/fresh', Body: 'new since the last snapshot\n' }));
    onThaw = async () => {
      await client.send(new PutObjectCommand({ Bucket: 'cold', Key: 'blobs/fresh', Body: 'overwritten after the point\n' }));
    };
    const before = (await snapshots()).length;
    const r = await cli(['group', 'backup', 'raced']);
    expectError(r, 1, /bucket member "cold": object "fresh" changed \(ETag .*, listed .*\) after the point, so it cannot be taken as it was/);
    expect((await snapshots()).length).toBe(before);
    expect((await cli(['group', 'points', 'raced', '--json'])).stdout).toMatch(/"points": \[\]/);
  }, 120_000);

  it('removes the files member\'s snapshot too when the bucket member fails after thaw (an object deleted)', async () => {
    onThaw = async () => {
      await client.send(new DeleteObjectCommand({ Bucket: 'cold', Key: 'blobs/fresh' }));
    };
    const before = (await snapshots()).length;
    const r = await cli(['group', 'backup', 'both']);
    expectError(r, 1, /bucket member "cold": object "fresh" was deleted after the point/);
    expect((await snapshots()).length).toBe(before);
  }, 120_000);
});

describe('a bucket member on Azure (azurite)', () => {
  let azurite: Azurite;
  beforeAll(async () => {
    azurite = await startAzurite();
    const c = azurite.service.getContainerClient('tier');
    await c.create();
    for (let i = 0; i < 20; i++) await c.getBlockBlobClient(`cold/x${i}`).uploadData(Buffer.from(`azure blob ${i}\n`));
  }, 60_000);
  afterAll(async () => {
    await azurite?.stop();
  });

  it('lists the container prefix while frozen and copies the listed blobs after thaw, refusing one changed after the point', async () => {
    const azCfg = path.join(dir, 'azure.yaml');
    const hookUrl = `http://127.0.0.1:${(hooks.address() as { port: number }).port}/thaw`;
    writeFileSync(
      azCfg,
      [
        'repositories:',
        `  main: { stores: [${repo}] }`,
        'sources:',
        '  az: { kind: bucket, location: "azure:tier/cold" }',
        'groups:',
        `  azg: { members: [az], freeze: [/bin/true], thaw: { http: { url: "${hookUrl}" } }, max_hold: 10s }`,
        '',
      ].join('\n'),
    );
    const env = { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString, LIFEBOAT_STORE_RETRIES: '1' };
    const c = azurite.service.getContainerClient('tier');
    onThaw = async () => {
      await c.getBlockBlobClient('cold/late').uploadData(Buffer.from('after the point\n'));
    };
    const r = await runCli(['--config', azCfg, 'group', 'backup', 'azg', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout) as Point;
    expect(p.members[0]!.position).toMatchObject({ kind: 'bucket', method: 'listing', objects: 20 });
    const out = path.join(tmpdir('lb-group-az-'), 'o');
    const restored = await runCli(['-r', repo, 'bucket', 'restore', 'az', '--snapshot', p.members[0]!.position.snapshot!, '--output', out], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `x${i}`).sort());

    // A blob new since that snapshot, overwritten after the point: the member fails.
    await c.getBlockBlobClient('cold/new').uploadData(Buffer.from('new\n'));
    onThaw = async () => {
      await c.getBlockBlobClient('cold/new').uploadData(Buffer.from('overwritten\n'));
    };
    const raced = await runCli(['--config', azCfg, 'group', 'backup', 'azg'], env);
    expectError(raced, 1, /bucket member "az": object "new" changed \(ETag .*\) after the point/);
  }, 120_000);
});
