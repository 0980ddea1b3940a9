// How long a bucket member's listing holds writes: `lifeboat group backup` of a group
// whose one member is a bucket of OBJECTS objects (default 10 000) on a scratch s3rver
// (127.0.0.1, started with --openssl-legacy-provider as test/s3rver.ts does), freeze and
// thaw /bin/true, ROUNDS captures (default 5). Prints the listing time (inside the hold),
// the hold, and the copy after thaw (whole command time minus the hold), per capture.
// The first capture copies every object; later ones reuse the parent's chunks. The same
// listing with the AWS SDK alone is timed first: the server's own pace.
// Usage: npm run build && node bench/group-bucket-listing.mjs   (OBJECTS=10000 ROUNDS=5)
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'package.json'));
const { S3Client, CreateBucketCommand, PutObjectCommand, ListObjectsV2Command } = require('@aws-sdk/client-s3');
const OBJECTS = Number(process.env.OBJECTS ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const D = mkdtempSync(path.join(os.tmpdir(), 'lb-bucket-listing-'));
const env = { ...process.env, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', LIFEBOAT_PASSWORD: 'bench' };

const server = spawn(process.execPath, ['--openssl-legacy-provider', '-e', `
  const S3rver = require('s3rver');
  new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: process.argv[1] }).run().then((a) => console.log('PORT ' + a.port));
`, path.join(D, 's3')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const port = await new Promise((resolve) => createInterface({ input: server.stdout }).on('line', (l) => l.startsWith('PORT ') && resolve(Number(l.slice(5)))));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  await client.send(new CreateBucketCommand({ Bucket: 'cold' }));
  const t0 = Date.now();
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < OBJECTS) {
      const i = next++;
      await client.send(new PutObjectCommand({ Bucket: 'cold', Key: `blobs/${String(i % 100).padStart(2, '0')}/${i}`, Body: `object ${i} `.repeat(8) }));
    }
  }));
  // The server's own pace: the same listing with the AWS SDK alone, 1000 keys a page.
  for (let r = 1; r <= 2; r++) {
    const s = performance.now();
    let token;
    let n = 0;
    do {
      const out = await client.send(new ListObjectsV2Command({ Bucket: 'cold', Prefix: 'blobs/', ContinuationToken: token }));
      n += out.KeyCount ?? 0;
      token = out.NextContinuationToken;
    } while (token);
    console.log(`SDK listing ${r}: ${n} objects in ${(performance.now() - s).toFixed(1)} ms`);
  }
  client.destroy();
  console.log(`uploaded ${OBJECTS} objects in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const lb = (args) => execFileSync(process.execPath, [path.join(ROOT, 'bin', 'lifeboat.js'), ...args], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  lb(['init', '-r', path.join(D, 'repo')]);
  writeFileSync(path.join(D, 'lifeboat.yaml'), [
    'repositories:',
    `  main: { stores: [${path.join(D, 'repo')}] }`,
    'sources:',
    `  cold: { kind: bucket, location: "s3:${endpoint}/cold/blobs" }`,
    'groups:',
    '  g: { members: [cold], freeze: [/bin/true], thaw: [/bin/true], max_hold: 60s }',
    '',
  ].join('\n'));
  for (let r = 1; r <= ROUNDS; r++) {
    const s = Date.now();
    const p = JSON.parse(lb(['--config', path.join(D, 'lifeboat.yaml'), '--json', 'group', 'backup', 'g']));
    const total = Date.now() - s;
    const pos = p.members[0].position;
    console.log(`capture ${r}: ${pos.objects} objects listed in ${pos.listing_ms.toFixed(1)} ms; hold ${p.hold_ms.toFixed(1)} ms; whole command ${total} ms`);
  }
} finally {
  server.kill();
  rmSync(D, { recursive: true, force: true });
}
