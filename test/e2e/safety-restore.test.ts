/**
 * End-to-end safety: what a user relies on when things go wrong. Each test drives the
 * real CLI in child processes and checks what a user would check: exit codes, the
 * bytes that come back from a restore, and that nothing is written where it must not be.
 *
 *  2. a flipped byte in a data pack is found by `check --read-data` and refused by
 *     `restore` (no unauthenticated byte is ever written to a restored file).
 *  3. two backups into one repository at the same time both succeed and restore exactly.
 *  4. restore never writes outside its target: not through symlinks planted in the
 *     target, not for tree entries named "..", "../x" or "/x" in a tampered snapshot.
 * (1., kill -9 during backups, is safety.test.ts.)
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Repository as RepositoryT } from '../../src/repo/repository.js';
import type { TreeNode } from '../../src/repo/snapshot/tree.js';
import { ROOT, cleanupTmp, makeFixture, pseudoRandom, runCli, snapshotOf, tmpdir } from '../helpers.js';
import { MiB, PASSWORD, cli, initRepo, filesBelow, entriesBelow, expectRestoreIdentical, checkJson, listSnapshots } from '../safety-helpers.js';
import { withPackWriter } from '../../src/repo/pack/spill.js';

afterAll(cleanupTmp);

// ---- 2. corrupted pack ---------------------------------------------------

describe('a flipped byte in a data pack', () => {
  it('is reported by check --read-data (naming the pack) and refused by restore without writing wrong bytes', async () => {
    const base = tmpdir('lb-flip-');
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    // Several multi-chunk files and many one-chunk files, ~14 MiB in all.
    for (let i = 0; i < 4; i++) await fs.writeFile(path.join(src, `multi-${i}.bin`), pseudoRandom(2 * MiB + i * 333_333, 50 + i));
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(src, 'sub', `one-${i}.bin`), pseudoRandom(100_000 + i * 7_001, 70 + i));
    await fs.writeFile(path.join(src, 'hello.txt'), 'hello\n');
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    await cli(['check', '--repo', repo, '--read-data']);

    // The largest pack holds data (tree packs are tiny); flip one byte in the middle of its blobs.
    const packs: Array<{ file: string; size: number }> = [];
    for (const f of await filesBelow(path.join(repo, 'data'))) {
      const file = path.join(repo, 'data', f);
      packs.push({ file, size: (await fs.stat(file)).size });
    }
    packs.sort((a, b) => b.size - a.size);
    const victim = packs[0] as { file: string; size: number };
    expect(victim.size).toBeGreaterThan(1 * MiB);
    const packId = path.basename(victim.file);
    const bytes = await fs.readFile(victim.file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x40;
    await fs.writeFile(victim.file, bytes);

    const chk = await runCli(['check', '--repo', repo, '--read-data']);
    expect(chk.code, chk.stdout + chk.stderr).toBe(13);
    expect(chk.stdout + chk.stderr).toContain(packId);
    expect(chk.stderr).toMatch(/^lifeboat: .+\n {2}hint: .+\n$/);

    const out = path.join(base, 'out');
    const rs = await runCli(['restore', '--repo', repo, 'latest', '--target', out]);
    expect(rs.code, rs.stdout + rs.stderr).toBe(13);
    expect(rs.stderr).toMatch(/^lifeboat: .*(failed authentication|does not match|damaged|corrupt).*\n {2}hint: \S.*\n$/m);
    expect(rs.stderr.match(/^lifeboat: /gm)).toHaveLength(1);
    expect(rs.stderr).toContain(packId);

    // What was written must be the source's bytes. A file pre-created at full size and
    // not completely filled is allowed to hold zeros (holes) where the damaged blob was
    // not written; any other difference is an unauthenticated byte that reached disk.
    const restoredRoot = path.join(out, src);
    const restored = await filesBelow(restoredRoot);
    const sources = await filesBelow(src);
    let incomplete = 0;
    for (const rel of sources) if (!restored.includes(rel)) incomplete++;
    for (const rel of restored) {
      expect(sources, `restore created ${rel}, which is not in the source`).toContain(rel);
      const want = await fs.readFile(path.join(src, rel));
      const got = await fs.readFile(path.join(restoredRoot, rel));
      if (got.equals(want)) continue;
      incomplete++;
      expect(got.length, `${rel} is longer than the source`).toBeLessThanOrEqual(want.length);
      let wrong = 0;
      let firstWrong = -1;
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== 0 && got[i] !== want[i]) {
          wrong++;
          if (firstWrong < 0) firstWrong = i;
        }
      }
      expect(wrong, `${rel}: ${wrong} bytes differ from the source (first at ${firstWrong})`).toBe(0);
    }
    console.log(`damaged pack ${packId.slice(0, 12)}: ${restored.length} of ${sources.length} files written, ${incomplete} incomplete or missing`);
    // The damaged blob's file cannot have come back whole.
    expect(incomplete).toBeGreaterThan(0);
    // Nothing was written beside the target.
    expect(await fs.readdir(base)).toEqual(expect.arrayContaining(['out', 'repo', 'src']));
    expect((await fs.readdir(base)).length).toBe(3);
  }, 60_000);
});

// ---- 3. concurrent backups -------------------------------------------------

describe('two backups at once into one repository', () => {
  it('both succeed, both are listed, both restore exactly, and check passes', async () => {
    const base = tmpdir('lb-conc-');
    const srcA = path.join(base, 'src-a');
    const srcB = path.join(base, 'src-b');
    for (const [dir, seed] of [[srcA, 100], [srcB, 200]] as const) {
      await makeFixture(dir);
      await fs.mkdir(path.join(dir, 'many'));
      for (let i = 0; i < 300; i++) await fs.writeFile(path.join(dir, 'many', `f${i}`), pseudoRandom(1000 + ((i * 4099) % 60_000), seed + i));
      for (let i = 0; i < 3; i++) await fs.writeFile(path.join(dir, `large-${i}.bin`), pseudoRandom(7 * MiB + i * 12345, seed * 10 + i));
      // The same content in both: each run may or may not see the other's copy.
      await fs.writeFile(path.join(dir, 'shared.bin'), pseudoRandom(3 * MiB, 999));
    }
    const repo = path.join(base, 'repo');
    await initRepo(repo);

    for (let round = 0; round < 2; round++) {
      if (round === 1) {
        // Change both sources and go again (now with parents and half-known data).
        await fs.writeFile(path.join(srcA, 'round2.bin'), pseudoRandom(5 * MiB, 31));
        await fs.writeFile(path.join(srcB, 'round2.bin'), pseudoRandom(5 * MiB, 32));
      }
      const [a, b] = await Promise.all([
        runCli(['backup', '--repo', repo, srcA, '--json', '--tag', `a${round}`]),
        runCli(['backup', '--repo', repo, srcB, '--json', '--tag', `b${round}`]),
      ]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      const idA = JSON.parse(a.stdout).id as string;
      const idB = JSON.parse(b.stdout).id as string;
      const snaps = await listSnapshots(repo);
      expect(snaps).toHaveLength(2 * (round + 1));
      expect(snaps.find((s) => s.id === idA)?.paths).toEqual([srcA]);
      expect(snaps.find((s) => s.id === idB)?.paths).toEqual([srcB]);
      await expectRestoreIdentical(repo, idA, srcA);
      await expectRestoreIdentical(repo, idB, srcB);
    }
    const c = await checkJson(repo, ['--read-data']);
    expect(c.code, JSON.stringify(c.result.problems)).toBe(0);
    expect(c.result.ok).toBe(true);
  }, 120_000);
});

// ---- restore's own report ---------------------------------------------------

describe('restore reports what it wrote', () => {
  it('restore --json counts every file byte written (a user checks this against the source size)', async () => {
    const base = tmpdir('lb-count-');
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'small'), { recursive: true });
    let total = 0;
    for (let i = 0; i < 6; i++) {
      const data = pseudoRandom(5 * MiB + i * 1001, 400 + i);
      await fs.writeFile(path.join(src, `f${i}.bin`), data);
      total += data.length;
    }
    for (let i = 0; i < 200; i++) {
      const data = pseudoRandom(3000 + i * 37, 600 + i);
      await fs.writeFile(path.join(src, 'small', `s${i}`), data);
      total += data.length;
    }
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    const out = path.join(base, 'out');
    const r = await cli(['restore', '--repo', repo, 'latest', '--target', out, '--json']);
    const report = JSON.parse(r.stdout) as { files: number; bytes: number; errors: unknown[] };
    expect(await snapshotOf(path.join(out, src))).toEqual(await snapshotOf(src));
    expect(report.errors).toEqual([]);
    expect(report.files).toBe(206);
    expect(report.bytes).toBe(total);
  }, 60_000);
});

// ---- 4. restore stays inside its target -------------------------------------

describe('restore never writes outside the target', () => {
  it('does not follow symlinks planted in the target (directories on the way, directories, files)', async () => {
    const base = tmpdir('lb-plant-');
    const src = path.join(base, 'src');
    await makeFixture(src);
    const repo = path.join(base, 'repo');
    await initRepo(repo);
    await cli(['backup', '--repo', repo, src]);
    const firstComponent = src.split(path.sep)[1] as string; // "tmp"

    // (a) TARGET/tmp is a symlink to another directory.
    const elsewhere = path.join(base, 'elsewhere');
    await fs.mkdir(elsewhere);
    const out1 = path.join(base, 'out1');
    await fs.mkdir(out1);
    await fs.symlink(elsewhere, path.join(out1, firstComponent));
    // An existing target is refused; --overwrite restores into it (planted links and all).
    expect((await runCli(['restore', '--repo', repo, 'latest', '--target', out1])).code).toBe(21);
    const r1 = await runCli(['restore', '--repo', repo, 'latest', '--target', out1, '--overwrite']);
    expect(r1.code, r1.stderr).toBe(0);
    expect(await fs.readdir(elsewhere)).toEqual([]);
    expect((await fs.lstat(path.join(out1, firstComponent))).isDirectory()).toBe(true);
    expect(await snapshotOf(path.join(out1, src))).toEqual(await snapshotOf(src));

    // (b) deeper: a restored directory and restored files are symlinks to outside files.
    const outside = path.join(base, 'outside');
    await fs.mkdir(outside);
    await fs.writeFile(path.join(outside, 'victim.txt'), 'do not overwrite\n');
    await fs.writeFile(path.join(outside, 'victim-big.bin'), 'do not overwrite either\n');
    await fs.writeFile(path.join(outside, 'victim-empty.txt'), 'keep me\n');
    const out2 = path.join(base, 'out2');
    const dest = path.join(out2, src);
    await fs.mkdir(dest, { recursive: true });
    await fs.symlink(outside, path.join(dest, 'docs')); // a directory
    await fs.symlink(path.join(outside, 'victim.txt'), path.join(dest, 'hello.txt')); // one-blob file + hard link
    await fs.symlink(path.join(outside, 'victim-big.bin'), path.join(dest, 'big.bin')); // multi-blob file
    await fs.symlink(path.join(outside, 'victim-empty.txt'), path.join(dest, 'empty.txt')); // empty file
    const before = await snapshotOf(outside);
    const r2 = await runCli(['restore', '--repo', repo, 'latest', '--target', out2, '--overwrite']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(await snapshotOf(outside)).toEqual(before);
    expect(await snapshotOf(dest)).toEqual(await snapshotOf(src));
  }, 60_000);

  it('refuses a tampered snapshot whose tree names "..", "../../x" or "/x" (exit 13, nothing outside the target)', async () => {
    const base = tmpdir('lb-tamper-');
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'ok.txt'), 'fine\n');
    const repoDir = path.join(base, 'repo');
    await initRepo(repoDir);
    await cli(['backup', '--repo', repoDir, src]);

    const { Repository } = (await import(path.join(ROOT, 'dist/repo/repository.js'))) as { Repository: typeof RepositoryT };
    const { LocalStore } = (await import(path.join(ROOT, 'dist/storage/local/local-store.js'))) as {
      LocalStore: new (root: string) => { close(): Promise<void> };
    };
    const { BLOB_DATA } = (await import(path.join(ROOT, 'dist/repo/format.js'))) as { BLOB_DATA: 0 };

    // Unique names, so a write at "/<tag>" or next to the target is unmistakable.
    const tag = `lb-escape-${randomBytes(6).toString('hex')}`;
    const store = new LocalStore(repoDir);
    const ids: Record<string, string> = {};
    try {
      const repo = await Repository.open(store as never, PASSWORD);
      await repo.loadIndex();
      const [existing] = await repo.listSnapshots();
      expect(existing).toBeDefined();
      await withPackWriter(repo, async (w) => {
        const payload = Buffer.from('ESCAPED\n');
        const blob = (await w.addPlain(BLOB_DATA, payload)).toString('hex');
        const file = (name: string): TreeNode => ({
          name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', atime: '0', ctime: '0', inode: '1', dev: '1', nlink: 1, size: payload.length, content: [blob],
        });
        const dir = (name: string, subtree: string): TreeNode => ({
          name, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: '0', atime: '0', ctime: '0', inode: '2', dev: '1', nlink: 2, subtree,
        });
        const inner = await repo.saveTree(w, { nodes: [file(tag)] });
        const cases: Record<string, TreeNode[]> = {
          'file named ..': [file('..'), file('aaa-ok.txt')],
          'dir named .. holding a file': [dir('..', inner), file('aaa-ok.txt')],
          'file named ../../<tag>': [file(`../../${tag}`)],
          'dir named ../.. holding a file': [dir('../..', inner)],
          'file named /<tag>': [file(`/${tag}`)],
          'dir named /tmp holding a file': [dir('/tmp', inner)],
          'file named .': [file('.')],
          'a nested dir with a file named ..': [dir('nested', await repo.saveTree(w, { nodes: [file('..')] }))],
          'a nested dir with a file named ../../../<tag>': [dir('nested', await repo.saveTree(w, { nodes: [file(`../../../${tag}`)] }))],
        };
        for (const [what, nodes] of Object.entries(cases)) {
          const tree = await repo.saveTree(w, { nodes });
          const { id: _id, ...manifest } = existing as NonNullable<typeof existing>;
          ids[what] = await repo.saveSnapshot({ ...manifest, tree, tags: [what] });
        }
        await w.flush();
      });
    } finally {
      await store.close();
    }

    // The target lies three levels below base, so "..", "../.." and "../../.." all land in base.
    const beforeBase = await entriesBelow(base);
    for (const [what, id] of Object.entries(ids)) {
      // A new target each time: targets must not exist (a failed restore leaves the one it made).
      const target = path.join(base, 'x', 'y', `target-${Object.keys(ids).indexOf(what)}`);
      const r = await runCli(['restore', '--repo', repoDir, id, '--target', target]);
      expect(r.code, `${what}: ${r.stdout}${r.stderr}`).toBe(13);
      expect(r.stderr, what).toMatch(/^lifeboat: .*refus.*$/m);
      expect(r.stderr, what).toMatch(/^ {2}hint: /m);
      expect(existsSync(`/${tag}`), what).toBe(false);
      expect(existsSync(path.join('/tmp', tag)), what).toBe(false);
      const now = (await entriesBelow(base)).filter((p) => !p.startsWith(`x${path.sep}y${path.sep}target`) && !p.startsWith(`repo${path.sep}`));
      const was = beforeBase.filter((p) => !p.startsWith(`repo${path.sep}`));
      expect(now.filter((p) => !was.includes(p) && p !== 'x' && p !== path.join('x', 'y')), what).toEqual([]);
      // Nothing named by the tampered tree came to exist anywhere we can see.
      const inTarget = await entriesBelow(target);
      expect(inTarget.filter((p) => p.includes(tag)), what).toEqual([]);
    }
    // The repository itself is unharmed: the real snapshot still restores.
    const good = path.join(base, 'good');
    const real = (await listSnapshots(repoDir)).filter((s) => s.tags.length === 0);
    expect(real).toHaveLength(1);
    await cli(['restore', '--repo', repoDir, real[0]!.id, '--target', good]);
    expect(await fs.readFile(path.join(good, src, 'ok.txt'), 'utf8')).toBe('fine\n');
  }, 180_000); // five tampered snapshots, a restore of each: minutes on a loaded 2-core machine
});
