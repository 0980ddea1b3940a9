/**
 * A kind that lifeboat.yaml accepts must have a conformance driver (test/conformance/
 * kinds.ts) and a test file that runs the suite with it, so a new kind of data cannot
 * land without passing the suite. The kinds are the Source registry's (src/sources/all.ts
 * registers them; test/setup-sources.ts loads it), not a copy of the list.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { sourceKinds } from '../../src/sources/registry.js';
import { ROOT } from '../helpers.js';
import { DRIVERS } from './kinds.js';

describe('source conformance: every kind joins the suite', () => {
  it('has a driver for every registered kind, and no driver for a kind that is not registered', () => {
    const kinds = sourceKinds().map((k) => k.name);
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
