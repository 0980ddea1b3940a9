import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_TABLE } from '../../src/errors.js';
import { ROOT } from '../helpers.js';

describe('docs/exit-codes.md', () => {
  it('lists every error code with the exit code the program uses', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'exit-codes.md'), 'utf8');
    for (const [code, info] of Object.entries(ERROR_TABLE)) {
      if (code === 'ALREADY_EXISTS') continue; // internal: stores report it, commands translate it
      const row = doc.split('\n').find((l) => new RegExp(`\\b${code}\\b`).test(l));
      expect(row, `${code} is documented`).toBeDefined();
      expect(row!.startsWith(`| ${info.exit} |`), `${code} has exit ${info.exit}`).toBe(true);
    }
  });
});
