/** Drills: starting one (or one per source), and their history. */
import * as z from 'zod';
import type { ApiContext } from '../context.js';
import { Drill, DrillBody, Jobs, SourceQuery } from '../dto.js';
import { route, type Route } from '../route.js';

export function drillRoutes({ d, source, actor }: ApiContext): Route[] {
  return [
    route({
      method: 'POST', url: '/api/v1/drills', role: 'operator', summary: 'Drill one source (or all): restore its newest backup, check it, measure RTO and RPO',
      body: DrillBody,
      response: { status: 202, description: 'the jobs', schema: Jobs },
      handler: ({ body }, reply, who) => {
        const names = body.source !== undefined ? [source(body.source)] : [...d.config.sources.keys()];
        reply.code(202);
        return { jobs: names.map((s) => d.submit({ kind: 'drill', source: s, trigger: 'api', actor: actor(who) })) };
      },
    }),
    route({
      method: 'GET', url: '/api/v1/drills', role: 'viewer', summary: 'Drill history, newest first', query: SourceQuery,
      response: { status: 200, description: 'drills', schema: z.array(Drill) },
      handler: ({ query }) => d.catalog.drills(query.source === undefined ? undefined : source(query.source)),
    }),
  ];
}
