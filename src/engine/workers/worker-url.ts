/**
 * Starts a worker thread from the script next to the caller. From the compiled
 * package that is a .js file. When the sources run directly (tests under vitest) it
 * is the compiled twin in dist/ if dist/ was built from exactly these sources, else
 * the .ts file, loaded through tsx's loader registered inside the worker.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, type ResourceLimits } from 'node:worker_threads';

export function startWorker(base: string, name: string, workerData: unknown, resourceLimits?: ResourceLimits): Worker {
  const opts = { workerData, ...(resourceLimits ? { resourceLimits } : {}) };
  const js = new URL(`./${name}.js`, base);
  if (existsSync(fileURLToPath(js))) return new Worker(js, opts);
  const built = builtTwin(fileURLToPath(base), name);
  if (built) return new Worker(pathToFileURL(built), opts);
  const ts = new URL(`./${name}.ts`, base);
  const api = pathToFileURL(createRequire(base).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(ts.href)}); });`;
  return new Worker(boot, { eval: true, ...opts });
}

/**
 * Why not always tsx: a worker that loads its modules through tsx costs about a second
 * of CPU to start, and a backup starts three or more (an in-process test of eight small
 * backups spent 21 s of CPU, 9 s with compiled workers). But a stale dist/ would run
 * old worker code beside new engine code, so it is used only when no file under src/
 * is newer than its compiled .js (checked once per process). tsc builds incrementally:
 * a source whose text changed is written again; one only touched is not, and then the
 * workers start through tsx (slower, never stale) until tsc writes it or dist/ is built afresh.
 */
let distRoot: { src: string; dist: string } | null | undefined;

function builtTwin(caller: string, name: string): string | undefined {
  if (distRoot === undefined) distRoot = freshDist(caller);
  if (!distRoot) return undefined;
  const file = path.join(distRoot.dist, path.relative(distRoot.src, path.dirname(caller)), `${name}.js`);
  return existsSync(file) ? file : undefined;
}

/** dist/ and src/ when every .ts under src/ has a .js at least as new in dist/; exported for its test. */
export function freshDist(caller: string): { src: string; dist: string } | null {
  const marker = `${path.sep}src${path.sep}`;
  const at = caller.lastIndexOf(marker);
  if (at < 0) return null;
  const src = caller.slice(0, at + marker.length - 1);
  const dist = path.join(caller.slice(0, at), 'dist');
  const fresh = (dir: string): boolean => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (!fresh(full)) return false;
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const out = path.join(dist, path.relative(src, full)).replace(/\.ts$/, '.js');
        const built = statSync(out, { throwIfNoEntry: false });
        if (!built || built.mtimeMs < statSync(full).mtimeMs) return false;
      }
    }
    return true;
  };
  try {
    return fresh(src) ? { src, dist } : null;
  } catch {
    return null;
  }
}
