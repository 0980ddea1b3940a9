/**
 * Registers the stores that ship with Lifeboat: local paths, in-memory stores, S3 and
 * Azure. The cloud SDKs are imported only when such a location is opened, so local
 * commands (and PostgreSQL's archive_command) do not pay for loading them.
 */
import { LocalStore } from './local/local-store.js';
import { MemoryStore } from './memory/memory-store.js';
import { registerStore } from './registry.js';

let done = false;

export function registerBuiltinStores(): void {
  if (done) return;
  done = true;
  registerStore('local', async (rest) => new LocalStore(rest));
  registerStore('memory', async (rest) => new MemoryStore(rest));
  registerStore('s3', async (rest, location) => (await import('./s3/s3-store.js')).openS3Store(rest, location));
  registerStore('azure', async (rest, location) => (await import('./azure/azure-store.js')).openAzureStore(rest, location));
}
