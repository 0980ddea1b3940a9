/**
 * Consistency groups (docs/groups.md): their state, their points as the repository
 * holds them, and capturing one now (a `group backup` job, like any other job).
 */
import * as z from 'zod';
import { requireGroup } from '../../daemon/jobs.js';
import type { GroupStatus } from '../../daemon/metrics.js';
import type { ApiContext } from '../context.js';
import { Group, GroupPoints, GroupRestoreAnswer, Job, NameParam } from '../dto.js';
import { GroupRestoreBody } from '../bodies.js';
import { parseTargetTime } from '../../engine/target-time.js';
import { checkRestoreTarget } from '../../daemon/restore-policy.js';
import { route, type Route } from '../route.js';

export function groupRoutes({ d, actor, role }: ApiContext): Route[] {
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
      method: 'POST', url: '/api/v1/groups/:name/restore', role: 'operator',
      summary: 'Restore every member to one point (`lifeboat group restore`), each into a new or empty directory below server.restore_roots (admin only without them); planned and checked first: one unusable target starts nothing',
      params: NameParam,
      body: GroupRestoreBody,
      response: { status: 202, description: 'the plan and the job (200 and no job on a dry run)', schema: GroupRestoreAnswer },
      handler: async ({ params, body: b }, reply, who) => {
        const g = requireGroup(d.config, params.name);
        // Refused here, not in a job: a future or zone-less time must not start one.
        if (b.time !== undefined) parseTargetTime(b.time);
        const targets = Object.fromEntries(Object.entries(b.targets).map(([member, dir]) => [member, checkRestoreTarget(d.config, role(who), dir)]));
        const p = { ...(b.point !== undefined ? { point: b.point } : {}), ...(b.time !== undefined ? { time: b.time } : {}), targets };
        const req = { kind: 'group-restore' as const, group: g.name, trigger: 'api', actor: actor(who), groupRestore: p };
        d.checkStartable(req);
        // The whole plan before any job: a missing point, an unusable target or a member whose
        // history no longer reaches the point refuses the request, and nothing starts.
        const plan = await d.planGroupRestore(g.name, p);
        if (b.dry_run === true) {
          reply.code(200);
          return { plan, job: null };
        }
        reply.code(202);
        return { plan, job: d.submit(req) };
      },
    }),
    route({
      method: 'POST', url: '/api/v1/groups/:name/drill', role: 'operator',
      summary: 'Drill the group now (`lifeboat group drill NAME`): every member restored into scratch at its newest point, each checked, the cross-member checks run, one RTO recorded; returns the job at once',
      params: NameParam,
      response: { status: 202, description: 'the job', schema: Job },
      handler: ({ params }, reply, who) => {
        const g = requireGroup(d.config, params.name);
        reply.code(202);
        return d.submit({ kind: 'group-drill', group: g.name, trigger: 'api', actor: actor(who) });
      },
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
