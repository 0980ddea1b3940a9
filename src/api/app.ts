/**
 * The daemon's HTTP app (fastify): the REST API under /api/v1, one module per
 * resource in routes/, plus the dashboard, /metrics and health checks. Every call but
 * the public ones needs a bearer token whose role allows it; every mutating call, and
 * every refused one, lands in the audit log. Errors are `{"error": {"code", "message",
 * "hint"}}` with the HTTP status of docs/exit-codes.md's code. The app is testable
 * without a socket (`app.inject()`).
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { LifeboatError, isLifeboatError } from '../errors.js';
import { allows, authenticate } from '../daemon/auth.js';
import type { Daemon } from '../daemon/daemon.js';
import { apiContext } from './context.js';
import { serveDashboard } from './dashboard.js';
import { openapi } from './openapi.js';
import { route, sendError, type Caller, type Route } from './route.js';
import { aliasRoutes } from './routes/aliases.js';
import { auditRoutes } from './routes/audit.js';
import { backupRoutes } from './routes/backups.js';
import { drillRoutes } from './routes/drills.js';
import { groupRoutes } from './routes/groups.js';
import { healthRoutes } from './routes/health.js';
import { jobRoutes } from './routes/jobs.js';
import { repositoryRoutes } from './routes/repositories.js';
import { restoreRoutes } from './routes/restores.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { sourceRoutes } from './routes/sources.js';
import { statusRoutes } from './routes/status.js';
import { tokenRoutes } from './routes/tokens.js';
import { windowRoutes } from './routes/windows.js';

type WithCaller = FastifyRequest & { caller?: Caller };

export async function buildApi(d: Daemon, https?: { cert: Buffer; key: Buffer }): Promise<FastifyInstance> {
  // Unknown body keys are refused, not silently dropped (ajv's default in fastify).
  const ajv = { customOptions: { removeAdditional: false as const } };
  const app = (https ? Fastify({ https, logger: false, ajv }) : Fastify({ logger: false, ajv })) as unknown as FastifyInstance;
  const ctx = apiContext(d);
  const routes: Route[] = [
    ...statusRoutes(ctx),
    ...sourceRoutes(ctx),
    ...backupRoutes(ctx),
    ...restoreRoutes(ctx),
    ...drillRoutes(ctx),
    ...groupRoutes(ctx),
    ...repositoryRoutes(ctx),
    ...snapshotRoutes(ctx),
    ...jobRoutes(ctx),
    ...auditRoutes(ctx),
    ...tokenRoutes(ctx),
    ...aliasRoutes(ctx),
    ...windowRoutes(ctx),
  ];
  routes.push(
    route({ method: 'GET', url: '/api/v1/openapi.json', summary: 'This document', response: { status: 200, description: 'OpenAPI 3.0 document' }, handler: () => doc }),
    ...healthRoutes(ctx),
  );
  const doc = openapi(routes);

  // Authentication and the audit trail.
  app.addHook('onRequest', async (req, reply) => {
    const def = (req.routeOptions.config as { def?: Route } | undefined)?.def;
    (req as WithCaller).caller = {};
    if (!def?.role) return;
    const auth = authenticate(d.catalog, req.headers.authorization);
    if (!auth || 'expired' in auth) {
      reply.header('www-authenticate', 'Bearer realm="lifeboat"');
      if (auth) return sendError(reply, new LifeboatError('UNAUTHENTICATED', `token "${auth.expired.name}" expired at ${auth.expired.expires_at}`, { hint: 'ask an admin for a new one (`lifeboat token create --expires 30d`)' }));
      return sendError(reply, new LifeboatError('UNAUTHENTICATED', 'no valid API token', { hint: 'send "Authorization: Bearer <token>"; `lifeboat token create --role viewer` makes one' }));
    }
    const token = auth.token;
    (req as WithCaller).caller = { token };
    if (!allows(token.role, def.role)) {
      return sendError(reply, new LifeboatError('PERMISSION', `${req.method} ${req.url.split('?')[0]} needs the ${def.role} role; token "${token.name}" is ${token.role}`, { hint: 'ask an admin for a token with that role' }));
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    // Refusals (and 429s) are aggregated per caller and minute by the catalog: a flood is a few rows.
    const refused = reply.statusCode === 401 || reply.statusCode === 403 || reply.statusCode === 429;
    const def = (req.routeOptions.config as { def?: Route } | undefined)?.def;
    const audited = def?.audited === true;
    if ((req.method === 'GET' || req.method === 'HEAD') && !refused && !audited) return; // successful reads are not audited (downloads are)
    const caller = (req as WithCaller).caller ?? {};
    d.catalog.audit({
      actor: caller.token?.name ?? null,
      role: caller.token?.role ?? null,
      method: req.method,
      path: def?.auditPath ?? req.url,
      status_code: reply.statusCode,
      outcome: reply.statusCode < 400 ? 'ok' : refused ? 'refused' : 'error',
      remote: req.ip,
    });
  });
  app.setErrorHandler((err: Error & { validation?: unknown; statusCode?: number }, _req, reply) => {
    if (isLifeboatError(err)) return sendError(reply, err);
    if (err.validation) return sendError(reply, new LifeboatError('USAGE', `bad request: ${err.message}`, { hint: 'GET /api/v1/openapi.json describes every call' }));
    if (err.statusCode && err.statusCode < 500) return sendError(reply, new LifeboatError('USAGE', err.message));
    return sendError(reply, new LifeboatError('FAILED', err.message));
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, new LifeboatError('NOT_FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]}`, { hint: 'GET /api/v1/openapi.json lists them' })));

  // An empty JSON body is an empty object (curl -X POST -H 'content-type: application/json').
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, {});
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new LifeboatError('USAGE', 'the request body is not valid JSON', { hint: 'send a JSON object, or no body' }), undefined);
    }
  });

  for (const def of routes) {
    app.route({
      method: def.method,
      url: def.url,
      config: { def },
      schema: { ...(def.params ? { params: def.params } : {}), ...(def.query ? { querystring: def.query } : {}), ...(def.body ? { body: def.body } : {}) },
      handler: async (req, reply) => def.handler(req, reply, (req as WithCaller).caller ?? {}),
    });
  }
  serveDashboard(app);
  return app;
}
