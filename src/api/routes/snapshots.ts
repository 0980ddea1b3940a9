/**
 * The snapshot browser and restore previews: a directory of a snapshot one level at a
 * time (viewer), one file downloaded (operator, audited: it hands backed-up data to
 * the caller's machine, which a restore below the restore roots does not), and what
 * restoring a source to a moment would do (viewer; nothing starts). daemon/browse.ts
 * checks paths and bounds sizes; daemon/restore-preview.ts builds the plan.
 */
import { SnapshotBrowser, contentDisposition } from '../../daemon/browse.js';
import { previewGroupRestore, previewRestore } from '../../daemon/restore-preview.js';
import type { ApiContext } from '../context.js';
import { GroupPlanQuery, GroupRestorePlan, NameParam, RestorePlan, RestorePlanQuery, SnapshotParams, SnapshotPathQuery, SnapshotTree } from '../dto.js';
import { route, type Route } from '../route.js';

export function snapshotRoutes({ d, role }: ApiContext): Route[] {
  const browser = new SnapshotBrowser(d.config);
  return [
    route({
      method: 'GET', url: '/api/v1/repositories/:name/snapshots/:id/tree', role: 'viewer',
      summary: "One directory of a snapshot (?path=/abs/dir, default /): its entries, one level, at most 2000 (truncated says so); a file's path gives that one entry",
      params: SnapshotParams, query: SnapshotPathQuery,
      response: { status: 200, description: 'the directory', schema: SnapshotTree },
      handler: ({ params, query }) => browser.list(params.name, params.id, query.path),
    }),
    route({
      method: 'GET', url: '/api/v1/repositories/:name/snapshots/:id/file', role: 'operator', audited: true,
      summary: 'Download one file of a snapshot (?path=/abs/file), streamed; at most 1 GiB (restore larger ones); 4 downloads at once',
      params: SnapshotParams, query: SnapshotPathQuery,
      response: { status: 200, description: "the file's bytes (application/octet-stream, attachment)" },
      handler: async ({ params, query }, reply) => {
        const file = await browser.open(params.name, params.id, query.path);
        // The client went away: stop the child rather than let it write into a closed pipe.
        reply.raw.on('close', () => {
          if (!reply.raw.writableFinished) file.abort();
        });
        reply
          .header('content-type', 'application/octet-stream')
          .header('content-length', String(file.size))
          .header('content-disposition', contentDisposition(file.name))
          .header('x-content-type-options', 'nosniff')
          .header('cache-control', 'no-store');
        return reply.send(file.stream);
      },
    }),
    route({
      method: 'GET', url: '/api/v1/sources/:name/restore-plan', role: 'viewer',
      summary: 'What restoring the source to a moment (?time=) or from a snapshot (?snapshot=) would do, and what would refuse it now (?target= to check one; else one is suggested below the restore roots); starts nothing',
      params: NameParam, query: RestorePlanQuery,
      response: { status: 200, description: 'the plan', schema: RestorePlan },
      handler: ({ params, query }, _reply, who) => previewRestore(d, role(who), params.name, query),
    }),
    route({
      method: 'GET', url: '/api/v1/groups/:name/restore-plan', role: 'viewer',
      summary: "What restoring the group to a point (?point=) or the newest at or before a moment (?time=; neither: the newest point) would do: a new directory per member below the restore roots, the group restore's dry-run plan, and what would refuse it; starts nothing",
      params: NameParam, query: GroupPlanQuery,
      response: { status: 200, description: 'the plan', schema: GroupRestorePlan },
      handler: ({ params, query }, _reply, who) => previewGroupRestore(d, role(who), params.name, query),
    }),
  ];
}
