/**
 * The S3 store against a real S3-compatible server (s3rver on 127.0.0.1): the
 * conformance suite (listing beyond one page included) and the errors a user can
 * cause — missing bucket, wrong credentials, unreachable endpoint, bad location.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLifeboatError } from '../../src/errors.js';
import { S3Store, openS3Store, parseS3Location } from '../../src/storage/s3/s3-store.js';
import { storeConformance } from '../../src/storage/testing/suite.js';
import { cleanupTmp } from '../helpers.js';
import { S3_ENV, startS3rver, type S3Server } from '../s3rver.js';

let server: S3Server;
beforeAll(async () => {
  server = await startS3rver();
  await server.createBucket('conformance');
}, 60_000);
afterAll(async () => {
  await server?.stop();
  cleanupTmp();
});

storeConformance('s3 (s3rver)', async () => {
  const loc = `s3:${server.endpoint}/conformance/run-${randomBytes(4).toString('hex')}`;
  return openS3Store(loc.slice(3), loc);
});

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isLifeboatError(err)) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a failure');
}

describe('S3 store errors', () => {
  it('parses both location forms and refuses others', () => {
    expect(parseS3Location('https://minio.local:9000/b/p/q', 'x')).toEqual({ endpoint: 'https://minio.local:9000', bucket: 'b', prefix: 'p/q' });
    expect(parseS3Location('//bucket/a/b', 'x')).toEqual({ bucket: 'bucket', prefix: 'a/b' });
    for (const bad of ['ftp://h/b', 'https://h', '//']) expect(() => parseS3Location(bad, `s3:${bad}`)).toThrow(/cannot read S3 location/);
  });

  it('names the store: missing bucket, wrong credentials, unreachable endpoint', async () => {
    const missing = await openS3Store(`${server.endpoint}/no-such-bucket`, `s3:${server.endpoint}/no-such-bucket`);
    expect(await failure(missing.get('config'))).toMatchObject({ code: 'REPO_NOT_FOUND', message: expect.stringContaining('s3:http://127.0.0.1') });
    expect(await failure(missing.put('config', Buffer.from('x')))).toMatchObject({ code: 'REPO_NOT_FOUND' });
    await missing.close();

    process.env.AWS_ACCESS_KEY_ID = 'WRONG';
    try {
      const wrong = new S3Store({ endpoint: server.endpoint, bucket: 'conformance', prefix: 'x' }, 's3:wrong-creds');
      expect(await failure(wrong.put('k', Buffer.from('x')))).toMatchObject({ code: 'PERMISSION', message: expect.stringContaining('s3:wrong-creds') });
      await wrong.close();
    } finally {
      process.env.AWS_ACCESS_KEY_ID = S3_ENV.AWS_ACCESS_KEY_ID;
    }

    const down = await openS3Store('http://127.0.0.1:9/b', 's3:http://127.0.0.1:9/b');
    expect(await failure(down.get('config'))).toMatchObject({ code: 'STORE_UNAVAILABLE', message: expect.stringContaining('s3:http://127.0.0.1:9/b') });
    await down.close();
  });
});
