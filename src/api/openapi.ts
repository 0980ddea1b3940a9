/**
 * The OpenAPI 3.0 document of the routes, served at /api/v1/openapi.json. Built from
 * the same JSON Schemas fastify validates requests with (src/api/route.ts), so the
 * document and the validation cannot disagree.
 */
import { PROGRAM_VERSION } from '../repo/repository.js';
import { AuditEntry, Backup, Drill, ErrorBody, Job, LogLine, Source, Status, Token, TokenCreated } from './dto.js';
import { jsonSchema, type JsonSchema, type Route } from './route.js';

export function openapi(routes: readonly Route[]): Record<string, unknown> {
  const ERROR = jsonSchema(ErrorBody);
  const errorContent = { 'application/json': { schema: ERROR } };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.url.replace(/:(\w+)/g, '{$1}');
    const parameters = [
      ...Object.keys((r.params?.properties as Record<string, JsonSchema> | undefined) ?? {}).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
      ...Object.entries((r.query?.properties as Record<string, JsonSchema> | undefined) ?? {}).map(([name, schema]) => ({ name, in: 'query', required: false, schema })),
    ];
    const { status, description, schema } = r.response;
    (paths[p] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(r.role ? { security: [{ bearer: [] }], 'x-lifeboat-role': r.role } : { security: [] }),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: Boolean((r.body.required as string[] | undefined)?.length), content: { 'application/json': { schema: r.body } } } } : {}),
      responses: {
        [status]: { description, ...(schema ? { content: { 'application/json': { schema } } } : {}) },
        ...(r.role
          ? { 401: { description: 'no valid token', content: errorContent }, 403: { description: "the token's role does not allow this", content: errorContent } }
          : {}),
        default: { description: 'error (code, message, hint)', content: errorContent },
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: 'Lifeboat daemon API', version: PROGRAM_VERSION, description: 'Backups, restores, drills and their status. Roles: viewer < operator < admin.' },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      // The shared shapes by name, for clients generated from this document (responses inline them too).
      schemas: Object.fromEntries(Object.entries({ Job, Source, Backup, Drill, Status, LogLine, AuditEntry, Token, TokenCreated }).map(([name, schema]) => [name, jsonSchema(schema)]).concat([['Error', ERROR]])),
    },
    security: [{ bearer: [] }],
    paths,
  };
}
