#!/usr/bin/env node
// Entry point for `npx lifeboat`: the CLI is compiled to dist/ by `npm ci` (the prepare script).
// `pg archive-push` / `pg archive-get` run once per WAL segment: they (and the read-ahead
// fetcher archive-get starts, `pg archive-prefetch`) go to a lean
// entry point that loads only what they need; everything else to the full CLI.
const argv = process.argv.slice(2);
const lean = argv[0] === 'pg' && ['archive-push', 'archive-get', 'archive-prefetch'].includes(argv[1]);
(lean ? import('../dist/cli/lean.js').then((m) => m.main(argv)) : Promise.resolve(false))
  .then((handled) => handled || import('../dist/cli/main.js'))
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
      console.error('lifeboat: dist/ is missing; run `npm ci` (or `npm run build`) first');
      process.exit(1);
    }
    throw err;
  });
