/**
 * Fills a local repository with synthetic index files (and empty pack files, so the
 * blobs they name count as stored) to measure a large repository's index without
 * writing its data: bench/index-memory.ts and test/e2e/index-memory.test.ts.
 *
 * Index files are built directly in their plain layout (index-file.ts) in batches,
 * sealed like real ones, and written under their hash name; memory stays at one batch.
 */
import { randomFillSync, createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { sealMeta } from '../../src/codec/crypto.js';
import { keys } from '../../src/repo/format.js';
import { ENTRY_LEN } from '../../src/repo/pack/pack.js';
import type { Repository } from '../../src/repo/repository.js';

export interface SyntheticOptions {
  /** Blobs to add. */
  blobs: number;
  blobsPerPack?: number;
  packsPerIndexFile?: number;
  /** Called after each index file with the blobs written so far. */
  progress?: (done: number) => void;
}

/** Adds `blobs` random blob entries to the repository at `root` (a local store). Returns some of the ids (for hits). */
export function addSyntheticIndex(repo: Repository, root: string, opts: SyntheticOptions): Buffer[] {
  const perPack = opts.blobsPerPack ?? 256;
  const packsPerFile = opts.packsPerIndexFile ?? 256;
  const sample: Buffer[] = [];
  let done = 0;
  const packId = Buffer.alloc(32);
  while (done < opts.blobs) {
    const packs = Math.min(packsPerFile, Math.ceil((opts.blobs - done) / perPack));
    const plainParts: Buffer[] = [];
    const head = Buffer.alloc(9);
    head.write('LBIX', 0, 'latin1');
    head[4] = 1;
    head.writeUInt32LE(packs, 5);
    plainParts.push(head);
    for (let p = 0; p < packs; p++) {
      const n = Math.min(perPack, opts.blobs - done);
      randomFillSync(packId);
      const hex = packId.toString('hex');
      const dir = path.join(root, 'data', hex.slice(0, 2));
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, hex), '');
      const ph = Buffer.alloc(36);
      packId.copy(ph);
      ph.writeUInt32LE(n, 32);
      const entries = Buffer.alloc(n * ENTRY_LEN);
      randomFillSync(entries);
      for (let i = 0; i < n; i++) {
        const b = i * ENTRY_LEN;
        entries[b] = 0;
        entries.writeUInt32LE(i * 1024, b + 33);
        entries.writeUInt32LE(1024, b + 37);
        entries.writeUInt32LE(1 << 20, b + 41);
      }
      if (sample.length < 100_000 && p % 4 === 0) sample.push(Buffer.from(entries.subarray(1, 33)));
      plainParts.push(ph, entries);
      done += n;
    }
    const sealed = sealMeta(repo.key, Buffer.concat(plainParts), { codec: 'none', level: 0 }, { kind: 'index' });
    const key = keys.index(createHash('sha256').update(sealed).digest('hex'));
    mkdirSync(path.join(root, 'index'), { recursive: true });
    writeFileSync(path.join(root, ...key.split('/')), sealed);
    opts.progress?.(done);
  }
  return sample;
}
