/**
 * The Azure store against a real Blob service (azurite on 127.0.0.1): the conformance
 * suite twice — below a prefix with a connection string, and at a fresh container's
 * root with account + key — listing beyond one page included; packs going up in
 * checked blocks (from a Buffer with put, streamed from a file with putFile); and the errors a user can cause: wrong key, missing container,
 * unreachable endpoint, no credentials, a bad location.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isLifeboatError } from '../../src/errors.js';
import { parseAzureLocation } from '../../src/storage/azure/azure-config.js';
import { AzureStore, openAzureStore } from '../../src/storage/azure/azure-store.js';
import { listAll, putFile, type Store } from '../../src/storage/store.js';
import { storeConformance } from '../../src/storage/testing/suite.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, closedPort, startAzurite, type Azurite } from '../azurite.js';
import { cleanupTmp, tmpdir } from '../helpers.js';
import { holdingProxy, settledArrayBuffers } from '../holding-proxy.js';

const ENV_VARS = ['AZURE_STORAGE_CONNECTION_STRING', 'AZURE_STORAGE_ACCOUNT', 'AZURE_STORAGE_KEY', 'AZURE_STORAGE_ENDPOINT'] as const;
type AzureEnv = Partial<Record<(typeof ENV_VARS)[number], string>>;

/** Runs `fn` with exactly these Azure variables set (the others unset), then restores them. */
async function withEnv<T>(vars: AzureEnv, fn: () => Promise<T>): Promise<T> {
  const saved = ENV_VARS.map((v) => [v, process.env[v]] as const);
  for (const v of ENV_VARS) delete process.env[v];
  Object.assign(process.env, vars);
  try {
    return await fn();
  } finally {
    for (const [v, value] of saved) {
      if (value === undefined) delete process.env[v];
      else process.env[v] = value;
    }
  }
}

let azurite: Azurite;
beforeAll(async () => {
  azurite = await startAzurite();
  await azurite.service.getContainerClient('conformance').create();
}, 60_000);
afterAll(async () => {
  await azurite?.stop();
  cleanupTmp();
});

const sharedKeyEnv = (): AzureEnv => ({
  AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT,
  AZURE_STORAGE_KEY: AZURITE_KEY,
  AZURE_STORAGE_ENDPOINT: azurite.endpoint,
});
const open = (location: string, env: AzureEnv): Promise<AzureStore> =>
  withEnv(env, () => openAzureStore(location.slice('azure:'.length), location));

storeConformance(
  'azure (azurite, prefix, connection string)',
  () => open(`azure:conformance/run-${randomBytes(4).toString('hex')}/repo`, { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString }),
  async () => {},
  { listCount: 1100 },
);

storeConformance(
  'azure (azurite, container root, account key)',
  async () => {
    const container = `root-${randomBytes(4).toString('hex')}`;
    await azurite.service.getContainerClient(container).create();
    return open(`azure:${container}`, sharedKeyEnv());
  },
  async (store: Store) => {
    await azurite.service.getContainerClient(store.location.slice('azure:'.length)).delete();
  },
  { listCount: 1100 },
);

describe('Azure store uploads', () => {
  it('sends a pack in checked blocks, stores its MD5, and keeps create-only on the commit', async () => {
    const store = await open('azure:conformance/packs', sharedKeyEnv());
    const pack = randomBytes(16 * 1024 * 1024 + 12345);
    await store.put('data/ab/pack', pack, { ifAbsent: true });
    expect(Buffer.from(await store.get('data/ab/pack')).equals(pack)).toBe(true);
    const tail = await store.get('data/ab/pack', { offset: pack.length - 1000, length: 1000 });
    expect(Buffer.from(tail).equals(pack.subarray(pack.length - 1000))).toBe(true);

    const blob = azurite.service.getContainerClient('conformance').getBlockBlobClient('packs/data/ab/pack');
    const blocks = await blob.getBlockList('committed');
    expect(blocks.committedBlocks?.length).toBe(5);
    expect(Buffer.from((await blob.getProperties()).contentMD5 ?? []).equals(createHash('md5').update(pack).digest())).toBe(true);

    await expect(store.put('data/ab/pack', randomBytes(9 * 1024 * 1024), { ifAbsent: true })).rejects.toSatisfy((e: unknown) =>
      isLifeboatError(e, 'ALREADY_EXISTS'),
    );
    expect((await store.stat('data/ab/pack'))?.size).toBe(pack.length);
    // Nothing half-written is listed: the refused upload's staged blocks are not a blob.
    expect((await listAll(store, 'data/')).map((o) => o.key)).toEqual(['data/ab/pack']);
  });
});

describe('Azure store putFile', () => {
  it('streams a pack from its file in checked blocks, without holding the file', async () => {
    const proxy = await holdingProxy(new URL(azurite.endpoint), { holding: true });
    const data = randomBytes(40 * 1024 * 1024 + 12345);
    const file = { path: path.join(tmpdir('lb-azfile-'), 'pack.tmp'), size: data.length };
    writeFileSync(file.path, data, { flag: 'wx' });
    const store = await open('azure:conformance/files', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: proxy.endpoint });
    try {
      const before = await settledArrayBuffers();
      const put = putFile(store, 'data/ab/pack', file, { ifAbsent: true });
      put.catch(() => {}); // awaited below, after the bodies are let through
      // Blocks are on their way and none is read by the service yet: what the client
      // holds now is what a streamed upload costs (a 40 MiB Buffer if it read the file).
      await vi.waitFor(() => expect(proxy.held()).toBeGreaterThan(0), { timeout: 30_000, interval: 20 });
      const held = (await settledArrayBuffers()) - before;
      proxy.release();
      await put;
      expect(held).toBeLessThan(12 << 20);

      const staged = proxy.requests.filter((r) => r.method === 'PUT' && /[?&]comp=block(&|$)/.test(r.url));
      expect(staged.length).toBe(Math.ceil(data.length / (4 << 20)));
      for (const r of staged) expect(r.headers['content-md5']).toBe(Buffer.from(r.md5 ?? '', 'hex').toString('base64'));
      const blob = azurite.service.getContainerClient('conformance').getBlockBlobClient('files/data/ab/pack');
      expect((await blob.getBlockList('committed')).committedBlocks?.length).toBe(staged.length);
      expect(Buffer.from((await blob.getProperties()).contentMD5 ?? []).equals(createHash('md5').update(data).digest())).toBe(true);
      expect(Buffer.from(await store.get('data/ab/pack')).equals(data)).toBe(true);
      await expect(putFile(store, 'data/ab/pack', file, { ifAbsent: true })).rejects.toSatisfy((e: unknown) => isLifeboatError(e, 'ALREADY_EXISTS'));
    } finally {
      proxy.release();
      await proxy.close();
    }
  }, 120_000);

  it('a connection cut in the middle of a block: the block goes again from a new read of its range', async () => {
    const proxy = await holdingProxy(new URL(azurite.endpoint), { cutFirst: 1 });
    const data = randomBytes(10 * 1024 * 1024 + 777);
    const file = { path: path.join(tmpdir('lb-azfile-'), 'pack.tmp'), size: data.length };
    writeFileSync(file.path, data, { flag: 'wx' });
    const store = await open('azure:conformance/cut', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: proxy.endpoint });
    try {
      await putFile(store, 'data/ab/pack', file);
      const staged = proxy.requests.filter((r) => r.method === 'PUT' && /[?&]comp=block(&|$)/.test(r.url));
      expect(staged.filter((r) => r.cut).length).toBe(1);
      expect(staged.length).toBe(Math.ceil(data.length / (4 << 20)) + 1);
      for (const r of staged.filter((r) => !r.cut)) expect(r.headers['content-md5']).toBe(Buffer.from(r.md5 ?? '', 'hex').toString('base64'));
      expect(Buffer.from(await store.get('data/ab/pack')).equals(data)).toBe(true);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('a pack whose bytes are damaged on the way up is refused, and nothing is stored', async () => {
    const proxy = await corruptingProxy(new URL(azurite.endpoint));
    try {
      const store = await open('azure:conformance/damaged-file', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: proxy.endpoint });
      const dir = tmpdir('lb-azfile-');
      for (const size of [1000, 9 * 1024 * 1024]) {
        const file = { path: path.join(dir, `${size}.tmp`), size };
        writeFileSync(file.path, randomBytes(size), { flag: 'wx' });
        expect(await failure(putFile(store, `data/00/s${size}`, file))).toMatchObject({
          code: 'STORE_UNAVAILABLE',
          message: expect.stringMatching(/MD5 mismatch/),
        });
      }
      expect(await listAll(await open('azure:conformance/damaged-file', sharedKeyEnv()), '')).toEqual([]);
    } finally {
      proxy.server.closeAllConnections();
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });
});

/**
 * A proxy in front of azurite that flips one byte in the body of every PUT: damage
 * in transit that the request signature does not cover (it signs headers, not bytes).
 */
async function corruptingProxy(target: URL): Promise<{ endpoint: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const mid = body.length >> 1;
      if (req.method === 'PUT' && body.length > 0) body[mid] = (body[mid] ?? 0) ^ 0x01;
      const fwd = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      fwd.on('error', () => res.destroy());
      fwd.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { endpoint: `http://127.0.0.1:${port}${target.pathname}`, server };
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string; hint: string | undefined }> {
  try {
    await p;
  } catch (err) {
    if (isLifeboatError(err)) return { code: err.code, message: err.message, hint: err.hint };
    throw err;
  }
  throw new Error('expected a failure');
}

/** One call of each Store method, started only when called (so none rejects unobserved). */
function everyOperation(store: Store): Array<() => Promise<unknown>> {
  return [
    () => store.put('config', Buffer.from('x')),
    () => store.put('data/00/pack', randomBytes(9 * 1024 * 1024)),
    () => store.get('config'),
    () => store.get('config', { offset: 1, length: 1 }),
    () => store.stat('config'),
    () => listAll(store, ''),
    () => store.delete('config'),
  ];
}

describe('Azure store errors', () => {
  it('bytes damaged on the way up are refused by the service, and nothing is stored', async () => {
    const proxy = await corruptingProxy(new URL(azurite.endpoint));
    try {
      const store = await open('azure:conformance/damaged', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: proxy.endpoint });
      for (const size of [1000, 9 * 1024 * 1024]) {
        expect(await failure(store.put(`data/00/s${size}`, randomBytes(size)))).toMatchObject({
          code: 'STORE_UNAVAILABLE',
          message: expect.stringMatching(/azure:conformance\/damaged: put .*MD5 mismatch/),
        });
      }
      const direct = await open('azure:conformance/damaged', sharedKeyEnv());
      expect(await listAll(direct, '')).toEqual([]);
    } finally {
      proxy.server.closeAllConnections();
      await new Promise((resolve) => proxy.server.close(resolve));
    }
  });


  it('reads locations and refuses bad ones', () => {
    expect(parseAzureLocation('backups', 'azure:backups')).toEqual({ container: 'backups', prefix: '' });
    expect(parseAzureLocation('backups/host-1/db/', 'x')).toEqual({ container: 'backups', prefix: 'host-1/db' });
    for (const bad of ['', '/p', 'ab', 'Upper', 'a--b', 'bad_name', '-lead', 'ok/../up']) {
      expect(() => parseAzureLocation(bad, `azure:${bad}`)).toThrow(/cannot read Azure location/);
    }
  });

  it('wrong account key is PERMISSION, naming the store', async () => {
    const store = await open('azure:conformance/wrong-key', { ...sharedKeyEnv(), AZURE_STORAGE_KEY: randomBytes(64).toString('base64') });
    for (const op of everyOperation(store)) {
      expect(await failure(op())).toMatchObject({
        code: 'PERMISSION',
        message: expect.stringContaining('azure:conformance/wrong-key'),
        hint: expect.stringContaining('account key'),
      });
    }
  });

  it('a missing container is REPO_NOT_FOUND for every operation, naming the store', async () => {
    const store = await open('azure:no-such-container/x', { AZURE_STORAGE_CONNECTION_STRING: azurite.connectionString });
    for (const op of [...everyOperation(store), () => store.probe()]) {
      expect(await failure(op())).toMatchObject({
        code: 'REPO_NOT_FOUND',
        message: expect.stringContaining('azure:no-such-container/x'),
        hint: expect.stringContaining('az storage container create'),
      });
    }
  });

  it('an unreachable endpoint is STORE_UNAVAILABLE, naming the store', async () => {
    const port = await closedPort();
    const store = await open('azure:conformance', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}` });
    for (const op of everyOperation(store)) {
      expect(await failure(op())).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('azure:conformance') });
    }
  });

  it('missing or partial credentials are USAGE naming the variables', async () => {
    expect(await failure(open('azure:conformance', {}))).toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/AZURE_STORAGE_CONNECTION_STRING.*AZURE_STORAGE_ACCOUNT.*AZURE_STORAGE_KEY/),
    });
    expect(await failure(open('azure:conformance', { AZURE_STORAGE_ACCOUNT: AZURITE_ACCOUNT }))).toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('AZURE_STORAGE_KEY is not set'),
    });
    expect(await failure(open('azure:conformance', { ...sharedKeyEnv(), AZURE_STORAGE_ENDPOINT: '127.0.0.1:10000' }))).toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('AZURE_STORAGE_ENDPOINT'),
    });
    expect(await failure(open('azure:conformance', { AZURE_STORAGE_CONNECTION_STRING: 'nonsense' }))).toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('AZURE_STORAGE_CONNECTION_STRING'),
    });
  });
});
