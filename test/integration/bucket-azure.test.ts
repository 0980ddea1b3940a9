/**
 * The bucket source on Azure Blob Storage (azurite on 127.0.0.1) through the real CLI:
 * a container prefix with an empty blob, a large one (uploaded in blocks, restored in
 * blocks), unicode names, content types and metadata; a second backup reads only the
 * changed blob; a restore into another container is compared blob by blob through the
 * SDK's own client (bytes, content type, metadata); wrong key and missing container.
 */
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAzurite, type Azurite } from '../azurite.js';
import { cleanupTmp, cliExpecting, expectError, initRepo, pseudoRandom, runCli, tmpdir } from '../helpers.js';

let azurite: Azurite;
let env: Record<string, string>;
let repo: string;
const LARGE_BYTES = 12 << 20; // over the 8 MiB single-put limit: restored in blocks

const blobs: Array<{ name: string; body: Buffer; type?: string; meta?: Record<string, string> }> = [
  { name: 'empty', body: Buffer.alloc(0) },
  { name: 'big/large.bin', body: pseudoRandom(LARGE_BYTES, 3), type: 'application/x-large', meta: { size: 'large' } },
  { name: 'ünïcødé/日本語 ファイル.txt', body: Buffer.from('日本語\n'), type: 'text/plain; charset=utf-8', meta: { origin: 'unicode' } },
  ...Array.from({ length: 60 }, (_, i) => ({ name: `d${i % 6}/blob-${i}.bin`, body: pseudoRandom(50 + i * 97, i + 1), ...(i % 4 === 0 ? { type: `application/x-test-${i}`, meta: { owner: `user${i}` } } : {}) })),
];

beforeAll(async () => {
  azurite = await startAzurite();
  for (const c of ['src', 'dst']) await azurite.service.getContainerClient(c).create();
  const src = azurite.service.getContainerClient('src');
  for (const b of blobs) {
    await src.getBlockBlobClient(`data/${b.name}`).uploadData(b.body, { blockSize: 4 << 20, blobHTTPHeaders: b.type ? { blobContentType: b.type } : {}, ...(b.meta ? { metadata: b.meta } : {}) });
  }
  env = { LIFEBOAT_PASSWORD: 'pw', AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString, LIFEBOAT_STORE_RETRIES: '2' };
  repo = path.join(tmpdir('lb-bucket-az-'), 'repo');
  await initRepo(repo, 'pw');
}, 120_000);

afterAll(async () => {
  await azurite?.stop();
  cleanupTmp();
});

/**
 * Each blob under `prefix` of `container` as the service reports it: its bytes' hash,
 * content type and metadata. Read with the SDK's own client in the test, not through
 * Lifeboat's store (rclone 1.60's azureblob backend cannot address azurite on a port
 * of its own: its endpoint is a domain suffix for ACCOUNT.ENDPOINT).
 */
async function blobsIn(container: string, prefix: string): Promise<Map<string, { sha: string; size: number; type: string; meta: Record<string, string> }>> {
  const c = azurite.service.getContainerClient(container);
  const out = new Map<string, { sha: string; size: number; type: string; meta: Record<string, string> }>();
  for await (const item of c.listBlobsFlat({ prefix, includeMetadata: true })) {
    const body = await c.getBlockBlobClient(item.name).downloadToBuffer();
    out.set(item.name.slice(prefix.length), {
      sha: createHash('sha256').update(body).digest('hex'),
      size: body.length,
      type: item.properties.contentType ?? '',
      meta: { ...(item.metadata ?? {}) },
    });
  }
  return out;
}

interface BackupJson {
  bucket: { objects: number; downloaded: number; reused: number };
}

describe('a bucket source on Azure', () => {
  it('backs up a container prefix, incrementally, and restores it into another container blob for blob', async () => {
    const backup = async () => JSON.parse((await cliExpecting(['-r', repo, '--json', 'bucket', 'backup', '--name', 'az', 'azure:src/data'], 0, env)).stdout) as BackupJson;
    expect((await backup()).bucket).toMatchObject({ objects: blobs.length, downloaded: blobs.length, reused: 0 });
    await azurite.service.getContainerClient('src').getBlockBlobClient('data/d1/blob-1.bin').uploadData(Buffer.from('changed'), { blobHTTPHeaders: { blobContentType: 'text/x-changed' }, metadata: { v: '2' } });
    expect((await backup()).bucket).toMatchObject({ objects: blobs.length, downloaded: 1, reused: blobs.length - 1 });

    await cliExpecting(['-r', repo, 'bucket', 'restore', 'az', '--to', 'azure:dst/copy'], 0, env);
    const want = await blobsIn('src', 'data/');
    const got = await blobsIn('dst', 'copy/');
    expect(got.size).toBe(blobs.length);
    for (const [key, w] of want) expect(got.get(key), key).toEqual(w);
    expect(got.get('d1/blob-1.bin')).toMatchObject({ size: 7, type: 'text/x-changed', meta: { v: '2' } });
    expect(got.get('big/large.bin')).toMatchObject({ size: LARGE_BYTES, type: 'application/x-large', meta: { size: 'large' } });
  }, 300_000);

  it('a missing container and a wrong key are one line each, with a hint and their exit code', async () => {
    expectError(await runCli(['-r', repo, 'bucket', 'backup', '--name', 'x', 'azure:no-such-container/p'], env), 10, /bucket source azure:no-such-container\/p: the bucket \(container\) does not exist/);
    const wrongKey = { ...env, AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString.replace(/AccountKey=[^;]+/, `AccountKey=${Buffer.alloc(64, 1).toString('base64')}`) };
    expect(expectError(await runCli(['-r', repo, 'bucket', 'backup', '--name', 'x', 'azure:src/data'], wrongKey), 18, /bucket source azure:src\/data: access denied/)).toMatch(/AZURE_STORAGE_/);
  }, 120_000);
});
