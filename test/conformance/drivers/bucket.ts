/**
 * The bucket kind for the conformance suite: a prefix of a bucket on a real
 * S3-compatible server (s3rver on 127.0.0.1, started here) holding objects in a few
 * "folders", an empty one among them, written with the AWS SDK as an application
 * would. The suite restores into directories (the daemon's restore target is a path),
 * so the fingerprint is what a user compares there: each object's key and the SHA-256
 * of its bytes. Content types and metadata, and restores into a bucket, are checked by
 * test/integration/bucket-s3.test.ts. Buckets have no continuous log.
 */
import { createHash } from 'node:crypto';
import { promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { initRepo, pseudoRandom, runCli, tmpdir } from '../../helpers.js';
import { startS3rver } from '../../s3rver.js';
import { nextMoment, type KindDriver, type Subject } from '../driver.js';

export const bucketDriver: KindDriver = {
  kind: 'bucket',
  hasLog: false,
  async setup(): Promise<Subject> {
    const dir = tmpdir('lb-conform-bucket-');
    const repo = path.join(dir, 'repo');
    const pw = path.join(dir, 'password');
    const server = await startS3rver();
    await server.createBucket('app');
    const client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    /** What the prefix holds, as the application wrote it: key → bytes. */
    const live = new Map<string, Buffer>();
    const put = async (key: string, body: Buffer) => {
      await client.send(new PutObjectCommand({ Bucket: 'app', Key: `uploads/${key}`, Body: body, ContentType: 'application/octet-stream' }));
      live.set(key, body);
    };
    for (let i = 0; i < 30; i++) await put(`f${i % 3}/obj-${i}.bin`, pseudoRandom(200 + i * 331, i + 1));
    await put('empty', Buffer.alloc(0));
    writeFileSync(pw, 'conformance-bucket\n', { mode: 0o600 });
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(
      config,
      ['repositories:', '  main:', `    stores: [${repo}]`, `    password_file: ${pw}`, 'sources:', '  uploads:', '    kind: bucket', `    location: s3:${server.endpoint}/app/uploads`, '    parallel: 4', ''].join('\n'),
    );
    // The repository's password comes from lifeboat.yaml; the bucket's credentials from the environment (startS3rver set them).
    const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { LIFEBOAT_PASSWORD: undefined, ...env });
    await initRepo(repo, 'conformance-bucket');
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    return {
      config,
      source: 'uploads',
      cli,
      target: (label) => path.join(dir, `restored-${label}`),
      async change(step) {
        // An object added, one rewritten, one deleted.
        await put(`f${step % 3}/added-${step}.txt`, Buffer.from(`added in step ${step}\n`));
        await put('f0/obj-0.bin', pseudoRandom(500 + step, 100 + step));
        const gone = `f1/obj-${step}.bin`;
        await client.send(new DeleteObjectCommand({ Bucket: 'app', Key: `uploads/${gone}` }));
        live.delete(gone);
      },
      fingerprint: async () => Object.fromEntries([...live].map(([k, b]) => [k, sha(b)]).sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1))),
      // Objects are files below the target, at their keys (these keys need no escaping).
      async restored(target) {
        const out: Array<[string, string]> = [];
        const walk = async (d: string): Promise<void> => {
          for (const e of await fs.readdir(d, { withFileTypes: true })) {
            const p = path.join(d, e.name);
            if (e.isDirectory()) await walk(p);
            else out.push([path.relative(target, p), sha(await fs.readFile(p))]);
          }
        };
        await walk(target);
        return Object.fromEntries(out.sort(([a], [b]) => (a < b ? -1 : 1)));
      },
      moment: nextMoment,
      restoresSnapshotIds: true,
      async close() {
        client.destroy();
        await server.stop();
        await fs.rm(dir, { recursive: true, force: true });
      },
    };
  },
};
