/** API tokens: listing (never their secrets), creating (the secret shown once) and revoking. */
import * as z from 'zod';
import { createToken, parseRole, revokeToken } from '../../daemon/auth.js';
import type { ApiContext } from '../context.js';
import { IdParam, Token, TokenCreated, TokenRevoked } from '../dto.js';
import { TokenBody } from '../bodies.js';
import { route, type Route } from '../route.js';

export function tokenRoutes({ d }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/tokens', role: 'admin', summary: 'API tokens (never their secrets)',
      response: { status: 200, description: 'tokens', schema: z.array(Token) },
      handler: () => d.catalog.tokens(),
    }),
    route({
      method: 'POST', url: '/api/v1/tokens', role: 'admin', summary: 'Create a token (a name no active token has; optional lifetime such as "30d"); its secret is shown once',
      body: TokenBody,
      response: { status: 201, description: 'the token', schema: TokenCreated },
      handler: ({ body: b }, reply) => {
        // `expires` is parsed in one place, daemon/auth.ts's expiryOf (via createToken), by the option
        // model's tokenExpires: the grammar and meaning of `lifeboat token create --expires` (util/duration.ts).
        // The body's JSON Schema takes a string only (a duration's is the grammar's string); z.input also names numbers, which YAML gives.
        const t = createToken(d.catalog, parseRole(b.role), b.name, b.expires === undefined ? undefined : String(b.expires));
        reply.code(201);
        return { id: t.id, name: b.name, role: b.role, token: t.token, expires_at: t.expires_at };
      },
    }),
    route({
      method: 'DELETE', url: '/api/v1/tokens/:id', role: 'admin', summary: 'Revoke one token (by id, or by the name of the one active token with it)', params: IdParam,
      response: { status: 200, description: 'revoked', schema: TokenRevoked },
      handler: ({ params }) => {
        const t = revokeToken(d.catalog, params.id);
        return { revoked: 1, id: t.id, name: t.name };
      },
    }),
  ];
}
