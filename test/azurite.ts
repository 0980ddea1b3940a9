/**
 * A real Azure Blob Storage server for tests: azurite's blob service in its own
 * process on 127.0.0.1 and a port the kernel picks (read back from its start-up
 * line). The flags are the ones this machine needs: `--skipApiVersionCheck` (the SDK
 * speaks a newer API version than azurite knows: every call would be a 400), and
 * `--disableTelemetry` (otherwise it reaches out to the internet). Nothing here
 * leaves 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { BlobServiceClient } from '@azure/storage-blob';
import { ROOT, tmpdir } from './helpers.js';

/** The development account every azurite accepts (published in azurite's README). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const MAIN = path.join(ROOT, 'node_modules', 'azurite', 'dist', 'src', 'blob', 'main.js');
const START_TIMEOUT_MS = 30_000;

export interface Azurite {
  /** `http://127.0.0.1:PORT/devstoreaccount1`, what AZURE_STORAGE_ENDPOINT takes. */
  endpoint: string;
  connectionString: string;
  /** A client with the development key, for setting up and inspecting from tests. */
  service: BlobServiceClient;
  stop(): Promise<void>;
}

export async function startAzurite(): Promise<Azurite> {
  const child: ChildProcess = spawn(
    process.execPath,
    [
      MAIN,
      '--blobHost', '127.0.0.1',
      '--blobPort', '0',
      '--location', tmpdir('lb-azurite-'),
      '--silent',
      '--skipApiVersionCheck',
      '--disableTelemetry',
      '--loose',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT },
  );
  // A test run that dies must not leave the server behind.
  const reap = () => child.kill('SIGKILL');
  process.once('exit', reap);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));

  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`azurite did not start within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /successfully listens on https?:\/\/[^:\s]+:(\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`azurite exited (${code}) before listening: ${stderr.trim()}`));
      });
    });
  } catch (err) {
    child.kill('SIGKILL');
    process.removeListener('exit', reap);
    throw err;
  }

  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const connectionString =
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
  // Listening is not yet answering: wait for one authenticated call to succeed (each try once: this loop retries).
  const probe = BlobServiceClient.fromConnectionString(connectionString, { retryOptions: { maxTries: 1 } });
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    try {
      await probe.getProperties();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        process.removeListener('exit', reap);
        throw new Error(`azurite on port ${port} does not answer: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // The tests' own client (setting up and checking what Lifeboat wrote) retries as the SDK does by
  // default: azurite under a loaded suite once dropped a connection ("socket hang up").
  const service = BlobServiceClient.fromConnectionString(connectionString);
  return {
    endpoint,
    connectionString,
    service,
    stop: async () => {
      process.removeListener('exit', reap);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
