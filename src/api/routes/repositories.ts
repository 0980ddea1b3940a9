/** Repositories: verifying one, and rebuilding the catalog from all of them. */
import type { ApiContext } from '../context.js';
import { Job, NameParam, RebuildCounts } from '../dto.js';
import { CheckBody } from '../bodies.js';
import { route, type Route } from '../route.js';

export function repositoryRoutes({ d, actor }: ApiContext): Route[] {
  return [
    route({
      method: 'POST', url: '/api/v1/repositories/:name/check', role: 'operator', summary: 'Verify a repository (structure, and a share of the data with read_data_subset)', params: NameParam,
      body: CheckBody,
      response: { status: 202, description: 'the job', schema: Job },
      handler: ({ params, body }, reply, who) => {
        reply.code(202);
        return d.submit({ kind: 'check', repository: params.name, trigger: 'api', actor: actor(who), ...(body.read_data_subset ? { readDataSubset: body.read_data_subset } : {}) });
      },
    }),
    route({
      method: 'POST', url: '/api/v1/catalog/rebuild', role: 'admin', summary: "Rebuild the catalog's backups and drills from the repositories",
      response: { status: 200, description: 'counts', schema: RebuildCounts },
      handler: () => d.rebuildCatalog(),
    }),
  ];
}
