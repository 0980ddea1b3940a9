/**
 * Issue 19, "memory independent of repository size", scaled down to run in the
 * suite: the same small backup into a repository of 200k and of 2M (synthetic)
 * blobs. With the whole index in memory the second peaks ~175 MB higher (2^22 slots
 * of 48 bytes against 2^19); with the large one's index on disk (a cache file and a
 * filter of a byte per blob) the peaks stay within a few MB of each other.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { addSyntheticIndex } from '../helpers/synthetic-index.js';
import { cleanupTmp, initRepo, pseudoRandom, runCli, timedCli, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

async function syntheticRepo(blobs: number): Promise<string> {
  const dir = path.join(tmpdir(), 'repo');
  await initRepo(dir);
  const repo = await Repository.open(new LocalStore(dir), 'test-password');
  addSyntheticIndex(repo, dir, { blobs, blobsPerPack: 1024, packsPerIndexFile: 64 });
  return dir;
}

describe('backup memory as the repository grows', () => {
  it('peaks within 40 MB for 200k and 2M blobs in the repository', async () => {
    const src = tmpdir();
    mkdirSync(path.join(src, 'd'));
    for (let i = 0; i < 8; i++) writeFileSync(path.join(src, 'd', `f${i}`), pseudoRandom(256 * 1024 + i, i));
    const cache = tmpdir();
    const env = { LIFEBOAT_CACHE_DIR: cache };
    const peaks: number[] = [];
    const repos: string[] = [];
    for (const blobs of [200_000, 2_000_000]) {
      const repo = await syntheticRepo(blobs);
      repos.push(repo);
      const r = await timedCli(['-r', repo, 'backup', '--threads', '1', src], env);
      expect(r.code, r.stderr).toBe(0);
      peaks.push(r.peakMB);
    }
    const [small, large] = peaks as [number, number];
    console.log(`backup peak RSS: ${small.toFixed(0)} MB with 200k blobs, ${large.toFixed(0)} MB with 2M`);
    expect(large - small, `peak RSS ${small.toFixed(0)} MB with 200k blobs, ${large.toFixed(0)} MB with 2M`).toBeLessThan(40);
    // The large repository's index went to a cache file; the small one's did not.
    const ids = await Promise.all(repos.map(async (r) => (await Repository.readConfig(new LocalStore(r))).id));
    expect(existsSync(path.join(cache, ids[0]!, 'index', 'blobs.lbidx'))).toBe(false);
    expect(existsSync(path.join(cache, ids[1]!, 'index', 'blobs.lbidx'))).toBe(true);
    // A second backup opens the cache file instead of building it, and also stays low;
    // this one leaves the filter in the file, as above 32 M blobs (one pread a lookup).
    const again = await timedCli(['-r', repos[1]!, 'backup', '--threads', '1', src], { ...env, LIFEBOAT_INDEX_FILTER_MAX_BYTES: '0' });
    expect(again.code, again.stderr).toBe(0);
    expect(again.peakMB - small).toBeLessThan(40);
    expect((await runCli(['-r', repos[1]!, 'check'])).code).toBe(0);
  }, 300_000);
});
