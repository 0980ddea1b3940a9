/**
 * A kind that lifeboat.yaml accepts must have a conformance driver (test/conformance/
 * kinds.ts) and a test file that runs the suite with it, so a new kind of data cannot
 * land without passing the suite. The accepted kinds are read from the config reader
 * itself (the error it gives for an unknown kind lists them), not from a copy of the list.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { ROOT } from '../helpers.js';
import { DRIVERS } from './kinds.js';

/** The kinds a source may have, as the config reader states them when refusing another one. */
function acceptedKinds(): string[] {
  const text = ['repositories:', '  main:', '    stores: [/nonexistent/repo]', 'sources:', '  probe:', '    kind: no-such-kind', ''].join('\n');
  let said: string[] = [];
  try {
    parseConfig(text, '/nonexistent/lifeboat.yaml');
  } catch (err) {
    const e = err as { message?: string; hint?: string };
    said = [e.message ?? '', e.hint ?? ''];
  }
  // The list follows "one of" in the message or in its hint.
  const list = said.map((line) => /one of:?\s*(.*)$/i.exec(line)?.[1]).find((l) => l !== undefined);
  if (list === undefined) throw new Error(`the config reader's refusal of an unknown kind no longer lists the kinds; read them from the Source registry instead: ${said.join(' / ')}`);
  return [...list.matchAll(/[a-z][a-z0-9_-]*/g)].map((m) => m[0]).filter((k) => k !== 'or' && k !== 'and');
}

describe('source conformance: every kind joins the suite', () => {
  it('has a driver for every kind lifeboat.yaml accepts, and no driver for a kind it refuses', () => {
    const kinds = acceptedKinds();
    expect(kinds.length).toBeGreaterThan(0);
    expect(Object.keys(DRIVERS).sort()).toEqual([...kinds].sort());
  });

  it("runs the suite for every driver, each in its own test file (a scratch cluster per file, so the kinds run in parallel)", () => {
    for (const [kind, driver] of Object.entries(DRIVERS)) {
      expect(driver.kind).toBe(kind);
      const file = path.join(ROOT, 'test', 'conformance', `${kind}.test.ts`);
      expect(existsSync(file), `${file} is missing`).toBe(true);
      expect(readFileSync(file, 'utf8')).toContain(`conformanceSuite(DRIVERS.${kind})`);
    }
  });

  it('accepts each driver\'s lifeboat.yaml source kind (the driver table and the config reader agree)', () => {
    for (const kind of Object.keys(DRIVERS)) {
      const text = ['repositories:', '  main:', '    stores: [/nonexistent/repo]', 'sources:', '  probe:', `    kind: ${kind}`, ''].join('\n');
      // Missing kind-specific keys are reported; an unknown kind would be reported first.
      try {
        parseConfig(text, '/nonexistent/lifeboat.yaml');
      } catch (err) {
        expect((err as Error).message).not.toMatch(/"kind" of source/);
      }
    }
  });
});
