/**
 * A real S3-compatible server for tests: s3rver on 127.0.0.1 and a free port, in its
 * own process (it needs `--openssl-legacy-provider`, without which every paginated
 * listing fails). Buckets are created through the AWS SDK, like a user would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { tmpdir } from './helpers.js';

export const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

const SERVER = `
const S3rver = require('s3rver');
new S3rver({ port: Number(process.argv[2] || 0), address: '127.0.0.1', silent: true, directory: process.argv[1] })
  .run()
  .then((addr) => console.log('PORT ' + addr.port), (err) => { console.error(err); process.exit(1); });
`;

/** The environment for rclone (an independent S3 client) to reach s3rver at `endpoint` as remote `s3:`. */
export function rcloneS3Env(endpoint: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    // A CA bundle in the environment makes rclone refuse a plain-http endpoint.
    AWS_CA_BUNDLE: '',
    RCLONE_CONFIG_S3_TYPE: 's3',
    RCLONE_CONFIG_S3_PROVIDER: 'Other',
    RCLONE_CONFIG_S3_ENDPOINT: endpoint,
    RCLONE_CONFIG_S3_ACCESS_KEY_ID: 'S3RVER',
    RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: 'S3RVER',
    RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true',
  };
}

export interface S3Server {
  endpoint: string;
  directory: string;
  port: number;
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts a server; give `at` (the directory and port of a server stopped before) to
 * bring the same one back, with what it stored.
 */
export async function startS3rver(at?: { directory: string; port: number }): Promise<S3Server> {
  Object.assign(process.env, S3_ENV, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
  const directory = at?.directory ?? tmpdir('lb-s3rver-');
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', '-e', SERVER, directory, String(at?.port ?? 0)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    cwd: new URL('..', import.meta.url).pathname,
  });
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const m = /^PORT (\d+)$/.exec(l);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`s3rver exited ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  return {
    endpoint,
    directory,
    port,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    stop: async () => {
      client.destroy();
      child.kill();
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}
