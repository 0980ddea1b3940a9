/**
 * Backup and restore through the engine, in process, against both built-in stores:
 * exact metadata, parent reuse, excludes and includes, diff and ls.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backup } from '../../src/engine/backup/archiver.js';
import { restore } from '../../src/engine/restore/restorer.js';
import { diffTrees, resolvePath, walkTree } from '../../src/engine/browse/tree-walk.js';
import { check } from '../../src/repo/maintenance/check.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/storage/local/local-store.js';
import { MemoryStore } from '../../src/storage/memory/memory-store.js';
import type { Store } from '../../src/storage/store.js';
import { cleanupTmp, makeFixture, pseudoRandom, snapshotOf, tmpdir } from '../helpers.js';

afterAll(cleanupTmp);

const stores: Array<[string, () => Store]> = [
  ['memory', () => new MemoryStore()],
  ['local', () => new LocalStore(path.join(tmpdir(), 'repo'))],
];

describe.each(stores)('backup and restore on the %s store', (_name, makeStore) => {
  let src: string;
  let repo: Repository;

  beforeAll(async () => {
    src = path.join(tmpdir(), 'src');
    await fs.mkdir(src);
    await makeFixture(src);
    repo = await Repository.init(makeStore(), 'pw');
  });

  it('restores content and metadata exactly', async () => {
    const { snapshot, errors } = await backup(repo, { paths: [src], tags: ['t1'] });
    expect(errors).toEqual([]);
    expect(snapshot.summary.totalFiles).toBe(6);
    const out = path.join(tmpdir(), 'out'); // a restore target must not exist yet
    const r = await restore(repo, snapshot, { target: out });
    expect(r.errors).toEqual([]);
    expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
    // The hard link is a hard link again.
    const a = await fs.stat(path.join(out, src, 'hello.txt'));
    const b = await fs.stat(path.join(out, src, 'hard-link.txt'));
    expect(a.ino).toBe(b.ino);
  });

  it('does not re-read unchanged files and stores nothing new for them', async () => {
    const first = (await repo.listSnapshots()).at(-1)!;
    const { snapshot } = await backup(repo, { paths: [src] });
    expect(snapshot.parent).toBe(first.id);
    expect(snapshot.summary.filesUnmodified).toBe(6);
    expect(snapshot.summary.processedBytes).toBe(0);
    // The source directory's tree is the very same blob (its parents' times may move).
    const subtree = async (tree: string) => ((await resolvePath(repo, tree, src)) as { node: { subtree: string } }).node.subtree;
    expect(await subtree(snapshot.tree)).toBe(await subtree(first.tree));
  });

  it('reads changed files again and diff names them', async () => {
    const before = (await repo.listSnapshots()).at(-1)!;
    await fs.appendFile(path.join(src, 'docs', 'notes.md'), 'more\n');
    await fs.writeFile(path.join(src, 'new.txt'), 'new');
    await fs.rm(path.join(src, 'empty.txt'));
    const { snapshot } = await backup(repo, { paths: [src] });
    expect(snapshot.summary.filesChanged).toBe(1);
    expect(snapshot.summary.filesNew).toBe(1);
    const d = await diffTrees(repo, before.tree, snapshot.tree);
    expect(d.added).toEqual([path.join(src, 'new.txt')]);
    expect(d.removed).toEqual([path.join(src, 'empty.txt')]);
    expect(d.modified).toEqual([path.join(src, 'docs', 'notes.md')]);
  });

  it('excludes by pattern and restores only what --include selects', async () => {
    const { snapshot } = await backup(repo, { paths: [src], excludes: ['*.bin'] });
    const names: string[] = [];
    for await (const e of walkTree(repo, snapshot.tree)) names.push(e.path);
    expect(names.some((n) => n.endsWith('.bin'))).toBe(false);
    expect(names).toContain(path.join(src, 'hello.txt'));

    const out = path.join(tmpdir(), 'out'); // a restore target must not exist yet
    await restore(repo, snapshot, { target: out, include: ['/**/docs/deep'] });
    const got = await snapshotOf(path.join(out, src));
    expect(Object.keys(got).sort()).toEqual(['.', 'docs', 'docs/deep', 'docs/deep/deeper']);
  });

  it('deduplicates identical content across files and snapshots', async () => {
    const dir = path.join(tmpdir(), 'dups');
    await fs.mkdir(dir);
    const data = pseudoRandom(3 * 1024 * 1024, 99);
    await fs.writeFile(path.join(dir, 'a'), data);
    await fs.writeFile(path.join(dir, 'b'), data);
    const { snapshot } = await backup(repo, { paths: [dir] });
    expect(snapshot.summary.addedBytes).toBeLessThan(data.length * 1.2);
    expect(snapshot.summary.addedBytes).toBeGreaterThan(data.length * 0.9);
  });

  it('restores with --delta: keeps matching files, rewrites changed ones, removes extras', async () => {
    const snap = (await repo.listSnapshots()).filter((s) => s.paths[0] === src && s.excludes.length === 0).at(-1)!;
    const out = path.join(tmpdir(), 'out'); // a restore target must not exist yet
    await restore(repo, snap, { target: out });
    const root = path.join(out, src);
    await fs.writeFile(path.join(root, 'hello.txt'), 'tampered\n');
    await fs.writeFile(path.join(root, 'extra.txt'), 'not in the snapshot');
    await fs.rm(path.join(root, 'docs', 'notes.md'));
    const r = await restore(repo, snap, { target: out, delta: true });
    expect(r.removed).toBe(1);
    expect(r.unchanged).toBeGreaterThan(0);
    expect(r.unchanged).toBeLessThan(r.files);
    expect(await snapshotOf(root)).toEqual(await snapshotOf(src));
  });

  it('passes check --read-data', async () => {
    const r = await check(repo, { readData: true });
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.packsRead).toBe(r.packs);
  });
});

describe('large files', () => {
  it('larger than one part (64 MiB) are chunked by several workers and restore exactly', async () => {
    const src = path.join(tmpdir(), 'huge');
    await fs.mkdir(src);
    const data = pseudoRandom(150 * 1024 * 1024 + 4321, 77);
    await fs.writeFile(path.join(src, 'relation.1'), data);
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const first = await backup(repo, { paths: [src] });
    // An in-place page update, as a database makes: about one chunk is new.
    const fh = await fs.open(path.join(src, 'relation.1'), 'r+');
    await fh.write(Buffer.alloc(8192, 1), 0, 8192, 100 * 1024 * 1024);
    await fh.close();
    const second = await backup(repo, { paths: [src] });
    expect(second.snapshot.summary.addedBytes).toBeLessThan(10 * 1024 * 1024);
    const out = path.join(tmpdir(), 'out'); // a restore target must not exist yet
    await restore(repo, second.snapshot, { target: out });
    const back = await fs.readFile(path.join(out, src, 'relation.1'));
    data.fill(1, 100 * 1024 * 1024, 100 * 1024 * 1024 + 8192);
    expect(back.equals(data)).toBe(true);
    expect(first.snapshot.summary.totalBytes).toBe(data.length);
  });

  it('chunk, deduplicate shifted content, and restore byte for byte', async () => {
    const src = path.join(tmpdir(), 'large');
    await fs.mkdir(src);
    const data = pseudoRandom(40 * 1024 * 1024, 5);
    await fs.writeFile(path.join(src, 'db.img'), data);
    const repo = await Repository.init(new MemoryStore(), 'pw');
    const first = await backup(repo, { paths: [src] });
    // Insert bytes near the front: content-defined chunking re-finds the rest.
    await fs.writeFile(path.join(src, 'db.img'), Buffer.concat([data.subarray(0, 1000), Buffer.from('xyz'), data.subarray(1000)]));
    const second = await backup(repo, { paths: [src] });
    expect(second.snapshot.summary.addedBytes).toBeLessThan(first.snapshot.summary.addedBytes / 4);
    const out = path.join(tmpdir(), 'out'); // a restore target must not exist yet
    await restore(repo, second.snapshot, { target: out });
    const back = await fs.readFile(path.join(out, src, 'db.img'));
    expect(back.length).toBe(data.length + 3);
    expect(back.subarray(1003).equals(data.subarray(1000))).toBe(true);
  });
});
