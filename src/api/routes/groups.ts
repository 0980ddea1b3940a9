/**
 * Consistency groups (docs/groups.md): their state, their points as the repository
 * holds them, and capturing one now (a `group backup` job, like any other job).
 */
import { z } from 'zod';
import { requireGroup } from '../../daemon/jobs.js';
import type { GroupStatus } from '../../daemon/metrics.js';
import type { ApiContext } from '../context.js';
import { Group, GroupPoints, Job, NameParam } from '../dto.js';
import { route, type Route } from '../route.js';

export function groupRoutes({ d, actor }: ApiContext): Route[] {
  return [
    route({
      method: 'GET', url: '/api/v1/groups', role: 'viewer', summary: 'Consistency groups with their members, newest point, its hold and age, and the newest capture',
      response: { status: 200, description: 'groups', schema: z.array(Group) },
      handler: () => d.groups(),
    }),
    route({
      method: 'GET', url: '/api/v1/groups/:name', role: 'viewer', summary: 'One consistency group', params: NameParam,
      response: { status: 200, description: 'the group', schema: Group },
      // requireGroup refuses an unknown name, so the find always finds it.
      handler: ({ params }) => d.groups().find((g) => g.name === requireGroup(d.config, params.name).name) as GroupStatus,
    }),
    route({
      method: 'GET', url: '/api/v1/groups/:name/points', role: 'viewer', summary: "The group's points read from its repository, newest first (`lifeboat group points NAME --json`)", params: NameParam,
      response: { status: 200, description: 'points', schema: GroupPoints },
      handler: ({ params }) => d.groupPoints(params.name),
    }),
    route({
      method: 'POST', url: '/api/v1/groups/:name/backup', role: 'operator', summary: 'Capture a point of the group now (`lifeboat group backup NAME`); returns the job at once', params: NameParam,
      response: { status: 202, description: 'the job', schema: Job },
      handler: ({ params }, reply, who) => {
        const g = requireGroup(d.config, params.name);
        reply.code(202);
        return d.submit({ kind: 'group-backup', group: g.name, trigger: 'api', actor: actor(who) });
      },
    }),
  ];
}
