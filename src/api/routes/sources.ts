/** Sources: their state, backing one up now, and their retention policy (preview and apply). */
import * as z from 'zod';
import type { SourceStatus } from '../../daemon/metrics.js';
import type { ApiContext } from '../context.js';
import { Job, NameParam, Source } from '../dto.js';
import { route, type Route } from '../route.js';

export function sourceRoutes({ d, source, actor }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/sources', role: 'viewer', summary: 'Sources with their last backup, current RPO, measured RTO and targets',
      response: { status: 200, description: 'sources', schema: z.array(Source) },
      handler: () => d.sources(),
    }),
    route({
      method: 'GET', url: '/api/v1/sources/:name', role: 'viewer', summary: 'One source', params: NameParam,
      response: { status: 200, description: 'the source', schema: Source },
      // source() refuses an unknown name, so the find always finds it.
      handler: ({ params }) => d.sources().find((s) => s.name === source(params.name)) as SourceStatus,
    }),
    route({
      method: 'POST', url: '/api/v1/sources/:name/backup', role: 'operator', summary: 'Back up a source now; returns the job at once', params: NameParam,
      response: { status: 202, description: 'the job', schema: Job },
      handler: ({ params }, reply, who) => {
        reply.code(202);
        return d.submit({ kind: 'backup', source: source(params.name), trigger: 'api', actor: actor(who) });
      },
    }),
    route({
      method: 'GET', url: '/api/v1/sources/:name/retention', role: 'viewer', summary: "Preview the source's retention policy: what would be kept and why, what would be removed", params: NameParam,
      response: { status: 200, description: 'the preview (forget --dry-run)' },
      handler: ({ params }) => d.retentionPreview(source(params.name)),
    }),
    route({
      method: 'POST', url: '/api/v1/sources/:name/retention', role: 'admin', summary: "Apply the source's retention policy now (forget, then prune)", params: NameParam,
      response: { status: 202, description: 'the job', schema: Job },
      handler: ({ params }, reply, who) => {
        reply.code(202);
        return d.submit({ kind: 'forget', source: source(params.name), trigger: 'api', actor: actor(who) });
      },
    }),
  ];
}
