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
 * Why rolldown: esbuild split the program into a chunk per set of entry points and
 * dynamic imports sharing it, so `--version` read 43 files; rolldown merges the chunks
 * that always load together, and `--version` reads 12 (`init` 24 instead of 59), for
 * ~0.02–0.04 CPU-s less per process (docs/performance.md). `strictExecutionOrder` runs
 * each module's body in the order the unbundled program would, whichever file it is
 * placed in, so a module that only a command needs has no effect before that command.
 *
 * What stays as it was: the commands still load on demand (each dynamic import is its
 * own chunk, or joins one); worker threads, the dashboard and every other file found
 * through `import.meta.url` are still tsc's files in dist/ (each module's
 * `import.meta.url` is rewritten to the URL of its own compiled file, so
 * `new URL('./x.js', import.meta.url)` finds what it found before); other packages load
 * from node_modules as before (native addons, CommonJS, and the large SDKs the commands
 * load lazily). The code is tsc's output, not re-transpiled, and not minified: a stack
 * trace names the functions, and dist/bundle/*.map lead back to src/
 * (`node --enable-source-maps`).
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { rolldown } from 'rolldown';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const OUT = path.join(DIST, 'bundle');

/**
 * Packages joined into the bundle: ESM with many small modules, no native code. The
 * program imports zod as `import * as z from 'zod'`, so the bundler can tell which of
 * zod's members are used and leaves out its other locales (test/e2e/startup.test.ts
 * checks only English is in).
 */
const BUNDLED = new Set(['zod']);

/** `zod/v4/core` → `zod`, `@scope/name/x` → `@scope/name`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Every other package, and Node's own modules, stay imports. */
const external = (id) => /^[^./]/.test(id) && (id.startsWith('node:') || !BUNDLED.has(packageOf(id)));

/** A module's own location, as tsc's output had it. */
const metaUrl = {
  name: 'lifeboat-meta-url',
  async load(id) {
    if (!id.startsWith(DIST + path.sep) || !id.endsWith('.js')) return null;
    const text = await readFile(id, 'utf8');
    if (!text.includes('import.meta.url')) return null;
    const rel = path.relative(OUT, id).split(path.sep).join('/');
    return text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`);
  },
};

await rm(OUT, { recursive: true, force: true });
const bundle = await rolldown({
  cwd: ROOT,
  input: { main: 'dist/cli/main.js', lean: 'dist/cli/lean.js' },
  platform: 'node',
  external,
  plugins: [metaUrl],
  logLevel: 'warn',
});
const { output } = await bundle.write({
  dir: OUT,
  format: 'esm',
  sourcemap: true,
  strictExecutionOrder: true,
  entryFileNames: '[name].js',
  chunkFileNames: '[name]-[hash].js',
});
await bundle.close();
// Which modules each output file holds: test/helpers.ts (loadedModules) reads it to
// tell what an entry point loaded, as it read module URLs before the bundle.
const rel = (f) => path.relative(ROOT, f).split(path.sep).join('/');
const outputs = {};
for (const o of output) {
  if (o.type !== 'chunk') continue;
  outputs[rel(path.join(OUT, o.fileName))] = { inputs: Object.fromEntries(o.moduleIds.filter((m) => path.isAbsolute(m)).map((m) => [rel(m), {}])) };
}
await writeFile(path.join(OUT, 'meta.json'), JSON.stringify({ outputs }));
