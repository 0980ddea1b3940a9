/** util/safe-fs.ts: descriptor-relative calls that never follow symlinks. */
import { closeSync, constants as C, existsSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import type { Stats } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { at, createFileAt, DirCache, linkAt, listAt, mkdirAt, openDirAt, removeAt, renameAt, requireProc } from '../../src/util/safe-fs.js';
import { cleanupTmp, tmpdir } from '../helpers.js';
import { unsafeReason } from '../../src/engine/restore/target.js';

afterAll(cleanupTmp);

function root(): { dir: string; fd: number } {
  const dir = tmpdir('lb-safefs-');
  return { dir, fd: openSync(dir, C.O_RDONLY | C.O_DIRECTORY) };
}

describe('safe-fs', () => {
  it('needs /proc, and takes only single path components', () => {
    expect(() => requireProc()).not.toThrow();
    for (const bad of ['', '.', '..', 'a/b', '/x', 'a\0b']) expect(() => at(3, bad)).toThrow(/single path component/);
  });

  it('refuses to open a symlink as a directory, and a symlink as a new file', () => {
    const { dir, fd } = root();
    const outside = tmpdir('lb-safefs-out-');
    symlinkSync(outside, path.join(dir, 'link'));
    expect(() => openDirAt(fd, 'link')).toThrow(/ELOOP|ENOTDIR/);
    expect(() => createFileAt(fd, 'link')).toThrow(/EEXIST/);
    closeSync(fd);
  });

  it('writes into the directory the descriptor holds, even after it was swapped for a symlink', () => {
    const { dir, fd } = root();
    mkdirAt(fd, 'sub');
    const sub = openDirAt(fd, 'sub');
    const outside = tmpdir('lb-safefs-out-');
    // The attack: the directory moves away and a symlink to outside takes its name.
    renameAt(fd, 'sub', fd, 'moved');
    symlinkSync(outside, path.join(dir, 'sub'));
    const f = createFileAt(sub, 'x');
    closeSync(f);
    expect(existsSync(path.join(dir, 'moved', 'x'))).toBe(true);
    expect(listAt(openDirAt(fd, 'moved'))).toEqual(['x']);
    expect(existsSync(path.join(outside, 'x'))).toBe(false);
    closeSync(sub);
    closeSync(fd);
  });

  it('removes a tree without following a symlink inside it', () => {
    const { dir, fd } = root();
    const outside = tmpdir('lb-safefs-out-');
    writeFileSync(path.join(outside, 'keep'), 'keep');
    mkdirSync(path.join(dir, 't', 'deep'), { recursive: true });
    symlinkSync(outside, path.join(dir, 't', 'deep', 'out'));
    removeAt(fd, 't');
    expect(existsSync(path.join(dir, 't'))).toBe(false);
    expect(readFileSync(path.join(outside, 'keep'), 'utf8')).toBe('keep');
    closeSync(fd);
  });

  it('link never replaces what is there', () => {
    const { dir, fd } = root();
    writeFileSync(path.join(dir, 'a'), 'a');
    writeFileSync(path.join(dir, 'b'), 'b');
    expect(() => linkAt(fd, 'a', fd, 'b')).toThrow(/EEXIST/);
    expect(readFileSync(path.join(dir, 'b'), 'utf8')).toBe('b');
    closeSync(fd);
  });

  it('DirCache walks one component at a time, keeps at most its limit open, and reopens what it evicted', () => {
    const { dir, fd } = root();
    const cache = new DirCache(fd, 2);
    for (let i = 0; i < 5; i++) cache.ensure(`d${i}`);
    cache.ensure('d0/e');
    const e = cache.dir('d0/e');
    closeSync(createFileAt(e, 'f'));
    expect(existsSync(path.join(dir, 'd0', 'e', 'f'))).toBe(true);
    // d1 was evicted; asking again opens it again.
    closeSync(createFileAt(cache.dir('d1'), 'g'));
    expect(existsSync(path.join(dir, 'd1', 'g'))).toBe(true);
    symlinkSync(dir, path.join(dir, 'd2', 'loop'));
    expect(() => cache.dir('d2/loop')).toThrow(/ELOOP|ENOTDIR/);
    cache.close();
    closeSync(fd);
  });
});

describe('restore target rules', () => {
  const dir = (uid: number, mode: number): Stats => ({ uid, gid: 0, mode: 0o040000 | mode }) as Stats;
  it('accept root and our own directories, refuse another owner unless trusted, and group/other write without sticky', () => {
    const me = process.getuid?.() ?? 0;
    expect(unsafeReason(dir(0, 0o755))).toBeUndefined();
    expect(unsafeReason(dir(me, 0o700))).toBeUndefined();
    expect(unsafeReason(dir(4242, 0o755))).toMatch(/owned by uid 4242/);
    // A PostgreSQL restore trusts the data directory's owner (it owns the result anyway).
    expect(unsafeReason(dir(4242, 0o755), 4242)).toBeUndefined();
    expect(unsafeReason(dir(4242, 0o777), 4242)).toMatch(/writable by others/);
    expect(unsafeReason(dir(0, 0o1777))).toBeUndefined();
    expect(unsafeReason(dir(0, 0o777))).toMatch(/writable by others/);
  });
});
