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
  docs: { kind: files, paths: [/srv/docs], repository: main }
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
    expect(c.groups.get('g')).toEqual({ name: 'g', members: ['pg', 'kv'], repository: 'main', freeze: { command: ['/bin/app', 'freeze'] }, thaw: { command: ['/bin/app', 'thaw'] }, maxHoldMs: 50, snapshots: new Map() });
    expect(c.groups.get('plain')).toEqual({ name: 'plain', members: ['kv'], repository: 'main', maxHoldMs: 200, snapshots: new Map() });
  });

  it('reads HTTP and built-in hooks and snapshot hooks', () => {
    const c = parseConfig(
      BASE +
        '  web: { members: [pg, docs], freeze: { http: { url: "http://127.0.0.1:9/f", headers_file: h.txt, timeout: 2s } }, thaw: { http: { url: "http://127.0.0.1:9/t", method: PUT } } }\n' +
        '  own: { members: [pg, kv], freeze: builtin, thaw: builtin }\n' +
        '  snap:\n    members: [docs]\n    snapshots:\n      docs: { create: [btrfs, subvolume, snapshot, -r, /srv, "/snap/{point}"], release: [btrfs, subvolume, delete, "/snap/{point}"], path: "/snap/{point}/docs" }\n',
      'lb.yaml',
    );
    const web = c.groups.get('web')!;
    expect(web.freeze).toEqual({ http: { url: 'http://127.0.0.1:9/f', method: 'POST', headersFile: 'h.txt', timeoutMs: 2000 } });
    expect(web.thaw).toEqual({ http: { url: 'http://127.0.0.1:9/t', method: 'PUT' } });
    expect(c.groups.get('own')).toMatchObject({ freeze: 'builtin', thaw: 'builtin' });
    expect(c.groups.get('snap')!.snapshots.get('docs')).toEqual({ create: ['btrfs', 'subvolume', 'snapshot', '-r', '/srv', '/snap/{point}'], release: ['btrfs', 'subvolume', 'delete', '/snap/{point}'], path: '/snap/{point}/docs' });
  });

  it('refuses bad hook forms and snapshot hooks at their line', () => {
    expect(refused('  g: { members: [pg, docs], freeze: builtin, thaw: builtin }\n')).toMatch(/lb\.yaml:10: group "g": "freeze: builtin" cannot hold the writes of "docs" \(files\)/);
    expect(refused('  g: { members: [pg], freeze: builtin, thaw: [/bin/x] }\n')).toMatch(/lb\.yaml:10: group "g": "freeze: builtin" goes with "thaw: builtin"/);
    expect(refused('  g: { members: [pg], freeze: { http: { url: "http://h/", timeout: 5min } }, thaw: [/bin/x] }\n')).toMatch(/lb\.yaml:10: the freeze timeout of group "g" must be from 1ms to 1min/);
    expect(refused('  g: { members: [pg], freeze: { http: { url: "http://h/", verb: GET } }, thaw: [/bin/x] }\n')).toMatch(/lb\.yaml:10: .*freeze/);
    expect(refused('  g:\n    members: [pg, docs]\n    snapshots:\n      pg: { create: [x], release: [y] }\n')).toBe('CONFIG_INVALID lb.yaml:13: "snapshots" of group "g": "pg" is not a files source');
    expect(refused('  g:\n    members: [docs]\n    snapshots:\n      kv: { create: [x], release: [y] }\n')).toMatch(/lb\.yaml:13: "snapshots" of group "g" names "kv", which is not one of its members/);
    expect(refused('  g:\n    members: [docs]\n    snapshots:\n      docs: { create: [x] }\n')).toMatch(/lb\.yaml:13: snapshot hook "docs" needs "release"/);
    expect(refused('  g:\n    members: [docs]\n    snapshots:\n      docs:\n        create: [x]\n        release: y\n')).toMatch(/lb\.yaml:15: "release" must be a command as a list of words/);
  });

  it('refuses what cannot work, at the line', () => {
    expect(refused('  g: { members: [pg, nope] }\n')).toBe('CONFIG_INVALID lb.yaml:10: group "g" names source "nope", which is not defined');
    expect(refused('  g: { members: [pg, pg] }\n')).toMatch(/lb\.yaml:10: group "g" names source "pg" twice/);
    expect(refused('  g: { members: [pg, far] }\n')).toMatch(/lb\.yaml:10: the members of group "g" are backed up to different repositories \(main, other\)/);
    expect(refused('  g: { members: [pg], freeze: [/bin/app, freeze] }\n')).toMatch(/lb\.yaml:10: group "g" needs both "freeze" and "thaw", or neither/);
    expect(refused('  g: { members: [pg], freeze: "app freeze", thaw: [/bin/app] }\n')).toMatch(/CONFIG_INVALID lb\.yaml:10: .*freeze.*must be a command as a list of words/);
    expect(refused('  g: { members: [pg], max_hold: 2h }\n')).toMatch(/"max_hold" of group "g" must be at most 1h/);
    expect(refused('  g: { members: [pg], max_hold: 200 }\n')).toMatch(/max_hold.*no unit/);
  });
});
