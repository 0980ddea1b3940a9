/**
 * check --read-data-subset reads the least recently verified packs first and
 * remembers what it verified, so repeated subsets cover the whole repository before
 * any pack is read twice.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { check, loadVerified } from '../../src/repo/maintenance/check.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { listAll } from '../../src/storage/store.js';
import { cleanupTmp, pseudoRandom, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

describe('check --read-data-subset', () => {
  it('covers every pack in ceil(1/share) runs, least recently verified first', async () => {
    const store = new LocalStore(tmpdir('lb-subset-'));
    await Repository.init(store, 'pw');
    const repo = await Repository.open(store, 'pw');
    // Each backup flushes its own packs: eight backups give some sixteen packs.
    for (let i = 0; i < 8; i++) {
      const dir = tmpdir('lb-subset-src-');
      await fs.writeFile(path.join(dir, 'f.bin'), pseudoRandom(200_000, i));
      await backup(repo, { paths: [dir] });
    }
    const packs = (await listAll(store, 'data/')).length;
    expect(packs).toBeGreaterThanOrEqual(8);
    const share = 0.25;
    const perRun = Math.ceil(packs * share);
    let seen = new Map<string, number>();
    for (let run = 1; run <= Math.ceil(1 / share); run++) {
      const r = await check(repo, { readDataSubset: share });
      expect(r.ok).toBe(true);
      expect(r.packsRead).toBe(perRun);
      const now = await loadVerified(repo);
      const fresh = [...now.entries()].filter(([id, at]) => seen.get(id) !== at).map(([id]) => id);
      // No pack read twice while some were never read.
      if (seen.size + perRun <= packs) expect(fresh.every((id) => !seen.has(id))).toBe(true);
      seen = now;
    }
    expect(seen.size).toBe(packs);
  });
});
