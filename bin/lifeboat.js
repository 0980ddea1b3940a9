#!/usr/bin/env node
// Entry point for `npx lifeboat`: the CLI is compiled to dist/ by `npm ci` (the prepare script).
import('../dist/cli/main.js').catch((err) => {
  if (err && err.code === 'ERR_MODULE_NOT_FOUND') {
    console.error('lifeboat: dist/ is missing; run `npm ci` (or `npm run build`) first');
    process.exit(1);
  }
  throw err;
});
