/**
 * How a bucket's keys become tree paths (src/sources/bucket/names.ts): every part a
 * tree refuses (empty, ".", "..") is escaped, a real part starting with "%" is
 * escaped too, and so no two keys share a path and every name is a safe tree name.
 */
import { describe, expect, it } from 'vitest';
import { isSafeName } from '../../src/repo/snapshot/tree.js';
import { collidedName, keyParts } from '../../src/sources/bucket/names.js';

describe('bucket keys as tree paths', () => {
  it('escapes parts a tree cannot hold, and real parts that look escaped', () => {
    expect(keyParts('a/b.txt')).toEqual(['a', 'b.txt']);
    expect(keyParts('folder/')).toEqual(['folder', '%']);
    expect(keyParts('a//b')).toEqual(['a', '%', 'b']);
    expect(keyParts('./x/../y')).toEqual(['%.', 'x', '%..', 'y']);
    expect(keyParts('%/%./%2F')).toEqual(['%%', '%%.', '%%2F']);
    expect(keyParts('日本語/🚀 x')).toEqual(['日本語', '🚀 x']);
  });

  it('gives different keys different paths, of safe names only', () => {
    const keys = ['', '/', '//', 'a', 'a/', 'a//', '.', '..', '%', '%.', '%..', '%%', '%=a', 'a/.', 'a/%.', 'a/..', 'a/%', 'a/%%', '.a', 'a.'];
    const paths = keys.map((k) => keyParts(k).join('/'));
    expect(new Set(paths).size).toBe(keys.length);
    for (const k of keys) for (const p of keyParts(k)) expect(isSafeName(p), `${JSON.stringify(k)} → ${p}`).toBe(true);
    // A collided file name cannot be a real part's escape: those start with "%%" or are "%", "%.", "%..".
    expect(keys.flatMap(keyParts)).not.toContain(collidedName('a'));
  });
});
