/**
 * The bucket source through the real CLI against a real S3-compatible server (s3rver
 * on 127.0.0.1), checked with an independent client (rclone): a prefix of 1 100
 * objects (empty, one large multipart one, unicode and awkward keys, content types
 * and user metadata) backed up; a second backup after a few changes reads only the
 * changed objects (GETs counted by a proxy in front of the server); restored into
 * another bucket and compared object by object, bytes and metadata; restored into a
 * directory and one object alone; `--time` picks the older snapshot; a non-empty
 * target, wrong credentials and a missing bucket are one clear line each.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import * as path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTmp, cliExpecting, expectError, initRepo, pseudoRandom, runCli, tmpdir } from '../helpers.js';
import { rcloneS3Env, S3_ENV, type S3Server, startS3rver } from '../s3rver.js';

const ENV = { LIFEBOAT_PASSWORD: 'pw', ...S3_ENV, LIFEBOAT_STORE_RETRIES: '2' };
const cli = (args: string[], code = 0) => cliExpecting(args, code, ENV);

/** Keys a tree cannot take as they are (names.ts escapes them), and a key that is also a "folder". */
const AWKWARD = ['empty', 'ünïcødé/日本語 ファイル.txt', 'emoji/🚀 rocket.txt', 'same', 'same/child.txt', '%percent', 'spaces in name/x y.txt'];
const LARGE = 'big/large.bin';
const LARGE_BYTES = 10 << 20; // over the 8 MiB multipart threshold of both the upload here and the restore
const TOTAL = 1100;

let server: S3Server;
let proxy: Server;
let proxied: string;
/** GETs of object bodies in bucket "src" that went through the proxy (listings and bucket calls excluded). */
let objectGets = 0;
let client: S3Client;
let repo: string;

/** Object i: a few hundred bytes to a few KiB; every fifth has a content type and user metadata. */
function plainObject(i: number): { key: string; body: Buffer; contentType?: string; metadata?: Record<string, string> } {
  const key = `d${String(i % 25).padStart(2, '0')}/obj-${String(i).padStart(4, '0')}.bin`;
  const body = pseudoRandom(100 + ((i * 37) % 4000), i + 1);
  return i % 5 === 0 ? { key, body, contentType: `application/x-test-${i % 3}`, metadata: { owner: `user${i}`, note: 'plain ascii' } } : { key, body };
}

const src = (prefix = 'data') => `s3:${proxied}/src/${prefix}`;

beforeAll(async () => {
  server = await startS3rver();
  for (const b of ['src', 'dst']) await server.createBucket(b);
  const upstream = new URL(server.endpoint);
  proxy = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    // An object's GET is /src/KEY (?x-id=GetObject); listings (/src?list-type=2) and bucket calls (/src/?versioning) are not.
    if (req.method === 'GET' && url.pathname.startsWith('/src/') && url.pathname.length > '/src/'.length && !url.searchParams.has('list-type') && !url.searchParams.has('versioning')) objectGets++;
    const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxied = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
  client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });

  // 1 100 objects under src/data (two pages of a listing): the awkward keys, one large multipart object, and plain ones.
  const uploads: Array<() => Promise<unknown>> = [];
  for (const k of AWKWARD) {
    const body = k === 'empty' ? Buffer.alloc(0) : Buffer.from(`content of ${k}\n`);
    uploads.push(() => client.send(new PutObjectCommand({ Bucket: 'src', Key: `data/${k}`, Body: body, ContentType: 'text/plain; charset=utf-8', Metadata: { origin: 'awkward' } })));
  }
  uploads.push(() => new Upload({ client, params: { Bucket: 'src', Key: `data/${LARGE}`, Body: pseudoRandom(LARGE_BYTES, 7), ContentType: 'application/octet-stream', Metadata: { size: 'large' } }, partSize: 5 << 20 }).done());
  for (let i = 0; uploads.length < TOTAL; i++) {
    const o = plainObject(i);
    uploads.push(() => client.send(new PutObjectCommand({ Bucket: 'src', Key: `data/${o.key}`, Body: o.body, ...(o.contentType ? { ContentType: o.contentType } : {}), ...(o.metadata ? { Metadata: o.metadata } : {}) })));
  }
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < uploads.length) await (uploads[next++] as () => Promise<unknown>)();
  }));
  repo = path.join(tmpdir('lb-bucket-'), 'repo');
  await initRepo(repo, ENV.LIFEBOAT_PASSWORD);
}, 180_000);

afterAll(async () => {
  client?.destroy();
  await new Promise((resolve) => proxy?.close(resolve));
  await server?.stop();
  cleanupTmp();
});

function rclone(args: string[]): string {
  return execFileSync('rclone', args, {
    env: rcloneS3Env(server.endpoint),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
}

interface Listed {
  Path: string;
  Size: number;
  MimeType: string;
  Metadata?: Record<string, string>;
}

/** rclone's view of every object under a bucket path: size, content type and user metadata (upload times left out). */
function rcloneObjects(where: string): Map<string, { size: number; type: string; meta: Record<string, string> }> {
  const list = JSON.parse(rclone(['lsjson', '-R', '--files-only', '-M', where])) as Listed[];
  return new Map(
    list.map((o) => {
      // rclone reads the object's headers for -M: its content-type is the stored one (MimeType may be a guess from the name).
      const { btime: _b, mtime: _m, 'content-type': type, ...meta } = o.Metadata ?? {};
      return [o.Path, { size: o.Size, type: type ?? '', meta }];
    }),
  );
}

interface BackupJson {
  id: string;
  time: string;
  bucket: { objects: number; bytes: number; downloaded: number; reused: number; vanished: number; listStarted: string; listEnded: string; versioned: boolean };
}

async function backup(): Promise<BackupJson> {
  return JSON.parse((await cli(['-r', repo, '--json', 'bucket', 'backup', '--name', 'pics', src()])).stdout) as BackupJson;
}

describe('a bucket source on S3', () => {
  let first: BackupJson;
  let second: BackupJson;

  it('backs up 1 100 objects, then reads again only the ones that changed', async () => {
    objectGets = 0;
    first = await backup();
    expect(first.bucket).toMatchObject({ objects: TOTAL, downloaded: TOTAL, reused: 0, vanished: 0, versioned: false });
    expect(objectGets).toBe(TOTAL);
    expect(Date.parse(first.bucket.listEnded)).toBeGreaterThanOrEqual(Date.parse(first.bucket.listStarted));

    // Two objects rewritten, one added, one deleted.
    const a = plainObject(10);
    const b = plainObject(11);
    await client.send(new PutObjectCommand({ Bucket: 'src', Key: `data/${a.key}`, Body: Buffer.from('changed a'), ContentType: 'text/x-changed', Metadata: { v: '2' } }));
    await client.send(new PutObjectCommand({ Bucket: 'src', Key: `data/${b.key}`, Body: pseudoRandom(b.body.length, 999) }));
    await client.send(new PutObjectCommand({ Bucket: 'src', Key: 'data/new/added.txt', Body: Buffer.from('added') }));
    await client.send(new DeleteObjectCommand({ Bucket: 'src', Key: `data/${plainObject(12).key}` }));

    objectGets = 0;
    second = await backup();
    // The server's count first: it does not depend on what Lifeboat says it did.
    expect(objectGets).toBe(3);
    expect(second.bucket).toMatchObject({ objects: TOTAL, downloaded: 3, reused: TOTAL - 3 });
  }, 300_000);

  it('restores into another bucket: every object, byte for byte, with its content type and metadata (rclone)', async () => {
    const r = await cli(['-r', repo, 'bucket', 'restore', 'pics', '--latest', '--to', `s3:${server.endpoint}/dst/copy`]);
    expect(r.stdout).toMatch(new RegExp(`restored ${TOTAL} objects`));
    // rclone reads both sides in full and compares the bytes.
    const check = execFileSync('sh', ['-c', 'rclone check --download s3:src/data s3:dst/copy 2>&1; echo "exit $?"'], {
      env: { ...process.env, AWS_CA_BUNDLE: '', RCLONE_CONFIG_S3_TYPE: 's3', RCLONE_CONFIG_S3_PROVIDER: 'Other', RCLONE_CONFIG_S3_ENDPOINT: server.endpoint, RCLONE_CONFIG_S3_ACCESS_KEY_ID: 'S3RVER', RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: 'S3RVER', RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true' },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(check).toMatch(/0 differences found/);
    expect(check).toMatch(new RegExp(`${TOTAL} matching files`));
    expect(check.trim().split('\n').pop()).toBe('exit 0');

    const want = rcloneObjects('s3:src/data');
    const got = rcloneObjects('s3:dst/copy');
    expect(got.size).toBe(TOTAL);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [key, w] of want) expect(got.get(key), key).toEqual(w);
    expect(JSON.stringify(got.get(plainObject(15).key))).toContain('user15');
    // The metadata rclone saw is what was set, not just equal on both sides.
    expect(got.get(plainObject(10).key)).toMatchObject({ type: 'text/x-changed', meta: { v: '2' } });
    expect(got.get(plainObject(15).key)).toMatchObject({ type: 'application/x-test-0', meta: { owner: 'user15', note: 'plain ascii' } });
    expect(got.get('ünïcødé/日本語 ファイル.txt')).toMatchObject({ type: 'text/plain; charset=utf-8', meta: { origin: 'awkward' } });
    expect(got.get(LARGE)).toMatchObject({ size: LARGE_BYTES, meta: { size: 'large' } });
    expect(got.get('empty')).toMatchObject({ size: 0 });
  }, 300_000);

  it('refuses a target bucket that holds objects, unless --force', async () => {
    const r = await runCli(['-r', repo, 'bucket', 'restore', 'pics', '--to', `s3:${server.endpoint}/dst/copy`, '--object', 'empty'], ENV);
    expectError(r, 21, /dst\/copy already holds objects.*nothing was written/);
    await cli(['-r', repo, 'bucket', 'restore', 'pics', '--to', `s3:${server.endpoint}/dst/copy`, '--object', 'empty', '--force']);
  }, 60_000);

  it('restores into a new directory, and one object alone; --time picks the newest snapshot at or before it', async () => {
    const out = path.join(tmpdir('lb-bucket-out-'), 'out');
    const r = JSON.parse((await cli(['-r', repo, '--json', 'bucket', 'restore', 'pics', '--output', out])).stdout) as { objects: number };
    expect(r.objects).toBe(TOTAL);
    for (const i of [0, 15, TOTAL - AWKWARD.length - 2]) {
      const o = plainObject(i);
      expect((await fs.readFile(path.join(out, o.key))).equals(o.body), o.key).toBe(true);
    }
    expect(await fs.readFile(path.join(out, 'ünïcødé', '日本語 ファイル.txt'), 'utf8')).toBe('content of ünïcødé/日本語 ファイル.txt\n');
    // "same" is both an object and a folder: the object is the escaped file %=same.
    expect(await fs.readFile(path.join(out, '%=same'), 'utf8')).toBe('content of same\n');
    expect(await fs.readFile(path.join(out, '%%percent'), 'utf8')).toBe('content of %percent\n');
    expect((await fs.stat(path.join(out, 'empty'))).size).toBe(0);
    expect(sha(await fs.readFile(path.join(out, LARGE)))).toBe(sha(pseudoRandom(LARGE_BYTES, 7)));

    // One object, from the first snapshot (before it was rewritten), picked by time.
    const one = path.join(tmpdir('lb-bucket-one-'), 'one');
    const a = plainObject(10);
    await cli(['-r', repo, 'bucket', 'restore', 'pics', '--time', first.time, '--object', `${a.key}`, '--output', one]);
    expect((await fs.readFile(path.join(one, path.basename(a.key)))).equals(a.body)).toBe(true);
    const before = new Date(Date.parse(first.time) - 60_000).toISOString();
    expectError(await runCli(['-r', repo, 'bucket', 'restore', 'pics', '--time', before, '--output', path.join(one, 'x')], ENV), 15, /no snapshot of source "bucket:pics" at or before/);
    expectError(await runCli(['-r', repo, 'bucket', 'restore', 'pics', '--object', 'no/such/key', '--output', path.join(one, 'y')], ENV), 15, /object "no\/such\/key" is not in snapshot/);
  }, 300_000);

  it('a missing bucket and wrong credentials are one line each, with a hint and their exit code', async () => {
    const missing = await runCli(['-r', repo, 'bucket', 'backup', '--name', 'x', `s3:${server.endpoint}/no-such-bucket/p`], ENV);
    expectError(missing, 10, /bucket source s3:http:\/\/127\.0\.0\.1:\d+\/no-such-bucket\/p: the bucket \(container\) does not exist/);
    const wrong = await runCli(['-r', repo, 'bucket', 'backup', '--name', 'x', src()], { ...ENV, AWS_ACCESS_KEY_ID: 'NOBODY' });
    expect(expectError(wrong, 18, /bucket source s3:.*\/src\/data: access denied/)).toMatch(/AWS_ACCESS_KEY_ID/);
    const target = await runCli(['-r', repo, 'bucket', 'restore', 'pics', '--to', `s3:${server.endpoint}/no-such-bucket`], ENV);
    expect(expectError(target, 10, /bucket target .* does not exist/)).toMatch(/create the target bucket first/);
    expectError(await runCli(['-r', repo, 'bucket', 'backup', '--name', 'x', '/srv/not-a-bucket'], ENV), 2, /not a bucket location/);
  }, 120_000);
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
