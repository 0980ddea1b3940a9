/**
 * Worker threads started from the sources use dist/ only when it was built from
 * exactly these sources: a stale or missing compiled file means tsx, never old code.
 */
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDist } from '../../src/engine/workers/worker-url.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

function tree(): { root: string; caller: string; ts: string; js: string } {
  const root = tmpdir('lb-worker-url-');
  for (const d of ['src/engine/workers', 'src/util', 'dist/engine/workers', 'dist/util']) mkdirSync(path.join(root, d), { recursive: true });
  const caller = path.join(root, 'src/engine/workers/pool.ts');
  for (const f of ['engine/workers/pool', 'util/bytes']) {
    writeFileSync(path.join(root, 'src', `${f}.ts`), '');
    writeFileSync(path.join(root, 'dist', `${f}.js`), '');
    utimesSync(path.join(root, 'src', `${f}.ts`), 1_000, 1_000);
    utimesSync(path.join(root, 'dist', `${f}.js`), 2_000, 2_000);
  }
  return { root, caller, ts: path.join(root, 'src/util/bytes.ts'), js: path.join(root, 'dist/util/bytes.js') };
}

describe('freshDist', () => {
  it('is dist/ when every source has a newer compiled file', () => {
    const t = tree();
    expect(freshDist(t.caller)).toEqual({ src: path.join(t.root, 'src'), dist: path.join(t.root, 'dist') });
  });

  it('is null when any source is newer than its compiled file, or has none', () => {
    const stale = tree();
    utimesSync(stale.ts, 3_000, 3_000);
    expect(freshDist(stale.caller)).toBeNull();
    const missing = tree();
    writeFileSync(path.join(missing.root, 'src/util/new.ts'), '');
    expect(freshDist(missing.caller)).toBeNull();
  });

  it('is null for a caller outside a src/ directory', () => {
    expect(freshDist('/opt/lifeboat/dist/engine/workers/chunk-pool.js')).toBeNull();
  });
});
