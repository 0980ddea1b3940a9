/**
 * The prune use case called as the engine function the CLI's `prune` and `forget
 * --prune` are shells over (src/engine/prune.ts), without a process: a dry run changes
 * nothing, two runs with no grace delete what a forgotten snapshot alone held while the
 * other snapshot stays whole, and an append-only client is refused before any lock.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { pruneRepository } from '../../src/engine/prune.js';
import { forget } from '../../src/engine/retention/forget.js';
import { isLifeboatError } from '../../src/errors.js';
import { check } from '../../src/repo/maintenance/check.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { listAll } from '../../src/storage/store.js';
import { AppendOnlyStore } from '../../src/storage/wrappers/append-only.js';
import { cleanupTmp, pseudoRandom, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const options = { graceMs: 0, repackThreshold: 0.5, dryRun: false, reseal: false };

describe('pruneRepository', () => {
  it('deletes what only a forgotten snapshot held, in two runs, and keeps the rest whole', async () => {
    const store = new LocalStore(tmpdir('lb-prune-engine-'));
    await Repository.init(store, 'pw');
    const repo = await Repository.open(store, 'pw');
    const kept = tmpdir('lb-prune-engine-kept-');
    await fs.writeFile(path.join(kept, 'a.bin'), pseudoRandom(300_000, 1));
    await backup(repo, { paths: [kept] });
    const gone = tmpdir('lb-prune-engine-gone-');
    await fs.writeFile(path.join(gone, 'b.bin'), pseudoRandom(300_000, 2));
    const { snapshot } = await backup(repo, { paths: [gone] });
    const packsBefore = (await listAll(store, 'data/')).length;
    await forget(repo, { ids: [snapshot.id], force: true });

    const dry = await pruneRepository(repo, { ...options, dryRun: true });
    expect(dry.retired).toBeGreaterThan(0);
    expect((await listAll(store, 'data/')).length).toBe(packsBefore);

    const first = await pruneRepository(repo, options);
    expect(first.snapshots).toBe(1);
    expect(first.retired).toBeGreaterThan(0);
    const second = await pruneRepository(repo, options);
    expect(first.deleted + second.deleted).toBeGreaterThan(0);
    expect((await listAll(store, 'data/')).length).toBeLessThan(packsBefore);
    expect(second.logs).toEqual([]);
    const c = await check(repo, { readData: true });
    expect(c.ok).toBe(true);
  });

  it('refuses an append-only client', async () => {
    const store = new LocalStore(tmpdir('lb-prune-engine-ao-'));
    await Repository.init(store, 'pw');
    const repo = await Repository.open(new AppendOnlyStore(store), 'pw');
    const err = await pruneRepository(repo, options).catch((e: unknown) => e);
    expect(isLifeboatError(err) && err.code).toBe('PERMISSION');
    expect(await listAll(store, 'locks/')).toEqual([]);
  });
});
