/** Registers the stores that ship with the core: local paths and in-memory stores. */
import { LocalStore } from './local/local-store.js';
import { MemoryStore } from './memory/memory-store.js';
import { registerStore } from './registry.js';

let done = false;

export function registerBuiltinStores(): void {
  if (done) return;
  done = true;
  registerStore('local', async (rest) => new LocalStore(rest));
  registerStore('memory', async (rest) => new MemoryStore(rest));
}
