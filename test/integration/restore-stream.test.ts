/**
 * The restore plan is written in batches while the walk plans the next (issue 19):
 * writes start before the walk ends, a snapshot restores exactly across batch
 * boundaries (hard links, files of several blobs, symlinks), and a failure in an
 * early batch still names every file that is not in the target, planned or not,
 * leaving no temporary and no wrong file behind.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { restore, incompleteOf } from '../../src/engine/restore/restorer.js';
import type { ProgressEvent } from '../../src/engine/progress.js';
import { keys } from '../../src/repo/format.js';
import { Repository } from '../../src/repo/repository.js';
import type { Snapshot } from '../../src/repo/snapshot/snapshot.js';
import type { TreeNode } from '../../src/repo/snapshot/tree.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { cleanupTmp, makeFixture, pseudoRandom, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

/** Flips a byte in the middle of the first blob of `node` in the local repository at `dir`. */
async function damageFirstBlob(repo: Repository, dir: string, node: TreeNode): Promise<void> {
  const loc = await repo.locate(Buffer.from(node.content![0]!, 'hex'));
  const packFile = path.join(dir, keys.pack(repo.index.packId(loc.packIndex).toString('hex')));
  const bytes = await fs.readFile(packFile);
  bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0xff;
  await fs.chmod(packFile, 0o600);
  await fs.writeFile(packFile, bytes);
}

/** Temporaries of a restore left anywhere below `dir`. */
async function temporaries(dir: string): Promise<string[]> {
  return Object.keys(await snapshotOf(dir)).filter((f) => path.basename(f).startsWith('.lifeboat-'));
}

/** The nodes of the snapshot's directory `dir` (an absolute path in it). */
async function snapshotTree(repo: Repository, rootTree: string, dir: string): Promise<TreeNode[]> {
  let treeId = rootTree;
  for (const part of dir.split('/').filter(Boolean)) {
    const found = (await repo.loadTree(treeId)).nodes.find((n) => n.name === part);
    if (!found?.subtree) throw new Error(`no ${part} in the snapshot`);
    treeId = found.subtree;
  }
  return (await repo.loadTree(treeId)).nodes;
}

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

  /** A copy of the repository, opened, with the first blob of file NAME of the snapshot's directory DIR damaged. */
  async function damagedCopy(dir: string, name: string): Promise<Repository> {
    const copyDir = path.join(tmpdir(), 'repo-copy');
    await fs.cp(repoDir, copyDir, { recursive: true });
    const copy = await Repository.open(new LocalStore(copyDir), 'pw');
    await damageFirstBlob(copy, copyDir, (await snapshotTree(copy, snapshot.tree, dir)).find((n) => n.name === name)!);
    return copy;
  }

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
        // (Bytes, not files: the first event, sent at once, is the first blob written; the
        // next comes 100 ms later, when a fast walk may be past dir3.)
        if (e.bytes > 0 && lastDirAtFirstWrite === undefined) lastDirAtFirstWrite = existsSync(path.join(out, src, 'dir3'));
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

  it('--delta in batches: each directory is swept as the walk reaches it, so the target equals the snapshot; after a failure nothing more is swept', async () => {
    const out = path.join(tmpdir(), 'out');
    await restore(repo, snapshot, { target: out });
    const root = path.join(out, src);
    const ino = async (rel: string): Promise<number> => (await fs.stat(path.join(root, rel))).ino;
    const keptIno = await ino('dir3/f2.bin');
    // Extras at every depth (a file, a tree, one in an empty directory), a file
    // changed, a file turned into a directory, a directory turned into a file.
    await fs.writeFile(path.join(root, 'extra-top.txt'), 'x');
    await fs.mkdir(path.join(root, 'dir3', 'extra-dir', 'deeper'), { recursive: true });
    await fs.writeFile(path.join(root, 'dir3', 'extra-dir', 'deeper', 'f'), 'x');
    await fs.writeFile(path.join(root, 'empty-dir', 'extra'), 'x');
    await fs.writeFile(path.join(root, 'dir1', 'f0.bin'), 'changed');
    await fs.rm(path.join(root, 'dir2', 'f1.bin'));
    await fs.mkdir(path.join(root, 'dir2', 'f1.bin'));
    await fs.rm(path.join(root, 'docs', 'deep'), { recursive: true });
    await fs.writeFile(path.join(root, 'docs', 'deep'), 'a file now');

    const r = await restore(repo, snapshot, { target: out, delta: true, batch: { files: 3, bytes: 1 << 30 } });
    expect(r.errors).toEqual([]);
    expect(await snapshotOf(root)).toEqual(await snapshotOf(src));
    expect(r.removed).toBe(3); // extra-top.txt, dir3/extra-dir, empty-dir/extra
    expect(await ino('dir3/f2.bin')).toBe(keptIno);
    expect(r.unchanged).toBeGreaterThan(20);

    // From a damaged copy: big.bin (the first file the walk plans) must be rewritten
    // and cannot be. The top directory was swept before that batch was written; dir3,
    // reached batches later (the next batch waits for the first to be written), after
    // the failure, is not swept any more.
    const copy = await damagedCopy(src, 'big.bin');
    // Enough files to rewrite before dir3 for several batches (unchanged files are not planned).
    for (const f of ['big.bin', ...['dir0', 'dir1'].flatMap((d) => Array.from({ length: 6 }, (_, i) => `${d}/f${i}.bin`))]) await fs.appendFile(path.join(root, f), 'x');
    await fs.writeFile(path.join(root, 'extra-top.txt'), 'x');
    await fs.writeFile(path.join(root, 'dir3', 'extra-late.txt'), 'x');
    const err = await restore(copy, snapshot, { target: out, delta: true, batch: { files: 3, bytes: 1 << 30 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('CORRUPT');
    expect(existsSync(path.join(root, 'extra-top.txt'))).toBe(false);
    expect(existsSync(path.join(root, 'dir3', 'extra-late.txt'))).toBe(true);
  });

  it('--delta while something else writes into the target: a name that appears after its directory was swept fails the restore (TARGET_CHANGED, exit 27) and is kept', async () => {
    const out = path.join(tmpdir(), 'out');
    await restore(repo, snapshot, { target: out });
    const root = path.join(out, src);
    await fs.appendFile(path.join(root, 'dir1', 'f0.bin'), 'changed');
    await fs.appendFile(path.join(root, 'dir3', 'f0.bin'), 'changed');
    // The top directory is swept before the first blob is written; the writer adds a
    // file there then, and one in a directory the snapshot has empty (no tree of its own).
    const late = path.join(root, 'written-meanwhile.txt');
    const lateInEmpty = path.join(root, 'empty-dir', 'also-meanwhile.txt');
    const err = await restore(repo, snapshot, {
      target: out,
      delta: true,
      holdBack: [`${src.slice(1)}/dir0/f1.bin`],
      batch: { files: 3, bytes: 1 << 30 },
      onProgress: (e) => {
        if (e.bytes > 0 && !existsSync(late)) {
          writeFileSync(late, 'an application was still running');
          writeFileSync(lateInEmpty, 'x');
        }
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'TARGET_CHANGED' });
    expect((err as Error).message).toContain('2 name(s) appeared');
    expect((err as Error).message).toContain(late);
    expect((err as Error).message).toContain(lateInEmpty);
    expect(readFileSync(late, 'utf8')).toBe('an application was still running');
    // The held file was not handed over: its temporary is gone too.
    expect(await temporaries(out)).toEqual([]);
    // Everything else was restored: once the writer is gone, --delta again removes it and succeeds.
    const r = await restore(repo, snapshot, { target: out, delta: true });
    expect(r.removed).toBe(2);
    // The check lists directories before their times are set: a listing does not leave
    // them accessed now (looked at before snapshotOf lists them itself).
    for (const d of [root, path.join(root, 'dir1')]) {
      const st = await fs.stat(d);
      expect(st.atimeMs, d).toBe(st.mtimeMs);
    }
    expect(await snapshotOf(root)).toEqual(await snapshotOf(src));
  });

  it('held-back files never appear under their names: complete under temporaries for the caller, removed first from an existing target, gone after a failure', async () => {
    const top = src.slice(1);
    const heldRels = [`${top}/big.bin`, `${top}/dir0/f1.bin`]; // several blobs; one
    const root = (out: string) => path.join(out, src);
    const visible = (out: string) => heldRels.filter((rel) => existsSync(path.join(out, rel)));
    const out = path.join(tmpdir(), 'out');
    const seen = new Set<string>();
    // (flushEarly: pg restore's background flush, of held files too, runs alongside.)
    const r = await restore(repo, snapshot, { target: out, holdBack: heldRels, flushEarly: true, batch: { files: 3, bytes: 1 << 30 }, onProgress: () => visible(out).forEach((v) => seen.add(v)) });
    expect([...seen]).toEqual([]);
    expect(visible(out)).toEqual([]);
    expect(r.held?.map((h) => h.rel).sort()).toEqual([...heldRels].sort());
    for (const h of r.held!) await fs.rename(path.join(out, path.dirname(h.rel), h.tmp), path.join(out, h.rel));
    // (The renames gave two directories new times: the files are compared.)
    const files = async (dir: string) => Object.entries(await snapshotOf(dir)).filter(([, m]) => m.type !== 'dir');
    expect(await files(root(out))).toEqual(await files(src));

    // --delta over that complete copy: the held names go before anything is written,
    // although their content matches.
    let atFirst: string[] | undefined;
    const d = await restore(repo, snapshot, { target: out, delta: true, holdBack: heldRels, onProgress: () => (atFirst ??= visible(out)) });
    expect(atFirst).toEqual([]);
    expect(visible(out)).toEqual([]);
    expect(d.held).toHaveLength(2);

    // A failure after a held file was complete (dir3 is batches later): its temporary goes, and it is named.
    const copy = await damagedCopy(path.join(src, 'dir3'), 'f5.bin');
    const out2 = path.join(tmpdir(), 'out');
    const err = await restore(copy, snapshot, { target: out2, holdBack: heldRels, batch: { files: 3, bytes: 1 << 30 } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('CORRUPT');
    expect(incompleteOf(err)).toEqual(expect.arrayContaining(heldRels.map((rel) => path.join(out2, rel))));
    expect(visible(out2)).toEqual([]);
    expect(await temporaries(out2)).toEqual([]);
  });

  it("a FIFO is made by coreutils' own mkfifo, never by one planted first on the PATH", async () => {
    const dir = path.join(tmpdir(), 'with-fifo');
    await fs.mkdir(dir);
    execFileSync('mkfifo', [path.join(dir, 'pipe')]);
    const { snapshot: s } = await backup(repo, { paths: [dir] });
    const evil = path.join(tmpdir(), 'evil-bin');
    const marker = path.join(evil, 'ran');
    await fs.mkdir(evil);
    await fs.writeFile(path.join(evil, 'mkfifo'), `#!/bin/sh\necho planted > '${marker}'\n`, { mode: 0o755 });
    const before = process.env.PATH;
    process.env.PATH = `${evil}:${before ?? ''}`;
    const out = path.join(tmpdir(), 'out');
    try {
      const r = await restore(repo, s, { target: out });
      expect(r.errors).toEqual([]);
    } finally {
      process.env.PATH = before;
    }
    expect(existsSync(marker)).toBe(false);
    expect((await fs.lstat(path.join(out, dir, 'pipe'))).isFIFO()).toBe(true);
  });

  it('a damaged blob in the first batch: every file not in the target is named, none is wrong, no temporary is left', async () => {
    // Damage the blob of the first file the walk plans (big.bin sorts first at the top).
    await damageFirstBlob(repo, repoDir, (await snapshotTree(repo, snapshot.tree, src)).find((n) => n.type === 'file')!);

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
    expect(await temporaries(out)).toEqual([]);
  });
});
