/**
 * The pure parts of recovery planning: how a window is assembled from a kind's
 * stretches (overlaps merged, a gap where nothing reaches, with the reason of the
 * stretch that ended), what a typed moment means, and which targets a plan refuses.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/sources/all.js';
import { assemble, type RecoverableWindow } from '../../src/engine/window.js';
import { parseMoment, planRecovery } from '../../src/engine/recover.js';
import { isLifeboatError } from '../../src/errors.js';
import { cleanupTmp, tmpdir } from '../helpers.js';

afterAll(() => cleanupTmp());

const T = (s: number) => Date.parse('2026-11-20T10:00:00Z') + s * 1000;
const iso = (s: number) => new Date(T(s)).toISOString();
const snap = (id: string, s: number) => ({ id, short_id: id.slice(0, 8), time: iso(s), consistent_at: iso(s) });
const none = { last: null, verified: null };

describe('assemble', () => {
  it('merges overlapping stretches and names the gap after the one that ended', () => {
    const w = assemble('db', 'sqlite', [snap('a'.repeat(64), 0), snap('b'.repeat(64), 100)], {
      stretches: [
        { log: 'sqlite', from: T(0), to: T(40), endsBecause: 'segment missing' },
        { log: 'sqlite', from: T(10), to: T(30) },
        { log: 'sqlite', from: T(100), to: T(150) },
      ],
    }, true, none, []);
    expect(w.earliest).toBe(iso(0));
    expect(w.latest).toBe(iso(150));
    expect(w.gaps).toEqual([{ from: iso(40), to: iso(100), reason: 'segment missing' }]);
  });

  it('has no gaps for a kind restorable only to its backups, and a stored tail past the last stretch is one', () => {
    expect(assemble('d', 'files', [snap('a'.repeat(64), 0), snap('b'.repeat(64), 100)], { stretches: [] }, false, none, []).gaps).toEqual([]);
    const w = assemble('c', 'redis', [snap('a'.repeat(64), 0)], { stretches: [{ log: 'redis', from: T(0), to: T(5), endsBecause: 'gap after offset 9' }], storedUntil: T(60) }, true, none, []);
    expect(w.latest).toBe(iso(5));
    expect(w.gaps).toEqual([{ from: iso(5), to: iso(60), reason: 'gap after offset 9' }]);
  });
});

describe('parseMoment', () => {
  const w = { snapshots: [snap('abcdef12'.repeat(8), 0), snap('abcdff00'.repeat(8), 1)] };
  it('reads latest, a time with a zone, and a backup id prefix', () => {
    expect(parseMoment('', w)).toEqual({ kind: 'latest' });
    expect(parseMoment('Latest', w)).toEqual({ kind: 'latest' });
    expect(parseMoment('2026-11-20T10:00:05+01:00', w)).toEqual({ kind: 'time', time: '2026-11-20T09:00:05.000Z' });
    expect(parseMoment('abcdef', w)).toEqual({ kind: 'snapshot', id: 'abcdef12'.repeat(8) });
  });
  it('refuses an ambiguous prefix, an unknown id and a zone-less time', () => {
    for (const bad of ['abcd', 'deadbeef', '2026-11-20T10:00:05']) {
      let err: unknown;
      try {
        parseMoment(bad, w);
      } catch (e) {
        err = e;
      }
      expect(isLifeboatError(err, 'USAGE'), bad).toBe(true);
    }
  });
});

describe('planRecovery', () => {
  const dir = tmpdir('lb-plan-');
  const window: RecoverableWindow = {
    ...assemble('notes', 'sqlite', [snap('a'.repeat(64), 0)], { stretches: [{ log: 'sqlite', from: T(0), to: T(100) }] }, true, none, []),
  };
  const plan = (target: string, more: Partial<Parameters<typeof planRecovery>[0]> = {}) => planRecovery({ window, moment: { kind: 'time', time: iso(50) }, target, overwrite: false, live: [path.join(dir, 'live.db')], ...more });

  it('builds the kind restore command to the moment into a new path', () => {
    const p = plan(path.join(dir, 'new.db'));
    expect(p.command).toEqual(['sqlite', 'restore', 'notes', '--output', path.join(dir, 'new.db'), '--time', iso(50)]);
    expect(p.staging).toBeNull();
    expect(p.warnings).toEqual([expect.stringMatching(/never drilled/)]);
  });

  it('refuses the live file and an existing target (TARGET_EXISTS), and stages beside them with overwrite', () => {
    writeFileSync(path.join(dir, 'live.db'), 'x');
    mkdirSync(path.join(dir, 'full'));
    writeFileSync(path.join(dir, 'full', 'f'), 'x');
    for (const t of ['live.db', 'full']) {
      let err: unknown;
      try {
        plan(path.join(dir, t));
      } catch (e) {
        err = e;
      }
      expect(isLifeboatError(err, 'TARGET_EXISTS'), t).toBe(true);
    }
    const p = plan(path.join(dir, 'live.db'), { overwrite: true });
    expect(p.staging).toMatch(/live\.db\.recover-\d{8}T\d{6}$/);
    expect(p.aside).toMatch(/live\.db\.before-recover-\d{8}T\d{6}$/);
    expect(p.command).toContain(p.staging);
  });

  it('refuses a moment before the earliest, and warns of one in a gap', () => {
    expect(() => plan(path.join(dir, 'n2.db'), { moment: { kind: 'time', time: iso(-10) } })).toThrow(/before the earliest recoverable moment/);
    const gappy = assemble('notes', 'sqlite', [snap('a'.repeat(64), 0), snap('b'.repeat(64), 200)], { stretches: [{ log: 'sqlite', from: T(0), to: T(100), endsBecause: 'diverged' }, { log: 'sqlite', from: T(200), to: T(300) }] }, true, none, []);
    const p = planRecovery({ window: gappy, moment: { kind: 'time', time: iso(150) }, target: path.join(dir, 'n3.db'), overwrite: false, live: [] });
    expect(p.warnings.join('\n')).toMatch(/falls in a gap .*diverged.*as of/);
  });
});
