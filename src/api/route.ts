/**
 * What a route is: method, URL, the role it needs, and zod schemas for its path
 * parameters, query, body and success response (src/api/dto.ts). `route()` checks a
 * handler against those schemas at compile time (its input is their `z.infer`, its
 * result must fit the response schema) and derives the JSON Schemas fastify validates
 * requests with and the OpenAPI document describes them with, so each shape is declared once.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import * as z from 'zod';
import { ERROR_TABLE, LifeboatError } from '../errors.js';
import type { TokenRow } from '../daemon/catalog.js';
import type { Role } from '../daemon/auth.js';
import { RepositoryReads } from '../daemon/reads.js';
import { optionJsonSchema } from '../config/schema.js';

export type JsonSchema = Record<string, unknown>;

/** Who called: the token that authenticated the request, if the route needs one. */
export interface Caller {
  token?: TokenRow & { role: Role };
}

/** A route with its schemas already turned into JSON Schema: what the app registers and the OpenAPI document lists. */
export interface Route {
  method: 'GET' | 'POST' | 'DELETE';
  url: string;
  /** Minimum role; undefined: public. */
  role?: Role;
  /** A read that is audited even when it succeeds (a download of backed-up data). */
  audited?: boolean;
  /** The path the audit trail records instead of the URL (one that carries a credential). */
  auditPath?: string;
  summary: string;
  params?: JsonSchema;
  query?: JsonSchema;
  body?: JsonSchema;
  response: { status: number; description: string; schema?: JsonSchema };
  handler: (req: FastifyRequest, reply: FastifyReply, who: Caller) => Promise<unknown>;
}

type Schema = z.ZodType | undefined;
/**
 * What a handler is given: the input shape (fastify validates with the JSON Schema and
 * does not run zod's transforms), so an option of the model (a duration, say) arrives as
 * the text the caller wrote and the handler parses it with the model (parseOptionValue).
 */
type In<S extends Schema> = S extends z.ZodType ? z.input<S> : undefined;
/** What a handler may return: the response's input shape (a sendError reply is allowed where there is no schema). */
type Out<S extends Schema> = S extends z.ZodType ? z.input<S> : unknown;

export interface RouteSpec<P extends Schema, Q extends Schema, B extends Schema, R extends Schema> {
  method: Route['method'];
  url: string;
  role?: Role;
  audited?: boolean;
  auditPath?: string;
  summary: string;
  params?: P;
  query?: Q;
  body?: B;
  response: { status: number; description: string; schema?: R };
  handler: (input: { params: In<P>; query: In<Q>; body: In<B> }, reply: FastifyReply, who: Caller) => Out<R> | Promise<Out<R>>;
}

/**
 * JSON Schema of a zod schema, as fastify's ajv and OpenAPI 3.0 both read it
 * (`nullable: true` rather than a type list; the request's input shape).
 */
export function jsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    override: (ctx) => {
      // z.int() bounds itself to safe integers; the API states only the bounds it declares.
      const s = ctx.jsonSchema;
      if (s.maximum === Number.MAX_SAFE_INTEGER) delete s.maximum;
      if (s.minimum === Number.MIN_SAFE_INTEGER) delete s.minimum;
      // Fields that are options of the model (src/api/bodies.ts): their description, durations as the grammar's strings.
      optionJsonSchema(ctx);
    },
  }) as JsonSchema;
}

export function route<P extends Schema = undefined, Q extends Schema = undefined, B extends Schema = undefined, R extends Schema = undefined>(
  spec: RouteSpec<P, Q, B, R>,
): Route {
  return {
    method: spec.method,
    url: spec.url,
    ...(spec.role ? { role: spec.role } : {}),
    ...(spec.audited ? { audited: true } : {}),
    ...(spec.auditPath !== undefined ? { auditPath: spec.auditPath } : {}),
    summary: spec.summary,
    ...(spec.params ? { params: jsonSchema(spec.params) } : {}),
    ...(spec.query ? { query: jsonSchema(spec.query) } : {}),
    ...(spec.body ? { body: jsonSchema(spec.body) } : {}),
    response: { status: spec.response.status, description: spec.response.description, ...(spec.response.schema ? { schema: jsonSchema(spec.response.schema) } : {}) },
    // fastify has validated params, query and body against these very schemas before the handler runs.
    handler: async (req, reply, who) =>
      spec.handler({ params: req.params as In<P>, query: req.query as In<Q>, body: (req.body ?? (spec.body ? {} : undefined)) as In<B> }, reply, who),
  };
}

/** Sends a LifeboatError as `{"error": {code, message, hint}}` with its HTTP status. */
export function sendError(reply: FastifyReply, err: LifeboatError): FastifyReply {
  if (err.code === 'BUSY') reply.header('retry-after', String(RepositoryReads.retryAfterSeconds));
  return reply.code(ERROR_TABLE[err.code].http).send({ error: { code: err.code, message: err.message, hint: err.hint ?? null } });
}
