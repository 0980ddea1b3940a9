/**
 * vitest.config.ts starts the longest files first by name: a renamed, moved or split
 * file left in that list would silently lose its place, so every name must exist.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LONGEST_FIRST } from '../../vitest.config.js';
import { ROOT } from '../helpers.js';

describe('LONGEST_FIRST', () => {
  it('names test files that exist, once each', () => {
    expect(LONGEST_FIRST.filter((f) => !f.endsWith('.test.ts') || !existsSync(path.join(ROOT, f)))).toEqual([]);
    expect(new Set(LONGEST_FIRST).size).toBe(LONGEST_FIRST.length);
  });
});
