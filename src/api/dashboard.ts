/**
 * Serves the dashboard: index.html and style.css from assets/dashboard/, and the
 * browser modules tsc compiles from src/web/ (tsconfig.web.json) into
 * dist/dashboard/web/. They read the same API with the user's token.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LifeboatError } from '../errors.js';
import { sendError } from './route.js';

// Both src/api/ (tests) and dist/api/ (the installed CLI) are two levels below the package root.
const ROOT = new URL('../../', import.meta.url);
const ASSETS_DIR = fileURLToPath(new URL('assets/dashboard/', ROOT));
/** Where `npm run build` (and `npm ci`'s prepare) put the compiled src/web/. */
export const DASHBOARD_JS_DIR = fileURLToPath(new URL('dist/dashboard/web/', ROOT));

const HTML = 'text/html; charset=utf-8';
const CSS = 'text/css; charset=utf-8';
const JS = 'text/javascript; charset=utf-8';

/** File name → [directory, content type]: the whole list of what /dashboard/ serves. */
function dashboardFiles(): Map<string, [string, string]> {
  const files = new Map<string, [string, string]>([
    ['index.html', [ASSETS_DIR, HTML]],
    ['style.css', [ASSETS_DIR, CSS]],
    // Listed even when unbuilt, so the page's request gets an error that says why.
    ['app.js', [DASHBOARD_JS_DIR, JS]],
  ]);
  if (existsSync(DASHBOARD_JS_DIR)) {
    for (const f of readdirSync(DASHBOARD_JS_DIR)) if (/^[a-z][a-z0-9-]*\.js$/.test(f)) files.set(f, [DASHBOARD_JS_DIR, JS]);
  }
  return files;
}

export function serveDashboard(app: FastifyInstance): void {
  const page = (file: string, dir: string, type: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const full = `${dir}${file}`;
    if (!existsSync(full)) {
      return sendError(reply, new LifeboatError('NOT_FOUND', `dashboard file ${file} is missing from this installation`, { hint: 'build it: `npm run build` (npm ci does)' }));
    }
    reply.header('content-type', type);
    reply.header('cache-control', 'no-cache');
    // The page keeps a token in local storage: no script but its own may run.
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    reply.header('x-content-type-options', 'nosniff');
    return readFileSync(full);
  };
  app.get('/', (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard', (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard/', page('index.html', ASSETS_DIR, HTML));
  for (const [file, [dir, type]] of dashboardFiles()) app.get(`/dashboard/${file}`, page(file, dir, type));
}
