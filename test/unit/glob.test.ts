import { describe, expect, it } from 'vitest';
import { PathMatcher } from '../../src/util/glob.js';

describe('PathMatcher', () => {
  it.each([
    ['*.log', '/var/app/x.log', true],
    ['*.log', '/var/app/x.log.1', false],
    ['cache', '/home/u/cache/a/b', true],
    ['/home/u/cache', '/home/u/cache/a', true],
    ['/cache', '/home/u/cache', false],
    ['/home/*/tmp', '/home/alice/tmp/f', true],
    ['/home/*/tmp', '/home/a/b/tmp', false],
    ['/home/**/tmp', '/home/a/b/tmp', true],
    ['f?le.txt', '/x/file.txt', true],
    ['[ab].txt', '/x/a.txt', true],
    ['[!ab].txt', '/x/a.txt', false],
    ['a.b', '/x/aXb', false],
  ])('%s matches %s: %s', (pattern, p, want) => {
    expect(new PathMatcher([pattern]).matches(p)).toBe(want);
  });

  it('matches nothing when empty', () => {
    expect(new PathMatcher([]).matches('/x')).toBe(false);
    expect(new PathMatcher([]).empty).toBe(true);
  });
});
