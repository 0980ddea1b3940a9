/** Backups: what the catalog knows, and the snapshots a repository itself lists. */
import * as z from 'zod';
import type { ApiContext } from '../context.js';
import { Backup, BackupsQuery, NameParam } from '../dto.js';
import { route, type Route } from '../route.js';

export function backupRoutes({ d, source }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/backups', role: 'viewer', summary: 'Backups the catalog knows, newest first (all sources, or ?source=)',
      query: BackupsQuery,
      response: { status: 200, description: 'backups', schema: z.array(Backup) },
      handler: ({ query }) => d.catalog.backups(query.source === undefined ? undefined : source(query.source), query.limit ?? 500),
    }),
    route({
      method: 'GET', url: '/api/v1/repositories/:name/snapshots', role: 'viewer', summary: 'Snapshots read from the repository itself', params: NameParam,
      response: { status: 200, description: 'snapshots', schema: z.array(z.record(z.string(), z.unknown())) },
      handler: ({ params }) => d.snapshots(params.name) as Promise<Array<Record<string, unknown>>>,
    }),
  ];
}
