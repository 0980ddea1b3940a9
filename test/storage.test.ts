import { rmSync } from 'node:fs';
import { afterAll } from 'vitest';
import { LocalStore } from '../src/storage/local/local-store.js';
import { MemoryStore } from '../src/storage/memory/memory-store.js';
import { storeConformance } from '../src/storage/testing/suite.js';
import { cleanupTmp, tmpdir } from './helpers.js';

afterAll(cleanupTmp);

storeConformance('memory', async () => new MemoryStore());
storeConformance(
  'local',
  async () => new LocalStore(tmpdir()),
  async (store) => rmSync(store.location.slice('local:'.length), { recursive: true, force: true }),
);
