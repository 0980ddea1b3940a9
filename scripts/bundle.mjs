#!/usr/bin/env node
/**
 * Joins the compiled CLI (dist/cli/main.js and dist/cli/lean.js, tsc's output) and zod
 * into a few files in dist/bundle/, which bin/lifeboat.js runs when they are at least
 * as new as dist/cli/main.js. Run after `tsc -p tsconfig.json` (npm run build does).
 *
 * Why: every CLI process used to resolve, read and compile ~150 modules through
 * Node's ESM loader, zod's 95 among them (64 locales nobody uses), and that start-up
 * was most of its CPU when a command does little (one per archived WAL segment, a
 * couple of thousand in the test suite); docs/performance.md has the figures.
 *
 * What stays as it was: the commands still load on demand (each dynamic import is its
 * own chunk); worker threads, the dashboard and every other file found through
 * `import.meta.url` are still tsc's files in dist/ (each module's `import.meta.url` is
 * rewritten to the URL of its own compiled file, so `new URL('./x.js', import.meta.url)`
 * finds what it found before); other packages load from node_modules as before (native
 * addons, CommonJS, and the large SDKs the commands load lazily). The code is tsc's
 * output, not re-transpiled, and not minified: a stack trace names the functions, each
 * module starts with a `// dist/<path>.js` comment, and dist/bundle/*.map lead back to
 * src/ (`node --enable-source-maps`).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(DIST, 'bundle');

/**
 * Packages joined into the bundle: ESM with many small modules, no native code. The
 * program imports zod as `import * as z from 'zod'`: behind `import { z }` esbuild
 * cannot tell which members are used and keeps all of zod's locales (756 KB against 151
 * KB for one schema; test/e2e/startup.test.ts checks only English is in).
 */
const BUNDLED = new Set(['zod']);

/** `zod/v4/core` → `zod`, `@scope/name/x` → `@scope/name`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const plugin = {
  name: 'lifeboat-bundle',
  setup(b) {
    // Every other package stays an import from node_modules.
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:') || BUNDLED.has(packageOf(args.path))) return undefined;
      return { path: args.path, external: true };
    });
    // A module's own location, as tsc's output had it.
    b.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(DIST + path.sep)) return undefined;
      const text = await readFile(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const rel = path.relative(OUT, args.path).split(path.sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'js' };
    });
  },
};

await rm(OUT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { main: 'dist/cli/main.js', lean: 'dist/cli/lean.js' },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
  plugins: [plugin],
});
// Which modules each output file holds: test/e2e/archive-cli.test.ts reads it to check
// what an entry point loads, as it read module URLs before.
await writeFile(path.join(OUT, 'meta.json'), JSON.stringify(result.metafile));
