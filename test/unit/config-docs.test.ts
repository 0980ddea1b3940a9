/**
 * docs/configuration.md's key reference is the option model rendered: a key added,
 * removed or redocumented in the model without `npx tsx scripts/config-docs.ts`
 * fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BEGIN, configReference, END, withReference } from '../../src/config/docs.js';
import { serverOptions } from '../../src/config/model.js';
import { sourceKinds } from '../../src/sources/registry.js';

const DOC = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');

describe('docs/configuration.md', () => {
  it('holds the key reference the model renders, between its markers', () => {
    expect(DOC).toContain(BEGIN);
    expect(DOC).toContain(END);
    expect(withReference(DOC)).toBe(DOC);
  });

  it('documents every key of every section and kind', () => {
    const reference = configReference();
    for (const key of Object.keys(serverOptions().shape)) expect(reference).toContain(`| \`${key}\` |`);
    expect(sourceKinds().length).toBeGreaterThan(0);
    for (const kind of sourceKinds()) {
      expect(reference).toContain(`kind: ${kind.name}`);
      for (const key of Object.keys(kind.options.shape)) expect(reference).toContain(`| \`${key}\` |`);
    }
    expect(reference).toMatch(/\| `retention\.keep_within` \| duration \| — \| file, `--keep-within` \|/);
  });

  it('fails when the file drifts from the model', () => {
    const drifted = DOC.replace('| `keep_jobs` | duration |', '| `keep_jobs` | string |');
    expect(drifted).not.toBe(DOC);
    expect(withReference(drifted)).not.toBe(drifted);
  });
});
