/**
 * The scan that runs ahead of a backup (src/engine/backup/scan.ts): its totals are the
 * backup's own (same paths, same excludes, regular files only), also below a tree
 * deeper than the levels it keeps a directory handle open for; it reports running
 * totals before its final ones, and stopping it stops the reports.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startScan, type ScanTotals } from '../../src/engine/backup/scan.js';
import { backup } from '../../src/engine/backup/archiver.js';
import { Repository } from '../../src/repo/repository.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import { cleanupTmp, makeFixture, pseudoRandom, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

function scanned(paths: string[], excludes: string[]): Promise<ScanTotals[]> {
  return new Promise((resolve) => {
    const seen: ScanTotals[] = [];
    startScan({ paths, excludes }, (t) => {
      seen.push(t);
      if (t.done) resolve(seen);
    });
  });
}

describe('the scan for progress totals', () => {
  it('counts what the backup backs up, excludes and a tree 100 levels deep included', async () => {
    const src = path.join(tmpdir(), 'src');
    await fs.mkdir(src);
    await makeFixture(src);
    let deep = path.join(src, 'deep');
    for (let i = 0; i < 100; i++) {
      deep = path.join(deep, `d${i}`);
      await fs.mkdir(deep, { recursive: true });
      await fs.writeFile(path.join(deep, 'f'), pseudoRandom(100 + i, i + 1));
    }
    await fs.mkdir(path.join(src, 'skip'));
    await fs.writeFile(path.join(src, 'skip', 'big'), pseudoRandom(50_000, 7));
    const other = path.join(tmpdir(), 'other.bin');
    await fs.writeFile(other, pseudoRandom(1234, 9));
    const excludes = ['skip'];

    const seen = await scanned([src, other], excludes);
    const last = seen.at(-1)!;
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const { snapshot } = await backup(repo, { paths: [src, other], tags: [], excludes });
    expect({ files: last.files, bytes: last.bytes }).toEqual({ files: snapshot.summary.totalFiles, bytes: snapshot.summary.totalBytes });
    expect(last.files).toBeGreaterThan(100);
    // Running totals never go back, and only the last is final.
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.files).toBeGreaterThanOrEqual(seen[i - 1]!.files);
    expect(seen.filter((t) => t.done)).toHaveLength(1);
  });

  it('reports nothing once stopped, and a missing path is no error', async () => {
    const seen: ScanTotals[] = [];
    const scan = startScan({ paths: ['/usr/share'], excludes: [] }, (t) => seen.push(t));
    scan.stop();
    scan.stop(); // idempotent
    // Stopped before the event loop could deliver a message: none is ever delivered.
    expect(seen).toEqual([]);
    expect((await scanned([path.join(tmpdir(), 'missing')], [])).at(-1)).toEqual({ files: 0, bytes: 0, done: true });
  });
});
