/** The `groups:` section of lifeboat.yaml as the reader turns it into GroupConfig, and its refusals at their lines. */
import { describe, expect, it } from 'vitest';
import '../../src/sources/all.js';
import { parseConfig } from '../../src/config/config.js';

const BASE = `repositories:
  main: { stores: [/srv/a] }
  other: { stores: [/srv/b] }
sources:
  pg: { kind: postgres, dsn: "postgresql://x@127.0.0.1/db", repository: main }
  kv: { kind: redis, url: "redis://127.0.0.1:6379", repository: main }
  far: { kind: redis, url: "redis://127.0.0.1:6380", repository: other }
groups:
`;

const refused = (group: string): string => {
  try {
    parseConfig(BASE + group, 'lb.yaml');
  } catch (err) {
    return `${(err as { code: string }).code} ${(err as Error).message}`;
  }
  throw new Error('accepted');
};

describe('groups:', () => {
  it('reads members, argv hooks and max_hold, with the members\' repository', () => {
    const c = parseConfig(BASE + '  g: { members: [pg, kv], freeze: [/bin/app, freeze], thaw: [/bin/app, thaw], max_hold: 50ms }\n  plain: { members: kv }\n', 'lb.yaml');
    expect(c.groups.get('g')).toEqual({ name: 'g', members: ['pg', 'kv'], repository: 'main', freeze: ['/bin/app', 'freeze'], thaw: ['/bin/app', 'thaw'], maxHoldMs: 50 });
    expect(c.groups.get('plain')).toEqual({ name: 'plain', members: ['kv'], repository: 'main', maxHoldMs: 200 });
  });

  it('refuses what cannot work, at the line', () => {
    expect(refused('  g: { members: [pg, nope] }\n')).toBe('CONFIG_INVALID lb.yaml:9: group "g" names source "nope", which is not defined');
    expect(refused('  g: { members: [pg, pg] }\n')).toMatch(/lb\.yaml:9: group "g" names source "pg" twice/);
    expect(refused('  g: { members: [pg, far] }\n')).toMatch(/lb\.yaml:9: the members of group "g" are backed up to different repositories \(main, other\)/);
    expect(refused('  g: { members: [pg], freeze: [/bin/app, freeze] }\n')).toMatch(/lb\.yaml:9: group "g" needs both "freeze" and "thaw", or neither/);
    expect(refused('  g: { members: [pg], freeze: "app freeze", thaw: [/bin/app] }\n')).toMatch(/CONFIG_INVALID lb\.yaml:9: .*freeze.*must be a command as a list of words/);
    expect(refused('  g: { members: [pg], max_hold: 2h }\n')).toMatch(/"max_hold" of group "g" must be at most 1h/);
    expect(refused('  g: { members: [pg], max_hold: 200 }\n')).toMatch(/max_hold.*no unit/);
  });
});
