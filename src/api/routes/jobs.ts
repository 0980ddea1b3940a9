/** Jobs: the list, one job, and its log. */
import * as z from 'zod';
import type { ApiContext } from '../context.js';
import { IdParam, Job, JobsQuery, LogLine, LogQuery } from '../dto.js';
import { route, type Route } from '../route.js';

export function jobRoutes({ d, job, actor }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/jobs', role: 'viewer', summary: 'Jobs, newest first', query: JobsQuery,
      response: { status: 200, description: 'jobs', schema: z.array(Job) },
      // A parsed query holds only the keys sent (never one set to undefined), as the catalog's filter expects.
      handler: ({ query }) => d.catalog.jobs(query as Parameters<typeof d.catalog.jobs>[0]),
    }),
    route({
      method: 'GET', url: '/api/v1/jobs/:id', role: 'viewer', summary: 'One job: status, progress, result', params: IdParam,
      response: { status: 200, description: 'the job', schema: Job },
      handler: ({ params }) => job(params.id),
    }),
    route({
      method: 'POST', url: '/api/v1/jobs/:id/cancel', role: 'operator', summary: 'Cancels a running job: its process is stopped (SIGTERM, then SIGKILL after 20 s); the job ends failed, INTERRUPTED, naming who canceled it', params: IdParam,
      response: { status: 202, description: 'the job, still running until its process has stopped', schema: Job },
      handler: ({ params }, reply, who) => {
        reply.code(202);
        return d.runner.cancel(job(params.id).id, actor(who));
      },
    }),
    route({
      method: 'GET', url: '/api/v1/jobs/:id/log', role: 'viewer', summary: "A job's log lines (after=SEQ for the new ones)", params: IdParam,
      query: LogQuery,
      response: { status: 200, description: 'log lines', schema: z.array(LogLine) },
      handler: ({ params, query }) => d.catalog.log(job(params.id).id, query.after ?? 0),
    }),
  ];
}
