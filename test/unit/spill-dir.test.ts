/**
 * A backup's spill directory (src/repo/pack/spill.ts) is swept only when a dead
 * backup left it: a live one renews its time, so a long run that writes no new pack
 * for a day is not swept from under itself by another process's first write.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SpillDir } from '../../src/repo/pack/spill.js';
import { sweepStale } from '../../src/util/sweep.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const DAY = 24 * 3600 * 1000;

describe('spill directory', () => {
  it('renews its time while the backup lives, so the sweep keeps it; a dead one is swept', async () => {
    const base = tmpdir('lb-spill-dir-');
    const live = await SpillDir.open({}, [{ dir: base, own: true }]);
    const dead = await SpillDir.open({}, [{ dir: base, own: true }]);
    const old = new Date(Date.now() - 2 * DAY);
    for (const d of [live, dead]) await fs.utimes(d.path, old, old);
    await live.touch();
    expect(sweepStale(base, Date.now() - DAY)).toBe(1);
    expect(await fs.readdir(base)).toEqual([path.basename(live.path)]);
    await live.remove();
    await dead.remove();
  });
});
