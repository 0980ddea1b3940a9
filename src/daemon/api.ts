/**
 * The REST API under /api/v1 (fastify), the dashboard, /metrics and health checks.
 * Routes are declared once in a table that both registers them and generates the
 * OpenAPI document served at /api/v1/openapi.json. Every call but the public ones
 * needs a bearer token whose role allows it; every mutating call, and every refused
 * one, lands in the audit log. Errors are `{"error": {"code", "message", "hint"}}`
 * with the HTTP status of docs/exit-codes.md's code.
 */
import { tokenExpires } from '../config/model.js';
import { jsonSchemaOf } from '../config/schema.js';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { ERROR_TABLE, LifeboatError, isLifeboatError } from '../errors.js';
import { PROGRAM_VERSION } from '../repo/repository.js';
import { parseTargetTime } from '../engine/target-time.js';
import { allows, authenticate, bearerIs, createToken, parseRole, revokeToken, type Role } from './auth.js';
import { isLoopback } from './listen.js';
import { RepositoryReads } from './reads.js';
import { checkRestoreTarget, snapshotOfSource } from './restore-policy.js';
import type { JobRow, TokenRow } from './catalog.js';
import { requireSource } from './jobs.js';
import type { Daemon } from './daemon.js';

type Schema = Record<string, unknown>;

interface RouteDef {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  /** Minimum role; undefined: public. */
  role?: Role;
  summary: string;
  params?: Schema;
  query?: Schema;
  body?: Schema;
  /** Status and description of the success response. */
  response: [number, string, Schema?];
  handler: (req: FastifyRequest, reply: FastifyReply, who: Caller) => Promise<unknown> | unknown;
}

interface Caller {
  token?: TokenRow & { role: Role };
}

const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const nullable = (s: Schema): Schema => ({ ...s, nullable: true });
const obj = (properties: Record<string, Schema>, required: string[] = []): Schema => ({ type: 'object', properties, required, additionalProperties: false });

const JOB: Schema = {
  type: 'object',
  properties: {
    id: str,
    kind: { type: 'string', enum: ['backup', 'restore', 'drill', 'check', 'forget', 'prune', 'rotate', 'replicate', 'rebuild'] },
    source: nullable(str),
    repository: nullable(str),
    status: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed', 'skipped'] },
    trigger: str,
    actor: nullable(str),
    created_at: str,
    started_at: nullable(str),
    finished_at: nullable(str),
    duration_ms: nullable(num),
    progress: nullable({ type: 'object' }),
    result: {},
    error: nullable(str),
    error_code: nullable(str),
  },
};
const ERROR: Schema = obj({ error: obj({ code: str, message: str, hint: nullable(str) }, ['code', 'message']) }, ['error']);
const NAME_PARAM = obj({ name: str }, ['name']);
const ID_PARAM = obj({ id: str }, ['id']);

function sendError(reply: FastifyReply, err: LifeboatError): FastifyReply {
  if (err.code === 'BUSY') reply.header('retry-after', String(RepositoryReads.retryAfterSeconds));
  return reply.code(ERROR_TABLE[err.code].http).send({ error: { code: err.code, message: err.message, hint: err.hint ?? null } });
}

const DASHBOARD_DIR = fileURLToPath(new URL('../../assets/dashboard/', import.meta.url));
const DASHBOARD_FILES: Record<string, string> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'style.css': 'text/css; charset=utf-8' };

export async function buildApi(d: Daemon, https?: { cert: Buffer; key: Buffer }): Promise<FastifyInstance> {
  // Unknown body keys are refused, not silently dropped (ajv's default in fastify).
  const ajv = { customOptions: { removeAdditional: false as const } };
  const app = (https ? Fastify({ https, logger: false, ajv }) : Fastify({ logger: false, ajv })) as unknown as FastifyInstance;
  const routes: RouteDef[] = [];
  const source = (name: string) => requireSource(d.config, name).name;
  const job = (id: string): JobRow => {
    const j = d.catalog.job(id);
    if (!j) throw new LifeboatError('NOT_FOUND', `no job ${id}`, { hint: 'GET /api/v1/jobs lists them' });
    return j;
  };
  const actor = (who: Caller) => who.token?.name;
  const role = (who: Caller): Role => who.token?.role ?? 'viewer';

  routes.push(
    {
      method: 'GET', url: '/api/v1/status', role: 'viewer', summary: 'Daemon status: version, uptime, schedules, continuous archiving',
      response: [200, 'status'],
      handler: () => ({
        version: PROGRAM_VERSION,
        started_at: d.startedAt.toISOString(),
        schedules: d.scheduler.upcoming(),
        repositories: d.repositories(),
        running_jobs: d.catalog.jobs({ status: 'running' }).length,
      }),
    },
    {
      method: 'GET', url: '/api/v1/whoami', role: 'viewer', summary: "The calling token's name and role",
      response: [200, 'the token', obj({ id: str, name: str, role: str })],
      handler: (_req, _reply, who) => ({ id: who.token?.id, name: who.token?.name, role: who.token?.role }),
    },
    {
      method: 'GET', url: '/api/v1/sources', role: 'viewer', summary: 'Sources with their last backup, current RPO, measured RTO and targets',
      response: [200, 'sources', { type: 'array', items: { type: 'object' } }],
      handler: () => d.sources(),
    },
    {
      method: 'GET', url: '/api/v1/sources/:name', role: 'viewer', summary: 'One source', params: NAME_PARAM,
      response: [200, 'the source'],
      handler: (req) => d.sources().find((s) => s.name === source((req.params as { name: string }).name)),
    },
    {
      method: 'GET', url: '/api/v1/backups', role: 'viewer', summary: 'Backups the catalog knows, newest first (all sources, or ?source=)',
      query: obj({ source: str, limit: { type: 'integer', minimum: 1, maximum: 5000 } }),
      response: [200, 'backups', { type: 'array', items: { type: 'object' } }],
      handler: (req) => {
        const q = req.query as { source?: string; limit?: number };
        return d.catalog.backups(q.source === undefined ? undefined : source(q.source), q.limit ?? 500);
      },
    },
    {
      method: 'GET', url: '/api/v1/repositories/:name/snapshots', role: 'viewer', summary: 'Snapshots read from the repository itself', params: NAME_PARAM,
      response: [200, 'snapshots', { type: 'array', items: { type: 'object' } }],
      handler: (req) => d.snapshots((req.params as { name: string }).name),
    },
    {
      method: 'POST', url: '/api/v1/sources/:name/backup', role: 'operator', summary: 'Back up a source now; returns the job at once', params: NAME_PARAM,
      response: [202, 'the job', JOB],
      handler: (req, reply, who) => {
        reply.code(202);
        return d.submit({ kind: 'backup', source: source((req.params as { name: string }).name), trigger: 'api', actor: actor(who) });
      },
    },
    {
      method: 'POST', url: '/api/v1/restores', role: 'operator',
      summary: 'Restore a source into a new place below server.restore_roots (admin only without them): files to a directory (snapshot), PostgreSQL to a directory and SQLite to a file (time); never overwrites',
      body: obj({ source: str, target: str, time: str, snapshot: str }, ['source', 'target']),
      response: [202, 'the job', JOB],
      handler: async (req, reply, who) => {
        const b = req.body as { source: string; target: string; time?: string; snapshot?: string };
        // Refused here, not in the job: a future or zone-less time must not start one.
        if (b.time !== undefined) parseTargetTime(b.time);
        const s = requireSource(d.config, b.source);
        const target = checkRestoreTarget(d.config, role(who), b.target);
        // The snapshot must be this source's: checked against the repository's own listing (shared and
        // cached; read afresh when the cached one does not know it, e.g. a backup the CLI just made).
        const own = async (snap: string) => {
          try {
            return snapshotOfSource(await d.snapshots(s.repository), s, snap);
          } catch (err) {
            if (!isLifeboatError(err, 'NOT_FOUND')) throw err;
            return snapshotOfSource(await d.snapshots(s.repository, { fresh: true }), s, snap);
          }
        };
        const snapshot = b.snapshot === undefined ? undefined : await own(b.snapshot);
        reply.code(202);
        return d.submit({
          kind: 'restore', source: s.name, trigger: 'api', actor: actor(who),
          restore: { target, ...(b.time ? { time: b.time } : {}), ...(snapshot ? { snapshot } : {}) },
        });
      },
    },
    {
      method: 'POST', url: '/api/v1/recoveries', role: 'operator',
      summary: 'Recover several sources to one moment: a restore job per source into new places, all checked before any starts',
      body: obj({ targets: { type: 'object', additionalProperties: str, minProperties: 1 }, time: str }, ['targets']),
      response: [202, 'the jobs', obj({ jobs: { type: 'array', items: JOB } })],
      handler: (req, reply, who) => {
        const b = req.body as { targets: Record<string, string>; time?: string };
        if (b.time !== undefined) parseTargetTime(b.time);
        for (const name of Object.keys(b.targets)) source(name);
        const targets = Object.fromEntries(Object.entries(b.targets).map(([name, target]) => [name, checkRestoreTarget(d.config, role(who), target)]));
        reply.code(202);
        return { jobs: d.recover(targets, b.time, 'api', actor(who)) };
      },
    },
    {
      method: 'POST', url: '/api/v1/drills', role: 'operator', summary: 'Drill one source (or all): restore its newest backup, check it, measure RTO and RPO',
      body: obj({ source: str }),
      response: [202, 'the jobs', obj({ jobs: { type: 'array', items: JOB } })],
      handler: (req, reply, who) => {
        const b = (req.body ?? {}) as { source?: string };
        const names = b.source !== undefined ? [source(b.source)] : [...d.config.sources.keys()];
        reply.code(202);
        return { jobs: names.map((s) => d.submit({ kind: 'drill', source: s, trigger: 'api', actor: actor(who) })) };
      },
    },
    {
      method: 'GET', url: '/api/v1/drills', role: 'viewer', summary: 'Drill history, newest first', query: obj({ source: str }),
      response: [200, 'drills', { type: 'array', items: { type: 'object' } }],
      handler: (req) => {
        const q = req.query as { source?: string };
        return d.catalog.drills(q.source === undefined ? undefined : source(q.source));
      },
    },
    {
      method: 'POST', url: '/api/v1/repositories/:name/check', role: 'operator', summary: 'Verify a repository (structure, and a share of the data with read_data_subset)', params: NAME_PARAM,
      body: obj({ read_data_subset: { type: 'string', pattern: '^\\d+(\\.\\d+)?%$' } }),
      response: [202, 'the job', JOB],
      handler: (req, reply, who) => {
        const b = (req.body ?? {}) as { read_data_subset?: string };
        reply.code(202);
        return d.submit({ kind: 'check', repository: (req.params as { name: string }).name, trigger: 'api', actor: actor(who), ...(b.read_data_subset ? { readDataSubset: b.read_data_subset } : {}) });
      },
    },
    {
      method: 'GET', url: '/api/v1/sources/:name/retention', role: 'viewer', summary: "Preview the source's retention policy: what would be kept and why, what would be removed", params: NAME_PARAM,
      response: [200, 'the preview (forget --dry-run)'],
      handler: (req) => d.retentionPreview(source((req.params as { name: string }).name)),
    },
    {
      method: 'POST', url: '/api/v1/sources/:name/retention', role: 'admin', summary: "Apply the source's retention policy now (forget, then prune)", params: NAME_PARAM,
      response: [202, 'the job', JOB],
      handler: (req, reply, who) => {
        reply.code(202);
        return d.submit({ kind: 'forget', source: source((req.params as { name: string }).name), trigger: 'api', actor: actor(who) });
      },
    },
    {
      method: 'GET', url: '/api/v1/jobs', role: 'viewer', summary: 'Jobs, newest first',
      query: obj({ source: str, kind: str, status: str, limit: { type: 'integer', minimum: 1, maximum: 1000 } }),
      response: [200, 'jobs', { type: 'array', items: JOB }],
      handler: (req) => d.catalog.jobs(req.query as { source?: string; kind?: string; status?: string; limit?: number }),
    },
    {
      method: 'GET', url: '/api/v1/jobs/:id', role: 'viewer', summary: 'One job: status, progress, result', params: ID_PARAM,
      response: [200, 'the job', JOB],
      handler: (req) => job((req.params as { id: string }).id),
    },
    {
      method: 'GET', url: '/api/v1/jobs/:id/log', role: 'viewer', summary: "A job's log lines (after=SEQ for the new ones)", params: ID_PARAM,
      query: obj({ after: { type: 'integer', minimum: 0 } }),
      response: [200, 'log lines', { type: 'array', items: obj({ seq: num, time: str, stream: str, line: str }) }],
      handler: (req) => d.catalog.log(job((req.params as { id: string }).id).id, (req.query as { after?: number }).after ?? 0),
    },
    {
      method: 'POST', url: '/api/v1/catalog/rebuild', role: 'admin', summary: "Rebuild the catalog's backups and drills from the repositories",
      response: [200, 'counts', obj({ backups: num, drills: num })],
      handler: () => d.rebuildCatalog(),
    },
    {
      method: 'GET', url: '/api/v1/audit', role: 'admin', summary: 'The audit log: every mutating or refused call, newest first', query: obj({ limit: { type: 'integer', minimum: 1, maximum: 10000 } }),
      response: [200, 'audit entries', { type: 'array', items: { type: 'object' } }],
      handler: (req) => d.catalog.auditLog((req.query as { limit?: number }).limit ?? 200),
    },
    {
      method: 'GET', url: '/api/v1/tokens', role: 'admin', summary: 'API tokens (never their secrets)',
      response: [200, 'tokens', { type: 'array', items: { type: 'object' } }],
      handler: () => d.catalog.tokens(),
    },
    {
      method: 'POST', url: '/api/v1/tokens', role: 'admin', summary: 'Create a token (a name no active token has; optional lifetime such as "30d"); its secret is shown once',
      body: obj({ name: str, role: { type: 'string', enum: ['viewer', 'operator', 'admin'] }, expires: jsonSchemaOf(tokenExpires) }, ['name', 'role']),
      response: [201, 'the token', obj({ id: str, name: str, role: str, token: str, expires_at: nullable(str) })],
      handler: (req, reply) => {
        const b = req.body as { name: string; role: string; expires?: string };
        const t = createToken(d.catalog, parseRole(b.role), b.name, b.expires);
        reply.code(201);
        return { id: t.id, name: b.name, role: b.role, token: t.token, expires_at: t.expires_at };
      },
    },
    {
      method: 'DELETE', url: '/api/v1/tokens/:id', role: 'admin', summary: 'Revoke one token (by id, or by the name of the one active token with it)', params: ID_PARAM,
      response: [200, 'revoked', obj({ revoked: num, id: str, name: str })],
      handler: (req) => {
        const t = revokeToken(d.catalog, (req.params as { id: string }).id);
        return { revoked: 1, id: t.id, name: t.name };
      },
    },
    {
      method: 'GET', url: '/api/v1/openapi.json', summary: 'This document',
      response: [200, 'OpenAPI 3.0 document'],
      handler: () => openapi(routes),
    },
    {
      method: 'GET', url: '/metrics', summary: 'Prometheus metrics (beyond loopback: Bearer server.metrics_token, or any API token)',
      response: [200, 'text/plain; version=0.0.4'],
      handler: async (req, reply) => {
        // Metrics name every source and failure: public only while the daemon listens on loopback.
        if (!isLoopback(d.config.server.host)) {
          const header = req.headers.authorization;
          const api = authenticate(d.catalog, header);
          const ok = (d.config.server.metricsToken !== undefined && bearerIs(header, d.config.server.metricsToken)) || (api !== undefined && 'token' in api);
          if (!ok) {
            reply.header('www-authenticate', 'Bearer realm="lifeboat"');
            return sendError(reply, new LifeboatError('UNAUTHENTICATED', '/metrics needs a token when the daemon listens beyond loopback', { hint: 'configure Prometheus with authorization: { credentials: <server.metrics_token> }' }));
          }
        }
        reply.header('content-type', d.metrics.registry.contentType);
        return d.metrics.render();
      },
    },
    {
      method: 'GET', url: '/health/live', summary: 'Liveness: the process answers',
      response: [200, 'alive'],
      handler: () => ({ status: 'ok' }),
    },
    {
      method: 'GET', url: '/health/ready', summary: 'Readiness: schedules running and the catalog writable (503 otherwise)',
      response: [200, 'ready'],
      handler: (_req, reply) => {
        const ready = d.isReady();
        reply.code(ready ? 200 : 503);
        return { status: ready ? 'ready' : 'not ready' };
      },
    },
  );

  // Authentication and the audit trail.
  app.addHook('onRequest', async (req, reply) => {
    const def = (req.routeOptions.config as { def?: RouteDef } | undefined)?.def;
    (req as FastifyRequest & { caller: Caller }).caller = {};
    if (!def?.role) return;
    const auth = authenticate(d.catalog, req.headers.authorization);
    if (!auth || 'expired' in auth) {
      reply.header('www-authenticate', 'Bearer realm="lifeboat"');
      if (auth) return sendError(reply, new LifeboatError('UNAUTHENTICATED', `token "${auth.expired.name}" expired at ${auth.expired.expires_at}`, { hint: 'ask an admin for a new one (`lifeboat token create --expires 30d`)' }));
      return sendError(reply, new LifeboatError('UNAUTHENTICATED', 'no valid API token', { hint: 'send "Authorization: Bearer <token>"; `lifeboat token create --role viewer` makes one' }));
    }
    const token = auth.token;
    (req as FastifyRequest & { caller: Caller }).caller = { token };
    if (!allows(token.role, def.role)) {
      return sendError(reply, new LifeboatError('PERMISSION', `${req.method} ${req.url.split('?')[0]} needs the ${def.role} role; token "${token.name}" is ${token.role}`, { hint: 'ask an admin for a token with that role' }));
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    // Refusals (and 429s) are aggregated per caller and minute by the catalog: a flood is a few rows.
    const refused = reply.statusCode === 401 || reply.statusCode === 403 || reply.statusCode === 429;
    if ((req.method === 'GET' || req.method === 'HEAD') && !refused) return; // successful reads are not audited
    const caller = (req as FastifyRequest & { caller?: Caller }).caller ?? {};
    d.catalog.audit({
      actor: caller.token?.name ?? null,
      role: caller.token?.role ?? null,
      method: req.method,
      path: req.url,
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
      handler: async (req, reply) => def.handler(req, reply, (req as FastifyRequest & { caller: Caller }).caller),
    });
  }

  // The dashboard: static files that read the same API with the user's token.
  const page = (file: string) => async (_req: FastifyRequest, reply: FastifyReply) => {
    const full = `${DASHBOARD_DIR}${file}`;
    if (!existsSync(full)) return sendError(reply, new LifeboatError('NOT_FOUND', `dashboard file ${file} is missing from this installation`));
    reply.header('content-type', DASHBOARD_FILES[file] as string);
    reply.header('cache-control', 'no-cache');
    // The page keeps a token in local storage: no script but its own may run.
    reply.header('content-security-policy', "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    reply.header('x-content-type-options', 'nosniff');
    return readFileSync(full);
  };
  app.get('/', (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard', (_req, reply) => reply.redirect('/dashboard/'));
  app.get('/dashboard/', page('index.html'));
  for (const file of Object.keys(DASHBOARD_FILES)) app.get(`/dashboard/${file}`, page(file));
  return app;
}

/** The OpenAPI 3.0 document of the route table. */
function openapi(routes: RouteDef[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.url.replace(/:(\w+)/g, '{$1}');
    const parameters = [
      ...Object.keys((r.params?.properties as Record<string, Schema> | undefined) ?? {}).map((name) => ({ name, in: 'path', required: true, schema: str })),
      ...Object.entries((r.query?.properties as Record<string, Schema> | undefined) ?? {}).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
    ];
    const [status, description, schema] = r.response;
    (paths[p] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(r.role ? { security: [{ bearer: [] }], 'x-lifeboat-role': r.role } : { security: [] }),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: Boolean((r.body.required as string[] | undefined)?.length), content: { 'application/json': { schema: r.body } } } } : {}),
      responses: {
        [status]: { description, ...(schema ? { content: { 'application/json': { schema } } } : {}) },
        ...(r.role ? { 401: { description: 'no valid token', content: { 'application/json': { schema: ERROR } } }, 403: { description: 'the token\'s role does not allow this', content: { 'application/json': { schema: ERROR } } } } : {}),
        default: { description: 'error (code, message, hint)', content: { 'application/json': { schema: ERROR } } },
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: 'Lifeboat daemon API', version: PROGRAM_VERSION, description: 'Backups, restores, drills and their status. Roles: viewer < operator < admin.' },
    servers: [{ url: '/' }],
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } }, schemas: { Job: JOB, Error: ERROR } },
    security: [{ bearer: [] }],
    paths,
  };
}
