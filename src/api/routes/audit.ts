/** The audit log: every mutating or refused call (admins only). */
import * as z from 'zod';
import type { ApiContext } from '../context.js';
import { AuditEntry, AuditQuery } from '../dto.js';
import { route, type Route } from '../route.js';

export function auditRoutes({ d }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/audit', role: 'admin', summary: 'The audit log: every mutating or refused call, newest first', query: AuditQuery,
      response: { status: 200, description: 'audit entries', schema: z.array(AuditEntry) },
      handler: ({ query }) => d.catalog.auditLog(query.limit ?? 200),
    }),
  ];
}
