/**
 * Rewrites the key reference in docs/configuration.md from the option model
 * (src/config/model.ts): `npx tsx scripts/config-docs.ts`. test/unit/config-docs.test.ts
 * fails when the file and the model disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import '../src/sources/all.js';
import { withReference } from '../src/config/docs.js';

const file = new URL('../docs/configuration.md', import.meta.url);
const before = readFileSync(file, 'utf8');
const after = withReference(before);
if (after !== before) writeFileSync(file, after);
console.log(after === before ? 'docs/configuration.md: up to date' : 'docs/configuration.md: key reference rewritten');
