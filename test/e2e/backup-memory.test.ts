/**
 * Issue 19, a backup's and a restore's own memory (not the index's: see
 * index-memory.test.ts): the peak RSS of the CLI backing up and restoring 160 MB of
 * half-compressible files with four worker threads. Four workers (more than this
 * machine's cores) make each worker's share count: before the workers stopped leaving
 * each chunk's compression and encryption outputs for V8's GC (and ran a scavenge per
 * window and per restore job), these peaked at 353-385 MB and 243-249 MB; after, at
 * 282-294 MB and 199-202 MB (docs/performance.md, "Memory"). Before the workers wrote
 * their packs to files instead of 16 MiB buffers (and the main thread held the waiting
 * ones as files too), the backup peaked at 263-273 MB; after, at 199-205 MB.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTmp, initRepo, runCli, timedCli, tmpdir } from '../helpers.js';
import { incompressibleDatabase } from '../sqlite-helpers.js';

afterAll(() => cleanupTmp());

/** 20 MB of random nibbles (one in each half of every byte): zstd stores it at about half. */
function halfCompressible(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE((x & 0x0f0f0f0f) >>> 0, i);
  }
  return out;
}

describe('backup and restore memory', () => {
  it('a backup of 160 MB peaks under 235 MB and its restore under 225 MB with four workers', async () => {
    const src = tmpdir();
    const files = 8;
    for (let i = 0; i < files; i++) writeFileSync(path.join(src, `f${i}`), halfCompressible(20 * 1024 * 1024, i + 1));
    const repo = path.join(tmpdir(), 'repo');
    await initRepo(repo);

    const backup = await timedCli(['-r', repo, 'backup', '--threads', '4', src]);
    expect(backup.code, backup.stderr).toBe(0);
    const target = path.join(tmpdir(), 'out');
    const restore = await timedCli(['-r', repo, 'restore', 'latest', '--threads', '4', '--target', target]);
    expect(restore.code, restore.stderr).toBe(0);
    console.log(`peak RSS: backup ${backup.peakMB.toFixed(0)} MB, restore ${restore.peakMB.toFixed(0)} MB`);

    // What was restored is what was backed up (the bound must not be met by doing less).
    for (let i = 0; i < files; i++) {
      const restored = readFileSync(path.join(target, src, `f${i}`));
      expect(restored.equals(halfCompressible(20 * 1024 * 1024, i + 1)), `f${i}`).toBe(true);
    }
    expect(backup.peakMB, 'backup peak RSS (MB)').toBeLessThan(235);
    expect(restore.peakMB, 'restore peak RSS (MB)').toBeLessThan(225);
  }, 300_000);

  /**
   * A stream backup (SQLite here; PostgreSQL dumps, Redis and buckets go the same way)
   * seals its packs on the main thread. Held in memory, up to four 16 MiB packs were
   * alive at once (one filling, its concatenation, two uploading): 201-217 MB for this
   * 160 MB database. Written to files as they fill: 132-135 MB (docs/performance.md).
   * `copy` re-seals every blob into packs of the destination's: held in memory those
   * peaked at 151-172 MB for this much data, written to files at 110-117 MB.
   */
  it('a SQLite backup of 160 MB of incompressible rows peaks under 170 MB, its copy under 140 MB, and both restore the same rows', async () => {
    const dir = tmpdir();
    const db = incompressibleDatabase(path.join(dir, 'big.db'), 2500);
    const repo = path.join(tmpdir(), 'repo');
    await initRepo(repo);

    const backup = await timedCli(['-r', repo, 'sqlite', 'backup', db]);
    expect(backup.code, backup.stderr).toBe(0);
    console.log(`peak RSS: sqlite backup ${backup.peakMB.toFixed(0)} MB`);
    const copied = path.join(tmpdir(), 'repo');
    await initRepo(copied);
    const copy = await timedCli(['copy', '--from-repo', repo, '--to-repo', copied]);
    expect(copy.code, copy.stderr).toBe(0);
    console.log(`peak RSS: copy ${copy.peakMB.toFixed(0)} MB`);
    const out = path.join(tmpdir(), 'back.db');
    const restore = await runCli(['-r', repo, 'sqlite', 'restore', 'big', '-o', out]);
    expect(restore.code, restore.stderr).toBe(0);
    const outCopy = path.join(tmpdir(), 'copy.db');
    const restoreCopy = await runCli(['-r', copied, 'sqlite', 'restore', 'big', '-o', outCopy]);
    expect(restoreCopy.code, restoreCopy.stderr).toBe(0);
    const rows = (file: string) => {
      const c = new Database(file, { readonly: true });
      try {
        return c.prepare('SELECT id, b FROM t ORDER BY id').all() as Array<{ id: number; b: Buffer }>;
      } finally {
        c.close();
      }
    };
    const before = rows(db);
    for (const file of [out, outCopy]) {
      const after = rows(file);
      expect(after.length, file).toBe(2500);
      expect(after.every((r, i) => r.id === before[i]?.id && r.b.equals(before[i]!.b)), file).toBe(true);
    }
    expect(backup.peakMB, 'sqlite backup peak RSS (MB)').toBeLessThan(170);
    expect(copy.peakMB, 'copy peak RSS (MB)').toBeLessThan(140);
  }, 300_000);
});
