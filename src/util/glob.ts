/**
 * Path patterns for --exclude and --include, with restic's conventions: `*` and `?`
 * stay within one path component, `**` crosses components, `[abc]` is a class. A
 * pattern starting with "/" is anchored at the root; any other pattern may match at
 * any depth. A pattern that matches a directory matches everything below it.
 */

function toRegex(pattern: string): string {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 1);
      if (close < 0) re += '\\[';
      else {
        let body = pattern.slice(i + 1, close);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body.replace(/\\/g, '\\\\')}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return re;
}

export class PathMatcher {
  private readonly regexes: RegExp[];

  constructor(readonly patterns: readonly string[]) {
    this.regexes = patterns.map((p) => {
      const body = toRegex(p.replace(/\/+$/, ''));
      // Anchored patterns start at the root; others at any component boundary.
      // Either may be followed by "/..." so a matching directory covers its contents.
      return new RegExp(p.startsWith('/') ? `^${body}(?:/.*)?$` : `(?:^|/)${body}(?:/.*)?$`);
    });
  }

  get empty(): boolean {
    return this.regexes.length === 0;
  }

  /** True when an absolute path (or one of its parent directories) matches a pattern. */
  matches(absPath: string): boolean {
    return this.regexes.some((r) => r.test(absPath));
  }
}
