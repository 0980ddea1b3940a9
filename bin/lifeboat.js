#!/usr/bin/env node
// Entry point for `npx lifeboat`: the CLI is compiled to dist/ by `npm ci` (the prepare script).
// `pg archive-push` / `pg archive-get` run once per WAL segment: they (and the read-ahead
// fetcher archive-get starts, `pg archive-prefetch`) go to a lean
// entry point that loads only what they need; everything else to the full CLI.
import { statSync } from 'node:fs';

const argv = process.argv.slice(2);
const lean = argv[0] === 'pg' && ['archive-push', 'archive-get', 'archive-prefetch'].includes(argv[1]);
// Both entry points come joined into a few files (dist/bundle/, scripts/bundle.mjs), which
// start with a fraction of the CPU; used only when built after the compiled files they
// join, so a `tsc` run since then runs the code it compiled, not an older bundle. tsc
// builds incrementally and rewrites only the files that changed, but always its record
// (dist/.tsbuildinfo) when it writes any.
const dist = new URL('../dist/', import.meta.url);
const mtime = (file) => statSync(new URL(file, dist), { throwIfNoEntry: false })?.mtimeMs ?? -1;
const bundled = mtime('bundle/main.js');
const dir = bundled >= 0 && bundled >= Math.max(mtime('cli/main.js'), mtime('.tsbuildinfo')) ? 'bundle/' : 'cli/';
(lean ? import(new URL(`${dir}lean.js`, dist).href).then((m) => m.main(argv)) : Promise.resolve(false))
  .then((handled) => handled || import(new URL(`${dir}main.js`, dist).href))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
      console.error('lifeboat: dist/ is missing; run `npm ci` (or `npm run build`) first');
      process.exit(1);
    }
    throw err;
  });
