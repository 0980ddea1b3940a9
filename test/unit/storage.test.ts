import { promises as fs, rmSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listAll } from '../../src/storage/store.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { storeConformance } from '../../src/storage/testing/suite.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

storeConformance('memory', async () => new MemoryStore());
storeConformance(
  'local',
  async () => new LocalStore(tmpdir()),
  async (store) => rmSync(store.location.slice('local:'.length), { recursive: true, force: true }),
);

describe('local store temporary files', () => {
  it('sweeps those left by dead writers (older than a day) on the first write, and only those', async () => {
    const root = tmpdir();
    await fs.mkdir(path.join(root, 'tmp'), { recursive: true });
    const old = path.join(root, 'tmp', 'dead.tmp');
    const fresh = path.join(root, 'tmp', 'live.tmp');
    await fs.writeFile(old, 'left by kill -9');
    await fs.writeFile(fresh, 'being written right now');
    const twoDaysAgo = (Date.now() - 2 * 86_400_000) / 1000;
    await fs.utimes(old, twoDaysAgo, twoDaysAgo);
    const store = new LocalStore(root);
    await store.put('config', Buffer.from('{}'));
    await expect(fs.stat(old)).rejects.toThrow();
    expect(await fs.readFile(fresh, 'utf8')).toBe('being written right now');
    expect((await listAll(store, '')).map((o) => o.key)).toEqual(['config']);
  });
});
