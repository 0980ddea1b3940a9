/**
 * The bucket backup's own cases, in process against a real S3-compatible server
 * (s3rver on 127.0.0.1) through the S3 store's object access, wrapped to make the
 * things a live bucket does happen at a chosen moment: an object deleted between
 * its listing and its read (left out, counted as vanished), a body that breaks off
 * mid-transfer (read again, stored whole), and a listing that does not keep a
 * folder's keys together (refused, no snapshot).
 */
import { Readable, Writable } from 'node:stream';
import { DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { walkTree } from '../../src/engine/browse/tree-walk.js';
import { restoreStream } from '../../src/engine/restore/stream.js';
import { Repository } from '../../src/repo/repository.js';
import { bucketBackup } from '../../src/sources/bucket/backup.js';
import { bucketPoint } from '../../src/sources/bucket/point.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { ListedObject, ObjectAccess } from '../../src/storage/objects.js';
import { openS3Store } from '../../src/storage/s3/s3-store.js';
import { pseudoRandom } from '../helpers.js';
import { startS3rver, type S3Server } from '../s3rver.js';

let server: S3Server;
let client: S3Client;
let objects: ObjectAccess;
const BIG = pseudoRandom(3 << 20, 5);

beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket('live');
  client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  for (const [k, body] of [['a/1', Buffer.from('one')], ['a/2', Buffer.from('two')], ['b/big', BIG], ['c', Buffer.from('see')]] as const) {
    await client.send(new PutObjectCommand({ Bucket: 'live', Key: `p/${k}`, Body: body }));
  }
  const loc = `s3:${server.endpoint}/live/p`;
  objects = (await openS3Store(loc.slice(3), loc)).objects;
}, 60_000);

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

/** The real object access with some members replaced (it is a class: spreading it would lose its methods). */
function wrapped(over: Partial<ObjectAccess>): ObjectAccess {
  return {
    probe: () => objects.probe(),
    listObjects: (prefix) => objects.listObjects(prefix),
    openObject: (key) => objects.openObject(key),
    putObject: (key, body, size, meta) => objects.putObject(key, body, size, meta),
    versioned: () => objects.versioned(),
    ...over,
  };
}

/** The snapshot's files as key → bytes, read back through the repository. */
async function contents(repo: Repository, tree: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of walkTree(repo, tree)) {
    if (e.node.type !== 'file') continue;
    const chunks: Buffer[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) });
    await restoreStream(repo, e.node, sink);
    out.set(e.node.object?.key ?? e.path, Buffer.concat(chunks));
  }
  return out;
}

describe('bucket backup on a live bucket', () => {
  it('leaves out an object deleted after it was listed, and reads a body that broke off again', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    let broken = 0;
    const live = wrapped({
      async openObject(key) {
        if (key === 'a/2') await client.send(new DeleteObjectCommand({ Bucket: 'live', Key: 'p/a/2' }));
        const opened = await objects.openObject(key);
        if (key !== 'b/big' || broken++ > 0) return opened;
        // The first read of the large object stops after 1 MiB with a reset connection.
        let sent = 0;
        const cut = new Readable({ read() {} });
        opened.body.on('data', (c: Buffer) => {
          if (sent >= 1 << 20) return;
          sent += c.length;
          cut.push(c);
          if (sent >= 1 << 20) {
            opened.body.destroy();
            cut.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
          }
        });
        return { ...opened, body: cut };
      },
    });
    const snap = await bucketBackup(repo, { name: 'live', location: 'test', objects: live, parallel: 2 });
    expect(bucketPoint(snap)).toMatchObject({ objects: 3, vanished: 1, downloaded: 3 });
    expect(broken).toBe(2);
    const got = await contents(repo, snap.tree);
    expect([...got.keys()].sort()).toEqual(['a/1', 'b/big', 'c']);
    expect(got.get('b/big')?.equals(BIG)).toBe(true);
  }, 60_000);

  it('refuses a listing that comes back to a folder it had left, and saves no snapshot', async () => {
    const repo = await Repository.init(new MemoryStore(), 'pw');
    await client.send(new PutObjectCommand({ Bucket: 'live', Key: 'p/a/2', Body: Buffer.from('two') }));
    const listed: ListedObject[] = [];
    for await (const o of objects.listObjects('')) listed.push(o);
    expect(listed.map((o) => o.key)).toEqual(['a/1', 'a/2', 'b/big', 'c']);
    const shuffled = wrapped({
      async *listObjects() {
        // a/1, then c (leaving folder a), then a/2: back in a folder already saved.
        for (const k of ['a/1', 'c', 'a/2', 'b/big']) yield listed.find((o) => o.key === k) as ListedObject;
      },
    });
    await expect(bucketBackup(repo, { name: 'x', location: 'test', objects: shuffled, parallel: 2 })).rejects.toMatchObject({ code: 'FAILED', message: expect.stringMatching(/not grouped by prefix/) });
    expect(await repo.listSnapshots()).toEqual([]);
  }, 60_000);
});
