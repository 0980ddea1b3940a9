/**
 * The restore plan is written in batches while the walk plans the next (issue 19):
 * writes start before the walk ends, a snapshot restores exactly across batch
 * boundaries (hard links, files of several blobs, symlinks), and a failure in an
 * early batch still names every file that is not in the target, planned or not,
 * leaving no temporary and no wrong file behind.
 */
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { restore, incompleteOf } from '../../src/engine/restore/restorer.js';
import type { ProgressEvent } from '../../src/engine/progress.js';
import { keys } from '../../src/repo/format.js';
import { Repository } from '../../src/repo/repository.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { cleanupTmp, makeFixture, pseudoRandom, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

describe('a restore written in batches', () => {
  let src: string;
  let repoDir: string;
  let repo: Repository;
  let snapshot: Snapshot;

  beforeAll(async () => {
    src = path.join(tmpdir(), 'src');
    await fs.mkdir(src);
    await makeFixture(src);
    // Enough files for many batches of three, in several directories, a hard link
    // whose first name and second name fall in different batches.
    for (let d = 0; d < 4; d++) {
      await fs.mkdir(path.join(src, `dir${d}`));
      for (let f = 0; f < 6; f++) await fs.writeFile(path.join(src, `dir${d}`, `f${f}.bin`), pseudoRandom(20_000 + 1000 * f, 10 * d + f + 1));
    }
    await fs.link(path.join(src, 'dir0', 'f0.bin'), path.join(src, 'dir3', 'zz-link.bin'));
    // A second file of several blobs, batches after big.bin: temporary names stay unique.
    await fs.writeFile(path.join(src, 'dir2', 'large.bin'), pseudoRandom(3 * 1024 * 1024, 77));
    repoDir = path.join(tmpdir(), 'repo');
    repo = await Repository.init(new LocalStore(repoDir), 'pw');
    ({ snapshot } = await backup(repo, { paths: [src] }));
  });

  it('starts writing before the walk ends and restores exactly across batch boundaries', async () => {
    const out = path.join(tmpdir(), 'out');
    const events: ProgressEvent[] = [];
    let lastDirAtFirstWrite: boolean | undefined;
    const r = await restore(repo, snapshot, {
      target: out,
      batch: { files: 3, bytes: 1 << 30 },
      onProgress: (e) => {
        // The walk makes directories as it reaches them: the last one is not there yet
        // when the first batch is written (a plan made whole first would have made it).
        if (e.files > 0 && lastDirAtFirstWrite === undefined) lastDirAtFirstWrite = existsSync(path.join(out, src, 'dir3'));
        events.push({ ...e });
      },
    });
    expect(r.errors).toEqual([]);
    expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
    expect(lastDirAtFirstWrite).toBe(false);
    // Progress is shown against the snapshot's own counts from the start.
    const during = events.filter((e) => e.phase === 'restore');
    expect(during.length).toBeGreaterThan(0);
    const totals = { totalFiles: snapshot.summary.totalFiles, totalBytes: snapshot.summary.totalBytes };
    for (const e of during) expect(e).toMatchObject({ ...totals, totalsFinal: true });
    // The walk's own count, once it ends, is the same (a hard link counts as a name, as
    // in the snapshot), and the restore reaches it.
    expect(events.at(-1)).toMatchObject({ phase: 'done', files: totals.totalFiles, bytes: totals.totalBytes, ...totals });
    const a = await fs.stat(path.join(out, src, 'dir0', 'f0.bin'));
    const b = await fs.stat(path.join(out, src, 'dir3', 'zz-link.bin'));
    expect(a.ino).toBe(b.ino);
  });

  it('a restore of one directory counts its files first, so its progress has totals from the start', async () => {
    const out = path.join(tmpdir(), 'out');
    const events: ProgressEvent[] = [];
    await restore(repo, snapshot, { target: out, root: path.join(src, 'dir1'), batch: { files: 2, bytes: 1 << 30 }, onProgress: (e) => events.push({ ...e }) });
    const during = events.filter((e) => e.phase === 'restore');
    expect(during.length).toBeGreaterThan(0);
    const bytes = Array.from({ length: 6 }, (_, f) => 20_000 + 1000 * f).reduce((a, b) => a + b, 0);
    for (const e of during) expect(e).toMatchObject({ totalFiles: 6, totalBytes: bytes, totalsFinal: true });
    expect(events.at(-1)).toMatchObject({ phase: 'done', files: 6, bytes });
  });

  it('a damaged blob in the first batch: every file not in the target is named, none is wrong, no temporary is left', async () => {
    // Damage the blob of the first file the walk plans (big.bin sorts first at the top).
    let treeId = snapshot.tree;
    for (const part of src.split('/').filter(Boolean)) {
      const found = (await repo.loadTree(treeId)).nodes.find((n) => n.name === part);
      if (!found?.subtree) throw new Error(`no ${part} in the snapshot`);
      treeId = found.subtree;
    }
    const top = await repo.loadTree(treeId);
    const first = top.nodes.find((n) => n.type === 'file')!;
    const loc = await repo.locate(Buffer.from(first.content![0]!, 'hex'));
    const packFile = path.join(repoDir, keys.pack(repo.index.packId(loc.packIndex).toString('hex')));
    const bytes = await fs.readFile(packFile);
    bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0xff;
    await fs.chmod(packFile, 0o600);
    await fs.writeFile(packFile, bytes);

    const out = path.join(tmpdir(), 'out');
    const err = await restore(repo, snapshot, { target: out, batch: { files: 3, bytes: 1 << 30 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('CORRUPT');
    const incomplete = new Set(incompleteOf(err) ?? []);
    const root = path.join(out, src);
    const want = await snapshotOf(src);
    const got = await snapshotOf(root);
    let missing = 0;
    for (const [rel, meta] of Object.entries(want)) {
      if (meta.type !== 'file') continue;
      if (got[rel]) {
        expect(got[rel]!.content, `${rel} is complete and right, or absent`).toBe(meta.content);
      } else {
        missing++;
        expect(incomplete.has(path.join(root, rel)), `${rel} is missing and named`).toBe(true);
      }
    }
    // The walk stopped planning at the failure, so most files were never written.
    expect(missing).toBeGreaterThan(10);
    expect(Object.keys(await snapshotOf(out)).filter((f) => path.basename(f).startsWith('.lifeboat-'))).toEqual([]);
  });
});
